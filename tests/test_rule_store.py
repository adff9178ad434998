"""Publishing rule packs in a real Redis, and the hot reload running pipelines do."""
from __future__ import annotations

import json
from dataclasses import replace
import threading
import time
from collections import Counter

import pytest

from cargoscreen import resources
from cargoscreen.config import Settings
from cargoscreen.connectors.files import read_json_lines
from cargoscreen.connectors.redis_store import EmbeddedRedis, connect, progress_key
from cargoscreen.corpus import write_corpus
from cargoscreen.domain.container_events import utc_epoch
from cargoscreen.domain.rulepack import PackError, read_pack_files
from cargoscreen.job import new_run_id, run_batch
from cargoscreen.rule_store import RulePackSource, RulePackStore

from .conftest import STARTER_VERSION

STARTER = resources.rules_dir() / "risk" / "ics2-starter"
# A rule that fires on every filing: which pack scored a filing shows in its hits.
EVERYWHERE = """rules:
  - id: V2-MARK
    title: Scored by version 2
    area: security-safety
    owner: tests
    weight: 0
    decision: assessment-complete
    when: count(parties) >= 0
    examples:
      fires: [{}]
      passes: [{filing_code: F11, now: 1}]
    valid: {from: 2020-01-01}
"""


def version(n: str, extra: str | None = EVERYWHERE) -> dict[str, str]:
    files = read_pack_files(STARTER)
    files["pack.yaml"] = files["pack.yaml"].replace(f"version: {STARTER_VERSION}", f"version: {n}")
    if extra:
        files["rules/zz-v2.yaml"] = extra
    return files


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_publish_activates_and_a_worker_switches_at_its_next_poll(redis_client):
    store = RulePackStore(redis_client)
    clock = Clock()
    source = RulePackSource(STARTER, store, poll_seconds=1.0, clock=clock)
    assert source.current().pack.version == STARTER_VERSION  # nothing published: the folder's pack
    publication = store.publish(version("2.0.0"))
    assert publication.activated and store.active() == "ics2-starter@2.0.0"
    clock.t = 0.5
    assert source.current().pack.version == STARTER_VERSION  # within the poll interval: no Redis call
    clock.t = 1.0
    assert source.current().pack.version == "2.0.0" and source.reloads == 1


def test_a_pack_that_fails_its_examples_is_refused_and_nothing_changes(redis_client):
    store = RulePackStore(redis_client)
    store.publish(version("2.0.0"))
    broken = version("3.0.0", EVERYWHERE.replace("count(parties) >= 0", "count(parties) >= 1"))
    with pytest.raises(PackError) as caught:
        store.publish(broken)
    assert any("V2-MARK" in str(p) and "should fire" in str(p) for p in caught.value.problems)
    assert store.active() == "ics2-starter@2.0.0"
    assert not redis_client.exists(store.pack_key("ics2-starter@3.0.0"))


def test_a_version_names_one_content_forever(redis_client):
    store = RulePackStore(redis_client)
    store.publish(version("2.0.0"))
    assert store.publish(version("2.0.0")).unchanged  # the same again: harmless
    with pytest.raises(PackError, match="already published with other content"):
        store.publish(version("2.0.0", EVERYWHERE.replace("weight: 0", "weight: 1")))


def test_published_versions_are_listed_without_walking_the_keys(tmp_path):
    """`rules status` lists what was published from the store's own list (a SCAN would walk every key of
    the store); a store from before the list was kept is found once by SCAN and listed from then on.
    A Redis of its own: the SCANs counted are this test's only."""
    with EmbeddedRedis(tmp_path / "redis") as server:
        _listed_without_scan(connect(server.url))


def _listed_without_scan(redis_client) -> None:
    store = RulePackStore(redis_client)
    store.publish(version("2.0.0"))
    store.publish(version("3.0.0", None), activate=False)
    scans = redis_client.info("commandstats").get("cmdstat_scan", {}).get("calls", 0)
    assert [p["pack"] for p in store.published()] == ["ics2-starter@2.0.0", "ics2-starter@3.0.0"]
    assert redis_client.info("commandstats").get("cmdstat_scan", {}).get("calls", 0) == scans
    redis_client.delete(store.packs_key)  # as an older version left the store
    assert [p["pack"] for p in store.published()] == ["ics2-starter@2.0.0", "ics2-starter@3.0.0"]
    assert redis_client.smembers(store.packs_key) == {b"ics2-starter@2.0.0", b"ics2-starter@3.0.0"}


def test_a_worker_refuses_a_pack_it_cannot_load_and_keeps_the_previous(redis_client):
    store = RulePackStore(redis_client)
    clock = Clock()
    source = RulePackSource(STARTER, store, poll_seconds=1.0, clock=clock)
    store.publish(version("2.0.0"))
    clock.t = 1
    assert source.current().pack.version == "2.0.0"
    # Written behind the publisher's back (another tool, another engine version): it does not compile here.
    files = version("9.9.9", EVERYWHERE.replace("count(parties) >= 0", "count(parties) >= "))
    redis_client.hset(store.pack_key("ics2-starter@9.9.9"), mapping={"files": json.dumps(files), "digest": "x"})
    redis_client.set(store.active_key, "ics2-starter@9.9.9")
    clock.t = 2
    assert source.current().pack.version == "2.0.0" and source.reload_failures == 1
    clock.t = 3
    assert source.current().pack.version == "2.0.0" and source.reload_failures == 1  # not retried each poll
    refusal = next(e for e in store.events() if e["event"] == "refused")
    assert refusal["pack"] == "ics2-starter@9.9.9" and "syntax error" in refusal["reason"]
    store.activate("ics2-starter@2.0.0")  # the rollback
    store.publish(version("2.0.1"))
    clock.t = 4
    assert source.current().pack.version == "2.0.1"


def test_an_unreachable_store_keeps_the_current_pack(redis_process):
    store = RulePackStore(connect(redis_process.url))
    clock = Clock()
    source = RulePackSource(STARTER, store, poll_seconds=1.0, clock=clock)
    store.publish(version("2.0.0"))
    clock.t = 1
    assert source.current().pack.version == "2.0.0"
    redis_process.stop()
    clock.t = 2
    assert source.current().pack.version == "2.0.0"


def test_a_running_pipeline_switches_packs_without_losing_or_rescoring_a_filing(tmp_path, redis_client, redis_server):
    client = redis_client
    write_corpus(tmp_path, count=2500, seed=12, defect_rate=0.0, envelope_rate=0.0, resubmission_rate=0.0)
    # Small batches: decisions begin while most filings are still to come (with the default 256 the
    # first come after 500 answers, and a scorer that starts after the publication uses 2.0.0 for all).
    settings = replace(Settings().with_redis_url(redis_server.url), registration_batch_size=16)
    settings = replace(settings, linking=replace(settings.linking, batch_size=16))
    run_id, result = new_run_id(), {}
    worker = threading.Thread(target=lambda: result.update(
        summary=run_batch(settings, tmp_path / "filings", tmp_path / "out", run_id=run_id)))
    worker.start()
    key = progress_key(settings.redis.key_prefix, run_id)
    while int(client.get(key) or 0) < 300 and worker.is_alive():
        time.sleep(0.02)
    published_at = time.time()
    RulePackStore(client).publish(version("2.0.0"))
    worker.join()
    summary = result["summary"]
    decisions = read_json_lines(tmp_path / "out" / "decisions")
    # Every filing decided once, in its consignment (some partial filings wait for theirs); a postal
    # dispatch is in the decision of each of its items.
    waiting = summary.answers.get("IE3N11", 0) + summary.answers.get("IE3N02", 0)
    decided = Counter(f["mrn"] for d in decisions for f in d["filings"] if f["filing_code"] != "F42")
    assert summary.balanced and summary.assessed == len(decisions) > 1500
    dispatches = {f["mrn"] for d in decisions for f in d["filings"] if f["filing_code"] == "F42"}
    assert set(decided.values()) == {1} and summary.assessment_answers_due == len(decided)
    assert len(decided) + len(dispatches) >= 2500 - waiting
    by_pack = Counter(d["rule_pack"].split("+")[0] for d in decisions)
    assert by_pack[f"ics2-starter@{STARTER_VERSION}"] > 0 and by_pack["ics2-starter@2.0.0"] > 0, by_pack
    for d in decisions:  # each decision carries the pack that made it, and v2 shows in its hits
        marked = any(h["rule"] == "V2-MARK" for h in d["hits"])
        assert marked == d["rule_pack"].startswith("ics2-starter@2.0.0")
    # The switch came while the run went on, not at its end: filings read after the publication were
    # decided by 2.0.0 (a bound in seconds would measure the machine's load, not the product).
    after = [d for d in decisions if utc_epoch(d["assessed_at"]) > published_at + settings.rules.poll_seconds]
    assert after and by_pack["ics2-starter@2.0.0"] >= len(decisions) // 10

