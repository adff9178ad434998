"""Re-assessing a referred consignment when its filer answers a request for information (IE3R02).

Pure functions; the workbench's keeper (workbench/rfi.py) calls them.

A referral carries what its re-assessment needs (`reassessment_payload`: the screening record
the decision was made on and the container facts), so an answer can be assessed again without
the filings: the answers that point at a goods item's description or HS code and give a
corrected value replace that value; the record is scored again by the pack active now (with
the risk information active now); the container facts stay those of the first assessment.
The re-assessment is a new version of the consignment (state `...+rfi:<answer>`), answered to
every filer of it like any assessment, and, if still a referral, an update of the same referral.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from lxml import etree

from .decisions import Decision, incompleteness, risk_centre_for
from .domain.scoring import Scorer
from .domain.screening import ScreeningRecord, record_from_dict, record_to_dict
from .enrichment import EnrichedFiling, Fact
from .linking import Member
from .validation import utc_iso

RESPONSES_NS = "urn:cargoscreen:ics2:responses:v1"
_CORRECTABLE = {"Description": "description", "HSCode": "hs_code"}
_HS = re.compile(r"\d{6}(\d{2})?")


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


def apply_corrections(record: ScreeningRecord, items) -> tuple[ScreeningRecord, list[str]]:
    """The record with each corrected value the answers give for a goods description or HS code
    they point at; and what was applied (for the referral's history)."""
    goods, applied = list(record.goods), []
    for item in items:
        if not item.pointer or not item.corrected:
            continue
        for i, line in enumerate(goods):
            if not item.pointer.startswith(line.pointer + "/"):
                continue
            field_name = _CORRECTABLE.get(item.pointer[len(line.pointer) + 1:])
            value = item.corrected.strip()
            if field_name == "hs_code" and not _HS.fullmatch(value):
                continue  # not an HS code: kept as text for the analyst
            if field_name:
                goods[i] = line._replace(**{field_name: value})
                applied.append(f"{item.pointer} = {value}")
    return (replace(record, goods=tuple(goods)) if applied else record), applied


def reassess(body: dict, answer: RfiAnswer, scorer: Scorer, now: datetime | None = None) -> tuple[Decision, list[str]]:
    """The consignment of a referral (`body`, as the referral stream carries it) assessed again with
    the filer's answer. Returns the decision and the corrections applied."""
    now = now or datetime.now(timezone.utc)
    payload = body["reassessment"]
    record, applied = apply_corrections(record_from_dict(payload["record"]), answer.items)
    facts = tuple(Fact(x["kind"], x["container"], x["detail"], tuple(x["events"]), dict(x.get("values") or {}))
                  for x in payload["facts"])
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
    return Decision(filing, assessment, utc_iso(now), centre), applied
