"""Business step 2: register accepted filings (MRNs), amendments and invalidations."""
from __future__ import annotations

from datetime import datetime, timezone

import apache_beam as beam
import redis
from apache_beam.pvalue import TaggedOutput

from ..answering import DeadLetter, registration_answer, registration_request
from .. import metrics
from ..config import Settings
from ..counters import CounterFamily
from ..connectors.redis_store import connect, redeliver, with_retries
from ..registration import AMENDED, INVALIDATED, REGISTERED, RESENT, RegistrationStore
from ..validation import ValidationOutcome, utc_now
from .validate import DEAD_LETTER

ANSWERS, REGISTERED_OUT = "answers", "registered"
_ONWARD = frozenset({REGISTERED, AMENDED, INVALIDATED})


class _RegisterBatchDoFn(beam.DoFn):
    def __init__(self, settings: Settings, onward: frozenset):
        self._settings, self._onward = settings, onward

    def setup(self):
        self._store = RegistrationStore(connect(self._settings.redis.url), self._settings.redis.key_prefix,
                                        self._settings.registration_retention_seconds)
        self._registrations = CounterFamily("registration_")  # by status: registered, resent, amended, ...

    def process(self, batch: list[ValidationOutcome]):
        now = utc_now()
        year = datetime.now(timezone.utc).year
        try:
            requests = [registration_request(o, year) for o in batch]
            results = with_retries(self._settings.redis, lambda: self._store.register(requests, now), "register")
            answers = [registration_answer(o, r, now) for o, r in zip(batch, results)]
            onward = [(o, r) for o, r in zip(batch, results) if r.status in self._onward]
        except Exception as exc:  # Redis gone after retries, or a bug: keep every filing, say why
            if redeliver(self._settings.redis, exc):
                raise
            reason = (f"registration store unavailable: {exc}" if isinstance(exc, redis.RedisError)
                      else f"{type(exc).__name__}: {exc}")
            for o in batch:
                yield TaggedOutput(DEAD_LETTER, DeadLetter(o.submission.submission_id, "register", reason,
                                                           o.submission.payload))
            return
        for o, r in zip(batch, results):
            self._registrations.inc(r.status)
            metrics.observe(metrics.REGISTRATION_LATENCY, o.submission.received_at)
        yield from answers
        for item in onward:
            yield TaggedOutput(REGISTERED_OUT, item)


class RegisterFilings(beam.PTransform):
    """ValidationOutcome of accepted filings in. Outputs:
    `answers`: Answer, one per filing: IE3R01 registration (a new MRN, or the same MRN for a
    re-sent filing), IE3N10 amendment accepted, IE3R04 invalidation accepted, or IE3N01
    lifecycle error (LRN reused with other content, unknown or foreign MRN);
    `registered`: (ValidationOutcome, RegistrationResult) of each filing newly registered,
    amendment and invalidation accepted: on to linking and assessment;
    `dead_letter`: DeadLetter when the registration store stays unreachable after retries.
    Filings go to Redis in batches: one round trip per batch.

    reassess_resent: a re-sent filing goes on too. The streaming service sets it: a crash may
    have stopped the first delivery before its decision was written, and its effects are
    written once whatever happens (connectors/redis_streams.py). The batch job has no such
    guard and leaves it off: a re-sent filing is answered again, assessed once.
    """

    def __init__(self, settings: Settings, reassess_resent: bool = False):
        super().__init__()
        self._settings = settings
        self._onward = _ONWARD | {RESENT} if reassess_resent else _ONWARD

    def expand(self, accepted):
        return (accepted
                | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=self._settings.registration_batch_size)
                | "Register" >> beam.ParDo(_RegisterBatchDoFn(self._settings, self._onward)).with_outputs(DEAD_LETTER, REGISTERED_OUT, main=ANSWERS))
