"""The other users of Redis on a real Redis Cluster (Debian's redis-server, 3 masters and 3 replicas),
each given any one node's URL: the container store and its feed, the rule store, risk information,
party history, `cargoscreen health`, `cargoscreen metrics targets` (both also from
$CARGOSCREEN_REDIS_URL), the audit keeper and the archive of outcomes."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cargoscreen.analytics import archive_outcomes
from cargoscreen.cli import main
from cargoscreen.config import Settings
from cargoscreen.connectors.dcsa import EXAMPLES
from cargoscreen.connectors.redis_streams import StreamKeys
from cargoscreen.container_store import ContainerEventStore
from cargoscreen.domain.container_events import normalize
from cargoscreen.domain.parties import Sighting
from cargoscreen.metrics import targets_key
from cargoscreen.party_history import PartyHistoryStore
from cargoscreen.rejudge import ContainerWatch
from cargoscreen.risk_information import RiskInformationStore
from cargoscreen.rule_store import RulePackSource, RulePackStore
from cargoscreen import audit, resources
from cargoscreen.workbench.keeper import Keeper
from cargoscreen.workbench.queue import ReferralQueue

from .test_container_feed import EXAMPLE_EVENTS, equipment_event
from .test_workbench_queue import put, referral

pytestmark = pytest.mark.slow
CARGOSCREEN = str(Path(sys.executable).parent / "cargoscreen")
STARTER = resources.rules_dir() / "risk" / "ics2-starter"


def invoke(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)


def test_the_container_feed_loads_into_a_cluster_and_histories_read_back(cluster_client, cluster, tmp_path):
    (tmp_path / "feed").mkdir()
    (tmp_path / "feed" / "events.json").write_text(EXAMPLES.read_text())
    args = ["csm", "load", tmp_path / "feed", "--redis-url", cluster[0], "--rejected", tmp_path / "rejected.jsonl"]
    first = invoke(*args)
    assert first.exit_code == 0 and "read 7 = loaded 7 + duplicates 0 + rejected 0" in first.output, first.output
    assert "read 7 = loaded 0 + duplicates 7" in invoke(*args).output
    store = ContainerEventStore(cluster_client)
    events = [normalize(e) for e in EXAMPLE_EVENTS]
    containers = sorted({e.equipment for e in events if e.equipment})
    held = store.histories_and_plans(containers)
    assert sum(map(len, held.values())) == sum(1 for e in events if e.equipment)
    assert len({cluster_client.keyslot(f"cs:eq:{{{c}}}:ACT") for c in containers}) == len(containers)  # spread out
    assert store.by_voyage("9321483", "2103S") and store.by_document("TRD:reserved-HHL123")
    assert store.has_events()


def test_a_batch_script_serves_the_keys_of_one_slot_per_call_in_their_order(cluster_client):
    """BatchScript on a cluster: units of one slot share a call (one EVALSHA per slot), each unit gets its own
    reply, in the order given, whichever master holds it."""
    from cargoscreen.connectors.redis_slots import BatchScript, by_slot

    keys = [f"t:{{{tag}}}:{n}" for tag, n in (("a", 1), ("b", 1), ("a", 2), ("c", 1), ("b", 2), ("a", 3))]
    groups = by_slot(cluster_client, keys)
    assert sorted(groups) == [[0, 2, 5], [1, 4], [3]]
    echo = BatchScript(cluster_client, "local out = {} for i, k in ipairs(KEYS) do "
                                       "redis.call('SET', k, ARGV[1] .. ARGV[1 + i]) out[i] = k end return out")
    assert [r.decode() for r in echo.run(["v"], [(k, [str(n)]) for n, k in enumerate(keys)])] == keys
    assert [cluster_client.get(k).decode() for k in keys] == [f"v{n}" for n in range(len(keys))]


def test_a_watched_container_is_told_to_the_rejudge_desk_and_the_stream_feed_follows(cluster_client, cluster):
    store = ContainerEventStore(cluster_client)
    cluster_client.set(ContainerWatch(cluster_client, "cs", 0).of_key("MSCU6639870"), "mrn:26NLABCDEFGHIJKLM1")
    assert store.add([normalize(equipment_event(when=f"2026-11-0{d}T10:00:00Z")) for d in (1, 2)]) == [True, True]
    assert [f[b"container"] for _, f in cluster_client.xrange(StreamKeys().rejudge)] == [b"MSCU6639870"]
    for container in ("MSKU1234565", "TGHU1234564"):
        event = equipment_event(container=container, when="2026-11-03T10:00:00Z")
        cluster_client.xadd("cs:csm:events", {"event": json.dumps(event)})
    followed = invoke("csm", "follow", "--redis-url", cluster[5], "--once")
    assert followed.exit_code == 0 and "loaded 2" in followed.output, followed.output
    assert len(store.histories(["MSKU1234565"])["MSKU1234565"]) == 1


def test_rules_publish_activate_and_status_on_a_cluster_and_workers_follow(cluster_client, cluster, tmp_path):
    published = invoke("rules", "publish", STARTER, "--redis-url", cluster[1])
    assert published.exit_code == 0 and "published and active" in published.output, published.output
    store = RulePackStore(cluster_client)
    name = store.active()
    assert name and name.startswith("ics2-starter@")
    assert invoke("rules", "activate", name, "--redis-url", cluster[3]).exit_code == 0
    assert name in invoke("rules", "status", "--redis-url", cluster[4]).output
    risk = RiskInformationStore(cluster_client)
    source = RulePackSource(STARTER, store, poll_seconds=0, risk_information=risk)
    assert source.current().pack.id.startswith(name) and source.reloads == 1


def test_risk_information_and_party_history_on_a_cluster(cluster_client):
    from cargoscreen.risk_information import RiskInformation

    risk = RiskInformationStore(cluster_client)
    form = risk.publish(RiskInformation("", "RC-NL", "container", {"container": "MSKU1234565"}, "Box to watch",
                                        "drug-precursors", "control", "2026-01-01T00:00:00Z", "2099-01-01T00:00:00Z",
                                        published_by="alice", published_at="2026-11-28T10:00:00Z"))
    risk.revoke(form.id, "alice", "RC-NL")
    assert risk.version() == 2 and risk.forms()[0].revoked_by == "alice"
    assert [e["action"] for e in audit.entries(cluster_client, audit.trails("cs", "RC-NL"), centre="RC-NL")] == \
        ["publish-risk-information", "revoke-risk-information"]
    history = PartyHistoryStore(cluster_client)
    sightings = [Sighting("DE123", f"M{n}", "consignor", f"id:CN{n % 3}", "/IE3F10/Consignment/Consignor")
                 for n in range(9)]
    seen = history.record(sightings, now=1_790_000_000.0)
    assert [s.filings for s in seen] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert [s.filings for s in history.record(sightings[:3], now=1_790_000_100.0)] == [0, 0, 0]  # replays


def test_health_and_metrics_targets_from_the_environment_on_a_cluster(cluster_client, cluster):
    env = {"CARGOSCREEN_REDIS_URL": cluster[4]}
    cluster_client.set(StreamKeys().heartbeat("w1"), int(time.time() * 1000))
    cluster_client.xadd(StreamKeys().filings, {"filing": "<a/>", "id": "a"})
    cluster_client.xgroup_create(StreamKeys().filings, Settings().streams.group, id="0")
    health = subprocess.run([CARGOSCREEN, "health", "--consumer", "w1", "--consumer", "w2"], capture_output=True,
                            text=True, env={**_environ(), **env}, timeout=60)
    report = json.loads(health.stdout)
    assert health.returncode == 1 and report["readers"]["w2"] is None and report["readers"]["w1"] < 10
    assert not report["healthy"] and report["up"] is False
    cluster_client.zadd(targets_key("cs"), {"worker-1:9466": time.time(), "gone:9466": time.time() - 3600})
    listed = subprocess.run([CARGOSCREEN, "metrics", "targets"], capture_output=True, text=True,
                            env={**_environ(), **env}, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)[0]["targets"] == ["worker-1:9466"]


def _environ() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if k != "CARGOSCREEN_REDIS_URL"}


def test_the_keeper_trims_every_audit_trail_and_outcomes_reach_the_archive(cluster_client, cluster, tmp_path):
    for n in range(2):
        put(cluster_client, "RC-NL", referral(n))
    queue = ReferralQueue(cluster_client, "RC-NL")
    queue.take_in()
    queue.claim("REF-26NL00000000000000", "alice")
    queue.resolve("REF-26NL00000000000000", "alice", "no-finding")
    audit.note(cluster_client, "cs", "system", "", "old-record", "", "")
    assert archive_outcomes(cluster_client, tmp_path / "archive") == 1
    written = invoke("archive-outcomes", tmp_path / "archive", "--redis-url", cluster[3])
    assert written.exit_code == 0 and "0 outcome(s)" in written.output  # each once
    settings = Settings().with_redis_url(cluster[0])
    keeper = Keeper(cluster_client, settings)
    keeper._closed = type(settings.workbench)(audit_retention_seconds=-60)  # everything is old enough
    keeper.once()
    assert all(cluster_client.xlen(t) == 0 for t in audit.every_trail(cluster_client, "cs"))
