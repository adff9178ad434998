"""The one walk in C over a filing's tree (data quality and the screening record together) gives
what the pure-Python reference gives, DataQualityPack.check then screening_record, on generated
filings of every mode and size, with and without defects, and with the XML written other ways
(comments, CDATA sections, processing instructions) that change what lxml calls an element's text."""
from __future__ import annotations

import os
import re
from dataclasses import replace

import pytest
from lxml import etree

from cargoscreen.config import Settings
from cargoscreen.domain import one_pass
from cargoscreen.domain.filings import ENS_NS
from cargoscreen.generator import GeneratorSpec, generate
from cargoscreen.safexml import RejectedXml, element_pointer
from cargoscreen.validation import FilingValidator, Submission

# `make test` builds the compiled walk (setup.py; Cython and gcc are there): there, its absence fails.
needs_compiled = pytest.mark.skipif(not one_pass.COMPILED and not os.environ.get("CARGOSCREEN_REQUIRE_TOOLS"),
                                    reason="the compiled walk was not built (no C compiler at install)")


@pytest.fixture(scope="module")
def validator():
    return FilingValidator(Settings())


def _rewritten(data: bytes, n: int) -> bytes:
    """The same filing written another way: texts as CDATA (split in two sections), a comment after
    each text (lxml's .text stops there), a processing instruction between elements, blank lines."""
    text = re.compile(rb">([^<>]+)</")
    if n % 4 == 0:
        return text.sub(lambda m: b"><![CDATA[" + m[1][:2] + b"]]><![CDATA[" + m[1][2:] + b"]]></", data)
    if n % 4 == 1:
        return text.sub(lambda m: b">" + m[1] + b"<!-- note -->" + m[1][:1] + b"</", data)
    if n % 4 == 2:
        return data.replace(b"><", b"><?pi x?><")
    return data.replace(b"><", b">\n\n<")


def _filings():
    specs = [GeneratorSpec(count=400, seed=5, defect_rate=0.4, envelope_rate=0.0, risk_rate=0.1, decoy_rate=0.1),
             GeneratorSpec(count=30, seed=6, defect_rate=0.3, envelope_rate=0.0, size="large")]
    for spec in specs:
        for i, f in enumerate(generate(spec)):
            yield f.name, f.data
            if i % 5 == 0:
                yield f"{f.name} (rewritten {i % 4})", _rewritten(f.data, i)


def _findings(findings):
    return [(rule.id, element_pointer(f.element), f.element.sourceline, f.value, f.expected, f.detail)
            for rule, f in findings]


@needs_compiled
def test_compiled_walk_is_built_and_used(validator):
    assert one_pass.COMPILED, "the compiled walk (cargoscreen.domain._onepass) was not built at install"


@needs_compiled
def test_compiled_walk_agrees_with_the_python_reference_on_every_generated_filing(validator):
    pack = validator.data_quality
    compared = records = rejected = 0
    for name, data in _filings():
        try:
            tree = validator.parser.parse(data)
        except RejectedXml:
            continue
        root = tree.getroot()
        if etree.QName(root).namespace != ENS_NS:
            continue
        outcome = validator.validate(Submission(name, data))
        schema_valid = not validator.registry.lookup(ENS_NS, etree.QName(root).localname).violations(tree)
        code = outcome.summary.filing_code if schema_valid and outcome.summary.mode else None
        expected_findings, expected_record = one_pass.check_and_read(pack, root, code, compiled=False)
        findings, record = one_pass.check_and_read(pack, root, code, compiled=True)
        assert _findings(findings) == _findings(expected_findings), name
        assert record == expected_record, name
        if record is not None:
            assert record.pointers == expected_record.pointers, name  # pointers do not take part in ==
            records += 1
        rejected += not outcome.accepted
        compared += 1
    # The comparison covered accepted filings with records, and filings the pack rejects.
    assert compared > 400 and records > 250 and rejected > 50, (compared, records, rejected)


@needs_compiled
def test_validation_outcome_is_the_same_either_way(validator):
    """What a filer and the risk rules get does not depend on which walk ran."""
    reference_validator = FilingValidator(replace(Settings(), compiled_walk=False))
    assert validator.compiled_walk and not reference_validator.compiled_walk
    filings = list(generate(GeneratorSpec(count=120, seed=8, defect_rate=0.3, envelope_rate=0.05)))
    compiled = [validator.validate(Submission(f.name, f.data, received_at="t")) for f in filings]
    reference = [reference_validator.validate(Submission(f.name, f.data, received_at="t")) for f in filings]
    assert compiled == reference
    assert sum(o.record is not None for o in compiled) > 60 and sum(not o.accepted for o in compiled) > 20


def _example_roots(pack):
    for rule in pack.rules:
        if rule.select:
            for kind in ("pass", "fail"):
                for example in rule.examples.get(kind, []):
                    yield rule.id, kind, etree.fromstring(example.replace(">", f' xmlns="{pack.namespace}">', 1))


@needs_compiled
def test_the_native_twins_of_the_xpath_rules_let_every_finding_through(validator):
    """The walk in C decides natively whether a scope can select anything for the bundled pack's XPath
    rules (and leaves the findings to the XPath): on each rule's examples, and on them with their numbers
    written as XPath reads them but a plain parse might not, it finds what the reference finds."""
    pack = validator.data_quality
    assert all(scoped[2] for scoped in pack.walk_tables()[1].values())  # every scope of the bundled pack is native
    seen = {"pass": 0, "fail": 0}
    for rule_id, kind, root in _example_roots(pack):
        variants = [root]
        # Totals, then the values they add up, written as XPath reads them but a plain parse might not
        # (blanks, a lone point, exponents, digits of other scripts, counts past 2 ** 53, CDATA).
        for names, texts in ((("TotalGrossMass", "TotalPackages"), (" 12 ", "12.", ".5", "1e3", "-0", "\t7\n", "0012")),
                             (("GrossMass", "Count", "ItemCount"),
                              ("", "-", "-.5", "1.2.3", "\u0663", "9007199254740993", "99999999999999999999", " 3 "))):
            for text in texts:
                changed = etree.fromstring(etree.tostring(root))
                for el in changed.iter(*(f"{{{pack.namespace}}}{name}" for name in names)):
                    el.text = etree.CDATA(text) if text == " 3 " else text
                variants.append(changed)
        for r in variants:
            expected, _ = one_pass.check_and_read(pack, r, None, compiled=False)
            found, _ = one_pass.check_and_read(pack, r, None, compiled=True)
            assert _findings(found) == _findings(expected), (rule_id, etree.tostring(r))
        fired = [rule.id for rule, _ in one_pass.check_and_read(pack, root, None, compiled=True)[0]]
        assert (rule_id in fired) == (kind == "fail"), (rule_id, kind)
        seen[kind] += 1
    assert seen["fail"] >= 10 and seen["pass"] >= 10


def test_an_xpath_rule_edited_in_the_pack_is_evaluated_as_written(validator, tmp_path):
    """The native twins are known by a digest of their XPath: a pack whose select differs (here: total
    packages compared with the goods items' counts only) is evaluated by its XPath, whatever the walk."""
    source = Settings().data_quality_pack.read_text("utf-8")
    edited = source.replace("      | e:TotalPackages[../e:HouseConsignment][. != sum(../e:HouseConsignment/e:TotalPackages)]\n", "")
    assert edited != source
    (tmp_path / "pack.yaml").write_text(edited, "utf-8")
    pack = FilingValidator(replace(Settings(), data_quality_pack=tmp_path / "pack.yaml")).data_quality
    assert not any(scoped[2] for scoped in pack.walk_tables()[1].values())
    root = etree.fromstring(f'<Consignment xmlns="{pack.namespace}"><TotalPackages>2</TotalPackages><HouseConsignment>'
                            f'<TotalPackages>1</TotalPackages></HouseConsignment></Consignment>')
    assert one_pass.check_and_read(pack, root, None, compiled=True)[0] == []  # the edited rule no longer sees houses
    assert [r.id for r, _ in one_pass.check_and_read(validator.data_quality, root, None, compiled=True)[0]] == \
        ["DQ_TOTAL_PACKAGES"]


def test_a_data_quality_pack_for_another_namespace_leaves_ens_filings_their_record(tmp_path):
    """The record does not come only from the walk: with a pack for other messages, an accepted ENS filing has one."""
    source = Settings().data_quality_pack.read_text("utf-8")
    (tmp_path / "pack.yaml").write_text(source.replace(ENS_NS, "urn:example:other-messages"), "utf-8")
    other = FilingValidator(replace(Settings(), data_quality_pack=tmp_path / "pack.yaml"))
    assert other.data_quality.namespace != ENS_NS
    default = FilingValidator(Settings())
    filing = next(f for f in generate(GeneratorSpec(count=20, seed=3, defect_rate=0.0, envelope_rate=0.0))
                  if default.validate(Submission(f.name, f.data)).record is not None)
    outcome = other.validate(Submission(filing.name, filing.data))
    assert outcome.accepted and outcome.record is not None
    assert outcome.record == default.validate(Submission(filing.name, filing.data)).record


def test_a_record_made_without_the_dataclass_init_is_the_same_record():
    """new_record and changed (the walk's and the currency conversion's way to make records, a third
    of the frozen dataclass's __init__) make what ScreeningRecord(...) and
    dataclasses.replace make, and refuse a field unknown or missing as __init__ would."""
    from dataclasses import replace as dataclass_replace

    from cargoscreen.domain.screening import ScreeningRecord, changed, new_record, record_from_dict

    example = record_from_dict({"goods": [{"description": "toys", "hs_code": "950300", "value": 10.0}]})
    values = dict(vars(example))
    made = new_record(values)
    assert made == ScreeningRecord(**values) and made.pointers == example.pointers
    assert hash(made) == hash(example) and repr(made) == repr(example)
    assert changed(made, lrn="OTHER") == dataclass_replace(example, lrn="OTHER")
    assert new_record({k: v for k, v in values.items() if k != "pointers"}).pointers == {}
    for broken in ({k: v for k, v in values.items() if k != "mode"}, {**values, "colour": "red"}):
        with pytest.raises(TypeError):
            new_record(broken)
        with pytest.raises(TypeError):
            ScreeningRecord(**broken)


def test_summaries_and_outcomes_made_without_init_are_the_same_objects():
    """The validator makes each filing's summary and outcome with frozen.fast_init: equal, with the
    same repr and hash, to the class's own; a field unknown or missing refused; a dataclass with a
    __post_init__ not taken."""
    from dataclasses import asdict, dataclass

    from cargoscreen.domain.frozen import fast_init
    from cargoscreen.validation import FilingSummary, ValidationOutcome

    validator = FilingValidator(Settings())
    seen = 0
    for f in generate(GeneratorSpec(count=40, seed=8, defect_rate=0.3, envelope_rate=0.0)):
        outcome = validator.validate(Submission(f.name, f.data))
        summary = FilingSummary(**asdict(outcome.summary))
        assert outcome.summary == summary and repr(outcome.summary) == repr(summary)
        assert hash(outcome.summary) == hash(summary)
        again = ValidationOutcome(outcome.submission, outcome.summary, outcome.errors, outcome.warnings, outcome.record)
        assert outcome == again and repr(outcome) == repr(again)
        seen += 1 if outcome.errors else 0
    assert seen, "the corpus has rejected filings too"
    make = fast_init(ValidationOutcome)
    assert make({"submission": None, "summary": None, "errors": ()}) == ValidationOutcome(None, None, ())
    for broken in ({"submission": None, "errors": ()}, {"submission": None, "summary": None, "errors": (), "x": 1}):
        with pytest.raises(TypeError):
            make(broken)

    @dataclass(frozen=True)
    class Checked:
        n: int

        def __post_init__(self):
            assert self.n >= 0

    with pytest.raises(TypeError):
        fast_init(Checked)
