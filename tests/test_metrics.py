"""Prometheus metrics from real service processes (FnApiRunner, and PortableRunner against Beam's
job service), scraped over HTTP and checked against what the service wrote to Redis."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from cargoscreen import metrics, resources
from cargoscreen.cli import main
from cargoscreen.connectors.redis_streams import StreamKeys
from cargoscreen.domain.rulepack import RulePack
from cargoscreen.generator import GeneratorSpec, generate

from .conftest import free_port, stop

pytestmark = pytest.mark.slow
KEYS = StreamKeys()
README = Path(__file__).resolve().parent.parent / "README.md"


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def total(samples, name: str, **labels) -> float:
    return sum(v for (n, ls), v in samples.items()
               if n == name and all(dict(ls).get(k) == x for k, x in labels.items()))


def answers_in_redis(client) -> Counter:
    out = Counter()
    for key in client.scan_iter(f"{KEYS.prefix}:answers:*"):
        for _, fields in client.xrange(key):
            out[json.loads(fields[b"body"])["message_type"]] += 1
    return out


def serve_and_scrape(redis_client, redis_server, *runner_options) -> tuple[dict, int]:
    filings = list(generate(GeneratorSpec(count=150, seed=41, resubmission_rate=0)))
    pipe = redis_client.pipeline(transaction=False)
    for f in filings:
        pipe.xadd(KEYS.filings, {"filing": f.data, "id": f.name})
    pipe.execute()
    port = free_port()
    service = subprocess.Popen([sys.executable, "-m", "cargoscreen.service", f"--redis_url={redis_server.url}",
                                "--consumer=m0", f"--metrics_port={port}", *runner_options],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline, samples = time.monotonic() + 180, {}
        while time.monotonic() < deadline:
            assert service.poll() is None, service.stderr.read().decode()[-3000:]
            try:
                samples = scrape(port)
            except OSError:
                samples = {}
            done = total(samples, "cargoscreen_stage_messages_total", stage="read", outcome="in") == len(filings)
            if done and redis_client.xpending(KEYS.filings, "screening")["pending"] == 0 \
                    and total(samples, "cargoscreen_effects_total") >= sum(answers_in_redis(redis_client).values()):
                time.sleep(1.0)  # the last bundle's effects
                return scrape(port), port
            time.sleep(0.3)
        raise AssertionError(f"the service did not finish; last scrape had {len(samples)} samples")
    finally:
        stop(service, timeout=60)  # SIGTERM: drains


def check_against_redis(samples: dict, redis_client, filings: int) -> None:
    stage = "cargoscreen_stage_messages_total"
    assert total(samples, stage, stage="read", outcome="in") == filings
    accepted, rejected = (total(samples, stage, stage="validate", outcome=o) for o in ("accepted", "rejected"))
    dead = total(samples, "cargoscreen_dead_letters_total")
    assert accepted + rejected + total(samples, "cargoscreen_dead_letters_total", stage="read") == filings
    registered = sum(v for (n, ls), v in samples.items() if n == stage and dict(ls).get("stage") == "register")
    assert registered == accepted  # every accepted filing got a registration result
    # Each answer in Redis was counted once, by type; the latency of every registration and rejection observed.
    in_redis = answers_in_redis(redis_client)
    assert {k: int(total(samples, "cargoscreen_answers_total", message_type=k)) for k in in_redis} == dict(in_redis)
    assert total(samples, "cargoscreen_effects_total", kind="answer", outcome="written") == sum(in_redis.values())
    assert total(samples, "cargoscreen_registration_latency_seconds_count") == registered + rejected
    decisions = total(samples, "cargoscreen_decisions_total")
    assert decisions == redis_client.xlen(KEYS.decisions) > 0 and dead == 0
    assert 0 < total(samples, "cargoscreen_decision_latency_seconds_count") <= decisions
    assert total(samples, "cargoscreen_decision_latency_seconds_bucket", le="+Inf") == \
        total(samples, "cargoscreen_decision_latency_seconds_count")
    starter = RulePack.load(resources.rules_dir() / "risk" / "ics2-starter").id
    assert total(samples, "cargoscreen_rule_pack_info", pack=starter) == 1
    assert total(samples, "cargoscreen_rule_hits_total") >= total(samples, stage, stage="score", outcome="referral")
    assert ("cargoscreen_source_backlog_entries", (("source", "stream"), ("state", "pending"))) in samples


def test_a_service_process_serves_its_metrics_and_registers_as_a_target(redis_client, redis_server):
    samples, port = serve_and_scrape(redis_client, redis_server)
    check_against_redis(samples, redis_client, 150)
    listed = json.loads(CliRunner().invoke(main, ["metrics", "targets", "--redis-url", redis_server.url]).output)
    assert any(t.endswith(f":{port}") for t in listed[0]["targets"]) and listed[0]["labels"] == {"job": "cargoscreen"}


def test_workers_under_a_portable_runner_serve_metrics(redis_client, redis_server, job_service):
    """The SDK worker (here in LOOPBACK, the launching process) starts the endpoint from a step's setup."""
    samples, _ = serve_and_scrape(redis_client, redis_server, "--runner=PortableRunner",
                                  f"--job_endpoint={job_service}", "--environment_type=LOOPBACK")
    check_against_redis(samples, redis_client, 150)


def test_the_readme_explains_every_metric():
    documented = set(re.findall(r"`(cargoscreen_[a-z_]+)`", README.read_text()))
    exported = {m.name + ("_total" if m.type == "counter" else "") for m in metrics.REGISTRY.collect()}
    assert exported == documented


def _listening(pid: int, port: int) -> str | None:
    """The address a process listens on at `port` (None: not listening)."""
    return next((c.laddr.ip for c in psutil.Process(pid).net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN and c.laddr.port == port), None)


def _answers(host: str, port: int, path: str) -> bool:
    try:
        return urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5).status == 200
    except OSError:
        return False


def test_metrics_and_health_listen_on_loopback_unless_told_otherwise(redis_client, redis_server, processes):
    """/metrics counts the rules that fired: a filer who could scrape it would learn what its filing set
    off. A service started as the runbook says listens on 127.0.0.1 only (not reachable at 127.0.0.2,
    which stands for any other interface here); --metrics_host/--health_host open them up."""
    def service(name: str, *hosts: str) -> tuple[subprocess.Popen, int, int]:
        metrics_port, health_port = free_port(), free_port()
        return processes.start([sys.executable, "-m", "cargoscreen.cli", "run", "--follow", "--redis-url",
                                redis_server.url, "--consumer", name, f"--metrics_port={metrics_port}",
                                f"--health-port={health_port}", *hosts], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE), metrics_port, health_port

    started = {"default": service("bind0"), "all": service("bind1", "--metrics_host=0.0.0.0", "--health_host=0.0.0.0")}
    deadline = time.monotonic() + 120
    for process, metrics_port, health_port in started.values():
        while not (_answers("127.0.0.1", metrics_port, "/metrics") and _answers("127.0.0.1", health_port, "/healthz")):
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read().decode()[-2000:]
            time.sleep(0.2)
    process, metrics_port, health_port = started["default"]
    assert _listening(process.pid, metrics_port) == _listening(process.pid, health_port) == "127.0.0.1"
    assert not _answers("127.0.0.2", metrics_port, "/metrics") and not _answers("127.0.0.2", health_port, "/healthz")
    process, metrics_port, health_port = started["all"]
    assert _listening(process.pid, metrics_port) == _listening(process.pid, health_port) == "0.0.0.0"
    assert _answers("127.0.0.2", metrics_port, "/metrics") and _answers("127.0.0.2", health_port, "/healthz")
    # Each registers the address a scraper reaches it at: loopback for a Prometheus on the same host.
    targets = []
    while len(targets) < 2 and time.monotonic() < deadline:
        targets = metrics.live_targets(redis_client, KEYS.prefix)
        time.sleep(0.2)
    assert set(targets) == {f"127.0.0.1:{started['default'][1]}",
                            metrics.scrape_target("0.0.0.0", started["all"][1])}
