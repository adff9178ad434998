"""From an enriched filing to its decision: the assessment, the filer's answer, the referral.

Pure functions; the Beam stage (stages/score.py) and the backtest call them.

What goes where: the filer gets the decision and what it must do (the questions of a request
for information, the screening methods, the office that will control), with risk areas and
levels but never the rules that fired: criteria are not disclosed to the parties they screen.
The risk centre of the office of first entry gets the referral with the whole explanation:
each rule, its contribution, the data elements and container events behind it (the default
centre gets it when the office cannot be trusted to name one).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone

from .config import DEFAULT_RISK_CENTRE
from .domain import answers
from .domain.answers import Answer, RiskResult
from .domain.conditions import Evidence
from .domain.enrichment import CLAIM_REFUSED, GOODS_FACTS, OFFICE_FACTS
from .domain.reference import ENTRY_OFFICE_COUNTRIES
from .domain.rulepack import COMPLETE, CONTROL, DNL, RFI, RFS, SEVERITY
from .domain.scoring import Assessment, Hit, Scorer
from .enrichment import EnrichedFiling
from .linking import Member, filer_view, per_item
from .validation import utc_iso

ASSESSMENT_ANSWERS = {COMPLETE: "IE3N03", RFI: "IE3Q02", RFS: "IE3Q03", DNL: "IE3Q01", CONTROL: "IE3N08"}
SUMMARY_GOODS = 20  # goods items shown in a referral (the filing itself is archived whole)
INCOMPLETE_RULE = "ENS-INCOMPLETE"  # not a pack's rule: the linking deadline's own finding


@dataclass(frozen=True)
class Decision:
    filing: EnrichedFiling
    assessment: Assessment
    assessed_at: str  # ISO 8601 UTC
    risk_centre: str

    @property
    def referral(self) -> bool:
        return self.assessment.referral

    @property
    def referral_id(self) -> str:
        """One referral per consignment: its id follows from the lead filing's MRN (a redelivery makes
        the same id; a re-assessment updates the referral, with a higher version)."""
        return f"REF-{self.filing.mrn}"

    @property
    def consignment(self) -> str:
        return self.filing.consignment or f"mrn:{self.filing.mrn}"

    @property
    def key(self) -> str:
        """Names this decision: the consignment in the state assessed (see linking.py)."""
        return f"{self.consignment}|{self.filing.state}"


def risk_centre_for(filing: EnrichedFiling, default_centre: str = DEFAULT_RISK_CENTRE) -> str:
    """The national risk centre of the member state of first entry (RC-NL for NL000396) when the
    office is a known office of entry on the declared route; otherwise the default centre, and the
    filing's office fact says why (domain/offices.py). The code's first two letters are the filer's
    word: they name a centre only once the Customs Office List and the route bear them out."""
    return office_centre(filing.office_of_first_entry, filing.facts, default_centre)


def office_centre(office: str | None, facts, default_centre: str = DEFAULT_RISK_CENTRE) -> str:
    """risk_centre_for, from an office of first entry and the facts found about it (the linking step
    names a consignment's centre from its master's office, before any assessment)."""
    if not office or office[:2] not in ENTRY_OFFICE_COUNTRIES or any(f.kind in OFFICE_FACTS for f in facts):
        return default_centre
    return f"RC-{office[:2]}"


def incompleteness(assessment: Assessment, missing: tuple[str, ...]) -> Assessment:
    """A consignment still incomplete at its deadline: at least a request for the missing filings.
    The risk centre reads each missing document; the question every filer of it gets counts the
    missing houses instead (each is some filer's own: see linking.filer_view)."""
    hit = Hit(INCOMPLETE_RULE, "ENS not complete at its deadline", "data-quality", 0.0, RFI,
              tuple(Evidence(None, m) for m in missing),
              ask=f"File the missing data: {'; '.join(filer_view(missing))}."[:512])
    decision = assessment.decision if SEVERITY[assessment.decision] >= SEVERITY[RFI] else RFI
    return replace(assessment, hits=(*assessment.hits, hit), decision=decision)


def decide(filing: EnrichedFiling, scorer: Scorer, now: datetime | None = None,
           default_centre: str = DEFAULT_RISK_CENTRE) -> Decision:
    now = now or datetime.now(timezone.utc)
    assessment = scorer.assess(filing.record, filing.facts, filing.container_status, now.timestamp())
    if filing.missing:
        assessment = incompleteness(assessment, filing.missing)
    # A claim refused from another filer's consignment is that consignment's risk centre's business.
    claimed = next((f.values.get("centre") for f in filing.facts if f.kind == CLAIM_REFUSED), None)
    return Decision(filing, assessment, utc_iso(now), claimed or risk_centre_for(filing, default_centre))


def _area_results(a: Assessment) -> list[RiskResult]:
    """One result per risk area that counted, for the filer: area and level, no criteria."""
    by_area: dict[str, float] = {}
    for hit in a.hits:
        if hit.weight > 0:
            by_area[hit.area] = by_area.get(hit.area, 0) + hit.weight
    return [RiskResult(area, a.level, f"AREA-{area}"[:35], a.pack, f"Risk analysis: {area}, level {a.level}.")
            for area in sorted(by_area, key=lambda k: -by_area[k])] or \
        [RiskResult("general", a.level, "AREA-general", a.pack, f"Risk analysis: level {a.level}.")]


def filer_answers(d: Decision, now: str) -> list[Answer]:
    """One answer for each filing of the consignment, to its filer, about its own LRN and MRN; a
    postal item's assessment is answered about the item only (its dispatch is in every item's)."""
    members = d.filing.members[:1] if per_item(d.consignment) else d.filing.members
    return [filer_answer(d, now, m) for m in members] or [filer_answer(d, now)]


def filer_answer(d: Decision, now: str, member: Member | None = None) -> Answer:
    """The answer to one filing of the consignment (by default its lead)."""
    f = member or d.filing
    return answers.about(_answer(d, now, f.submission_id, f.filer, f.lrn, f.mrn), d.key)


def own_questions(requests, own_mrns: set[str]) -> list[tuple[str | None, str]]:
    """The questions of a request for information as one filer of the consignment may read them: a
    pointer into another filer's filing (`MRN#path`) loses it, so no filer learns another's MRN."""
    return [(p if not p or "#" not in p or p.partition("#")[0] in own_mrns else None, text) for p, text in requests]


def _answer(d: Decision, now: str, sid: str, filer: str, lrn: str, mrn: str) -> Answer:
    f, a = d.filing, d.assessment
    if a.decision == COMPLETE:
        return answers.assessment_complete(sid, filer, lrn, mrn, a.pack, now)
    if a.decision == RFI:
        own = {m.mrn for m in f.members if m.filer == filer} | {mrn}
        return answers.request_for_information(sid, filer, lrn, mrn, own_questions(a.information_requested(), own),
                                               now)
    if a.decision == RFS:
        return answers.request_for_screening(sid, filer, lrn, mrn, a.screening_methods(), _area_results(a), now)
    if a.decision == DNL:
        return answers.do_not_load(sid, filer, lrn, mrn, _area_results(a), now)
    return answers.control_notification(sid, filer, lrn, mrn, f.office_of_first_entry or "EU000000",
                                        _area_results(a), now)


def decision_record(d: Decision) -> dict:
    """The decision as archived and as the risk centre reads it (JSON-able)."""
    f, a, r = d.filing, d.assessment, d.filing.record
    total = sum(h.weight for h in a.hits if h.weight > 0) or 1.0
    return {
        "referral_id": d.referral_id if d.referral else None,
        "risk_centre": d.risk_centre,
        "submission_id": f.submission_id, "mrn": f.mrn, "lrn": f.lrn, "filer": f.filer,
        "filing_code": f.filing_code, "mode": f.mode, "office_of_first_entry": f.office_of_first_entry,
        "decision": a.decision, "score": round(a.score, 1), "risk_level": a.level, "rule_pack": a.pack,
        "decision_table": a.table, "assessed_at": d.assessed_at,
        "basis": a.basis, "strong_indicators": list(a.strong),
        "consignment": d.consignment, "version": f.version, "state": f.state,
        "filings": [{"mrn": m.mrn, "lrn": m.lrn, "filer": m.filer, "filing_code": m.filing_code}
                    for m in f.members], "missing": list(f.missing),
        "hits": [{"rule": h.rule, "title": h.title, "area": h.area, "weight": h.weight, "decision": h.decision,
                  "contribution": round(h.weight / total, 3) if h.weight > 0 else 0.0,
                  "explanation": h.explanation(),
                  "evidence": [{"pointer": e.pointer, "value": e.value, "events": list(e.events)} for e in h.evidence]}
                 for h in a.hits],
        "information_requested": [{"pointer": p, "text": t} for p, t in a.information_requested()],
        "screening_methods": a.screening_methods(),
        "rule_errors": list(a.errors),
        "filing": None if r is None else {
            "place_of_loading": r.place_of_loading or r.loading_country, "place_of_unloading":
                r.place_of_unloading or r.unloading_country, "routing_countries": list(r.routing_countries),
            "conveyance": r.conveyance, "vessel_imo": r.vessel_imo, "transport_document": r.transport_document,
            "parties": [{"role": p.role, "id": p.id, "name": p.name, "country": p.country} for p in r.parties],
            "goods": [{"item": g.number, "hs_code": g.hs_code, "description": g.description,
                       "gross_mass": g.gross_mass, "value": g.value, "currency": g.currency}
                      for g in r.goods[:SUMMARY_GOODS]],
            "goods_items": len(r.goods), "containers": [c.container_id for c in r.containers],
        },
        "container_status": f.container_status,
        "container_facts": [{"kind": x.kind, "container": x.container, "detail": x.detail, "events": list(x.events)}
                            for x in f.facts if x.kind not in GOODS_FACTS],
        # What the goods descriptions say against their codes, with the classifier's evidence (goods_facts.py).
        "goods_facts": [{"kind": x.kind, "detail": x.detail, **x.values} for x in f.facts if x.kind in GOODS_FACTS],
    }
