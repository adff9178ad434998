"""Business step 4: score enriched filings against the active rule pack and decide."""
from __future__ import annotations

import logging
import time

import apache_beam as beam
import redis

from ..answering import DeadLetter
from .. import metrics
from ..config import Settings
from ..connectors.redis_store import connect
from ..decisions import decide, filer_answers
from ..domain.conditions import OVER_BUDGET
from ..enrichment import EnrichedFiling
from ..health import ScoringMonitor, forget_scorers, publish_scoring
from ..risk_information import RULE_FILE, RiskInformationStore
from ..rule_store import RulePackSource, RulePackStore
from ..counters import CounterFamily, CountsPerBundle, counter
from ..heap import settle
from .answer import ASSESS_STAGE
from .batches import TaggedBatches, batched_pardo
from .validate import DEAD_LETTER

DECISIONS, ANSWERS = "decisions", "answers"
REPORT_SECONDS = 5.0  # how often a long bundle reports its scoring (health reads it); each bundle's end does too
log = logging.getLogger(__name__)


class _ScoreDoFn(CountsPerBundle, beam.DoFn):
    def __init__(self, settings: Settings):
        self._settings = settings
        self._assessed = counter("assessed")
        self._referrals = counter("referrals")
        self._rule_errors = counter("rule_errors")
        self._reload_failures = counter("rule_pack_reload_failures")
        self._answers_due = counter("assessment_answers_due")

    def setup(self):
        rules = self._settings.rules
        store = RulePackStore(connect(self._settings.redis.url), self._settings.redis.key_prefix) \
            if rules.hot_reload and self._settings.redis.url else None
        risk = RiskInformationStore(store.client, self._settings.redis.key_prefix) if store else None
        self._source = RulePackSource(rules.pack_dir, store, rules.poll_seconds, risk_information=risk,
                                      budget=rules.budget)
        self._client, self._monitor = (store.client if store else None), ScoringMonitor()
        self._unreported, self._reported_at, self._reported_once = 0, time.monotonic(), False
        self._decisions = CounterFamily("decision_")
        self._hits = CounterFamily("rule_hit_")  # bounded: one per rule of the pack
        self._failures_seen = 0
        self._scorer_shown, self._reloads_seen = None, 0
        settle(self._settings.worker_gc_threshold)

    def _show(self, scorer) -> None:
        metrics.RULE_PACK.clear()
        metrics.RULE_PACK.labels(scorer.pack.id).set(1)
        metrics.RISK_INFORMATION_FORMS.set(sum(1 for r in scorer.pack.rules if r.file == RULE_FILE))
        metrics.RULE_PACK_RELOADS.inc(self._source.reloads - self._reloads_seen)
        self._scorer_shown, self._reloads_seen = scorer, self._source.reloads

    def process(self, batch: list[EnrichedFiling]):
        out = TaggedBatches(DECISIONS)
        for filing in batch:
            self._score(filing, out)
        yield from out.emit()

    def _score(self, filing: EnrichedFiling, out: TaggedBatches) -> None:
        scorer = self._source.current()  # between filings: each one is scored by exactly one pack
        if self._source.reload_failures > self._failures_seen:
            self._reload_failures.inc(self._source.reload_failures - self._failures_seen)
            self._failures_seen = self._source.reload_failures
        if scorer is not self._scorer_shown:  # a new pack, or new risk information forms
            self._show(scorer)
        try:
            started = time.perf_counter()
            decision = decide(filing, scorer, default_centre=self._settings.default_risk_centre)
            self._scored(time.perf_counter() - started, decision.assessment.errors)
            answers = filer_answers(decision, decision.assessed_at)  # one moment for decision and answers
        except Exception as exc:  # a bug, not a rule (rule errors are caught per rule): keep the filing
            out.add(DEAD_LETTER, DeadLetter(filing.submission_id, ASSESS_STAGE, f"{type(exc).__name__}: {exc}", b"",
                                            filer=filing.filer))
            return
        self._assessed.inc()
        self._answers_due.inc(len(answers))
        self._decisions.inc(decision.assessment.decision)
        if decision.referral:
            self._referrals.inc()
        if decision.assessment.errors:
            self._rule_errors.inc(len(decision.assessment.errors))
        for hit in decision.assessment.hits:
            self._hits.inc(hit.rule)
        metrics.observe(metrics.DECISION_LATENCY, filing.received_at)
        out.add(DECISIONS, decision)
        out.extend(ANSWERS, answers)

    def _scored(self, seconds: float, errors) -> None:
        self._monitor.record(seconds, sum(1 for e in errors if OVER_BUDGET in e), time.time())
        self._unreported += 1
        if time.monotonic() - self._reported_at >= REPORT_SECONDS:
            self._report()

    def _report(self) -> None:
        """What health reads: this worker's scoring of the last minutes (nothing new: nothing written)."""
        if self._client is None or not self._unreported:
            return
        try:
            if not self._reported_once:  # not in setup: a worker starts without Redis, and dead-letters
                forget_scorers(self._client, self._settings.redis.key_prefix, time.time())
            publish_scoring(self._client, self._settings.redis.key_prefix, self._source.worker,
                            self._monitor.report(time.time()))
            self._unreported, self._reported_at, self._reported_once = 0, time.monotonic(), True
        except redis.RedisError as exc:  # health is told later; scoring goes on
            log.warning("scoring report not written: %s", exc)

    def finish_bundle(self):
        self._report()
        super().finish_bundle()


class ScoreFilings(beam.PTransform):
    """Batch of EnrichedFilings in (consignments to assess, with their container-status facts). Outputs,
    each of Batches:
    `decisions`: Decision, one per consignment: the assessment (score, risk level, decision, the rules
    that fired with their evidence) and the id of the pack that made it; referrals are the
    decisions other than assessment-complete;
    `answers`: Answer to each filer of the consignment, one per filing in it (IE3N03, IE3Q02,
    IE3Q03, IE3Q01 or IE3N08);
    `dead_letter`: DeadLetter if a decision could not be made (a bug; the filing is kept).
    The pack is the active published one (hot reload through Redis), else settings.rules.pack_dir.
    """

    def __init__(self, settings: Settings):
        super().__init__()
        self._settings = settings

    def expand(self, enriched):
        return enriched | "Score" >> batched_pardo(_ScoreDoFn(self._settings), DECISIONS, DEAD_LETTER, ANSWERS)
