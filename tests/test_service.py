"""The streaming service: Redis stream or drop folder in, Redis streams out, every effect once.

Real Redis, real FnApiRunner, and for the crash tests a real `cargoscreen run` process killed
with SIGKILL (no chance to clean up) or stopped with SIGTERM (drain)."""
from __future__ import annotations

import json
import re
import os
import signal
import urllib.error
import urllib.request
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace

import pytest

from cargoscreen.answering import ACCEPTING_ANSWERS, REJECTING_ANSWERS
from cargoscreen.config import Settings
from cargoscreen.connectors.redis_streams import StreamKeys
from cargoscreen.generator import GeneratorSpec, generate
from cargoscreen.linking import decided_keys
from cargoscreen.health import (SCORING_WINDOW_SECONDS, ScoringMonitor, check, forget_scorers, publish_scoring,
                                scoring_key)
from cargoscreen.service import run_service, serve

from .conftest import free_port

pytestmark = pytest.mark.slow
KEYS = StreamKeys()
DOORS = set(ACCEPTING_ANSWERS) | set(REJECTING_ANSWERS)


def _submit(client, filings) -> None:
    pipe = client.pipeline(transaction=False)
    for f in filings:
        pipe.xadd(KEYS.filings, {"filing": f.data, "id": f.name})
    pipe.execute()


def _effects(client):
    """(answers by (submission id, type), decision keys, referral count, dead letters) now in Redis."""
    answers = Counter()
    for key in client.scan_iter(f"{KEYS.prefix}:answers:*"):
        for _, fields in client.xrange(key):
            body = json.loads(fields[b"body"])
            answers[(body["submission_id"], body["message_type"])] += 1
    decisions = Counter(fields[b"effect"].decode() for _, fields in client.xrange(KEYS.decisions))
    referrals = sum(client.xlen(k) for k in client.scan_iter(f"{KEYS.prefix}:referrals:*"))
    return answers, decisions, referrals, client.xlen(KEYS.dead_letters)


def _once(url: str) -> Settings:
    s = Settings().with_redis_url(url)
    return replace(s, streams=replace(s.streams, once=True, read_batch=100))


def _check_doors(answers: Counter, names: list[str]) -> None:
    doors = Counter(sid for (sid, kind), n in answers.items() if kind in DOORS for _ in range(n))
    assert set(doors) == set(names) and set(doors.values()) == {1}  # one door each, nothing lost


def test_every_filing_on_the_stream_leaves_through_one_door_and_is_acknowledged(redis_client, redis_server):
    filings = list(generate(GeneratorSpec(count=300, seed=5, resubmission_rate=0)))
    _submit(redis_client, filings)
    run_service(_once(redis_server.url), ["w0"])
    answers, decisions, referrals, dead = _effects(redis_client)
    _check_doors(answers, [f.name for f in filings])
    assert set(decisions.values()) == {1} and len(decisions) > 150 and dead == 0
    assert redis_client.xpending(KEYS.filings, "screening")["pending"] == 0
    assert sum(n for (_, kind), n in answers.items() if kind in ("IE3N02", "IE3N11")) > 0  # partial filings waited
    assert redis_client.xlen(KEYS.filings) <= 1  # finished entries trimmed (the last delivered one is kept)


def test_the_service_hands_each_polls_filings_from_step_to_step_as_one_batch(redis_client, redis_server):
    """Beam's own work is paid per hand-over between fused steps: each poll's filings travel as one
    batch, so no collection between the steps carries an element per filing (and every door is
    still answered once)."""
    from apache_beam.metrics import monitoring_infos

    from cargoscreen.connectors.redis_streams import ReadFilingsFromStream
    from cargoscreen.job import make_pipeline
    from cargoscreen.service import build_service

    filings = list(generate(GeneratorSpec(count=240, seed=8, resubmission_rate=0)))
    _submit(redis_client, filings)
    settings = Settings().with_redis_url(redis_server.url)
    settings = replace(settings, streams=replace(settings.streams, once=True, partitions=1, read_batch=80))
    pipeline = make_pipeline()
    build_service(pipeline, settings, ReadFilingsFromStream(settings, ["w0"]))
    result = pipeline.run()
    result.wait_until_finish()
    counts = Counter()
    for m in result.monitoring_infos():
        if m.urn == monitoring_infos.ELEMENT_COUNT_URN:
            counts[m.labels[monitoring_infos.PCOLLECTION_LABEL]] += monitoring_infos.extract_counter_value(m)
    _check_doors(_effects(redis_client)[0], [f.name for f in filings])
    assert counts and max(counts.values()) <= 3 * len(filings) // 80 + 2, counts.most_common(3)  # polls, not filings


def test_one_partition_is_one_stream_and_keeps_working(redis_client, redis_server):
    """streams.partitions = 1 (a single Redis as before partitions): one filings stream, every
    consignment's state under one tag, the same doors as with the default partitions."""
    filings = list(generate(GeneratorSpec(count=150, seed=8, resubmission_rate=0.05)))
    one = StreamKeys(partitions=1)
    assert one.filing_streams == ("cs:{p0}:filings",)
    pipe = redis_client.pipeline(transaction=False)
    for f in filings:
        pipe.xadd(one.filings, {"filing": f.data, "id": f.name})
    pipe.execute()
    settings = _once(redis_server.url)
    run_service(replace(settings, streams=replace(settings.streams, partitions=1)), ["w0"])
    answers, decisions, _, dead = _effects(redis_client)
    _check_doors(answers, [f.name for f in filings])
    assert dead == 0 and set(decisions.values()) == {1}
    tags = {m[1] for k in redis_client.scan_iter("cs:*") if (m := re.match(r"cs:\{(p\d+)\}:", k.decode()))}
    assert tags == {"p0"}


def test_a_decided_consignment_is_kept_for_the_amendment_window_and_nothing_without_a_bound(redis_client,
                                                                                            redis_server):
    """After its decision a linked consignment's members, their pointers and its latest decision
    expire within the amendment window (not the registrations' 400 days); registrations keep theirs;
    no key the service wrote is without a TTL but the few single keys and the length-capped streams."""
    filings = list(generate(GeneratorSpec(count=300, seed=5, resubmission_rate=0)))
    _submit(redis_client, filings)
    settings = _once(redis_server.url)
    settings = replace(settings, linking=replace(settings.linking, amendment_window_seconds=3 * 86400))
    run_service(settings, ["w0"])
    ttl = {k.decode(): redis_client.ttl(k) for k in redis_client.scan_iter("cs:*", count=1000)}
    linked = {decided_keys(KEYS.consignments, json.loads(f[b"body"])["consignment"])
              for _, f in redis_client.xrange(KEYS.decisions)} - {()}
    consignments = {k: ttl[k] for (k,) in linked if k in ttl}
    decided = {k: t for k, t in ttl.items() if ":decision-of:" in k}
    assert len(consignments) > 10 and len(decided) > 150
    assert all(0 < t <= 3 * 86400 for t in [*consignments.values(), *decided.values()])
    waiting = {k for k, t in ttl.items() if re.match(r"cs:\{p\d+\}:cons:", k) and k not in consignments
               and t > 300 * 86400 and not k.endswith(":cons:due")}
    assert all(not redis_client.hexists(k, "v") for k in waiting)  # undecided: still waiting for members
    registrations = [t for k, t in ttl.items() if re.match(r"cs:\{r\d+\}:reg:", k)]
    assert registrations and all(t > 300 * 86400 for t in registrations)
    unbounded = {re.sub(r"\{[pr]\d+\}", "{n}", k) for k, t in ttl.items() if t == -1 and redis_client.type(k) != b"stream"}
    assert unbounded <= {"cs:{n}:seq", "cs:{n}:cons:due", "cs:scoring", "cs:csm:loaded"}, unbounded  # streams: trimmed


def test_output_streams_are_trimmed_by_age_as_well_as_length(redis_client):
    from cargoscreen.connectors.redis_streams import Effect, EffectWriter

    settings = Settings().with_redis_url("unused")
    settings = replace(settings, streams=replace(settings.streams, output_retention_seconds=1))
    writer = EffectWriter.for_settings(redis_client, settings)
    writer.write([Effect("answer", f"a{n}", KEYS.answers("NL1"), {"n": n}) for n in range(500)])
    assert redis_client.xlen(KEYS.answers("NL1")) == 500  # all younger than a second
    time.sleep(1.2)
    writer.write([Effect("answer", "late", KEYS.answers("NL1"), {"n": 500})])
    # Trimmed by whole nodes of the stream (approximate, as cheap as Redis makes it): the old ones
    # but at most a node's worth are gone, the new one is there.
    left = redis_client.xrange(KEYS.answers("NL1"))
    assert len(left) <= 101 and json.loads(left[-1][1][b"body"]) == {"n": 500}


def test_a_redelivered_and_a_resent_filing_change_nothing(redis_client, redis_server):
    filings = list(generate(GeneratorSpec(count=200, seed=6, resubmission_rate=0)))
    _submit(redis_client, filings)
    settings = _once(redis_server.url)
    run_service(settings, ["w0"])
    before = _effects(redis_client)
    _submit(redis_client, filings)  # every submission delivered again (the same ids: the same submissions)
    redis_client.xreadgroup("screening", "w0", {KEYS.filings: ">"}, count=50)  # and a crash left 50 unacknowledged
    run_service(settings, ["w0"])
    assert _effects(redis_client) == before
    assert redis_client.xpending(KEYS.filings, "screening")["pending"] == 0


def test_late_resends_of_a_filing_and_its_amendment_are_answered_as_repeats_and_assessed_no_more(redis_client,
                                                                                              redis_server):
    """A carrier re-sends a house filing after amending it, and the amendment: each re-send gets its
    door answer (a repeat) and nothing else; the consignment keeps its amended state and version (the
    filing used to be re-linked with its old content, the amendment to make a version of its own:
    decisions and assessment answers for versions nobody filed)."""
    from lxml import etree

    filings = list(generate(GeneratorSpec(count=60, seed=13, defect_rate=0, envelope_rate=0, resubmission_rate=0)))
    _submit(redis_client, filings)
    settings = _once(redis_server.url)
    run_service(settings, ["w0"])
    decisions = [json.loads(f[b"body"]) for _, f in redis_client.xrange(KEYS.decisions)]
    linked = next(d for d in decisions if len(d["filings"]) > 1)
    house = next(f for f in linked["filings"] if f["filing_code"] in ("F14", "F15", "F16", "F17", "F24"))
    original = next(f for f in filings if f"<ens:LRN>{house['lrn']}</ens:LRN>".encode() in f.data)
    tree = etree.fromstring(original.data)
    ns = tree.nsmap["ens"]
    tree.tag = f"{{{ns}}}IE3A{house['filing_code'][1:]}"
    etree.SubElement(tree[0], f"{{{ns}}}AmendedMRN").text = house["mrn"]
    redis_client.xadd(KEYS.filings, {"filing": etree.tostring(tree), "id": "amendment"})
    run_service(settings, ["w0"])
    amended = _effects(redis_client)
    assert len(amended[1]) == len(decisions) + 1  # the amendment re-assessed the consignment
    redis_client.xadd(KEYS.filings, {"filing": original.data, "id": "late-resend"})
    redis_client.xadd(KEYS.filings, {"filing": etree.tostring(tree), "id": "amendment-again"})
    run_service(settings, ["w0"])
    answers, after, _, dead = _effects(redis_client)
    assert after == amended[1] and dead == 0  # no decision on the old content, nor a new version
    assert answers == amended[0] + Counter({("late-resend", "IE3R01"): 1, ("amendment-again", "IE3N10"): 1})
    doors = {body["submission_id"]: body for key in redis_client.scan_iter(f"{KEYS.prefix}:answers:*")
             for _, f in redis_client.xrange(key) for body in [json.loads(f[b"body"])]}
    assert doors["late-resend"]["mrn"] == doors["amendment-again"]["mrn"] == house["mrn"]
    assert f"<OriginalSubmissionId>{original.name}<" in doors["late-resend"]["xml"]
    assert "<OriginalSubmissionId>amendment<" in doors["amendment-again"]["xml"]


def _service(processes, url: str, *args: str) -> subprocess.Popen:
    return processes.start([sys.executable, "-m", "cargoscreen.cli", "run", "--redis-url", url, "--consumer", "w0",
                            *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_a_service_killed_mid_stream_and_restarted_answers_everything_once(redis_client, redis_server, processes):
    filings = list(generate(GeneratorSpec(count=1500, seed=8, resubmission_rate=0)))
    _submit(redis_client, filings)
    worker = _service(processes, redis_server.url, "--follow")
    deadline = time.monotonic() + 120
    # Killed once 300 decisions are out and while entries are read but not yet acknowledged (between
    # two bundles nothing is pending: a kill there would test a clean stop). Frozen (SIGSTOP) before the
    # last look, so that it cannot acknowledge its bundle between that look and the kill.
    def pending() -> int:
        return redis_client.xpending(KEYS.filings, "screening")["pending"]

    while time.monotonic() < deadline and worker.poll() is None:
        if redis_client.xlen(KEYS.decisions) >= 300 and pending():
            worker.send_signal(signal.SIGSTOP)
            if pending():
                break
            worker.send_signal(signal.SIGCONT)
        time.sleep(0.01)
    worker.send_signal(signal.SIGKILL)  # mid-stream: some entries read, some effects written, nothing acknowledged
    worker.wait()
    assert 0 < redis_client.xlen(KEYS.decisions) and redis_client.xpending(KEYS.filings, "screening")["pending"] > 0
    restarted = _service(processes, redis_server.url, "--once")
    assert restarted.wait(timeout=300) == 0, restarted.stderr.read().decode()[-2000:]
    answers, decisions, _, dead = _effects(redis_client)
    _check_doors(answers, [f.name for f in filings])
    assert set(decisions.values()) == {1} and dead == 0
    assert all(n == 1 for n in answers.values())  # no answer of any kind twice
    assert redis_client.xpending(KEYS.filings, "screening")["pending"] == 0


def test_no_step_of_the_service_asks_the_runner_for_bundle_finalization(tmp_path):
    """Acknowledging entries and moving dropped files aside wait for the bundle, not for Beam's bundle
    finalization, which portable Flink does not offer (ops/runners/): no ParDo of the service's
    pipeline, from either source, requests it."""
    from apache_beam.portability import common_urns
    from apache_beam.portability.api import beam_runner_api_pb2

    from cargoscreen.connectors.dropdir import WatchDropFolder
    from cargoscreen.connectors.redis_streams import ReadFilingsFromStream
    from cargoscreen.job import make_pipeline
    from cargoscreen.service import build_service

    settings = Settings().with_redis_url("redis://127.0.0.1:1/0")  # built, not run
    for source in (ReadFilingsFromStream(settings, ["w0"]), WatchDropFolder(tmp_path, 1000)):
        pipeline = make_pipeline()
        build_service(pipeline, settings, source, tmp_path / "archive")
        pardos = [beam_runner_api_pb2.ParDoPayload.FromString(t.spec.payload)
                  for t in pipeline.to_runner_api().components.transforms.values()
                  if t.spec.urn == common_urns.primitives.PAR_DO.urn]
        assert len(pardos) > 20 and any(p.restriction_coder_id for p in pardos)  # the reader is among them
        assert not [p for p in pardos if p.requests_finalization]


def _health(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://localhost:{port}/healthz", timeout=2) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_sigterm_drains_acknowledges_and_exits_cleanly_and_health_is_served_meanwhile(redis_client, redis_server,
                                                                                      tmp_path, processes):
    filings = list(generate(GeneratorSpec(count=600, seed=9, resubmission_rate=0)))
    port = free_port()
    worker = _service(processes, redis_server.url, "--follow", "--output", str(tmp_path), f"--health-port={port}",
                      "--health_max_lag_seconds=60")
    _submit(redis_client, filings)
    deadline = time.monotonic() + 120
    while redis_client.xlen(KEYS.decisions) < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    status, health = _health(port)
    assert status == 200 and health["healthy"] and health["up"] and health["keeping_up"]
    assert health["readers"]["w0"] is not None and health["readers"]["w0"] < 10
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=120) == 0, worker.stderr.read().decode()[-2000:]
    assert redis_client.xpending(KEYS.filings, "screening")["pending"] == 0  # what it read, it finished
    answers, _, _, _ = _effects(redis_client)
    screened = {sid for sid, kind in answers if kind in DOORS}
    last = redis_client.xinfo_groups(KEYS.filings)[0]["last-delivered-id"].decode()
    left = len(redis_client.xrange(KEYS.filings, min=f"({last}"))  # never read: waits for the next run
    assert len(screened) + left == len(filings) and len(screened) >= 100
    assert list((tmp_path / "archive" / "filings").rglob("*.parquet"))  # the archive was flushed
    assert not list((tmp_path / "archive").rglob(".*.tmp"))
    modes = {(p.is_dir(), p.stat().st_mode & 0o777) for p in (tmp_path / "archive").rglob("*")}
    assert modes == {(True, 0o700), (False, 0o600)}  # filings: the owner's alone, whatever the umask


def test_a_drop_folder_is_screened_and_emptied_and_half_written_files_wait(redis_client, redis_server, tmp_path):
    filings = list(generate(GeneratorSpec(count=120, seed=10, resubmission_rate=0)))
    drop = tmp_path / "drop"
    drop.mkdir()
    for f in filings:
        (drop / f.name).write_bytes(f.data)
    (drop / ".incoming.xml").write_bytes(b"<half")  # a writer still at work: hidden until renamed
    old = time.time() - 5
    for f in filings:
        os.utime(drop / f.name, (old, old))
    run_service(_once(redis_server.url), ["w0"], drop_folder=drop)
    answers, _, _, _ = _effects(redis_client)
    _check_doors(answers, [f.name for f in filings])
    assert [p.name for p in drop.glob("*.xml") if not p.name.startswith(".")] == []
    assert (drop / ".incoming.xml").exists()
    assert len(list((drop / "done").rglob("*.xml"))) == len(filings)


def test_health_says_up_only_with_fresh_heartbeats_and_keeping_up_only_without_old_filings(redis_client):
    def now_check(running=True):
        return check(redis_client, KEYS, "screening", ["w0"], running, max_lag_seconds=30, poll_seconds=0.5)

    assert not now_check().up  # no reader ever polled
    redis_client.set(KEYS.heartbeat("w0"), int(time.time() * 1000))
    assert now_check().up and now_check().keeping_up and not now_check(running=False).up
    minute_ago = int(time.time() * 1000) - 60_000
    redis_client.xadd(KEYS.filings, {"filing": b"<x/>"}, id=f"{minute_ago}-0")
    redis_client.xgroup_create(KEYS.filings, "screening", id="0")
    waiting = now_check()
    assert not waiting.keeping_up and 59 < waiting.oldest_unread_seconds < 70  # nobody read it
    redis_client.xreadgroup("screening", "w0", {KEYS.filings: ">"}, count=10)
    read = now_check()
    assert read.oldest_unread_seconds == 0 and read.pending == 1 and not read.keeping_up  # read, never finished
    redis_client.xack(KEYS.filings, "screening", f"{minute_ago}-0")
    assert now_check().keeping_up
    redis_client.set(KEYS.heartbeat("w0"), int(time.time() * 1000) - 30_000)
    assert not now_check().up  # the reader stopped polling half a minute ago


def test_health_says_a_scorer_that_was_slow_or_over_budget_lately_is_falling_behind(redis_client):
    """The backlog shows a stalled scorer only after max_lag_seconds: its own report shows it at once."""
    def now_check():
        return check(redis_client, KEYS, "screening", ["w0"], True, max_lag_seconds=30, poll_seconds=0.5)

    redis_client.set(KEYS.heartbeat("w0"), int(time.time() * 1000))
    monitor, now = ScoringMonitor(), time.time()
    for _ in range(100):
        monitor.record(0.0002, 0, now)
    publish_scoring(redis_client, KEYS.prefix, "host:1", monitor.report(now))
    fine = now_check()
    assert fine.healthy and fine.scorers["host:1"]["filings"] == 100
    assert fine.scorers["host:1"]["mean_seconds"] == 0.0002
    monitor.record(11.0, 0, now)  # a small filing waiting behind a costly rule
    publish_scoring(redis_client, KEYS.prefix, "host:1", monitor.report(now))
    slow = now_check()
    assert slow.up and slow.keeping_up and not slow.scorers_keeping_up and not slow.healthy
    assert slow.scorers["host:1"]["slowest_seconds"] == 11.0
    assert monitor.report(now + SCORING_WINDOW_SECONDS + 10)["filings"] == 0  # the window moves on
    monitor.record(0.001, 2, now)  # two rules left unevaluated: over their budget
    publish_scoring(redis_client, KEYS.prefix, "host:2", {**monitor.report(now), "slowest_seconds": 0.001})
    assert not now_check().scorers_keeping_up
    redis_client.delete(scoring_key(KEYS.prefix))
    publish_scoring(redis_client, KEYS.prefix, "gone:1", {**monitor.report(now - 400), "at": now - 400})
    assert now_check().healthy and now_check().scorers == {}  # a scorer silent for the window is not judged
    forget_scorers(redis_client, KEYS.prefix, now + 86400)  # a worker starting a day later drops its report
    assert redis_client.hlen(scoring_key(KEYS.prefix)) == 0


def test_the_service_runs_on_the_portable_runner(redis_client, redis_server, job_service):
    """The same job API Flink, Spark and Dataflow speak; options as a launch configuration gives them."""
    filings = list(generate(GeneratorSpec(count=200, seed=12, resubmission_rate=0)))
    _submit(redis_client, filings)
    serve([f"--redis_url={redis_server.url}", "--consumer=w0", "--once", "--read_batch=100",
           "--runner=PortableRunner", f"--job_endpoint={job_service}", "--environment_type=LOOPBACK"])
    answers, decisions, _, dead = _effects(redis_client)
    _check_doors(answers, [f.name for f in filings])
    assert decisions and set(decisions.values()) == {1} and dead == 0
    assert redis_client.xpending(KEYS.filings, "screening")["pending"] == 0  # acknowledged through the job API


def test_the_local_runner_keeps_one_metrics_entry_per_metric_instead_of_one_per_bundle():
    """Beam's FnApiRunner chained a lazy generator per bundle (memory grew with every bundle of a
    service); make_pipeline makes the fold eager, so what it keeps is a list, bounded by metric."""
    from apache_beam.metrics import monitoring_infos
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    from cargoscreen.job import make_pipeline

    make_pipeline()
    counter = monitoring_infos.int64_user_counter("cargoscreen", "inputs", 1)
    folded = []
    for _ in range(1000):  # a thousand bundles' worth
        folded = fn_runner.consolidate_monitoring_infos(iter([counter, *folded]))
    assert isinstance(folded, list) and len(folded) == 1
    assert monitoring_infos.extract_counter_value(folded[0]) == 1000


def test_the_health_command_probes_from_outside_the_job(redis_client, redis_server):
    from click.testing import CliRunner

    from cargoscreen.cli import main

    args = ["health", "--redis-url", redis_server.url, "--consumer", "w0"]
    silent = CliRunner().invoke(main, args)
    assert silent.exit_code == 1 and json.loads(silent.output)["readers"] == {"w0": None}
    redis_client.set(KEYS.heartbeat("w0"), int(time.time() * 1000))
    beating = CliRunner().invoke(main, args)
    assert beating.exit_code == 0 and json.loads(beating.output)["healthy"]


def test_finished_filings_are_trimmed_from_the_stream_and_unfinished_ones_kept(redis_client):
    from cargoscreen.connectors.redis_streams import trim_finished

    ids = [redis_client.xadd(KEYS.filings, {"filing": b"<x/>"}) for _ in range(5)]
    redis_client.xgroup_create(KEYS.filings, "screening", id="0")
    redis_client.xreadgroup("screening", "w0", {KEYS.filings: ">"}, count=3)
    redis_client.xack(KEYS.filings, "screening", ids[0], ids[2])  # the second is still in work
    trim_finished(redis_client, KEYS.filings)
    assert [e for e, _ in redis_client.xrange(KEYS.filings)] == ids[1:]
    redis_client.xack(KEYS.filings, "screening", ids[1])
    trim_finished(redis_client, KEYS.filings)
    assert [e for e, _ in redis_client.xrange(KEYS.filings)] == ids[2:]  # the unread two stay
    redis_client.xgroup_create(KEYS.filings, "other-deployment", id="0")  # a second group has read nothing
    redis_client.xreadgroup("screening", "w0", {KEYS.filings: ">"})
    redis_client.xack(KEYS.filings, "screening", *ids[3:])
    trim_finished(redis_client, KEYS.filings)
    assert redis_client.xlen(KEYS.filings) == 3  # nothing goes before every group has it
