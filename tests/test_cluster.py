"""Against a real Redis Cluster (Debian's redis-server, 3 masters and 3 replicas): cargoscreen does not
run on one yet (its scripts touch keys of several slots, ops/REDIS-KEYS.md), and says so before any
work; a batch job that is made to run there anyway loses its filings to the cluster's refusals, and
says that too instead of calling the run balanced."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from cargoscreen.cli import run_exit
from cargoscreen.config import RedisSettings, Settings
from cargoscreen.connectors.files import read_json_lines
from cargoscreen.connectors.redis_store import connect, infrastructure_cause
from cargoscreen.corpus import write_corpus
from cargoscreen.exits import Exit
from cargoscreen.job import run_batch

from .conftest import redis_cluster

pytestmark = pytest.mark.slow
CARGOSCREEN = str(Path(sys.executable).parent / "cargoscreen")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as urls:
        yield urls


def test_the_commands_refuse_a_cluster_in_one_line_before_any_work(cluster, tmp_path):
    write_corpus(tmp_path, count=5, seed=3)
    for args in (["run", "--input", str(tmp_path / "filings"), "--output", str(tmp_path / "out")], ["run", "--once"]):
        result = subprocess.run([CARGOSCREEN, *args, "--redis-url", cluster[1]], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == Exit.REDIS, result.stderr[-2000:]
        assert result.stderr.splitlines() == [f"cargoscreen run: Redis at {cluster[1]} cannot be used: it is a node of "
                                              "a Redis Cluster; cargoscreen needs one Redis (a primary, with replicas "
                                              "if wanted) for now: its scripts touch keys of several slots"]
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("run-*"))
    assert not any(connect(u).dbsize() for u in cluster)  # nothing written anywhere


def test_a_batch_job_run_on_a_cluster_anyway_is_not_balanced_and_says_the_cluster_refused(cluster, tmp_path):
    """What the issue saw (1,814 of 2,000 dead-lettered and "balanced", exit 0), now: each filing the
    cluster refused is dead-lettered with the cause redis-cluster, and the run fails (exit 6)."""
    write_corpus(tmp_path, count=80, seed=4, defect_rate=0.1, envelope_rate=0, resubmission_rate=0)
    settings = Settings(redis=RedisSettings(url=cluster[0], retries=1, backoff_seconds=0.01))
    summary = run_batch(settings, tmp_path / "filings", tmp_path / "out")
    dead = read_json_lines(tmp_path / "out" / "dead-letters")
    refused = [d for d in dead if d.get("cause") == "redis-cluster"]
    assert refused and summary.lost.get("redis-cluster") == len(refused) and not summary.balanced
    assert run_exit(summary) == Exit.LOST
    for client in map(connect, cluster):  # a clean cluster for the next test
        if client.info("replication")["role"] == "master":
            client.flushall()


def test_connect_gives_a_cluster_client_for_any_node_that_reaches_every_slot(cluster):
    client = connect(cluster[1])
    assert isinstance(client, redis.cluster.RedisCluster)
    for n in range(20):  # keys of every master, through one URL
        client.set(f"k{n}", n)
    assert [int(client.get(f"k{n}")) for n in range(20)] == list(range(20))
    assert len({client.keyslot(f"k{n}") for n in range(20)}) > 3
    client.delete(*(f"k{n}" for n in range(20)))


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
