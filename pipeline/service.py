"""The streaming service: the batch job's steps, fed by an unbounded source, writing to Redis streams.

    Redis stream {p}:filings  (ReadFilingsFromStream: consumer group, acknowledged once the bundle is done)
      or a drop folder        (WatchDropFolder)
        -> ValidateFilings -> RegisterFilings -> LinkConsignments -> EnrichFilings -> ScoreFilings
    every answer      -> {p}:answers:{filer}         (schema-checked first, as in the batch job)
    every decision    -> {p}:decisions; referrals also -> {p}:referrals:{risk centre}
    every withdrawal  -> {p}:decisions, and the referral's risk centre if it was a referral
    every dead letter -> {p}:dead-letters
    a consignment decided before its containers' events -> watched, and judged again as they come (rejudge.py)
    optionally the Parquet archive of every filing and decision (connectors/archive.py)

Entry point: `serve(argv)`, which `cargoscreen run --follow` and `python -m cargoscreen.service`
call with the options of options.py; it also serves /healthz (health.py) and turns SIGTERM into
a drain. One fused path from source to sinks, no Flatten, no shuffle (see ARCHITECTURE.md: on
FnApiRunner anything behind one waits for the source to end). Each effect is written once
(connectors/redis_streams.py): a redelivered filing changes nothing; a re-sent one gets its own door
answer, a repeat of the registration (answering.answer_key), and nothing else.
"""
from __future__ import annotations

import json
import logging
import sys
import threading
from functools import partial
from pathlib import Path

import apache_beam as beam

from .answering import DeadLetter, answer_key, dead_letter_body
from .config import Settings
from .connectors.redis_store import URL_ENV as REDIS_URL_ENV, connect, with_retries
from .connectors.redis_streams import DeliverEffects, Effect, StreamKeys, default_consumer
from .decisions import Decision, decision_record
from .domain import compact_json
from .exits import Exit
from .domain.answers import Answer
from .health import HealthServer, check
from .linking import Withdrawal, decided_keys, due_entry
from .reassessment import reassessment_payload
from .rejudge import ContainerWatch, start_desk
from .job import archive_outcomes, make_pipeline, screen, summarize
from .options import ScreeningOptions, settings_from_options
from .stages.answer import DeadLetterCount, EmitAnswers
from .stages.batches import Batch
from .validation import utc_now

log = logging.getLogger(__name__)


def answer_effect(a: Answer, keys: StreamKeys) -> Effect:
    return Effect("answer", answer_key(a), keys.answers(a.recipient),
                  {"message_type": a.message_type, "submission_id": a.submission_id, "lrn": a.lrn, "mrn": a.mrn,
                   "xml": a.xml.decode("utf-8")})


def decision_effects(d: Decision, keys: StreamKeys) -> list[Effect]:
    record = decision_record(d)
    latest = (keys.decision_of(d.consignment), compact_json.dumps(
        {"referral_id": record["referral_id"], "risk_centre": d.risk_centre, "decision": d.assessment.decision,
         "state": d.filing.state, "version": d.filing.version}).decode())
    due = (keys.consignments.due_of(d.consignment), due_entry(d.consignment, d.filing.members)) \
        if d.filing.missing else None  # answered
    out = [Effect("decision", f"decision|{d.key}", keys.decisions, record, latest=latest, unschedule=due,
                  expire=decided_keys(keys.consignments, d.consignment))]
    if d.referral:  # the risk centre's copy also carries what re-assessing it after an RFI answer needs
        out.append(Effect("referral", f"referral|{d.key}", keys.referrals(d.risk_centre),
                          {**record, "reassessment": reassessment_payload(d)}))
    return out


def withdrawal_effects(w: Withdrawal, latest: dict | None, keys: StreamKeys) -> list[Effect]:
    body = {"withdrawn": w.key, "mrn": w.mrn, "submission_id": w.submission_id, "at": utc_now(),
            "referral_id": (latest or {}).get("referral_id")}
    state = (latest or {}).get("state", "")
    out = [Effect("withdrawal", f"withdrawal|{w.key}|{w.mrn}|{state}", keys.decisions, body)]
    if latest and latest.get("referral_id"):
        out.append(Effect("withdrawal", f"withdrawal-referral|{w.key}|{w.mrn}|{state}",
                          keys.referrals(latest["risk_centre"]), body))
    return out


def dead_letter_effect(d: DeadLetter, keys: StreamKeys) -> Effect:
    return Effect("dead-letter", f"dead|{d.stage}|{d.submission_id}", keys.dead_letters, dead_letter_body(d))


def counted_dead_letter_effect(count: DeadLetterCount, keys: StreamKeys, d: DeadLetter) -> Effect:
    return dead_letter_effect(count(d), keys)


class _WithdrawDoFn(beam.DoFn):
    def __init__(self, settings: Settings):
        self._settings = settings

    def setup(self):
        self._client = connect(self._settings.redis.url)
        self._keys = StreamKeys.for_settings(self._settings)

    def process(self, batch: list[Withdrawal]):
        out = Batch()
        for w in batch:
            raw = self._client.get(self._keys.decision_of(w.key)) or self._client.hget(  # or as a version before
                f"{self._keys.prefix}:decision-of", w.key)                                  # 0.2 kept it, in one hash
            out.extend(withdrawal_effects(w, json.loads(raw) if raw else None, self._keys))
        yield out


class _WatchDoFn(beam.DoFn):
    """Decisions in; watches the consignments decided before their containers' events (rejudge.py),
    one round trip per bundle."""

    def __init__(self, settings: Settings):
        self._settings = settings

    def setup(self):
        s = self._settings
        self._watch = ContainerWatch(connect(s.container_status_url), s.redis.key_prefix,
                                     s.container_status.rejudge_window_seconds)

    def start_bundle(self):
        self._decisions: list[Decision] = []

    def process(self, batch: list[Decision]):
        self._decisions.extend(batch)

    def finish_bundle(self):
        with_retries(self._settings.redis, lambda: self._watch.watch(self._decisions), "watch")


def deliver_outcomes(settings: Settings, outputs: dict) -> None:
    """The service's sinks, one branch per kind of output (no Flatten: each stays fused with the
    step that made it), each branch fed Batches. outputs: answers (by name), decisions, withdrawals,
    dead letters (by name)."""
    s, keys = settings, StreamKeys.for_settings(settings)
    dead_letters = dict(outputs["dead_letters"])
    for name, answers in outputs["answers"].items():
        checked = answers | f"Check{name}" >> EmitAnswers(s)
        checked.answers | f"Deliver{name}" >> DeliverEffects(s, partial(answer_effect, keys=keys))
        dead_letters[f"{name}Answer"] = checked.dead_letter
    outputs["decisions"] | "DeliverDecisions" >> DeliverEffects(s, partial(decision_effects, keys=keys))
    outputs["decisions"] | "WatchContainers" >> beam.ParDo(_WatchDoFn(s))
    (outputs["withdrawals"] | "Withdraw" >> beam.ParDo(_WithdrawDoFn(s)).with_output_types(Batch)
     | "DeliverWithdrawals" >> DeliverEffects(s))
    for name, dead in dead_letters.items():  # counted as they are written: one step less per branch
        dead | f"Deliver{name}Dead" >> DeliverEffects(s, partial(counted_dead_letter_effect, DeadLetterCount(), keys))


def build_service(pipeline: beam.Pipeline, settings: Settings, source: beam.PTransform,
                  archive_dir: Path | None = None) -> None:
    s = screen(pipeline | "ReadFilings" >> source, settings, reassess_redelivered=True)
    deliver_outcomes(settings, {
        "answers": {"Registration": s.registered.answers, "Rejection": s.rejections, "Pending": s.pending,
                    "Refusal": s.linked.refusals, "Assessment": s.scored.answers},
        "decisions": s.scored.decisions, "withdrawals": s.linked.withdrawals,
        "dead_letters": {"Read": s.read.dead_letter, "Validate": s.checked.dead_letter,
                         "Register": s.registered.dead_letter, "Link": s.linked.dead_letter,
                         "Assess": s.scored.dead_letter},
    })
    if archive_dir is not None:
        archive_outcomes(s, archive_dir)


def run_service(settings: Settings, consumers: list[str], drop_folder: Path | None = None,
                archive_dir: Path | None = None, runner: str = "FnApiRunner",
                options: list[str] | None = None) -> dict[str, int]:
    """Runs until the source ends: settings.streams.once and nothing new, or every consumer drained
    (`request_drain`, which SIGTERM calls). Bundles in flight finish and are acknowledged first.
    Returns the filings lost to a failing Redis meanwhile (dead-lettered, by cause; RunSummary.lost)."""
    from .connectors.dropdir import WatchDropFolder
    from .connectors.redis_streams import ReadFilingsFromStream, ReaderControl

    source = (WatchDropFolder(drop_folder, settings.limits.max_bytes, once=settings.streams.once,
                              control=(ReaderControl(settings.redis.url, settings.redis.key_prefix), consumers[0]))
              if drop_folder else ReadFilingsFromStream(settings, consumers))
    pipeline = make_pipeline(runner, options)
    build_service(pipeline, settings, source, archive_dir)
    result = pipeline.run()
    result.wait_until_finish()
    return summarize(result).lost


def serve(argv: list[str]) -> dict[str, int]:
    """The service's entry point: ScreeningOptions and Beam options (options.py) in; runs until the
    source ends or SIGTERM/SIGINT drains it; serves /healthz meanwhile if --health_port is set.
    Returns the filings lost to a failing Redis (by cause), as run_service."""
    import signal

    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    options = PipelineOptions(argv)
    o = options.view_as(ScreeningOptions)
    settings = settings_from_options(options)
    if not settings.redis.url:
        raise ValueError(f"the service needs --redis_url or ${REDIS_URL_ENV} (the Redis its filers and risk "
                         "centres share)")
    consumers = o.consumer or [default_consumer()]
    drop_folder = Path(o.input) if o.input else None
    clear_drain(settings, consumers)  # a drain asked of an earlier run does not stop this one
    previous = {sig: signal.signal(sig, lambda *_: request_drain(settings, consumers))  # stop reading, finish
                for sig in (signal.SIGTERM, signal.SIGINT)}                             # and acknowledge, then exit
    running = threading.Event()
    health = None
    if o.health_port:
        client, keys = connect(settings.redis.url), StreamKeys.for_settings(settings)
        health = HealthServer(o.health_host, o.health_port, lambda: check(
            client, keys, settings.streams.group, consumers, running.is_set(), o.health_max_lag_seconds,
            settings.streams.poll_ms / 1000, drop_folder))
    log.info("screening %s as %s", drop_folder or "the filings stream", ", ".join(consumers))
    running.set()
    rejudging = start_desk(settings, consumers[0])  # consignments judged before their boxes' events
    try:
        return run_service(settings, consumers, drop_folder, Path(o.output) / "archive" if o.output else None,
                           options.view_as(StandardOptions).runner or "FnApiRunner", argv)
    finally:
        running.clear()
        rejudging.set()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if health:
            health.close()


def request_drain(settings: Settings, consumers: list[str]) -> None:
    """Asks the running readers to stop reading; they finish what they read, then the job ends."""
    client, keys = connect(settings.redis.url), StreamKeys.for_settings(settings)
    for consumer in consumers:
        client.set(keys.drain(consumer), "1", ex=3600)


def clear_drain(settings: Settings, consumers: list[str]) -> None:
    client, keys = connect(settings.redis.url), StreamKeys.for_settings(settings)
    client.delete(*[keys.drain(c) for c in consumers])


if __name__ == "__main__":  # python -m cargoscreen.service [options]: the form launch configs use
    logging.basicConfig(level=logging.INFO, force=True, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)  # its INFO is per-bundle chatter
    sys.exit(Exit.LOST if serve(sys.argv[1:]) else Exit.OK)
