"""Answers: every message type validates against answers.xsd; MRNs are unique and registration is idempotent."""
from __future__ import annotations

from dataclasses import replace

import pytest
from lxml import etree
from stdnum import iso6346

from cargoscreen import resources
from cargoscreen.answering import answer_key, registration_answer, registration_request, rejection
from cargoscreen.domain import answers
from cargoscreen.domain.answers import FilingError, RiskResult
from cargoscreen.domain.filings import ANSWERS_NS
from cargoscreen.domain.mrn import is_valid_mrn, make_mrn, mrn_sequence
from cargoscreen.generator import GeneratorSpec, generate
from cargoscreen.registration import RegistrationStore
from cargoscreen.schemas import SchemaRegistry
from cargoscreen.validation import Submission

NOW = "2026-11-23T10:00:00Z"
MRN = make_mrn(2026, "NL", 42)
RISK = RiskResult("security and safety", "high", "CS-SEC-001", "2026.11.1", "Consignor on a watch list",
                  ("/IE3F10/Consignment/Consignor/Name",))


@pytest.fixture(scope="module")
def answers_schema():
    return SchemaRegistry.from_dirs([resources.schema_dir()])


EVERY_ANSWER = [
    answers.registration("s1", "NL123456789", "F10", "LRN1", MRN, NOW, NOW),
    answers.registration("s1b", "NL123456789", "F10", "LRN1", MRN, NOW, NOW, repeat_of="s1"),
    answers.registration("s1c", "NL123456789", "F10", "LRN1", MRN, NOW, NOW, repeat_of=""),  # not recorded
    answers.error_notification("s2", None, None, [FilingError("NOT_WELL_FORMED", "/", "well-formed", "Broken", 3)], NOW),
    answers.error_notification("s3", "NL123456789", "LRN1", [
        FilingError("XSD_FORMAT", "/IE3F10/Header/LRN", "pattern", "Bad & <odd> text", 4, "x" * 2000)], NOW),
    answers.lifecycle_error("s4", "NL123456789", "LRN1", MRN, [FilingError("LRN_REUSED", "/IE3F10/Header/LRN", "c", "r")], NOW),
    answers.amendment_accepted("s5", "NL123456789", "LRN2", MRN, NOW),
    answers.amendment_accepted("s5b", "NL123456789", "LRN2", MRN, NOW, repeat_of="s5"),
    answers.invalidation_accepted("s6", "NL123456789", "LRN3", MRN, NOW),
    answers.invalidation_accepted("s6b", "NL123456789", "LRN3", MRN, NOW, repeat_of="s6"),
    answers.not_complete("s7", "NL123456789", "LRN1", MRN, ["HB0001", "HB0002"], NOW),
    answers.pending("s8", "NL123456789", "LRN1", MRN, "risk analysis under way", NOW),
    answers.assessment_complete("s9", "NL123456789", "LRN1", MRN, "2026.11.1", NOW),
    answers.control_notification("s10", "NL123456789", "LRN1", MRN, "NL000396", [RISK], NOW),
    answers.do_not_load("s11", "NL123456789", "LRN1", MRN, [RISK], NOW),
    answers.request_for_information("s12", "NL123456789", "LRN1", MRN,
                                    [("/IE3F10/Consignment/GoodsItem[1]/Description", "Describe the goods precisely")], NOW),
    answers.request_for_screening("s13", "NL123456789", "LRN1", MRN, ["1", "4"], [RISK], NOW),
]


def test_every_answer_type_is_built(answers_schema):
    types = {a.message_type for a in EVERY_ANSWER}
    declared = {name for ns, name in answers_schema.roots if ns == ANSWERS_NS}
    assert types == declared


@pytest.mark.parametrize("answer", EVERY_ANSWER, ids=lambda a: a.message_type + "-" + a.submission_id)
def test_answer_validates_against_the_answers_schema(answers_schema, answer):
    tree = etree.fromstring(answer.xml).getroottree()
    assert answers_schema.lookup(ANSWERS_NS, answer.message_type).violations(tree) == []


def test_mrn_layout_and_check_character():
    mrn = make_mrn(2026, "NL", 123_456_789)
    assert len(mrn) == 18 and mrn.startswith("26NL") and mrn[16] == "E"
    assert iso6346.calc_check_digit(mrn[:17]) == mrn[17]
    assert is_valid_mrn(mrn) and mrn_sequence(mrn) == 123_456_789
    assert not is_valid_mrn(mrn[:17] + str((int(mrn[17]) + 1) % 10))
    assert len({make_mrn(2026, "NL", n) for n in range(5000)}) == 5000


def _outcomes(validator, n, seed=31):
    spec = GeneratorSpec(count=n, seed=seed, defect_rate=0, envelope_rate=0, resubmission_rate=0)
    return [validator.validate(Submission(f.name, f.data)) for f in generate(spec)]


def _register(store, outcomes):
    requests = [registration_request(o, 2026) for o in outcomes]
    return [registration_answer(o, r, NOW) for o, r in zip(outcomes, store.register(requests, NOW))]


def _repeat_of(a: answers.Answer) -> str | None:
    """The submission an answer to a re-send names ("" if none); None: not a re-send."""
    found = etree.fromstring(a.xml).find(f"{{{ANSWERS_NS}}}Repeat")
    return None if found is None else found.findtext(f"{{{ANSWERS_NS}}}OriginalSubmissionId", "")


def test_registration_gives_unique_mrns_and_the_same_mrn_to_a_resent_filing(validator, redis_client):
    store = RegistrationStore(redis_client)
    outcomes = _outcomes(validator, 300)
    first = _register(store, outcomes)
    assert {a.message_type for a in first} == {"IE3R01"}
    mrns = [a.mrn for a in first]
    assert len(set(mrns)) == 300 and all(is_valid_mrn(m) for m in mrns)
    assert all(m[2:4] == o.summary.office_of_first_entry[:2] for m, o in zip(mrns, outcomes))
    redelivered = _register(store, outcomes[:50])  # the same submissions again (a crash before acknowledgement)
    assert [a.mrn for a in redelivered] == mrns[:50] and {_repeat_of(a) for a in redelivered} == {None}
    resent = [replace(o, submission=replace(o.submission, submission_id=f"again-{o.submission.submission_id}"))
              for o in outcomes[:50]]
    again = _register(store, resent + resent)  # re-sent by other submissions, even twice in one batch
    assert [a.mrn for a in again] == mrns[:50] * 2 and {a.message_type for a in again} == {"IE3R01"}
    assert [_repeat_of(a) for a in again] == [o.submission.submission_id for o in outcomes[:50] * 2]
    reused = replace(outcomes[1], submission=replace(outcomes[1].submission, submission_id="other-content"),
                     summary=replace(outcomes[1].summary, digest="0" * 32))
    assert _register(store, [reused])[0].message_type == "IE3N01"  # the LRN again, other content: found, refused


def test_a_door_answer_is_sent_once_per_submission_and_an_assessment_answer_once_per_state():
    def key(message_type, sid, about, mrn=MRN):
        return answer_key(answers.Answer(message_type, sid, "NL123456789", b"", "LRN1", mrn, about))

    assert key("IE3R01", "s1", "d1|s1") == key("IE3N01", "s1", "d1|s1")  # one door per submission, whatever
    assert key("IE3R01", "s1", "d1|s1") != key("IE3R01", "s2", "d1|s2")  # a re-send is another submission
    assert key("IE3N03", "s1", "mrn:X|st1") == key("IE3Q02", "s2", "mrn:X|st1")  # one assessment per state
    assert key("IE3N03", "s1", "mrn:X|st1") != key("IE3N03", "s1", "mrn:X|st2")
    assert key("IE3N03", "s1", "sea:MB1|st1") != key("IE3N03", "s1", "sea:MB1|st1", mrn=make_mrn(2026, "NL", 7))
    assert key("IE3N02", "s1", "d1") != key("IE3N11", "s1", "d1")  # what is missing, as it changes


def test_same_lrn_with_other_content_is_a_lifecycle_error(validator, redis_client):
    store = RegistrationStore(redis_client)
    [outcome] = _outcomes(validator, 1, seed=32)
    [registered] = _register(store, [outcome])
    changed = outcome.submission.payload.replace(b"<ens:Name>", b"<ens:Name>X", 1)
    [conflict] = _register(store, [validator.validate(Submission("changed", changed))])
    assert conflict.message_type == "IE3N01" and conflict.mrn == registered.mrn
    assert b"LRN_REUSED" in conflict.xml and registered.mrn.encode() in conflict.xml


def _amend(outcome, mrn: str, root: str = "A") -> bytes:
    tree = etree.fromstring(outcome.submission.payload)
    ns = tree.nsmap["ens"]
    tree.tag = "{%s}IE3%s%s" % (ns, root, outcome.summary.filing_code[1:])
    etree.SubElement(tree[0], "{%s}AmendedMRN" % ns).text = mrn
    return etree.tostring(tree)


def _invalidation(outcome, mrn: str) -> bytes:
    src = etree.fromstring(outcome.submission.payload)
    ns = src.nsmap["ens"]
    root = etree.Element("{%s}IE3Q04" % ns, nsmap={"ens": ns})
    root.append(src[0])
    etree.SubElement(root, "{%s}MRN" % ns).text = mrn
    return etree.tostring(root)


def test_amendments_and_invalidations_follow_the_registered_filing(validator, redis_client):
    store = RegistrationStore(redis_client)
    candidates = _outcomes(validator, 20, seed=33)
    mine = candidates[0]
    other = next(o for o in candidates if o.filer != mine.filer)
    mrn_mine, mrn_other = (a.mrn for a in _register(store, [mine, other]))

    def answer(payload: bytes, sid: str = "x") -> answers.Answer:
        outcome = validator.validate(Submission(sid, payload))
        assert outcome.accepted, outcome.errors
        return _register(store, [outcome])[0]

    amended = answer(_amend(mine, mrn_mine))
    assert amended.message_type == "IE3N10" and _repeat_of(amended) is None
    assert _repeat_of(answer(_amend(mine, mrn_mine))) is None  # the same submission again (a redelivery)
    resent = answer(_amend(mine, mrn_mine), sid="y")  # another submission of the latest amendment
    assert resent.message_type == "IE3N10" and _repeat_of(resent) == "x"
    again = validator.validate(Submission("z", _amend(mine, mrn_mine)))
    assert store.register([registration_request(again, 2026)], NOW)[0].amendment == 1  # amended once
    foreign = answer(_amend(mine, mrn_other))
    assert foreign.message_type == "IE3N01" and b"MRN_NOT_YOURS" in foreign.xml
    unknown = answer(_amend(mine, make_mrn(2026, "NL", 999_999)))
    assert unknown.message_type == "IE3N01" and b"MRN_UNKNOWN" in unknown.xml
    assert answer(_invalidation(mine, mrn_mine)).message_type == "IE3R04"
    invalidated_again = answer(_invalidation(mine, mrn_mine), sid="z")
    assert invalidated_again.message_type == "IE3R04" and _repeat_of(invalidated_again) == "x"
    after = answer(_amend(mine, mrn_mine))
    assert after.message_type == "IE3N01" and b"MRN_INVALIDATED" in after.xml


def test_rejection_answer_lists_every_error(validator, corpus, answers_schema):
    for filing in (f for f in corpus if f.label["expected"] == "rejected"):
        outcome = validator.validate(Submission(filing.name, filing.data))
        answer = rejection(outcome, NOW)
        tree = etree.fromstring(answer.xml)
        ns = {"a": ANSWERS_NS}
        assert int(tree.findtext("a:ErrorCount", namespaces=ns)) == len(outcome.errors)
        assert [c.text for c in tree.iterfind("a:Error/a:Code", ns)] == [e.code for e in outcome.errors]
        assert answers_schema.lookup(ANSWERS_NS, "IE3N99").violations(tree.getroottree()) == []


def test_a_request_for_information_fits_the_schema_whatever_its_questions_hold(answers_schema):
    """Control characters (which XML cannot carry), blank and overlong texts, more questions than the
    schema allows, repeated ones: the filer still gets a valid answer, never a dead letter."""
    questions = [(None, "Who stuffed\x07 it?"), (None, " \t "), ("/IE3F10/Consignment", "x" * 900)] + \
        [(None, f"Question {n}") for n in range(120)] + [(None, "Question 1")]
    answer = answers.request_for_information("s1", "NL000000001", "LRN1", make_mrn(2026, "NL", 1), questions,
                                             "2026-11-23T10:00:00Z")
    tree = etree.fromstring(answer.xml)
    assert answers_schema.lookup(ANSWERS_NS, "IE3Q02").violations(tree.getroottree()) == []
    texts = [t.text for t in tree.iter(f"{{{ANSWERS_NS}}}Text")]
    assert texts[0] == "Who stuffed\ufffd it?" and len(texts) == 99 and texts.count("Question 1") == 1
