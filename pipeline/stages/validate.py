"""Business step 1: validate submissions."""
from __future__ import annotations

import apache_beam as beam

from ..answering import DeadLetter, not_screened
from ..config import Settings
from ..validation import FilingValidator, Submission
from .. import metrics
from ..counters import CounterFamily, CountsPerBundle, counter
from ..heap import settle
from .batches import TaggedBatches, batched_pardo

VALID, REJECTED, DEAD_LETTER = "valid", "rejected", "dead_letter"


class _ValidateDoFn(CountsPerBundle, beam.DoFn):
    def __init__(self, settings: Settings):
        self._settings = settings
        self._accepted = counter("validated_accepted")
        self._rejected = counter("validated_rejected")

    def setup(self):
        # Compiled schemas and parsers do not pickle: built once per worker.
        self._validator = FilingValidator(self._settings)
        self._warnings = CounterFamily("dq_warning_")
        metrics.expose(self._settings)  # this worker process's /metrics, whichever runner started it
        settle(self._settings.worker_gc_threshold)

    def process(self, batch: list[Submission]):
        out = TaggedBatches(VALID)
        for submission in batch:
            try:
                outcome = self._validator.validate(submission)
            except Exception as exc:  # a bug of ours must not lose the submission
                out.add(DEAD_LETTER, DeadLetter(
                    submission.submission_id, "validate", f"{type(exc).__name__}: {exc}", submission.payload,
                    filer=submission.channel_filer or ""))
                continue
            if outcome.accepted and outcome.summary.filing_code is None:
                outcome = not_screened(outcome)  # valid under another schema set: not ours to register
            if outcome.accepted:
                self._accepted.inc()
                for warning in outcome.warnings:
                    self._warnings.inc(warning.code)
                out.add(VALID, outcome)
            else:
                self._rejected.inc()
                metrics.observe(metrics.REGISTRATION_LATENCY, submission.received_at)  # answered: rejected
                out.add(REJECTED, outcome)
        yield from out.emit()


class ValidateFilings(beam.PTransform):
    """Batch of Submissions in. Three outputs, each of Batches (stages/batches.py):
    `valid`: ValidationOutcome of accepted filings (XSD and data quality passed);
    `rejected`: ValidationOutcome with every error located;
    `dead_letter`: DeadLetter for a submission the validator could not handle at all.
    """

    def __init__(self, settings: Settings):
        super().__init__()
        self._settings = settings

    def expand(self, submissions):
        return submissions | "Validate" >> batched_pardo(_ValidateDoFn(self._settings), VALID, REJECTED, DEAD_LETTER)
