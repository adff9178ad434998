"""Judging a consignment again when its containers' status arrives after its assessment.

A deep-sea filing is usually lodged before its box is stuffed, gated in and loaded: its first
assessment judges what is known then ("not yet loaded", or no event at all). Such a
consignment is *watched* until its boxes are loaded (or `rejudge_window_seconds` pass): the
container store puts each watched container that receives an event on `{p}:rejudge`, and the
rejudge desk re-enriches the consignment with the histories known now. When its anomalies
changed, it is assessed again with the pack active now. A re-judgement may raise a decision or
replace a referral with a version at least as strong (a new version of the decision, answered to
every filer; the referral keeps its claim), but it never lowers a referral on its own: container
events come from carriers, and a carrier must not be able to clear a referral by reporting moves.
A weaker re-judgement is *held*: the filer hears nothing, the referral stays as it is, and the new
facts and score wait on its page for the analyst. When nothing changed, the facts are simply
final once the boxes are loaded.

Keys (expire with the window): {p}:watch:{consignment} (JSON: what re-assessing needs),
{p}:watch-of:{container} (the consignments watching it). Stream {p}:rejudge, group `rejudge`.
The desk runs in each service process (service.py); every step is idempotent, the entry is
acknowledged last.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Sequence

import redis

from .config import DEFAULT_RISK_CENTRE, Settings
from .connectors.redis_slots import pipelined
from .connectors.redis_streams import Effect, EffectWriter, StreamKeys, read_group
from .container_store import ContainerEventStore
from .decisions import Decision, decide, filer_answers
from .domain import compact_json, stored_bodies
from .domain.enrichment import INFORMATIONAL_FACTS
from .domain.rulepack import COMPLETE, SEVERITY
from .domain.reference import ReferenceData, bundled_reference
from .domain.screening import record_from_dict, record_to_dict
from .enrichment import (AVAILABLE, NOT_LOADED, UNAVAILABLE, EnrichedFiling, Fact, consignment_facts, filing_facts,
                         party_facts)
from .party_history import PartyHistoryStore
from .linking import Consignment, Member
from .risk_information import RiskInformationStore
from .rule_store import RulePackSource, RulePackStore

log = logging.getLogger(__name__)
GROUP = "rejudge"
# Facts that the box's next events settle.
WAITING = frozenset({"container-unknown", "not-yet-loaded", "on-another-vessel-so-far"})


def provisional(filing: EnrichedFiling) -> tuple[str, ...]:
    """The containers whose judgement waits for events: unknown to the store or not loaded yet, or
    every container when the store held nothing or could not be read."""
    if filing.container_status in (NOT_LOADED, UNAVAILABLE):
        return filing.containers
    if filing.container_status != AVAILABLE:
        return ()
    return tuple(dict.fromkeys(f.container for f in filing.facts if f.kind in WAITING))


def anomalies(facts: Sequence[Fact]) -> list[list[str]]:
    """What a re-judgement compares: the kinds of fact a rule could act on, per container."""
    return sorted({(f.kind, f.container) for f in facts if f.kind not in INFORMATIONAL_FACTS | WAITING})


@dataclass(frozen=True)
class Watch:
    """A watched consignment: its last decision, and what assessing it again needs."""

    consignment: Consignment
    lead: dict  # submission_id, mrn, filing_code, mode, lrn, filer of the filing the decision is about
    version: int
    state: str
    risk_centre: str
    referral_id: str | None
    anomalies: list
    waiting: tuple[str, ...]
    decision: str = COMPLETE  # of the version the filers and the centre hold (a held re-judgement changes neither)

    def to_json(self) -> bytes:
        c = self.consignment
        return compact_json.dumps({"key": c.key, "members": [m.to_json() for m in c.members],
                                   "record": record_to_dict(c.record), "missing": list(c.missing), "lead": self.lead,
                                   "version": self.version, "state": self.state, "risk_centre": self.risk_centre,
                                   "referral_id": self.referral_id, "anomalies": self.anomalies,
                                   "waiting": list(self.waiting), "decision": self.decision})

    @staticmethod
    def from_json(text: bytes | str) -> "Watch":
        d = compact_json.loads(text)
        members = tuple(Member.from_json(m) for m in d["members"])
        consignment = Consignment(d["key"], d["state"], d["version"], members, record_from_dict(d["record"]),
                                  tuple(d["missing"]))
        return Watch(consignment, d["lead"], d["version"], d["state"], d["risk_centre"], d["referral_id"],
                     [list(a) for a in d["anomalies"]], tuple(d["waiting"]), d.get("decision", COMPLETE))

    @staticmethod
    def of(decision: Decision, waiting: tuple[str, ...]) -> "Watch":
        f = decision.filing
        consignment = Consignment(decision.consignment, f.state, f.version, f.members, f.record, f.missing)
        lead = {"submission_id": f.submission_id, "mrn": f.mrn, "filing_code": f.filing_code, "mode": f.mode,
                "lrn": f.lrn, "filer": f.filer}
        return Watch(consignment, lead, f.version, f.state, decision.risk_centre,
                     decision.referral_id if decision.referral else None,
                     [list(a) for a in anomalies(f.facts)], waiting, decision.assessment.decision)


class ContainerWatch:
    """The watched consignments in Redis: written with their decisions, read by the desk."""

    def __init__(self, client: redis.Redis, key_prefix: str, window_seconds: int):
        self.client, self.prefix, self.window = client, key_prefix, window_seconds

    def doc_key(self, consignment: str) -> str:
        return f"{self.prefix}:watch:{consignment}"

    def of_key(self, container: str) -> str:
        return f"{self.prefix}:watch-of:{container}"

    def watch(self, decisions: Sequence[Decision]) -> int:
        """Watches each decided consignment with a container still waiting for events; a newer
        decision without one ends its watch (an amendment, say). One round trip."""
        commands, n = [], 0
        for d in decisions:
            if not d.filing.containers:
                continue
            waiting = provisional(d.filing)
            if waiting:
                commands += self._written(Watch.of(d, waiting))
                n += 1
            else:
                commands.append((self.doc_key(d.consignment), ("DEL", self.doc_key(d.consignment))))
        if commands:
            pipelined(self.client, commands)
        return n

    def _written(self, w: Watch) -> list:
        doc = self.doc_key(w.consignment.key)
        commands = [(doc, ("SET", doc, stored_bodies.pack(w.to_json()), "EX", self.window))]  # compressed
        for key in map(self.of_key, w.waiting):
            commands += [(key, ("SADD", key, w.consignment.key)), (key, ("EXPIRE", key, self.window))]
        return commands

    def update(self, w: Watch) -> None:
        pipelined(self.client, self._written(w))

    def unwatch(self, w: Watch) -> None:
        doc = self.doc_key(w.consignment.key)
        pipelined(self.client, [(doc, ("DEL", doc))] + [
            (key, ("SREM", key, w.consignment.key))
            for key in (self.of_key(c.container_id) for c in w.consignment.record.containers)])

    def follow(self, decision: Decision) -> bool:
        """A newer version decided elsewhere (the re-assessment after an RFI answer, with the
        filer's corrections) becomes what a re-judgement starts from; False if not watched."""
        w = self.load(decision.consignment)
        if w is None:
            return False
        self.update(Watch.of(decision, w.waiting))
        return True

    def watching(self, container: str) -> list[str]:
        return sorted(k.decode() for k in self.client.smembers(self.of_key(container)))

    def load(self, consignment: str) -> Watch | None:
        raw = self.client.get(self.doc_key(consignment))
        return Watch.from_json(stored_bodies.unpack(raw)) if raw else None


def _digest(items) -> str:
    return hashlib.blake2b(json.dumps(items).encode(), digest_size=6).hexdigest()


def rejudged(w: Watch, histories: dict, scorer, reference: ReferenceData,
             default_centre: str = DEFAULT_RISK_CENTRE, parties: tuple[Fact, ...] = ()
             ) -> tuple[Decision | None, Watch]:
    """A watched consignment judged on the histories known now: the new decision if its anomalies
    changed (None if not), and the watch as it stands after (`waiting` empty: final). When the new
    decision is `held`, the watch keeps the referral's version. parties: its party-history facts
    (as its first assessment saw them: party_history replays count nothing)."""
    c, lead = w.consignment, w.lead
    facts = consignment_facts(c, histories, reference) + filing_facts(c, reference) + parties
    found = [list(a) for a in anomalies(facts)]
    containers = tuple(x.container_id for x in c.record.containers)
    filing = EnrichedFiling(lead["submission_id"], lead["mrn"], lead["filing_code"], lead["mode"], lead["lrn"],
                            lead["filer"], containers, AVAILABLE, facts, c.record, c.key, w.state, w.version,
                            c.members, c.missing)
    waiting = provisional(filing)
    if found == w.anomalies:
        return None, replace(w, waiting=waiting)
    filing = replace(filing, state=f"{w.state.split('+csm:')[0]}+csm:{_digest(found)}", version=w.version + 1)
    decision = decide(filing, scorer, default_centre=default_centre)
    if held(w, decision):  # the referral's version stands; these anomalies are judged, not judged again
        return decision, replace(w, anomalies=found, waiting=waiting)
    after = Watch(c, lead, filing.version, filing.state, decision.risk_centre,
                  decision.referral_id if decision.referral else None, found, waiting, decision.assessment.decision)
    return decision, after


def held(w: Watch, decision: Decision) -> bool:
    """A re-judgement weaker than the referral it would replace waits for the analyst."""
    return bool(w.referral_id) and SEVERITY[decision.assessment.decision] < SEVERITY[w.decision]


class RejudgeDesk:
    """client: the Redis of decisions and answers; status_client: the container status store's
    (where the watches and the rejudge stream live, beside the events; often the same Redis)."""

    def __init__(self, client: redis.Redis, status_client: redis.Redis, scorers: RulePackSource,
                 settings: Settings, consumer: str = "desk", reference: ReferenceData | None = None):
        from .service import answer_effect, decision_effects  # the service's effect shapes, written once each

        self._answer_effect, self._decision_effects = answer_effect, decision_effects
        self.client, self.scorers, self.settings, self.consumer = client, scorers, settings, consumer
        self.status_client = status_client
        self.keys = StreamKeys.for_settings(settings)
        self.watch = ContainerWatch(status_client, settings.redis.key_prefix,
                                    settings.container_status.rejudge_window_seconds)
        self.store = ContainerEventStore.for_settings(status_client, settings)
        self.writer = EffectWriter.for_settings(client, settings)
        self.reference = reference or bundled_reference()
        self.parties = PartyHistoryStore(client, settings.party_history, settings.redis.key_prefix) \
            if settings.party_history.enabled else None

    def handle_new(self, count: int = 100) -> int:
        entries = read_group(self.status_client, self.keys.rejudge, GROUP, self.consumer, count)
        for entry_id, fields in entries:
            container = fields[b"container"].decode()
            for consignment in self.watch.watching(container):
                try:
                    self.rejudge(consignment)
                except Exception:  # a bug must not block the boxes behind it; the watch stays for the next event
                    log.exception("re-judging %s failed", consignment)
            self.status_client.xack(self.keys.rejudge, GROUP, entry_id)  # last: a crash repeats idempotent steps
        return len(entries)

    def rejudge(self, consignment: str) -> str:
        """'gone' (no longer watched), 'unchanged', 'final' (loaded, nothing changed) or the new decision."""
        w = self.watch.load(consignment)
        if w is None:
            return "gone"
        containers = [x.container_id for x in w.consignment.record.containers]
        [parties] = party_facts([w.consignment], self.parties.record if self.parties else None)
        decision, after = rejudged(w, self.store.histories_and_plans(containers), self.scorers.current(),
                                   self.reference, self.settings.default_risk_centre, parties)
        outcome = decision.assessment.decision if decision is not None else ""
        if decision is not None and held(w, decision):
            self.writer.write([self._held(w, decision, found_before=w.anomalies, found_now=after.anomalies)])
            log.info("re-judged %s on new container status: %s, below the %s referred: held for the analyst",
                     consignment, outcome, w.decision)
            outcome = "held"
        elif decision is not None:
            self.writer.write(self._decision_effects(decision, self.keys) + [
                self._answer_effect(a, self.keys) for a in filer_answers(decision, decision.assessed_at)])
            log.info("re-judged %s on new container status: %s (version %d)", consignment, outcome,
                     decision.filing.version)
        if after.waiting:
            self.watch.update(after)
        else:
            self.watch.unwatch(after)
        if outcome:
            return outcome
        return "unchanged" if after.waiting else "final"

    def _held(self, w: Watch, decision: Decision, found_before: list, found_now: list) -> Effect:
        """A note on the referral: what the container status says now, for the analyst to weigh."""
        a = decision.assessment
        body = {"rejudged": w.consignment.key, "referral_id": w.referral_id, "mrn": w.lead["mrn"],
                "at": decision.assessed_at, "state": decision.filing.state,
                "reassessed": f"{a.decision} (score {a.score:.0f})", "referred": w.decision,
                "anomalies_before": [" ".join(x) for x in found_before],
                "anomalies_now": [" ".join(x) for x in found_now],
                "facts": [f"{f.container}: {f.kind} — {f.detail}" for f in decision.filing.facts
                          if f.kind not in INFORMATIONAL_FACTS],
                "held": f"the container status now supports {a.decision}, below the {w.decision} referred; "
                        "a re-judgement never lowers a referral: the analyst decides"}
        return Effect("rejudgement", f"rejudged-referral|{w.consignment.key}|{decision.filing.state}",
                      self.keys.referrals(w.risk_centre), body)

    def run(self, stop: threading.Event, idle_seconds: float = 0.5) -> None:
        while not stop.is_set():
            try:
                if not self.handle_new():
                    stop.wait(idle_seconds)
            except redis.RedisError as exc:  # Redis away: wait and read again; nothing is lost
                log.warning("rejudge desk: Redis unavailable, retrying: %s", exc)
                stop.wait(2.0)


def start_desk(settings: Settings, consumer: str) -> threading.Event:
    """Runs a desk in a daemon thread of this process until the returned event is set."""
    from .connectors.redis_store import connect

    client, prefix, rules = connect(settings.redis.url), settings.redis.key_prefix, settings.rules
    store = RulePackStore(client, prefix) if rules.hot_reload else None
    scorers = RulePackSource(rules.pack_dir, store, rules.poll_seconds,
                             risk_information=RiskInformationStore(client, prefix) if store else None,
                             budget=rules.budget)
    desk = RejudgeDesk(client, connect(settings.container_status_url), scorers, settings, consumer)
    stop = threading.Event()
    threading.Thread(target=desk.run, args=(stop,), daemon=True, name="rejudge").start()
    return stop
