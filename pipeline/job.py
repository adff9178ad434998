"""The batch job: a folder of filings in; answers, dead letters and a balanced summary out.

    read folder -> ValidateFilings -> RegisterFilings ---------------------------------> EmitAnswers -> answers/*.jsonl
                              \\-> AnswerRejections -------------------------------------/  ^  ^
                                        \\-> LinkConsignments -> AnswerPending ----------------+  |
                                                  \\-> EnrichFilings -> ScoreFilings ------------+
                                                        enriched/*.jsonl   \\-> decisions/*.jsonl, referrals/*.jsonl
    every dead letter (read, validate, register, answer, assess) -> dead-letters/*.jsonl
    validated filings (with their bytes) and decisions -> archive/{filings,decisions}/ (Parquet)

Every submission leaves through exactly one door: an accepting answer (IE3R01, IE3N10,
IE3R04), a rejecting answer (IE3N99, IE3N01), or a dead letter. Every consignment ready
then gets exactly one decision and an answer per filing in it (IE3N03, IE3Q01-03, IE3N08),
or a dead letter of the assessment; a partial filing whose consignment is incomplete gets
IE3N02/IE3N11, one refused from another filer's consignment an IE3N01 after its IE3R01 (and an
assessment on its own; see linking.py). The summary checks all three. (The streaming service,
service.py, is the same steps writing to Redis streams.)
"""
from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from .answering import ACCEPTING_ANSWERS, PENDING_ANSWERS, REJECTING_ANSWERS
from .config import Settings
from .connectors.archive import DECISIONS, FILINGS, ITEMS, WriteArchive, decision_row, filing_row, item_rows
from .connectors.files import (ReadFilingsFromFolder, WriteJsonLines, answer_record, dead_letter_record,
                               decision_json, enriched_record)
from .connectors.redis_store import ReportProgress, progress_key
from .decisions import ASSESSMENT_ANSWERS
from .registration import RESENT
from .runner_metrics import bound_fn_api_runner_metrics
from .counters import COUNTER_NAMESPACE
from .stages.batches import Batch, each
from .stages.answer import LOST_COUNTER_PREFIX, AnswerRejections, CountDeadLetters, EmitAnswers
from .stages.enrich import EnrichFilings
from .stages.link import AnswerPending, LinkConsignments
from .stages.register import RegisterFilings
from .stages.score import ScoreFilings
from .stages.validate import ValidateFilings


@dataclass
class RunSummary:
    inputs: int = 0
    answers: dict[str, int] = field(default_factory=dict)
    dead_lettered: int = 0
    enriched: int = 0  # newly registered filings assessed against container status
    container_status_unavailable: int = 0
    container_status_not_loaded: int = 0  # enriched while the store held no container status at all
    facts: dict[str, int] = field(default_factory=dict)  # anomaly facts by kind
    data_quality_warnings: dict[str, int] = field(default_factory=dict)  # accepted with a warning, by rule
    assessed: int = 0
    decisions: dict[str, int] = field(default_factory=dict)  # by decision
    referrals: int = 0
    rule_hits: dict[str, int] = field(default_factory=dict)  # by rule id
    rule_errors: int = 0
    assessments_dead_lettered: int = 0
    assessment_answers_due: int = 0  # one per filing of each consignment decided
    assessment_answers_dead_lettered: int = 0
    links_dead_lettered: int = 0
    # IE3N01 to filings refused from another filer's consignment: after their registration, so not doors
    claims_refused: int = 0
    registrations: dict[str, int] = field(default_factory=dict)  # by outcome: registered, resent, amended, ...
    # Dead letters the store's failure caused, by cause (redis_store.INFRASTRUCTURE), at any step:
    # filings whose answer or decision the run lost.
    lost: dict[str, int] = field(default_factory=dict)

    @property
    def resent(self) -> int:
        """Filings registered before (same filer, LRN and content): answered again with their MRN,
        not assessed again."""
        return self.registrations.get(RESENT, 0)

    @property
    def accepted(self) -> int:
        return sum(self.answers.get(t, 0) for t in ACCEPTING_ANSWERS)

    @property
    def rejected(self) -> int:
        return sum(self.answers.get(t, 0) for t in REJECTING_ANSWERS) - self.claims_refused

    @property
    def assessment_answers(self) -> int:
        return sum(self.answers.get(t, 0) for t in ASSESSMENT_ANSWERS.values())

    @property
    def accounted(self) -> bool:
        """inputs = accepted + rejected + dead-lettered; every enriched consignment assessed once (or
        dead-lettered at assessment), every filing of each decided consignment answered; no answer
        of an unknown kind."""
        known = (set(ACCEPTING_ANSWERS) | set(REJECTING_ANSWERS) | set(ASSESSMENT_ANSWERS.values())
                 | set(PENDING_ANSWERS))
        return (self.inputs == self.accepted + self.rejected + self.dead_lettered and set(self.answers) <= known
                and self.enriched == self.assessed + self.assessments_dead_lettered
                and self.assessment_answers_due == self.assessment_answers + self.assessment_answers_dead_lettered)

    @property
    def balanced(self) -> bool:
        """Every filing accounted for, and none lost to a failing store: what a run must be to succeed."""
        return self.accounted and not self.lost


@dataclass
class Screened:
    """The outputs of the business steps, as both the batch job and the service wire them."""

    read: object
    checked: object
    registered: object
    rejections: object
    linked: object
    pending: object
    enriched: object
    scored: object


def screen(read, settings: Settings, reassess_redelivered: bool = False) -> Screened:
    """Submissions (a source's outputs: `submissions`, `dead_letter`, each of Batches) through validation,
    registration, linking, enrichment and scoring; see RegisterFilings for reassess_redelivered. Every
    output is of Batches (stages/batches.py)."""
    checked = read.submissions | "ValidateFilings" >> ValidateFilings(settings)
    registered = checked.valid | "RegisterFilings" >> RegisterFilings(settings, reassess_redelivered)
    linked = registered.registered | "LinkConsignments" >> LinkConsignments(settings)
    enriched = linked.consignments | "EnrichFilings" >> EnrichFilings(settings)
    return Screened(read, checked, registered, checked.rejected | "AnswerRejections" >> AnswerRejections(), linked,
                    linked.pending | "AnswerPending" >> AnswerPending(), enriched,
                    enriched | "ScoreFilings" >> ScoreFilings(settings))


def archive_outcomes(s: Screened, archive: Path) -> None:
    """Every validated filing and every decision into the Parquet archive, each where it is made
    (no Flatten, no join)."""
    for name, outcomes in (("Accepted", s.checked.valid), ("Rejected", s.checked.rejected)):
        (outcomes | f"FilingRows{name}" >> each(filing_row)
         | f"ArchiveFilings{name}" >> WriteArchive(archive, FILINGS))
    decisions = s.scored.decisions | "DecisionRows" >> each(decision_row)
    decisions | "ArchiveDecisions" >> WriteArchive(archive, DECISIONS)
    for table in ITEMS:  # the record's goods, parties, containers and facts, flat, for questions over them
        (decisions | f"ItemRows{table}" >> beam.Map(
            lambda batch, t: Batch(r for d in batch for r in item_rows(d, t)), table).with_output_types(Batch)
         | f"Archive{table}" >> WriteArchive(archive, table))


def build_batch(pipeline: beam.Pipeline, settings: Settings, input_dir: Path, output_dir: Path,
                progress_key: str | None = None) -> None:
    read = pipeline | "ReadFilings" >> ReadFilingsFromFolder(input_dir, settings.limits.max_bytes)
    s = screen(read, settings)
    checked, registered, rejections, linked, scored = s.checked, s.registered, s.rejections, s.linked, s.scored
    s.enriched | "WriteEnriched" >> WriteJsonLines(output_dir / "enriched" / "enriched", enriched_record)
    emitted = ((registered.answers, rejections, s.pending, linked.refusals, scored.answers)
               | "AllAnswers" >> beam.Flatten() | "EmitAnswers" >> EmitAnswers(settings))
    dead = ((read.dead_letter, checked.dead_letter, registered.dead_letter, linked.dead_letter, scored.dead_letter,
             emitted.dead_letter)
            | "AllDeadLetters" >> beam.Flatten() | "CountDeadLetters" >> CountDeadLetters())
    emitted.answers | "WriteAnswers" >> WriteJsonLines(output_dir / "answers" / "answers", answer_record)
    dead | "WriteDeadLetters" >> WriteJsonLines(output_dir / "dead-letters" / "dead-letters", dead_letter_record)
    scored.decisions | "WriteDecisions" >> WriteJsonLines(output_dir / "decisions" / "decisions", decision_json)
    linked.withdrawals | "WriteWithdrawals" >> WriteJsonLines(output_dir / "withdrawals" / "withdrawals",
                                                             lambda w: json.dumps(asdict(w)))
    archive_outcomes(s, output_dir / "archive")
    (scored.decisions | "Referrals" >> beam.Map(lambda b: Batch(d for d in b if d.referral)).with_output_types(Batch)
     | "WriteReferrals" >> WriteJsonLines(output_dir / "referrals" / "referrals", decision_json))
    if progress_key:
        # Submissions through their door, counted where each door is (a Flatten would hold the
        # count back: FnApiRunner materializes it, so the display would only move at the end).
        doors = {"Registered": registered.answers, "Rejected": rejections, "ReadFailed": read.dead_letter,
                 "Invalid": checked.dead_letter, "RegisterFailed": registered.dead_letter}
        for name, door in doors.items():
            door | f"Progress{name}" >> ReportProgress(settings.redis.url, progress_key)


def make_pipeline(runner: str = "FnApiRunner", options: list[str] | None = None) -> beam.Pipeline:
    """FnApiRunner by default: the DirectRunner would first try to download Prism (see ARCHITECTURE.md)."""
    pipeline_options = PipelineOptions(options or [])
    if runner == "FnApiRunner":
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner
        bound_fn_api_runner_metrics()
        return beam.Pipeline(runner=FnApiRunner(), options=pipeline_options)
    return beam.Pipeline(runner=runner, options=pipeline_options)


def run_batch(settings: Settings, input_dir: Path, output_dir: Path, runner: str = "FnApiRunner",
              options: list[str] | None = None, run_id: str | None = None) -> RunSummary:
    pipeline = make_pipeline(runner, options)
    build_batch(pipeline, settings, Path(input_dir), Path(output_dir),
                progress_key(settings.redis.key_prefix, run_id) if run_id else None)
    result = pipeline.run()
    result.wait_until_finish()
    return summarize(result)


def summarize(result) -> RunSummary:
    counters = result.metrics().query(MetricsFilter().with_namespace(COUNTER_NAMESPACE))["counters"]
    totals: dict[str, int] = {}
    for c in counters:
        totals[c.key.metric.name] = totals.get(c.key.metric.name, 0) + (c.committed or 0)
    return RunSummary(
        inputs=totals.get("inputs", 0),
        answers={k.removeprefix("answers_"): v for k, v in totals.items() if k.startswith("answers_")},
        dead_lettered=totals.get("dead_lettered", 0),
        enriched=totals.get("enriched", 0),
        container_status_unavailable=totals.get("container_status_unavailable", 0),
        container_status_not_loaded=totals.get("container_status_not_loaded", 0),
        data_quality_warnings={k.removeprefix("dq_warning_"): v for k, v in totals.items() if k.startswith("dq_warning_")},
        facts={k.removeprefix("fact_"): v for k, v in totals.items() if k.startswith("fact_")},
        assessed=totals.get("assessed", 0),
        decisions={k.removeprefix("decision_"): v for k, v in totals.items() if k.startswith("decision_")},
        referrals=totals.get("referrals", 0),
        rule_hits={k.removeprefix("rule_hit_"): v for k, v in totals.items() if k.startswith("rule_hit_")},
        rule_errors=totals.get("rule_errors", 0),
        assessments_dead_lettered=totals.get("assessments_dead_lettered", 0),
        assessment_answers_due=totals.get("assessment_answers_due", 0),
        assessment_answers_dead_lettered=totals.get("assessment_answers_dead_lettered", 0),
        links_dead_lettered=totals.get("links_dead_lettered", 0),
        claims_refused=totals.get("claims_refused", 0),
        registrations={k.removeprefix("registration_"): v for k, v in totals.items() if k.startswith("registration_")},
        lost={k.removeprefix(LOST_COUNTER_PREFIX): v for k, v in totals.items() if k.startswith(LOST_COUNTER_PREFIX) and v},
    )


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]
