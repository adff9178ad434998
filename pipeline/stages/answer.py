"""Business step 3: answer every submission, and count each one at its door."""
from __future__ import annotations

import apache_beam as beam
from lxml import etree

from ..answering import DeadLetter, rejection
from .. import metrics
from ..config import Settings
from ..counters import CounterFamily, CountsPerBundle, counter
from ..decisions import ASSESSMENT_ANSWERS
from ..domain.answers import Answer
from ..domain.filings import ANSWERS_NS
from ..schemas import SchemaRegistry
from ..validation import utc_now
from .batches import TaggedBatches, batched_pardo, each
from .validate import DEAD_LETTER

ANSWERS = "answers"
ASSESS_STAGE, ASSESS_ANSWER_STAGE = "assess", "assess-answer"
_ASSESSMENT_TYPES = frozenset(ASSESSMENT_ANSWERS.values())
LOST_COUNTER_PREFIX = "lost_"
# Dead letters of the assessment are counted apart: the filing already left through a door
# (its registration answer); what is missing is its decision.
_DEAD_LETTER_COUNTERS = {ASSESS_STAGE: "assessments_dead_lettered",
                         ASSESS_ANSWER_STAGE: "assessment_answers_dead_lettered", "link": "links_dead_lettered"}


class AnswerRejections(beam.PTransform):
    """Batch of ValidationOutcomes of rejected submissions in; Batch of Answers (IE3N99 error notification
    naming every error) out."""

    def expand(self, rejected):
        return rejected | "ErrorNotification" >> each(lambda o: rejection(o, utc_now()))


class _CheckAndCountDoFn(CountsPerBundle, beam.DoFn):
    def __init__(self, settings: Settings):
        self._settings = settings

    def setup(self):
        every = self._settings.answer_check_every
        self._registry = SchemaRegistry.from_dirs(self._settings.schema_dirs) if every > 0 else None
        self._every, self._seen = every, 0
        self._answers = CounterFamily("answers_")

    def process(self, batch: list[Answer]):
        out = TaggedBatches(ANSWERS)
        for answer in batch:
            self._seen += 1
            if self._registry is not None and self._seen % self._every == 0:
                problems = self._self_check(answer)
                if problems:
                    stage = ASSESS_ANSWER_STAGE if answer.message_type in _ASSESSMENT_TYPES else "answer"
                    out.add(DEAD_LETTER, DeadLetter(
                        answer.submission_id, stage, f"our {answer.message_type} failed its schema: {problems}", b"",
                        filer=answer.recipient or ""))
                    continue
            self._answers.inc(answer.message_type)
            out.add(ANSWERS, answer)
        yield from out.emit()

    def _self_check(self, answer: Answer) -> str:
        tree = etree.fromstring(answer.xml).getroottree()
        schema = self._registry.lookup(ANSWERS_NS, answer.message_type)
        if schema is None:
            return f"no schema for {answer.message_type}"
        return "; ".join(f"{v.pointer}: {v.detail}" for v in schema.violations(tree))


class EmitAnswers(beam.PTransform):
    """Batch of Answers in (from every step). Outputs, each of Batches:
    `answers`: the same Answers, counted by type, checked against the answers schema (every one, or
    one in settings.answer_check_every);
    `dead_letter`: DeadLetter for an answer of ours that failed its own schema (a bug, kept).
    """

    def __init__(self, settings: Settings):
        super().__init__()
        self._settings = settings

    def expand(self, answers):
        return answers | "CheckAndCount" >> batched_pardo(_CheckAndCountDoFn(self._settings), ANSWERS, DEAD_LETTER)


class DeadLetterCount:
    """Counts each DeadLetter it is given (those of the assessment apart, see above; those the store's
    failure caused also by cause, as LOST_COUNTER_PREFIX + cause) and gives it back. Told at once, not
    per bundle: dead letters are few. A callable, so that a step that writes dead letters out counts
    them as it goes (the service's delivery) instead of in a step of their own."""

    def __init__(self):
        self._counters = {name: counter(name) for name in ("dead_lettered", *_DEAD_LETTER_COUNTERS.values())}
        self._causes = CounterFamily(LOST_COUNTER_PREFIX)

    def __call__(self, d: DeadLetter) -> DeadLetter:
        self._counters[_DEAD_LETTER_COUNTERS.get(d.stage, "dead_lettered")].inc()
        if d.cause:
            self._causes.inc(d.cause)
        metrics.DEAD_LETTERS.labels(d.stage, d.cause or metrics.reason_of(d.reason)).inc()
        return d


class CountDeadLetters(beam.PTransform):
    """Batch of DeadLetters in; the same out, counted (DeadLetterCount)."""

    def expand(self, dead_letters):
        return dead_letters | "Count" >> each(DeadLetterCount())
