"""Backtesting a candidate rule pack: what it would refer, against the active pack, on real or generated traffic.

    traffic = load_traffic(folder_or_archive, settings, fetch_histories)   # validated, enriched, as the pipeline does
    report = backtest(traffic, active_scorer, candidate_scorer, labels)

The filings go through the production steps (validation, the screening record, container-status
enrichment, scoring, decision), without Beam and without registering anything. Per rule the
report counts hits, the referrals a rule takes part in, and the referrals that exist only
because of it (scored again without the rule): its false-hit cost, before it goes live. With
a label file (the generator's, or a scenario set's), it also measures recall of planted risk, overall
and per pattern, the referral rate of clean traffic, and per rule the share of its referrals that
were clean: a rule whose referrals are mostly clean is flagged, its noise is bigger than its catch.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple

from .config import Settings
from .connectors.archive import archived_filings
from .connectors.files import list_filings
from .decisions import Decision, decide
from .domain.mrn import make_mrn
from .domain.reference import ReferenceData
from .domain.rulepack import COMPLETE
from .domain.scoring import Assessment, Scorer
from .enrichment import EnrichedFiling, enrich
from .linking import assemble, member_of
from .party_history import PartyHistoryStore
from .validation import FilingValidator, Submission


@dataclass
class Traffic:
    filings: list[EnrichedFiling]
    read: int = 0
    rejected: int = 0  # not valid: never scored in production either
    resent: int = 0  # the same filing again: assessed once
    pending: int = 0  # partial filings whose consignment is not complete in this traffic


def submissions(source: Path) -> Iterator[tuple[str, bytes]]:
    """(submission id, bytes) from a folder of filings, or from a Parquet archive's accepted filings."""
    source = Path(source)
    if (source / "filings").is_dir() and any((source / "filings").glob("date=*")):
        for batch in archived_filings(source):
            yield from batch
        return
    for name in list_filings(source):
        yield name, (source / name).read_bytes()


def load_traffic(source: Path, settings: Settings, fetch_histories: Callable | None = None,
                 batch_size: int = 64, parties: PartyHistoryStore | None = None) -> Traffic:
    """Reads and validates every filing of a folder (or archive, see `submissions`) and enriches
    the valid ones (container status from fetch_histories; without it, as if no container had a
    status yet). With a party history store (an empty one of the backtest's own), consignments are
    enriched in the order they were issued and each party is seen as of its filing's issue time, so
    the rules on new shippers see the traffic's own history."""
    validator, reference = FilingValidator(settings), ReferenceData.load()
    fetch = fetch_histories or (lambda containers: {})
    traffic, members, seen = Traffic([]), [], set()
    for name, payload in submissions(source):
        outcome = validator.validate(Submission(name, payload))
        traffic.read += 1
        if not outcome.accepted or outcome.record is None:
            traffic.rejected += 1
            continue
        if (outcome.filer, outcome.summary.lrn, outcome.summary.digest) in seen:
            traffic.resent += 1  # registered once, assessed once
            continue
        seen.add((outcome.filer, outcome.summary.lrn, outcome.summary.digest))
        # Nothing is registered: a stand-in MRN, "XX" for "not issued", numbered in reading order.
        members.append(member_of(outcome, make_mrn(datetime.now(timezone.utc).year, "XX", traffic.read)))
    consignments, pending = assemble(members)
    traffic.pending = len(pending)
    record = None
    if parties is not None:
        consignments.sort(key=lambda c: c.record.issued_at)
        issued = {m.mrn: m.record.issued_at for c in consignments for m in c.members}
        record = lambda sightings: _seen_as_of_issue(parties, sightings, issued)  # noqa: E731
    for i in range(0, len(consignments), batch_size):
        traffic.filings += enrich(consignments[i:i + batch_size], fetch, reference, record_parties=record)
    return traffic


def _seen_as_of_issue(parties: PartyHistoryStore, sightings: list, issued: dict[str, float]) -> list:
    """Each sighting recorded as of its filing's issue time, in issue order (one call per time)."""
    seen: list = [None] * len(sightings)
    by_time: dict[float, list[int]] = {}
    for i, s in enumerate(sightings):
        by_time.setdefault(issued.get(s.mrn, 0.0), []).append(i)
    for at in sorted(by_time):
        for i, answer in zip(by_time[at], parties.record([sightings[i] for i in by_time[at]], now=at or None)):
            seen[i] = answer
    return seen


@dataclass
class RuleEffect:
    rule: str
    title: str
    area: str
    weight_active: float | None
    weight_candidate: float | None
    hits_active: int = 0
    hits_candidate: int = 0
    referrals_candidate: int = 0  # candidate referrals this rule fired in
    only_because: int = 0  # candidate referrals that would be assessment-complete without this rule
    clean_referrals: int = 0  # of those it fired in, on traffic labelled clean (false hits)
    planted_referrals: int = 0

    @property
    def clean_referral_share(self) -> float | None:
        """Of the referrals this rule took part in, the share on clean traffic (None: it referred nothing)."""
        return self.clean_referrals / self.referrals_candidate if self.referrals_candidate else None

    @property
    def mostly_clean(self) -> bool:
        """More than half of its referrals were clean: it costs the risk centre more than it catches."""
        return self.clean_referrals * 2 > self.referrals_candidate


@dataclass
class Quality:
    planted: int = 0
    planted_referred: int = 0
    clean: int = 0
    clean_referred: int = 0
    missed: Counter = field(default_factory=Counter)  # planted pattern -> not referred
    planted_by: Counter = field(default_factory=Counter)  # planted pattern -> consignments assessed
    # Of the clean: honest traffic that looks unusual (labelled with a decoy: legal ammunition,
    # antiques with provenance, gold at true value, ...), the false hits a naive rule makes.
    unusual: int = 0
    unusual_referred: int = 0
    unusual_referred_by: Counter = field(default_factory=Counter)  # decoy kind -> referred

    @property
    def recall(self) -> float:
        return self.planted_referred / self.planted if self.planted else 0.0

    def recall_by_pattern(self) -> dict[str, float | None]:
        """Recall of each pattern the labels name, in name order; None for a pattern none of whose
        consignments was assessed (all rejected, or still incomplete)."""
        return {p: (self.planted_by[p] - self.missed[p]) / self.planted_by[p] if self.planted_by[p] else None
                for p in sorted(self.planted_by)}

    @property
    def clean_referral_rate(self) -> float:
        return self.clean_referred / self.clean if self.clean else 0.0

    @property
    def ordinary_referral_rate(self) -> float:
        """Referrals of clean traffic that does not even look unusual."""
        ordinary = self.clean - self.unusual
        return (self.clean_referred - self.unusual_referred) / ordinary if ordinary else 0.0


@dataclass
class BacktestReport:
    active_pack: str
    candidate_pack: str
    filings: int
    decisions_active: Counter
    decisions_candidate: Counter
    new_referrals: list[str]
    dropped_referrals: list[str]
    changed_decisions: list[tuple[str, str, str]]  # (submission, active, candidate) among referrals of both
    rules: list[RuleEffect]
    quality_active: Quality | None = None
    quality_candidate: Quality | None = None

    def referral_rate(self, which: str) -> float:
        decisions = self.decisions_active if which == "active" else self.decisions_candidate
        return (self.filings - decisions.get(COMPLETE, 0)) / self.filings if self.filings else 0.0

    def as_dict(self) -> dict:
        def quality(q: Quality | None):
            return None if q is None else {"unusual": q.unusual, "unusual_referred": q.unusual_referred,
                                           "planted": q.planted, "planted_referred": q.planted_referred,
                                           "recall": round(q.recall, 4), "clean": q.clean,
                                           "clean_referred": q.clean_referred,
                                           "clean_referral_rate": round(q.clean_referral_rate, 4),
                                           "missed_by_pattern": dict(q.missed),
                                           "by_pattern": {p: {"planted": q.planted_by[p],
                                                              "referred": q.planted_by[p] - q.missed[p],
                                                              "recall": None if r is None else round(r, 4)}
                                                          for p, r in q.recall_by_pattern().items()}}
        return {
            "active_pack": self.active_pack, "candidate_pack": self.candidate_pack, "filings": self.filings,
            "decisions": {"active": dict(self.decisions_active), "candidate": dict(self.decisions_candidate)},
            "referral_rate": {"active": round(self.referral_rate("active"), 4),
                              "candidate": round(self.referral_rate("candidate"), 4)},
            "new_referrals": self.new_referrals, "dropped_referrals": self.dropped_referrals,
            "changed_decisions": [{"submission_id": s, "active": a, "candidate": c} for s, a, c in self.changed_decisions],
            "rules": [{**vars(r), "clean_referral_share": None if r.clean_referral_share is None
                       else round(r.clean_referral_share, 4),
                       "mostly_clean": self.quality_candidate is not None and r.mostly_clean} for r in self.rules],
            "quality": {"active": quality(self.quality_active), "candidate": quality(self.quality_candidate)},
        }


def consignment_label(filing: EnrichedFiling, labels: dict[str, dict]) -> dict | None:
    """The label of what was assessed: a consignment carries the risk planted in any of its filings."""
    return label_of([m.submission_id for m in filing.members] or [filing.submission_id], labels)


def label_of(submission_ids: Iterable[str], labels: dict[str, dict]) -> dict | None:
    """The label of a consignment from its members' submission ids (the lead's alone when it has none)."""
    found = [labels[s] for s in submission_ids if s in labels]
    if not found:
        return None
    risky = next((x for x in found if x.get("risk")), None)
    decoy = next((x["decoy"] for x in found if x.get("decoy")), None)
    return risky or {**found[0], "decoy": decoy}


class Replayed(NamedTuple):
    """One consignment as a pack assessed it in a backtest: its lead's submission id and filing code,
    its members' submission ids (labels name them) and the assessment."""

    submission_id: str
    members: tuple[str, ...] | list[str]
    filing_code: str
    assessment: Assessment

    @property
    def referral(self) -> bool:
        return self.assessment.referral


def _quality(decisions: dict[str, Replayed], labels: dict[str, dict]) -> Quality:
    q = Quality()
    for label in labels.values():  # every pattern the labels name is reported, assessed or not
        if label.get("risk") and not label.get("resubmission_of"):
            q.planted_by[label["risk"]] += 0
    for d in decisions.values():
        label = label_of(d.members, labels)
        if label is None or label.get("resubmission_of"):
            continue
        if label.get("risk"):
            q.planted += 1
            q.planted_by[label["risk"]] += 1
            q.planted_referred += d.referral
            if not d.referral:
                q.missed[label["risk"]] += 1
        else:
            q.clean += 1
            q.clean_referred += d.referral
            if label.get("decoy"):
                q.unusual += 1
                q.unusual_referred += d.referral
                q.unusual_referred_by[label["decoy"]] += d.referral
    return q


def _replayed(d: Decision) -> Replayed:
    return Replayed(d.filing.submission_id, tuple(m.submission_id for m in d.filing.members) or
                    (d.filing.submission_id,), d.filing.filing_code, d.assessment)


def backtest(filings: Iterable[EnrichedFiling], active: Scorer, candidate: Scorer,
             labels: dict[str, dict] | None = None, now: datetime | None = None) -> BacktestReport:
    """Each filing decided by both packs (row by row), then compared (see `compare`)."""
    now = now or datetime.now(timezone.utc)
    before: dict[str, Replayed] = {}
    after: dict[str, Replayed] = {}
    for f in filings:
        before[f.submission_id] = _replayed(decide(f, active, now))
        after[f.submission_id] = _replayed(decide(f, candidate, now))
    return compare(before, after, active, candidate, labels)


def compare(before: dict[str, Replayed], after: dict[str, Replayed], active: Scorer, candidate: Scorer,
            labels: dict[str, dict] | None = None) -> BacktestReport:
    """The report from each consignment's assessment by the active pack (before) and the candidate
    (after), keyed alike; however they were computed (row by row, or in SQL over the archive)."""
    effects = {r.id: RuleEffect(r.id, r.title, r.area, None, r.weight) for r in candidate.pack.rules}
    for r in active.pack.rules:
        effects.setdefault(r.id, RuleEffect(r.id, r.title, r.area, r.weight, None)).weight_active = r.weight
    rules_by_id = {r.id: r for r in candidate.pack.rules}
    for d in before.values():
        for h in d.assessment.hits:
            effects[h.rule].hits_active += 1
    for d in after.values():
        label = label_of(d.members, labels or {}) or {}
        for h in d.assessment.hits:
            e = effects[h.rule]
            e.hits_candidate += 1
            if d.referral:
                e.referrals_candidate += 1
                e.clean_referrals += bool(labels) and not label.get("risk")
                e.planted_referrals += bool(label.get("risk"))
                others = [x for x in d.assessment.hits if x.rule != h.rule]
                without = candidate.decide(d.filing_code, others,
                                           [rules_by_id[x.rule] for x in others])
                e.only_because += without.decision == COMPLETE
    referred_before = {s for s, d in before.items() if d.referral}
    referred_after = {s for s, d in after.items() if d.referral}
    changed = [(s, before[s].assessment.decision, after[s].assessment.decision)
               for s in sorted(referred_before & referred_after)
               if before[s].assessment.decision != after[s].assessment.decision]
    return BacktestReport(
        active.pack.id, candidate.pack.id, len(after),
        Counter(d.assessment.decision for d in before.values()), Counter(d.assessment.decision for d in after.values()),
        sorted(referred_after - referred_before), sorted(referred_before - referred_after), changed,
        sorted(effects.values(), key=lambda e: (-e.hits_candidate, e.rule)),
        _quality(before, labels) if labels else None, _quality(after, labels) if labels else None)
