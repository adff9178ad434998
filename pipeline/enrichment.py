"""Enrichment of registered filings with container status: histories from Redis, facts out.

    enrich(batch, fetch_histories, reference) -> [EnrichedFiling]

One round trip to the store per batch (all the batch's containers at once). If the store
stays unreachable after retries, each filing goes on with an explicit
"container-status-unavailable" fact: nothing waits, nothing is lost.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import redis

from .domain.container_events import ContainerEvent
from .domain.enrichment import INFORMATIONAL_FACTS, Fact, shipment_facts
from .domain.reference import ReferenceData
from .domain.screening import ScreeningRecord
from .validation import ValidationOutcome

UNAVAILABLE = "container-status-unavailable"
AVAILABLE, NOT_APPLICABLE = "available", "no-containers"


@dataclass(frozen=True)
class EnrichedFiling:
    submission_id: str
    mrn: str
    filing_code: str
    mode: str
    lrn: str
    filer: str
    containers: tuple[str, ...]
    container_status: str  # available, unavailable, no-containers
    facts: tuple[Fact, ...]
    record: ScreeningRecord | None = None  # what the filing declares, for the risk rules

    @property
    def office_of_first_entry(self) -> str | None:
        return self.record.office_of_first_entry if self.record else None

    @property
    def anomalies(self) -> tuple[Fact, ...]:
        return tuple(f for f in self.facts if f.kind not in INFORMATIONAL_FACTS)


def enrich(batch: Sequence[tuple[ValidationOutcome, str]],
           fetch_histories: Callable[[list[str]], dict[str, list[ContainerEvent]]],
           reference: ReferenceData) -> list[EnrichedFiling]:
    """batch: (accepted outcome, its MRN). fetch_histories: container ids -> ACT histories (retrying inside)."""
    wanted = [c.container_id for o, _ in batch if o.record for c in o.record.containers]
    histories: dict[str, list[ContainerEvent]] | None = {}
    failure = ""
    if wanted:
        try:
            histories = fetch_histories(wanted)
        except redis.RedisError as exc:
            histories, failure = None, f"container status store unreachable: {type(exc).__name__}: {exc}"
    out = []
    for outcome, mrn in batch:
        s, record = outcome.summary, outcome.record
        containers = tuple(c.container_id for c in record.containers) if record else ()
        if not containers:
            status, facts = NOT_APPLICABLE, ()
        elif histories is None:
            status, facts = UNAVAILABLE, tuple(Fact(UNAVAILABLE, c, failure) for c in containers)
        else:
            status, facts = AVAILABLE, tuple(shipment_facts(record, histories, reference))
        out.append(EnrichedFiling(outcome.submission.submission_id, mrn, s.filing_code, s.mode, s.lrn, outcome.filer,
                                  containers, status, facts, record))
    return out
