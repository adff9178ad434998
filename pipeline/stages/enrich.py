"""Business step 3: enrich registered filings with what their containers actually did."""
from __future__ import annotations

import time

import apache_beam as beam

from ..config import Settings
from ..connectors.redis_store import connect, with_retries
from ..container_store import ContainerEventStore
from ..domain.currency import bundled_euro_rates
from ..domain.descriptions import bundled_wording
from ..domain.goods_classifier import bundled_goods_classifier
from ..domain.legal_lists import bundled_legal_lists
from ..domain.parties import bundled_commercial_goods
from ..domain.reference import bundled_reference
from ..enrichment import NOT_LOADED, UNAVAILABLE, enrich
from ..linking import Consignment
from ..party_history import PartyHistoryStore
from ..counters import CounterFamily, CountsPerBundle, counter
from ..heap import settle
from .batches import Batch, chunks


class _EnrichBatchDoFn(CountsPerBundle, beam.DoFn):
    def __init__(self, settings: Settings):
        self._settings = settings
        self._enriched = counter("enriched")
        self._unavailable = counter("container_status_unavailable")
        self._not_loaded = counter("container_status_not_loaded")

    def setup(self):
        self._store = ContainerEventStore.for_settings(connect(self._settings.container_status_url), self._settings)
        self._reference = bundled_reference()
        self._reference.locations.read()  # places' positions: read here, before the heap settles
        bundled_goods_classifier()  # trained once per worker process, here rather than on the first batch
        bundled_euro_rates(), bundled_wording(), bundled_legal_lists(), bundled_commercial_goods()  # read, likewise
        self._parties = PartyHistoryStore(connect(self._settings.redis.url), self._settings.party_history,
                                          self._settings.redis.key_prefix) \
            if self._settings.party_history.enabled else None
        self._facts = CounterFamily("fact_")
        self._loaded, self._loaded_checked = False, 0.0
        settle(self._settings.worker_gc_threshold)  # the classifier and the reference data: built to last

    def _status_loaded(self) -> bool:
        """Whether the store holds any container status; asked again every few seconds until it does."""
        if not self._loaded and time.monotonic() - self._loaded_checked > 5:
            self._loaded_checked = time.monotonic()
            try:
                self._loaded = self._store.has_events()
            except Exception:  # unreachable: the histories' fetch says so, fact by fact
                self._loaded = True
        return self._loaded

    def process(self, batch: list[Consignment]):
        def fetch(containers):
            return with_retries(self._settings.redis, lambda: self._store.histories_and_plans(containers), "enrich")

        def record_parties(sightings):
            return with_retries(self._settings.redis, lambda: self._parties.record(sightings), "enrich")

        out, loaded = Batch(), self._status_loaded()
        for chunk in chunks(batch, self._settings.container_status.batch_size):
            out.extend(enrich(chunk, fetch, self._reference, loaded, record_parties if self._parties else None))
        self._enriched.inc(len(out))
        for enriched in out:
            if enriched.container_status == UNAVAILABLE:
                self._unavailable.inc()
            elif enriched.container_status == NOT_LOADED:
                self._not_loaded.inc()
            for fact in enriched.anomalies:
                self._facts.inc(fact.kind)
        if out:
            yield out


class EnrichFilings(beam.PTransform):
    """Batch of Consignments (to assess) in; Batch of EnrichedFilings out, one each, with
    the container-status facts (or an explicit container-status-unavailable fact) and the history of
    its parties (counting this filing's, once). Histories are read in batches: one Redis round trip
    per batch of filings (at most settings.container_status.batch_size) for containers, one for parties."""

    def __init__(self, settings: Settings):
        super().__init__()
        self._settings = settings

    def expand(self, registered):
        return registered | "Enrich" >> beam.ParDo(_EnrichBatchDoFn(self._settings)).with_output_types(Batch)

