"""Enrichment of registered filings with container status: histories from Redis, facts out.

    enrich(consignments, fetch_histories, reference) -> [EnrichedFiling]

One round trip to the store per batch (all the batch's containers at once). If the store
stays unreachable after retries, each filing goes on with an explicit
"container-status-unavailable" fact: nothing waits, nothing is lost.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Sequence

import redis

from .domain.container_events import ContainerEvent
from .domain.currency import EuroRates, bundled_euro_rates, in_euros
from .domain.enrichment import (CLAIM_REFUSED, DATA_QUALITY_WARNING, INFORMATIONAL_FACTS, PARTY_HISTORY_UNAVAILABLE,
                                Fact, office_facts, shipment_facts)
from .domain.descriptions import bundled_wording, description_facts
from .domain.goods_classifier import GoodsClassifier, bundled_goods_classifier
from .domain.goods_facts import goods_facts
from .domain.legal_lists import bundled_legal_lists
from .domain.parties import (Seen, Sighting, bundled_commercial_goods, commercial_quantity_facts, history_fact,
                             natural_person_facts, sightings)
from .domain.reference import ReferenceData
from .domain.screening import ScreeningRecord
from .linking import HOUSE_FILER_NOT_NAMED, HOUSE_NOT_LISTED, MASTER_FILED, Consignment, Member

UNAVAILABLE = "container-status-unavailable"
AVAILABLE, NOT_APPLICABLE = "available", "no-containers"
NOT_LOADED = "not-loaded"  # the store holds no container status at all: nothing to judge, nothing is an anomaly


@dataclass(frozen=True)
class EnrichedFiling:
    submission_id: str
    mrn: str
    filing_code: str
    mode: str
    lrn: str
    filer: str
    containers: tuple[str, ...]
    container_status: str  # available, container-status-unavailable, not-loaded, no-containers
    facts: tuple[Fact, ...]
    record: ScreeningRecord | None = None  # what the filing declares, for the risk rules
    # The consignment assessed (the fields above are its lead filing's): its key, state, version,
    # every filing in it (each filer is answered), and what was missing if assessed incomplete.
    consignment: str = ""
    state: str = ""
    version: int = 1
    members: tuple[Member, ...] = ()
    missing: tuple[str, ...] = ()
    received_at: str = ""  # submission of the filing that completed the consignment (for latency)

    @property
    def office_of_first_entry(self) -> str | None:
        return self.record.office_of_first_entry if self.record else None

    @property
    def anomalies(self) -> tuple[Fact, ...]:
        return tuple(f for f in self.facts if f.kind not in INFORMATIONAL_FACTS)


def consignment_facts(consignment: Consignment, histories, reference: ReferenceData) -> tuple[Fact, ...]:
    """Each filing's containers checked against the route that filing declares (a house has its
    own), so linking filings never makes a box look off course."""
    if len(consignment.members) == 1:
        return tuple(shipment_facts(consignment.record, histories, reference))
    seen, facts = set(), []
    for member in consignment.members:
        for fact in shipment_facts(member.record, histories, reference):
            if (fact.kind, fact.container) not in seen:
                seen.add((fact.kind, fact.container))
                facts.append(fact)
    return tuple(facts)


def warning_facts(consignment: Consignment) -> tuple[Fact, ...]:
    """The data-quality warnings each filing was accepted with, as facts the analyst sees."""
    return tuple(Fact(DATA_QUALITY_WARNING, "", w.message, (), {"rule": w.code, "pointer": w.pointer,
                                                                   "value": w.value, "mrn": m.mrn})
                 for m in consignment.members for w in m.record.warnings)


def claim_facts(consignment: Consignment) -> tuple[Fact, ...]:
    """A claim on another filer's consignment that was refused (linking.py), as a fact the rules score;
    its referral goes to that consignment's risk centre (decisions.decide). Its code says how strong
    an indicator it is: a house the master lists without naming any filer contradicts nobody."""
    return tuple(Fact(CLAIM_REFUSED, "", f"filer {m.filer} claimed {what} {r.document} in consignment "
                                         f"{r.consignment}, {why} ({r.code})",
                      (), {"code": r.code, "consignment": r.consignment, "document": r.document, "centre": r.centre,
                           "mrn": m.mrn})
                 for m in consignment.members for r in [m.refused] if r for what, why in [_CLAIM_TEXT[r.code]])


# Per refusal code: what was claimed, and why the claim was refused.
_CLAIM_TEXT = {HOUSE_NOT_LISTED: ("house transport document", "which its master's filer does not give it"),
               HOUSE_FILER_NOT_NAMED: ("house transport document",
                                       "which its master lists without naming the filer expected to file it"),
               MASTER_FILED: ("master transport document", "which another filer filed first")}


def filing_facts(consignment: Consignment, reference: ReferenceData,
                 classifier: GoodsClassifier | None = None) -> tuple[Fact, ...]:
    """Facts about the filings rather than their containers: the warnings they were accepted with,
    a claim of theirs refused, why their office of first entry cannot route the referral (if it
    cannot), what each goods item's description says against its declared code (goods_facts.py;
    the bundled classifier unless another is given) and by its words alone (a brand below a genuine
    article's price, or no goods named: descriptions.py), and a private person receiving controlled or
    valuable goods, or goods in a commercial quantity."""
    return (warning_facts(consignment) + claim_facts(consignment) + office_facts(consignment.record, reference)
            + goods_facts(consignment.record, classifier or bundled_goods_classifier())
            + description_facts(consignment.record, bundled_wording())
            + natural_person_facts(consignment.record, bundled_legal_lists().is_controlled)
            + commercial_quantity_facts(consignment.record, bundled_commercial_goods()))


def in_euros_consignment(consignment: Consignment, rates: EuroRates) -> Consignment:
    record = in_euros(consignment.record, rates)
    return consignment if record is consignment.record else dataclasses.replace(consignment, record=record)


def party_sightings(consignment: Consignment) -> list[Sighting]:
    """The consignment's consignors, consignees and notify parties, each under its own filing and filer."""
    return sightings(consignment.record, consignment.lead.mrn, {m.mrn: m.filer for m in consignment.members},
                     consignment.lead.filer)


def party_facts(batch: Sequence[Consignment], record_parties: Callable[[list[Sighting]], list[Seen]] | None
                ) -> list[tuple[Fact, ...]]:
    """Each consignment's party-history facts (one per tracked party: what was known of it before its
    filing), counting each filing's parties once; one call to the store for the batch. If the store
    stays unreachable, one party-history-unavailable fact instead: the rules then know nothing of them."""
    if record_parties is None:
        return [() for _ in batch]
    wanted = [party_sightings(c) for c in batch]
    try:
        answers = iter(record_parties([s for found in wanted for s in found]))
    except redis.RedisError as exc:
        failure = f"party history store unreachable: {type(exc).__name__}: {exc}"
        return [(Fact(PARTY_HISTORY_UNAVAILABLE, "", failure),) if found else () for found in wanted]
    return [tuple(history_fact(s, next(answers)) for s in found) for found in wanted]


def enrich(batch: Sequence[Consignment],
           fetch_histories: Callable[[list[str]], dict[str, list[ContainerEvent]]],
           reference: ReferenceData, status_loaded: bool = True,
           record_parties: Callable[[list[Sighting]], list[Seen]] | None = None,
           rates: EuroRates | None = None) -> list[EnrichedFiling]:
    """batch: consignments to assess. fetch_histories: container ids -> ACT histories (retrying inside).
    Declared values get their euro value first (ECB rate of the filing's day; the bundled rates unless
    `rates` is given).
    status_loaded: False when the store holds no container status at all (then none is looked up).
    record_parties: the party history store's `record` (retrying inside); None: no party history."""
    batch = [in_euros_consignment(x, rates or bundled_euro_rates()) for x in batch]
    wanted = [c.container_id for x in batch for c in x.record.containers]
    histories: dict[str, list[ContainerEvent]] | None = {}
    failure = ""
    if wanted and status_loaded:
        try:
            histories = fetch_histories(wanted)
        except redis.RedisError as exc:
            histories, failure = None, f"container status store unreachable: {type(exc).__name__}: {exc}"
    parties = party_facts(batch, record_parties)
    out = []
    for consignment, known in zip(batch, parties):
        lead, record = consignment.lead, consignment.record
        containers = tuple(c.container_id for c in record.containers)
        if not containers:
            status, facts = NOT_APPLICABLE, ()
        elif not status_loaded:
            status, facts = NOT_LOADED, ()
        elif histories is None:
            status, facts = UNAVAILABLE, tuple(Fact(UNAVAILABLE, c, failure) for c in containers)
        else:
            status, facts = AVAILABLE, consignment_facts(consignment, histories, reference)
        facts += filing_facts(consignment, reference) + known
        out.append(EnrichedFiling(lead.submission_id, lead.mrn, lead.filing_code, record.mode, lead.lrn, lead.filer,
                                  containers, status, facts, record, consignment.key, consignment.state,
                                  consignment.version, consignment.members, consignment.missing,
                                  consignment.received_at))
    return out
