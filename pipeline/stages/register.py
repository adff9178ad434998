"""Business step 2: register accepted filings (MRNs), amendments and invalidations."""
from __future__ import annotations

from datetime import datetime, timezone

import apache_beam as beam
import redis

from ..answering import DeadLetter, registration_answer, registration_request, repeats
from .. import metrics
from ..config import Settings
from ..counters import CounterFamily, CountsPerBundle
from ..connectors.redis_store import connect, infrastructure_cause, redeliver, with_retries
from ..registration import AMENDED, INVALIDATED, REGISTERED, RESENT, RegistrationStore
from ..validation import ValidationOutcome, utc_now
from .validate import DEAD_LETTER
from .batches import TaggedBatches, batched_pardo, chunks

ANSWERS, REGISTERED_OUT = "answers", "registered"
_ONWARD = frozenset({REGISTERED, AMENDED, INVALIDATED})


class _RegisterBatchDoFn(CountsPerBundle, beam.DoFn):
    def __init__(self, settings: Settings, reassess_redelivered: bool):
        self._settings, self._reassess_redelivered = settings, reassess_redelivered

    def setup(self):
        self._store = RegistrationStore(connect(self._settings.redis.url), self._settings.redis.key_prefix,
                                        self._settings.registration_retention_seconds,
                                        self._settings.registration_index_buckets)
        self._registrations = CounterFamily("registration_")  # by status: registered, resent, amended, ...

    def process(self, batch: list[ValidationOutcome]):
        out = TaggedBatches(ANSWERS)
        for chunk in chunks(batch, self._settings.registration_batch_size):
            self._register(chunk, out)
        yield from out.emit()

    def _register(self, batch: list[ValidationOutcome], out: TaggedBatches) -> None:
        now = utc_now()
        year = datetime.now(timezone.utc).year
        try:
            requests = [registration_request(o, year) for o in batch]
            results = with_retries(self._settings.redis, lambda: self._store.register(requests, now), "register")
            answers = [registration_answer(o, r, now) for o, r in zip(batch, results)]
            onward = [(o, r) for o, r in zip(batch, results) if self._goes_on(o, r)]
        except Exception as exc:  # Redis gone after retries, or a bug: keep every filing, say why
            if redeliver(self._settings.redis, exc):
                raise
            reason = (f"registration store unavailable: {exc}" if isinstance(exc, redis.RedisError)
                      else f"{type(exc).__name__}: {exc}")
            out.extend(DEAD_LETTER, (DeadLetter(o.submission.submission_id, "register", reason, o.submission.payload,
                                                infrastructure_cause(exc), o.filer or "") for o in batch))
            return
        for o, r in zip(batch, results):
            self._registrations.inc(r.status)
            metrics.observe(metrics.REGISTRATION_LATENCY, o.submission.received_at)
        out.extend(ANSWERS, answers)
        out.extend(REGISTERED_OUT, onward)

    def _goes_on(self, o: ValidationOutcome, r) -> bool:
        if repeats(r, o.submission.submission_id):  # a re-send stops at its door answer: what it
            return False                             # repeats is assessed through its own submission
        if r.status == RESENT:  # the registering submission again: a crash may have cut its assessment short
            return self._reassess_redelivered
        return r.status in _ONWARD


class RegisterFilings(beam.PTransform):
    """Batch of ValidationOutcomes of accepted filings in. Outputs, each of Batches:
    `answers`: Answer, one per filing: IE3R01 registration (a new MRN), IE3N10 amendment accepted,
    IE3R04 invalidation accepted (each marked Repeat for a re-send: the same MRN again), or IE3N01
    lifecycle error (LRN reused with other content, unknown or foreign MRN);
    `registered`: (ValidationOutcome, RegistrationResult) of each filing newly registered,
    amendment and invalidation accepted (not re-sends): on to linking and assessment;
    `dead_letter`: DeadLetter when the registration store stays unreachable after retries.
    Filings go to Redis in batches: one round trip per batch (of at most settings.registration_batch_size).

    reassess_redelivered: the registering submission delivered again goes on too. The streaming
    service sets it: a crash may have stopped the first delivery before its decision was written,
    and its effects are written once whatever happens (connectors/redis_streams.py). A re-send
    (another submission) never goes on: its filing is assessed through the submission that
    registered it, so re-sends, even late or after an amendment, make no second assessment (nor
    do re-sent amendments and invalidations).
    """

    def __init__(self, settings: Settings, reassess_redelivered: bool = False):
        super().__init__()
        self._settings = settings
        self._reassess_redelivered = reassess_redelivered

    def expand(self, accepted):
        return accepted | "Register" >> batched_pardo(_RegisterBatchDoFn(self._settings, self._reassess_redelivered),
                                                      ANSWERS, DEAD_LETTER, REGISTERED_OUT)
