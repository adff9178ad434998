"""Against a real Redis Cluster (Debian's redis-server, 3 masters and 3 replicas): the batch job and the
service (several workers, the HTTP ingress) conserve every filing as on one Redis, through a master's
failover too (ops/REDIS-KEYS.md: every script's keys in one slot)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
from lxml import etree

from cargoscreen.connectors.files import read_json_lines
from cargoscreen.connectors.redis_store import connect, infrastructure_cause
from cargoscreen.answering import ACCEPTING_ANSWERS, REJECTING_ANSWERS
from cargoscreen.connectors.redis_streams import StreamKeys, entry_key
from cargoscreen.generator import GeneratorSpec, generate
from cargoscreen.linking import ConsignmentStore, routing_name
from cargoscreen.corpus import write_corpus
from cargoscreen.exits import Exit

from .conftest import free_port, redis_cluster
from .test_ingress import resend_report, resend_run, start_ingress
from .test_linking import linked_one_by_one_and_as_a_bundle

KEYS = StreamKeys()
DOORS = set(ACCEPTING_ANSWERS) | set(REJECTING_ANSWERS)

pytestmark = pytest.mark.slow
CARGOSCREEN = str(Path(sys.executable).parent / "cargoscreen")


@pytest.fixture(scope="module")
def cluster_nodes(tmp_path_factory):
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as urls:
        yield urls


@pytest.fixture
def cluster(cluster_nodes):
    """The module's cluster, emptied before each test: whatever a failed test left does not fail the next."""
    _flush(cluster_nodes)
    return cluster_nodes


def _flush(cluster) -> None:
    for client in map(connect, cluster):
        if client.info("replication")["role"] == "master":
            client.flushall()


def test_the_batch_job_on_a_cluster_conserves_every_filing_as_on_one_redis(cluster, redis_client, redis_server,
                                                                           tmp_path):
    """The same corpus (partial filings of one consignment from several filers, re-sends, amendments,
    defects) through the public command on a 3-master cluster and on one Redis: the same door counts,
    balanced, nothing dead-lettered; the state spread over every master."""
    write_corpus(tmp_path, count=240, seed=4, defect_rate=0.1)
    runs = {}
    for name, url in (("single", redis_server.url), ("cluster", cluster[1])):
        result = subprocess.run([CARGOSCREEN, "run", "--input", str(tmp_path / "filings"), "--output",
                                 str(tmp_path / name), "--redis-url", url], capture_output=True, text=True, timeout=600)
        assert result.returncode == Exit.OK, result.stderr[-3000:]
        [run] = (tmp_path / name).glob("run-*")
        runs[name] = json.loads((run / "summary.json").read_text())
        assert not read_json_lines(run / "dead-letters")
    single, clustered = runs["single"], runs["cluster"]
    assert clustered["balanced"] and clustered["dead_lettered"] == 0
    for k in ("inputs", "accepted", "rejected", "resent", "answers", "decisions", "referrals", "assessed"):
        assert clustered[k] == single[k], k
    masters = [c for c in map(connect, cluster) if c.info("replication")["role"] == "master"]
    assert all(c.dbsize() > 0 for c in masters)  # registrations and consignments on every master


def test_workers_and_the_ingress_on_a_cluster_give_every_filing_one_door_answer(cluster, tmp_path, processes):
    """Filings POSTed to the ingress (routed to their consignment's partition) by 8 senders, a third
    re-sent at once, screened by 3 workers of which one is SIGKILLed mid-bundle and restarted: every
    submission exactly one door answer, every filing version one assessment answer, nothing dead-lettered."""
    port, tokens = start_ingress(processes, tmp_path, "--max-bytes", "200000", "--requests-per-second", "10000",
                                 "--request-burst", "10000", redis_url=cluster[1])
    run = resend_run(port, tokens, cluster[2], connect(cluster[0]), count=240, seed=43, workers=3)
    report = resend_report(run)
    print("on a cluster:", report)
    assert report == {**report, "without_door_answer": 0, "door_answers_repeated": 0,
                      "assessment_answers_repeated": 0, "decided_without_assessment_answer": 0,
                      "decisions_after_the_first": 0, "dead_letters": 0}
    client = connect(cluster[0])
    spread = {p: client.xlen(k) for p, k in enumerate(KEYS.filing_streams) if client.exists(k)}
    assert len(spread) > 3  # the ingress routed the filings over the partitions


def test_connect_gives_a_cluster_client_for_any_node_that_reaches_every_slot(cluster):
    client = connect(cluster[1])
    assert isinstance(client, redis.cluster.RedisCluster)
    for n in range(20):  # keys of every master, through one URL
        client.set(f"k{n}", n)
    assert [int(client.get(f"k{n}")) for n in range(20)] == list(range(20))
    assert len({client.keyslot(f"k{n}") for n in range(20)}) > 3
    client.delete(*(f"k{n}" for n in range(20)))
    down = f"redis://127.0.0.1:{free_port()}/0"  # a node listed first that does not answer: the next is asked
    listed = connect(f"{down},{cluster[2]}")
    assert isinstance(listed, redis.cluster.RedisCluster) and listed.ping()


def test_a_bundle_links_in_one_script_call_per_slot_it_touches_as_one_by_one(cluster):
    """On a cluster, whose scripts may touch one slot only, a bundle mixing masters, houses,
    amendments and invalidations of several consignments takes one call per slot (over several
    masters), with the outcomes and state of the changes made one by one."""
    client = connect(cluster[1])
    store = ConsignmentStore(client, partitions=16)
    changes, one_by_one, together, _, calls = linked_one_by_one_and_as_a_bundle(store, client,
                                                                                lambda: _flush(cluster))
    keys = {c.key for c in changes if c.key}
    assert together == one_by_one and calls == len({client.keyslot(store.keys.hash(k)) for k in keys}) > 1
    assert len({client.get_node_from_key(store.keys.hash(k)).name for k in keys}) > 1


def test_cluster_replies_are_told_apart_from_other_refusals(cluster):
    client = redis.Redis.from_url(cluster[0])  # a plain client sees the cluster's replies as they come
    errors = []
    for key in (f"k{n}" for n in range(20)):  # some of them live on another master: MOVED
        try:
            client.get(key)
        except redis.RedisError as exc:
            errors.append(exc)
    try:
        client.eval("return redis.call('GET', 'a') or redis.call('GET', 'b')", 0)  # keys built in a script
    except redis.RedisError as exc:
        errors.append(exc)
    assert len(errors) > 2 and {infrastructure_cause(e) for e in errors} == {"redis-cluster"}, errors
    assert infrastructure_cause(redis.ResponseError("OOM command not allowed when used memory > 'maxmemory'")) \
        == "redis-refused"
    assert infrastructure_cause(json.JSONDecodeError("x", "", 0)) == ""  # a bug of ours is not the store's


def test_a_master_killed_mid_stream_loses_nothing_and_doubles_nothing(cluster, tmp_path, processes):
    """Two workers screening filings that keep coming; the master of the decisions stream (and of some
    partitions) is SIGKILLed mid-stream, its replica takes over: every filing exactly one door answer,
    no answer, decision or referral written twice, nothing dead-lettered. Prints how long after the
    kill the first decision came (the issue's target: 10 s; measured here, not asserted)."""
    client = connect(cluster[1])
    node = client.get_node_from_key(KEYS.decisions)
    victim = redis.Redis(host=node.host, port=node.port).info("server")["process_id"]
    # The workers are given every node, the victim first: whichever answers tells them the cluster's map.
    url = ",".join(sorted(cluster, key=lambda u: redis.Redis.from_url(u).info("server")["process_id"] != victim))
    filings = list(generate(GeneratorSpec(count=700, seed=47, resubmission_rate=0, risk_rate=0.1)))
    log = (tmp_path / "workers.log").open("wb")
    workers = [processes.start([CARGOSCREEN, "run", "--follow", "--redis-url", url, "--consumer", f"w{n}",
                                "--read_batch=50", "--claim_idle_ms=5000", "--metrics_port=0"],
                               stdout=log, stderr=subprocess.STDOUT) for n in range(2)]
    parser = etree.XMLParser(resolve_entities=False)

    def queue(f) -> None:  # as the ingress does: the consignment's partition; again until Redis takes it
        try:
            route = routing_name(etree.fromstring(f.data, parser))
        except etree.XMLSyntaxError:  # a broken filing: any partition (the pipeline rejects it)
            route = None
        stream = KEYS.filings_for(route or f.name)
        while True:
            try:
                client.xadd(stream, {"filing": f.data, "id": f.name})
                return
            except redis.RedisError:
                time.sleep(0.1)

    for f in filings[:300]:
        queue(f)
    deadline = time.monotonic() + 120
    while client.xlen(KEYS.decisions) < 100:
        assert time.monotonic() < deadline and all(w.poll() is None for w in workers), "the workers did not start"
        time.sleep(0.05)
    killed_ms = int(time.time() * 1000)
    os.kill(victim, signal.SIGKILL)
    for f in filings[300:]:  # filings keep coming through the failover
        queue(f)
    first = None
    deadline = time.monotonic() + 240
    while True:
        assert time.monotonic() < deadline, "the service did not finish after the failover"
        assert all(w.poll() is None for w in workers), (tmp_path / "workers.log").read_text()[-8000:]
        try:
            if first is None:
                after = client.xrange(KEYS.decisions, min=killed_ms, count=1)
                first = entry_key(after[0][0])[0] - killed_ms if after else None
            doors = _doors(client)
            if set(doors) >= {f.name for f in filings} and _pending(client) == 0:
                break
        except redis.RedisError:
            pass
        time.sleep(0.5)
    time.sleep(2)  # the last bundle's decisions
    doors = _doors(client)
    assert set(doors) == {f.name for f in filings} and set(doors.values()) == {1}
    answers = Counter(f[b"effect"] for k in client.scan_iter(f"{KEYS.prefix}:answers:*") for _, f in client.xrange(k))
    decisions = Counter(f[b"effect"] for _, f in client.xrange(KEYS.decisions))
    referrals = Counter(f[b"effect"] for k in client.scan_iter(f"{KEYS.prefix}:referrals:*")
                        for _, f in client.xrange(k))
    assert set(answers.values()) == {1} and set(decisions.values()) == {1}
    assert not referrals or set(referrals.values()) == {1}
    dead = [json.loads(f[b"body"]) for _, f in client.xrange(KEYS.dead_letters)]
    assert not dead, [(d["submission_id"], d["stage"], d["reason"]) for d in dead]
    print(f"master of {KEYS.decisions} SIGKILLed: first decision {first / 1000:.1f} s after; "
          f"{sum(answers.values())} answers, {len(decisions)} decisions, {len(referrals)} referrals, none twice")


def _doors(client) -> Counter:
    doors = Counter()
    for key in client.scan_iter(f"{KEYS.prefix}:answers:*"):
        for _, fields in client.xrange(key):
            body = json.loads(fields[b"body"])
            if body["message_type"] in DOORS:
                doors[body["submission_id"]] += 1
    return doors


def _pending(client) -> int:
    return sum(client.xpending(k, "screening")["pending"] for k in KEYS.filing_streams if client.exists(k))
