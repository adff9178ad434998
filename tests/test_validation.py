"""Validation of ENS filings: every planted defect found and located, clean filings accepted."""
from __future__ import annotations

import collections

from lxml import etree

from cargoscreen.config import Settings
from cargoscreen.domain.filings import BY_ROOT
from cargoscreen.generator import CONTENT_DEFECTS, DEFECTS, GeneratorSpec, generate
from cargoscreen.validation import FilingValidator, Submission, humanize

from .conftest import DATA


def _found(defect: dict, errors) -> bool:
    wanted = humanize(defect["element"]).lower() if defect["element"] else ""
    return any(e.code == defect["code"] and (wanted in e.pointer.lower() + " " + e.reason.lower()
                                             or defect["element"] in e.pointer) for e in errors)


def test_every_labelled_defect_is_reported_and_clean_filings_pass(validator, corpus):
    missed, false_rejections, kinds = [], [], collections.Counter()
    for filing in corpus:
        outcome = validator.validate(Submission(filing.name, filing.data))
        expected_rejection = filing.label["expected"] == "rejected"
        assert outcome.accepted is not expected_rejection or not outcome.accepted, filing.name
        if not expected_rejection and outcome.errors:
            false_rejections.append((filing.name, outcome.errors))
        for defect in filing.label["defects"]:
            kinds[defect["kind"]] += 1
            if not _found(defect, outcome.errors):
                missed.append((filing.name, defect["kind"], outcome.errors))
    assert false_rejections == []
    assert missed == []
    assert set(kinds) == set(DEFECTS), f"the corpus should plant every kind of defect; missing {set(DEFECTS) - set(kinds)}"


def test_each_error_is_located_and_worded(validator, corpus):
    rejected = [validator.validate(Submission(f.name, f.data)) for f in corpus if f.label["expected"] == "rejected"]
    for outcome in rejected:
        for e in outcome.errors:
            assert e.pointer.startswith("/") and e.constraint and e.reason
            assert "{" not in e.reason.split("Expected")[0] or e.code.startswith("DQ_"), e.reason  # no Clark names
            if e.code.startswith(("XSD_", "DQ_")):
                assert e.line and e.line > 0


def test_one_notification_names_schema_and_data_quality_errors_together(validator):
    data = next(f for f in generate(GeneratorSpec(count=40, seed=9, defect_rate=0, envelope_rate=0,
                                                  resubmission_rate=0, modes=("sea",)))
                if b"<ens:IE3F10" in f.data).data
    root = etree.fromstring(data)
    ns = {"e": root.nsmap["ens"]}
    root.find("e:Header/e:IssueDateTime", ns).text = "2026-11-23T10:00:00+01:00"  # XSD
    root.find(".//e:ContainerId", ns).text = "CSQU3054384"  # check digit (data quality)
    root.find(".//e:GoodsItem/e:Description", ns).text = "General cargo"  # vague (data quality)
    outcome = validator.validate(Submission("multi", etree.tostring(root)))
    codes = [e.code for e in outcome.errors]
    assert codes[:1] == ["XSD_FORMAT"]
    assert {"DQ_CONTAINER_CHECK_DIGIT", "DQ_VAGUE_DESCRIPTION"} <= set(codes)
    check_digit = next(e for e in outcome.errors if e.code == "DQ_CONTAINER_CHECK_DIGIT")
    assert check_digit.reason == "Container number CSQU3054384 has a wrong check digit: by ISO 6346 it should end in 3."
    assert check_digit.pointer.endswith("/TransportEquipment/ContainerId") or "TransportEquipment[" in check_digit.pointer
    date = outcome.errors[0]
    assert date.pointer == "/IE3F10/Header/IssueDateTime" and date.line == 4
    assert date.value == "2026-11-23T10:00:00+01:00"
    assert "UTC (ISO 8601), ending in Z" in date.reason


def test_summary_of_an_accepted_filing(validator, corpus):
    filing = next(f for f in corpus if f.label["expected"] == "registered")
    outcome = validator.validate(Submission(filing.name, filing.data))
    s = outcome.summary
    assert outcome.accepted and s.lrn == filing.label["lrn"] and s.filing_code == filing.label["filing_code"]
    assert s.mode == filing.label["mode"] and BY_ROOT[s.message_type][0].code == s.filing_code
    assert s.filer and s.filer[:2].isalpha() and s.office_of_first_entry
    assert s.digest == validator.validate(Submission("again", filing.data)).summary.digest


def test_missing_element_and_element_out_of_place(validator):
    filing = next(generate(GeneratorSpec(count=1, seed=3, defect_rate=0, envelope_rate=0, modes=("road",))))
    root = etree.fromstring(filing.data)
    header = root[0]
    header.remove(header[0])  # LRN gone
    etree.SubElement(header, "{%s}Remarks" % root.nsmap["ens"]).text = "x"
    errors = validator.validate(Submission("m", etree.tostring(root))).errors
    assert [(e.code, e.pointer) for e in errors][:1] == [("XSD_MISSING", "/IE3F50/Header/LRN")]
    assert errors[0].reason.startswith("LRN is missing")


def test_mixed_corpus_defect_rate_matches_the_spec():
    spec = GeneratorSpec(count=1000, seed=4, defect_rate=0.2, envelope_rate=0.05, resubmission_rate=0)
    labels = [f.label for f in generate(spec)]
    rejected = sum(label["expected"] == "rejected" for label in labels)
    assert 180 < rejected < 290  # 25% asked, minus filings with no place for the drawn defect
    assert {d["kind"] for label in labels for d in label["defects"]} >= set(CONTENT_DEFECTS) - {"bulk-with-count"}


def test_length_errors_count_like_the_schema(validator):
    filing = next(generate(GeneratorSpec(count=1, seed=3, defect_rate=0, envelope_rate=0, modes=("road",))))
    root = etree.fromstring(filing.data)
    description = root.find(".//{%s}Description" % root.nsmap["ens"])
    description.text = "  " + "shoes " * 100  # 600 characters, 599 once white space is collapsed
    [error] = validator.validate(Submission("long", etree.tostring(root))).errors
    assert error.code == "XSD_LENGTH" and error.constraint == "maxLength 512"
    assert error.reason == "Description is 599 characters long; at most 512 characters are allowed."
    description.text = "   "
    [error] = validator.validate(Submission("blank", etree.tostring(root))).errors
    assert error.code == "XSD_LENGTH" and "at least 1 characters" in error.reason


def test_an_empty_element_is_said_to_be_empty_and_other_sets_are_named_as_written():
    """'Gross mass is empty', not "'None' does not have the required format"; another schema set's
    elements keep their own names (PortCode, not 'Port code')."""
    from .conftest import OTHER_SCHEMAS

    validator = FilingValidator(Settings(extra_schema_dirs=(OTHER_SCHEMAS,)))
    root = etree.parse(str(DATA / "filings" / "sea-f10-before-loading.xml")).getroot()
    ns = {"e": root.nsmap["ens"]}
    root.find(".//e:GoodsItem/e:GrossMass", ns).text = ""
    [error] = [e for e in validator.validate(Submission("empty", etree.tostring(root))).errors
               if e.pointer.endswith("/GrossMass")]
    assert error.reason.startswith("Gross mass is empty; a value is required.") and "None" not in error.reason
    other = b'<Shipment xmlns="urn:example:shipment:1"><Pieces>3</Pieces><PiecesScreened>{}</PiecesScreened></Shipment>'
    reasons = [e.reason for e in validator.validate(Submission("other", other.replace(b"{}", b"abc"))).errors
               if e.code == "XSD_FORMAT"]
    assert reasons == ["PiecesScreened 'abc' does not have the required format."]
    reasons = [e.reason for e in validator.validate(Submission("other", other.replace(b"{}", b""))).errors
               if e.code == "XSD_FORMAT"]
    assert reasons == ["PiecesScreened is empty; a value is required."]


def test_comments_and_processing_instructions_inside_values_change_nothing(validator):
    """XML allows a comment or a processing instruction inside a value: the filing is accepted with
    the same record as without them (they once split the value's text and crashed the reader)."""
    filing = next(f for f in generate(GeneratorSpec(count=20, seed=3, defect_rate=0, envelope_rate=0,
                                                    resubmission_rate=0)) if b"<ens:Description>" in f.data)
    marked = filing.data.replace(b"<ens:IssueDateTime>", b"<ens:IssueDateTime><!-- sent by the night run -->", 1) \
        .replace(b"<ens:Description>", b"<ens:Description><?editor checked?>", 1)
    assert marked != filing.data
    plain, with_marks = (validator.validate(Submission(filing.name, data)) for data in (filing.data, marked))
    assert plain.accepted and with_marks.accepted, with_marks
    assert with_marks.record == plain.record and with_marks.record.issued_at > 0
