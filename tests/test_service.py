"""The streaming service: Redis stream or drop folder in, Redis streams out, every effect once.

Real Redis, real FnApiRunner, and for the crash tests a real `cargoscreen run` process killed
with SIGKILL (no chance to clean up) or stopped with SIGTERM (drain)."""
from __future__ import annotations

import json
import os
import signal
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
from cargoscreen.service import run_service

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


def test_a_redelivered_and_a_resent_filing_change_nothing(redis_client, redis_server):
    filings = list(generate(GeneratorSpec(count=200, seed=6, resubmission_rate=0)))
    _submit(redis_client, filings)
    settings = _once(redis_server.url)
    run_service(settings, ["w0"])
    before = _effects(redis_client)
    _submit(redis_client, filings)  # every carrier sends everything again
    redis_client.xreadgroup("screening", "w0", {KEYS.filings: ">"}, count=50)  # and a crash left 50 unacknowledged
    run_service(settings, ["w0"])
    assert _effects(redis_client) == before
    assert redis_client.xpending(KEYS.filings, "screening")["pending"] == 0


def _service(url: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cargoscreen.cli", "run", "--redis-url", url,
                             "--consumer", "w0", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_a_service_killed_mid_stream_and_restarted_answers_everything_once(redis_client, redis_server):
    filings = list(generate(GeneratorSpec(count=1500, seed=8, resubmission_rate=0)))
    _submit(redis_client, filings)
    worker = _service(redis_server.url, "--follow")
    deadline = time.monotonic() + 120
    while redis_client.xlen(KEYS.decisions) < 300 and time.monotonic() < deadline and worker.poll() is None:
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)  # mid-stream: some entries read, some effects written, nothing acknowledged
    worker.wait()
    assert 0 < redis_client.xlen(KEYS.decisions) and redis_client.xpending(KEYS.filings, "screening")["pending"] > 0
    restarted = _service(redis_server.url, "--once")
    assert restarted.wait(timeout=300) == 0, restarted.stderr.read().decode()[-2000:]
    answers, decisions, _, dead = _effects(redis_client)
    _check_doors(answers, [f.name for f in filings])
    assert set(decisions.values()) == {1} and dead == 0
    assert all(n == 1 for n in answers.values())  # no answer of any kind twice
    assert redis_client.xpending(KEYS.filings, "screening")["pending"] == 0


def test_sigterm_drains_acknowledges_and_exits_cleanly(redis_client, redis_server, tmp_path):
    filings = list(generate(GeneratorSpec(count=600, seed=9, resubmission_rate=0)))
    worker = _service(redis_server.url, "--follow", "--output", str(tmp_path))
    _submit(redis_client, filings)
    deadline = time.monotonic() + 120
    while redis_client.xlen(KEYS.decisions) < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=120) == 0, worker.stderr.read().decode()[-2000:]
    assert redis_client.xpending(KEYS.filings, "screening")["pending"] == 0  # what it read, it finished
    answers, _, _, _ = _effects(redis_client)
    screened = {sid for sid, kind in answers if kind in DOORS}
    left = redis_client.xlen(KEYS.filings) - len(screened)
    assert len(screened) + left == len(filings) and len(screened) >= 100
    assert list((tmp_path / "archive" / "filings").rglob("*.parquet"))  # the archive was flushed
    assert not list((tmp_path / "archive").rglob(".*.tmp"))


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
