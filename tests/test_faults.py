"""Fault injection: real processes, real Redis. Under each fault the service is run as a supervisor
would (restarted when it exits), and afterwards a conservation check over ids: every submitted filing
has exactly one door answer, no answer of any kind twice, each decision once, at most one referral
per decision, no dead letters, nothing left pending. How long recovery took is printed, not asserted
(machines are noisy): `pytest -s tests/test_faults.py` is the fault-injection report."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import Counter

import pytest

from cargoscreen.answering import ACCEPTING_ANSWERS, REJECTING_ANSWERS
from cargoscreen.connectors.redis_store import OUTAGE, connect
from cargoscreen.connectors.redis_streams import StreamKeys, entry_key
from cargoscreen.generator import GeneratorSpec, generate

from .conftest import RedisProcess, stop

pytestmark = pytest.mark.slow
KEYS = StreamKeys()
DOORS = set(ACCEPTING_ANSWERS) | set(REJECTING_ANSWERS)


CARGOSCREEN = [sys.executable, "-m", "cargoscreen.cli"]
# The same command on a runner without bundle finalization (as portable Flink is): the SDK harness
# never tells the runner a bundle needs finalizing, so a DoFn's finalizer would never be called.
WITHOUT_BUNDLE_FINALIZATION = [sys.executable, "-c", (
    "import sys; from apache_beam.runners.worker import bundle_processor as b; "
    "b.BundleProcessor.requires_finalization = lambda self: False; "
    "from cargoscreen.cli import main; sys.exit(main())")]


class Supervised:
    """`cargoscreen run --follow`, restarted whenever it exits (what systemd's Restart=always does)."""

    def __init__(self, url: str, log, *args: str, command: list[str] = CARGOSCREEN):
        self.url, self.log, self.args, self.starts, self.command = url, log, args, 0, command
        self.process = None

    def tend(self) -> None:
        if self.process is None or self.process.poll() is not None:
            self.starts += 1
            self.process = subprocess.Popen([*self.command, "run", "--follow",
                                             "--redis-url", self.url, "--consumer", "w0", *self.args],
                                            stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.process:
            stop(self.process, timeout=60)


def submit(client, filings) -> None:
    pipe = client.pipeline(transaction=False)
    for f in filings:
        pipe.xadd(KEYS.filings, {"filing": f.data, "id": f.name})
    pipe.execute()


def conservation(client, names: list[str]) -> dict:
    """Every filing one door answer; nothing twice; each decision and referral once."""
    answers = Counter()
    for key in client.scan_iter(f"{KEYS.prefix}:answers:*"):
        for _, fields in client.xrange(key):
            body = json.loads(fields[b"body"])
            answers[(body["submission_id"], body["message_type"])] += 1
    doors = Counter(sid for (sid, kind), n in answers.items() if kind in DOORS for _ in range(n))
    assert set(doors) == set(names) and set(doors.values()) == {1}, "a filing without exactly one door answer"
    assert set(answers.values()) == {1}, "an answer sent twice"
    decisions = Counter(f[b"effect"] for _, f in client.xrange(KEYS.decisions))
    assert set(decisions.values()) == {1}, "a decision written twice"
    referrals = Counter(f[b"effect"] for k in client.scan_iter(f"{KEYS.prefix}:referrals:*")
                        for _, f in client.xrange(k))
    assert not referrals or set(referrals.values()) == {1}, "a referral written twice"
    dead = [json.loads(f[b"body"]) for _, f in client.xrange(KEYS.dead_letters)]
    assert not dead, [(d["submission_id"], d["stage"], d["reason"]) for d in dead]
    assert client.xpending(KEYS.filings, "screening")["pending"] == 0
    return {"answers": sum(answers.values()), "decisions": len(decisions), "referrals": len(referrals)}


def wait_done(client, service: Supervised, names: list[str], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        service.tend()
        try:
            answered = sum(1 for k in client.scan_iter(f"{KEYS.prefix}:answers:*") for _ in client.xrange(k))
            if answered >= len(names) and client.xpending(KEYS.filings, "screening")["pending"] == 0 \
                    and client.xlen(KEYS.filings) <= 1:
                time.sleep(2)  # decisions of the last bundle
                return
        except Exception:  # Redis still coming back
            pass
        time.sleep(0.5)
    raise AssertionError("the service did not finish after the fault")


def first_decision_after(client, since_ms: int, timeout: float = 90) -> float:
    """Seconds from `since_ms` to the first decision written after it (Redis entry time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            entries = client.xrange(KEYS.decisions, min=since_ms, count=1)
        except OUTAGE:
            entries = []
        if entries:
            return (entry_key(entries[0][0])[0] - since_ms) / 1000
        time.sleep(0.05)
    raise AssertionError("no decision after the fault ended")


def traffic(seed: int, count: int = 1200):
    return list(generate(GeneratorSpec(count=count, seed=seed, resubmission_rate=0, risk_rate=0.1)))


def started(client, service: Supervised, decisions: int = 200) -> None:
    service.tend()
    deadline = time.monotonic() + 120
    while client.xlen(KEYS.decisions) < decisions and time.monotonic() < deadline:
        time.sleep(0.02)


def test_redis_killed_and_restarted_mid_run_loses_nothing(tmp_path):
    server = RedisProcess(tmp_path, "--appendonly", "yes", "--appendfsync", "always").start()
    service = Supervised(server.url, (tmp_path / "service.log").open("w"))
    try:
        client = connect(server.url)
        filings = traffic(61)
        submit(client, filings)
        started(client, service)
        server.kill()  # mid-stream
        time.sleep(3)
        server.start()
        back_ms = int(time.time() * 1000)
        recovery = first_decision_after(client, back_ms)
        wait_done(client, service, [f.name for f in filings])
        counts = conservation(client, [f.name for f in filings])
        print(f"redis killed for 3 s: first decision {recovery:.1f} s after it was back; service started "
              f"{service.starts} time(s); {counts}")
    finally:
        service.stop()
        server.stop()


@pytest.fixture
def redis_aof(tmp_path):
    server = RedisProcess(tmp_path, "--appendonly", "yes", "--appendfsync", "always").start()
    yield server, connect(server.url)
    server.stop()


@pytest.mark.parametrize("command", [CARGOSCREEN, WITHOUT_BUNDLE_FINALIZATION],
                         ids=["local-runner", "without-bundle-finalization"])
def test_the_service_killed_mid_stream_and_restarted_loses_nothing(tmp_path, redis_aof, command):
    server, client = redis_aof
    filings = traffic(62)
    submit(client, filings)
    service = Supervised(server.url, (tmp_path / "service.log").open("w"), command=command)
    try:
        started(client, service)
        service.process.kill()  # SIGKILL: no drain, entries read and not acknowledged
        service.process.wait()
        killed_ms = int(time.time() * 1000)
        service.tend()  # the supervisor's restart
        recovery = first_decision_after(client, killed_ms)
        wait_done(client, service, [f.name for f in filings])
        counts = conservation(client, [f.name for f in filings])
        print(f"service SIGKILLed: first decision {recovery:.1f} s after (restart included); {counts}")
    finally:
        service.stop()


def test_an_unwritable_archive_stops_the_service_without_losing_a_filing(tmp_path, redis_aof):
    """The archive's folder is taken by a file (as on a read-only or vanished mount): each start fails
    on its first archive write, before acknowledging; once the folder is writable again, everything
    is screened once."""
    server, client = redis_aof
    filings = traffic(63, count=600)
    submit(client, filings)
    out = tmp_path / "data"
    out.mkdir()
    (out / "archive").write_text("not a folder")
    service = Supervised(server.url, (tmp_path / "service.log").open("w"), "--output", str(out))
    try:
        service.tend()
        deadline = time.monotonic() + 60
        while service.starts < 2 and time.monotonic() < deadline:  # it fails, and fails again
            service.tend()
            time.sleep(0.2)
        assert service.starts >= 2 and client.xpending(KEYS.filings, "screening")["pending"] > 0
        (out / "archive").unlink()  # the fault ends
        fixed_ms = int(time.time() * 1000)
        recovery = first_decision_after(client, fixed_ms)
        wait_done(client, service, [f.name for f in filings])
        counts = conservation(client, [f.name for f in filings])
        archived = sum(1 for _ in (out / "archive" / "decisions").rglob("*.parquet"))
        assert archived > 0
        print(f"archive unwritable: {service.starts} starts; first decision {recovery:.1f} s after it was "
              f"writable; {counts}")
    finally:
        service.stop()


def test_a_rule_pack_that_fails_to_load_leaves_scoring_on_the_previous_pack(tmp_path, redis_aof):
    from cargoscreen import resources
    from cargoscreen.domain.rulepack import read_pack_files
    from cargoscreen.rule_store import RulePackStore

    server, client = redis_aof
    filings = traffic(64)
    submit(client, filings)
    store = RulePackStore(client)
    files = read_pack_files(resources.rules_dir() / "risk" / "ics2-starter")
    bundled = re.search(r"^version: (\S+)", files["pack.yaml"], re.M)[1]
    files["pack.yaml"] = files["pack.yaml"].replace(f"version: {bundled}", "version: 99.0.1")
    service = Supervised(server.url, (tmp_path / "service.log").open("w"))
    try:
        started(client, service)
        store.publish(files)  # checked at publication: it compiles
        client.hset(store.pack_key("ics2-starter@99.0.1"), "files",  # and then damaged in the store
                    json.dumps({**files, "pack.yaml": files["pack.yaml"] + "\n  - ["}))
        wait_done(client, service, [f.name for f in filings])
        counts = conservation(client, [f.name for f in filings])
        packs = Counter(json.loads(f[b"body"])["rule_pack"].split("+")[0] for _, f in client.xrange(KEYS.decisions))
        assert set(packs) == {f"ics2-starter@{bundled}"}
        assert any(e["event"] == "refused" and e["pack"] == "ics2-starter@99.0.1" for e in store.events())
        print(f"broken pack published mid-run: refused, scoring went on with {bundled}; {counts}")
    finally:
        service.stop()


def test_a_stalled_consumer_is_taken_over_and_nothing_is_done_twice(tmp_path, redis_aof):
    """One of two workers stops (SIGSTOP) with entries read: the other claims them once they are idle
    for --claim_idle_ms; when the stalled one resumes, its late effects are suppressed."""
    import signal

    server, client = redis_aof
    filings = traffic(65)
    submit(client, filings)
    log = (tmp_path / "service.log").open("w")
    fast = subprocess.Popen([sys.executable, "-m", "cargoscreen.service", f"--redis_url={server.url}",
                             "--consumer=fast", "--claim_idle_ms=3000"], stdout=log, stderr=subprocess.STDOUT)
    slow = Supervised(server.url, log, "--claim_idle_ms", "3000")
    try:
        started(client, slow, decisions=100)
        deadline = time.monotonic() + 30
        while not client.xpending_range(KEYS.filings, "screening", "-", "+", 10, consumername="w0") \
                and time.monotonic() < deadline:
            time.sleep(0.005)
        slow.process.send_signal(signal.SIGSTOP)  # stalled with entries in hand
        stalled_ms = int(time.time() * 1000)
        held = client.xpending_range(KEYS.filings, "screening", "-", "+", 1000, consumername="w0")
        assert held
        deadline = time.monotonic() + 60
        while client.xpending_range(KEYS.filings, "screening", "-", "+", 1000, consumername="w0") \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        taken_over = (int(time.time() * 1000) - stalled_ms) / 1000
        slow.process.send_signal(signal.SIGCONT)
        wait_done(client, slow, [f.name for f in filings])
        counts = conservation(client, [f.name for f in filings])
        print(f"stalled consumer: its {len(held)} entries taken over {taken_over:.1f} s after it stopped "
              f"(claim idle 3 s); {counts}")
    finally:
        slow.process.send_signal(signal.SIGCONT)
        slow.stop()
        stop(fast, timeout=60)
