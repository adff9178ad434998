"""Re-assessing a referred consignment when its filer answers a request for information (IE3R02).

Pure functions; the workbench's keeper (workbench/rfi.py) calls them.

A referral carries what its re-assessment needs (`reassessment_payload`: the screening record
the decision was made on and the container facts), so an answer can be assessed again without
the filings: the answers that point at a goods item's description or HS code and give a
corrected value replace that value; the record is scored again by the pack active now (with
the risk information active now); the container facts stay those of the first assessment, the
goods facts (what descriptions say against codes) are read again from the corrected record.
The re-assessment is a new version of the consignment (state `...+rfi:<answer>`), answered to
every filer of it like any assessment, and, if still a referral, an update of the same referral.

An answer adds information; it never decides. A correction that takes a risk indicator away (a
precursor's HS code turned into a phone's) is itself a risk fact (`rfi-correction-changes-risk`,
with the value before and after) that rules score and the analyst sees; and `settlement` says
what the re-assessment may do to the referral: only a plain request for information, open,
answered without changing the risk picture, is settled by the system; an answer never lowers a
decision nor takes a referral from the analyst who holds it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Container

from lxml import etree

from .decisions import Decision, incompleteness, risk_centre_for
from .domain.enrichment import GOODS_FACTS
from .domain.goods_classifier import bundled_goods_classifier
from .domain.goods_facts import goods_facts
from .domain.rulepack import RFI, SEVERITY
from .domain.scoring import Scorer, Subject
from .domain.screening import ScreeningRecord, changed, record_from_dict, record_to_dict
from .enrichment import EnrichedFiling, Fact
from .linking import Member
from .validation import utc_iso

RESPONSES_NS = "urn:cargoscreen:ics2:responses:v1"
_CORRECTABLE = {"Description": "description", "HSCode": "hs_code"}
_HS = re.compile(r"\d{6}(\d{2})?")
RISK_CHANGE = "rfi-correction-changes-risk"  # a fact: an answer's correction took a risk indicator away
APPLY, SETTLE, HOLD = "apply", "settle", "hold"  # what a re-assessment after an answer does to the referral


@dataclass(frozen=True)
class AnswerItem:
    pointer: str | None
    text: str
    corrected: str | None = None


@dataclass(frozen=True)
class RfiAnswer:
    submission_id: str
    filer: str
    mrn: str
    received_at: str
    items: tuple[AnswerItem, ...]


def read_rfi_answer(root: etree._Element, submission_id: str, filer: str, received_at: str) -> RfiAnswer:
    """An IE3R02 tree (already schema-valid) as data."""
    ns = {"r": RESPONSES_NS}
    items = tuple(AnswerItem(a.findtext("r:Pointer", namespaces=ns), a.findtext("r:Text", namespaces=ns) or "",
                             a.findtext("r:CorrectedValue", namespaces=ns))
                  for a in root.findall("r:Answer", namespaces=ns))
    return RfiAnswer(submission_id, filer, root.findtext("r:MRN", namespaces=ns) or "", received_at, items)


def reassessment_payload(d: Decision) -> dict:
    """What a referral keeps for its re-assessment."""
    f = d.filing
    return {"record": record_to_dict(f.record) if f.record else None,
            "facts": [{"kind": x.kind, "container": x.container, "detail": x.detail, "events": list(x.events),
                       "values": x.values} for x in f.facts],
            "containers": list(f.containers), "submission_id": f.submission_id,
            "members": [{"mrn": m.mrn, "submission_id": m.submission_id, "filer": m.filer, "lrn": m.lrn,
                         "filing_code": m.filing_code} for m in f.members]}


@dataclass(frozen=True)
class Correction:
    """A corrected value an answer gives for a goods line's description or HS code."""
    pointer: str
    line: int  # index in the record's goods
    field: str  # description | hs_code
    before: str | None
    after: str

    def __str__(self) -> str:
        return f"{self.pointer} = {self.after}"


def _corrections(record: ScreeningRecord, items, known_hs: Container[str] | None = None) -> list[Correction]:
    """The corrections the answers give for a goods description or HS code they point at. An HS code
    must be one (6 or 8 digits, its subheading in `known_hs` when given): anything else is kept as
    the answer's text for the analyst, never applied."""
    goods, out = list(record.goods), []
    for item in items:
        if not item.pointer or not item.corrected:
            continue
        for i, line in enumerate(goods):
            if not item.pointer.startswith(line.pointer + "/"):
                continue
            field_name = _CORRECTABLE.get(item.pointer[len(line.pointer) + 1:])
            value = item.corrected.strip()
            if field_name == "hs_code" and not (_HS.fullmatch(value) and (known_hs is None or value[:6] in known_hs)):
                continue
            if field_name:
                out.append(Correction(item.pointer, i, field_name, getattr(line, field_name), value))
                goods[i] = line._replace(**{field_name: value})  # a later correction of it starts from this one
    return out


def corrected(record: ScreeningRecord, corrections) -> ScreeningRecord:
    goods = list(record.goods)
    for c in corrections:
        goods[c.line] = goods[c.line]._replace(**{c.field: c.after})
    return changed(record, goods=tuple(goods)) if corrections else record


def apply_corrections(record: ScreeningRecord, items, known_hs: Container[str] | None = None
                      ) -> tuple[ScreeningRecord, list[Correction]]:
    """The record with the corrections the answers give, and those corrections."""
    found = _corrections(record, items, known_hs)
    return corrected(record, found), found


def _with_goods_facts(record: ScreeningRecord, facts) -> tuple[Fact, ...]:
    """The facts, with what this record's goods descriptions say against its codes read again: a
    corrected code or description changes them (goods_facts.py)."""
    return tuple(f for f in facts if f.kind not in GOODS_FACTS) + goods_facts(record, bundled_goods_classifier())


def _indicators(scorer: Scorer, record: ScreeningRecord, facts, status: str, now: float) -> set[tuple[str, bool]]:
    """What points at risk in the record, for the pack active now: the rules that add to the score
    without asking a question (those an answer is expected to silence), and those that subtract."""
    fired, _ = scorer.fired(Subject(record, facts, status, now))
    return {(r.id, r.weight > 0) for r in fired if r.weight < 0 or (r.weight > 0 and r.decision != RFI)}


def risk_changes(scorer: Scorer, record: ScreeningRecord, corrections, facts, status: str, now: float,
                 answer: RfiAnswer) -> tuple[Fact, ...]:
    """A fact for each correction that takes a risk indicator away (a rule that fired on the filed
    value and does not on the corrected one) or makes a lowering rule fire. A rule that only the
    corrections together silence is charged to each of them."""
    if not corrections:
        return ()
    before = _indicators(scorer, record, facts, status, now)

    def lowered(fix) -> list[str]:
        fixed = corrected(record, fix)
        after = _indicators(scorer, fixed, _with_goods_facts(fixed, facts), status, now)
        return sorted({rule for rule, adds in before - after if adds} | {rule for rule, adds in after - before
                                                                         if not adds})
    together = set(lowered(corrections))
    alone = {c: lowered([c]) for c in corrections}
    unexplained = together - {rule for rules in alone.values() for rule in rules}
    out = []
    for c in corrections:
        rules = sorted(set(alone[c]) | unexplained)
        if rules:
            line = record.goods[c.line]
            what = "HS code" if c.field == "hs_code" else "description"
            out.append(Fact(RISK_CHANGE, "", f"{what} of goods item {line.number} corrected by the filer "
                            f"{answer.filer} from {c.before!r} to {c.after!r}: no longer fires {', '.join(rules)}",
                            (), {"pointer": c.pointer, "before": c.before or "", "after": c.after,
                                 "rules": rules, "answer": answer.submission_id}))
    return tuple(out)


def reassess(body: dict, answer: RfiAnswer, scorer: Scorer, now: datetime | None = None,
             known_hs: Container[str] | None = None) -> tuple[Decision, list[Correction], tuple[Fact, ...]]:
    """The consignment of a referral (`body`, as the referral stream carries it) assessed again with
    the filer's answer. Returns the decision, the corrections applied, and the risk facts they made
    (also among the decision's facts, so rules score them and the referral shows them)."""
    now = now or datetime.now(timezone.utc)
    payload = body["reassessment"]
    filed = record_from_dict(payload["record"])
    record, applied = apply_corrections(filed, answer.items, known_hs)
    facts = tuple(Fact(x["kind"], x["container"], x["detail"], tuple(x["events"]), dict(x.get("values") or {}))
                  for x in payload["facts"])
    changes = risk_changes(scorer, filed, applied, facts, body["container_status"], now.timestamp(), answer)
    facts = (_with_goods_facts(record, facts) if applied else facts) + changes
    members = tuple(Member(m["mrn"], answer.submission_id, m["filer"], m["lrn"], m["filing_code"], "", record)
                    for m in payload["members"])
    filing = EnrichedFiling(answer.submission_id, body["mrn"], body["filing_code"], body["mode"], body["lrn"],
                            body["filer"], tuple(payload["containers"]), body["container_status"], facts, record,
                            consignment=body["consignment"], state=f"{body['state']}+rfi:{answer.submission_id}",
                            version=int(body["version"]) + 1, members=members, missing=tuple(body.get("missing", ())))
    assessment = scorer.assess(record, facts, body["container_status"], now.timestamp())
    if filing.missing:
        assessment = incompleteness(assessment, filing.missing)
    centre = body.get("risk_centre") or risk_centre_for(filing)  # the referral stays where it is
    return Decision(filing, assessment, utc_iso(now), centre), applied, changes


def settlement(body: dict, state: str, holder: str, decision: Decision, changes) -> tuple[str, str]:
    """What a re-assessment after an answer may do to the referral (`body`: the version answered;
    `state`, `holder`: the queue's): (APPLY, "") it still refers, at least as strongly: the new version
    replaces the referral (a claim is kept); (SETTLE, "") the system resolves it `rfi-answered`; or
    (HOLD, why) nothing is sent: the answer and the re-assessment wait on the referral for the analyst.

    The system settles only a plain request for information: every rule that fired asked a question,
    nobody holds it, no correction changed the risk picture, and nothing fires on the answered data."""
    was, now = body["decision"], decision.assessment.decision
    if decision.referral and SEVERITY[now] >= SEVERITY[was]:
        return APPLY, ""
    lowered = f"re-assessed {now}, below the {was} decided"
    if state != "open":
        return HOLD, f"{lowered}; {holder or state} holds the referral: the analyst decides"
    if was != RFI:
        return HOLD, f"{lowered}: an answer never lowers a decision that was not a request for information"
    if changes:
        return HOLD, f"{lowered}, but a correction changed the risk picture: the analyst decides"
    others = sorted({h["rule"] for h in body.get("hits", ()) if h.get("weight", 0) > 0 and h.get("decision") != RFI})
    if others:
        return HOLD, f"{lowered}; the referral also had {', '.join(others)}, which asked nothing: the analyst decides"
    return SETTLE, ""  # (a re-assessment that still refers was applied above: RFI is the weakest referral)
