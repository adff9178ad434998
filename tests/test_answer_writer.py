"""The answers' XML is written by the builders themselves (answers.XmlText), byte for byte what lxml
made of the same builders before (answers.LxmlTree, the reference), message id apart: over answers
of every kind made from a generated corpus, and over arbitrary texts (markup, CR, control characters,
astral planes). Each answer still validates against the answers schema."""
from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings
from hypothesis import strategies as st
from lxml import etree

from cargoscreen import resources
from cargoscreen.domain import answers
from cargoscreen.domain.answers import FilingError, RiskResult
from cargoscreen.domain.filings import ANSWERS_NS
from cargoscreen.domain.mrn import make_mrn
from cargoscreen.domain.rulepack import RulePack
from cargoscreen.schemas import SchemaRegistry
from cargoscreen.validation import Submission

NOW = "2026-11-29T12:00:00.123456Z"
CI = hypothesis_settings(deadline=None, derandomize=True, max_examples=300, suppress_health_check=list(HealthCheck))
_MESSAGE_ID = re.compile(rb"<MessageId>[0-9a-f]{32}</MessageId>")


@dataclass(frozen=True)
class Call:
    """One builder call: the same arguments make the answer both ways."""

    builder: object
    args: tuple
    kwargs: dict

    def both(self) -> tuple[answers.Answer, answers.Answer]:
        return (self.builder(*self.args, **self.kwargs),
                self.builder(*self.args, **self.kwargs, tree=answers.LxmlTree))


def _same_but_the_message_id(new: answers.Answer, old: answers.Answer) -> None:
    assert len(_MESSAGE_ID.findall(new.xml)) == len(_MESSAGE_ID.findall(old.xml)) == 1
    assert _MESSAGE_ID.sub(b"<MessageId/>", new.xml) == _MESSAGE_ID.sub(b"<MessageId/>", old.xml)
    assert (new.message_type, new.submission_id, new.recipient, new.lrn, new.mrn) == \
        (old.message_type, old.submission_id, old.recipient, old.lrn, old.mrn)


def _risk_results(pack: RulePack, record) -> list[RiskResult]:
    pointers = tuple(p.pointer for p in record.parties) + tuple(g.pointer for g in record.goods)
    return [RiskResult(r.area, level, r.id, pack.id, r.title, pointers[:n])
            for n, (r, level) in enumerate(zip(pack.rules, ("low", "medium", "high", "very high") * 99))]


def _calls(outcomes, pack: RulePack) -> list[Call]:
    """Every builder, with what the generated filings hold: their errors, warnings, LRNs, documents,
    pointers, and the starter pack's rules as results and questions."""
    calls = []
    for n, o in enumerate(outcomes):
        sid, filer, s = o.submission.submission_id, o.filer, o.summary
        lrn = s.lrn if s else None
        if not o.accepted:
            calls.append(Call(answers.error_notification, (sid, filer, lrn, o.errors, NOW), {}))
            continue
        mrn, record = make_mrn(2026, (s.office_of_first_entry or "EU")[:2], 1000 + n), o.record
        results = _risk_results(pack, record)[n % 7:n % 7 + 1 + n % 4]
        pointers = [g.pointer for g in record.goods] or [None]
        questions = [(pointers[i % len(pointers)] if i % 2 else None, r.ask or r.title)
                     for i, r in enumerate(pack.rules[n % 5:n % 5 + 4])]
        repeat = (None, "", f"first-{sid}")[n % 3]
        calls += [
            Call(answers.registration, (sid, filer, s.filing_code, lrn, mrn, NOW, NOW, repeat, o.warnings), {}),
            Call(answers.amendment_accepted, (sid, filer, lrn, mrn, NOW, repeat, o.warnings), {}),
            Call(answers.invalidation_accepted, (sid, filer, lrn, mrn, NOW, repeat), {}),
            Call(answers.lifecycle_error, (sid, filer, lrn, mrn if n % 2 else None, [FilingError(
                "LRN_REUSED", f"/{s.message_type}/Header/LRN", "LRN unique per filer",
                f"LRN {lrn} is already registered as MRN {mrn} with different content.", value=lrn)], NOW), {}),
            Call(answers.not_complete, (sid, filer, lrn, mrn,
                                        record.house_documents or [record.transport_document or ""], NOW), {}),
            Call(answers.pending, (sid, filer, lrn, mrn, f"awaiting the {record.transport_document}" if n % 2 else None,
                                   NOW), {}),
            Call(answers.assessment_complete, (sid, filer, lrn, mrn, pack.id if n % 4 else None, NOW), {}),
            Call(answers.request_for_information, (sid, filer, lrn, mrn, questions, NOW), {}),
            Call(answers.request_for_screening, (sid, filer, lrn, mrn, ["1", "4", "7"][:1 + n % 3], results, NOW), {}),
            Call(answers.do_not_load, (sid, filer, lrn, mrn, results, NOW), {}),
            Call(answers.control_notification, (sid, filer, lrn, mrn, s.office_of_first_entry or "EU000000", results,
                                                NOW), {}),
        ]
    return calls


@pytest.fixture(scope="module")
def answers_schema():
    return SchemaRegistry.from_dirs([resources.schema_dir()])


def test_every_answer_of_a_generated_corpus_is_the_bytes_lxml_wrote(validator, corpus, settings, answers_schema):
    outcomes = [validator.validate(Submission(f.name, f.data)) for f in corpus[:600]]
    calls = _calls(outcomes, RulePack.load(settings.rules.pack_dir))
    kinds = set()
    for call in calls:
        new, old = call.both()
        _same_but_the_message_id(new, old)
        schema = answers_schema.lookup(ANSWERS_NS, new.message_type)
        assert schema.violations(etree.fromstring(new.xml).getroottree()) == [], new.xml
        kinds.add(new.message_type)
    assert kinds == {name for ns, name in answers_schema.roots if ns == ANSWERS_NS}  # every kind
    assert any(not o.accepted for o in outcomes) and any(o.warnings for o in outcomes)


# Any text at all, XML's own markup and what XML cannot carry included.
_TEXT = st.text(st.characters(codec=None), max_size=40) | st.sampled_from(
    ["", " ", "a & b <c> ]]> \"q\" 'a'", "line\r\nnext\ttab", "\x00\x07\x1f\x7f\x85\ud800\ufffe\uffff", "\U0001F4E6é"])


@CI
@given(_TEXT, _TEXT, _TEXT, _TEXT, st.integers(-5, 10 ** 6), st.lists(_TEXT, max_size=4))
def test_arbitrary_texts_are_written_as_lxml_wrote_them(a, b, c, d, line, many):
    errors = [FilingError(a, b, c, d, line, a + d), FilingError(d, c, b, a)]
    results = [RiskResult(a, b, c, d, a + b, tuple(many)), RiskResult(d, c, b, a, "x")]
    calls = [
        Call(answers.registration, (a or "s", b, c, d, a, b, NOW, c if line % 3 else None, errors), {}),
        Call(answers.error_notification, (a, b or None, c, errors, NOW), {}),
        Call(answers.lifecycle_error, (b, a, c, d, errors, NOW), {}),
        Call(answers.amendment_accepted, (a, b, c, d, NOW, d if line % 2 else None, errors), {}),
        Call(answers.invalidation_accepted, (a, b, c, d, NOW, a), {}),
        Call(answers.not_complete, (a, b, c, d, many, NOW), {}),
        Call(answers.pending, (a, b, c, d, a + b, NOW), {}),
        Call(answers.assessment_complete, (a, b, c, d, a, NOW), {}),
        Call(answers.control_notification, (a, b, c, d, c, results, NOW), {}),
        Call(answers.do_not_load, (a, b, c, d, results, NOW), {}),
        Call(answers.request_for_information, (a, b, c, d, [(a or None, b), (None, c)] + [(None, m) for m in many],
                                               NOW), {}),
        Call(answers.request_for_screening, (a, b, c, d, many, results, NOW), {}),
    ]
    for call in calls:
        _same_but_the_message_id(*call.both())
