"""The workbench on a real Redis Cluster (Debian's redis-server, 3 masters and 3 replicas), reached
through any one node: each centre's queue lives in the slot of its referral stream, every script
touches that slot only, and what is shared across centres (MRN pointers, sessions, throttles, the
system's audit trail) is placed so that each operation touches one slot while every centre still
sees only its own."""
from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest
import redis

from cargoscreen import audit
from cargoscreen.config import Settings
from cargoscreen.connectors.redis_store import connect
from cargoscreen.connectors.redis_streams import StreamKeys
from cargoscreen.workbench.accounts import Analyst
from cargoscreen.workbench.effectiveness import read_counts
from cargoscreen.workbench.keeper import Keeper
from cargoscreen.workbench.queue import QueueError, ReferralQueue, referral_of
from cargoscreen.workbench.sessions import Sessions
from cargoscreen.workbench.throttle import ACCOUNT_LIMIT, SignInThrottle

from .conftest import redis_cluster, workbench_server
from .test_workbench_cli import run
from .test_workbench_queue import put, referral
from .test_workbench_security import Client, add

pytestmark = pytest.mark.slow
KEYS = StreamKeys("cs")


def of_centre(n: int, centre: str, **kw) -> dict:
    """A referral of the test queue's shape for another centre (its own MRN and id)."""
    code = centre[-2:]
    return {**referral(n, **kw), "risk_centre": centre, "referral_id": f"REF-26{code}{n:014d}",
            "mrn": f"26{code}{n:014d}"}


def slots_of(client, pattern: str) -> set[int]:
    return {client.keyslot(k) for k in client.scan_iter(match=pattern, count=1000)}


def test_the_keeper_takes_referrals_in_and_each_centre_stays_in_the_slot_of_its_stream(cluster_client, cluster):
    assert isinstance(cluster_client, redis.cluster.RedisCluster)
    for n in range(6):
        put(cluster_client, "RC-NL", referral(n, score=10 * n, mode=("sea", "air")[n % 2]))
        put(cluster_client, "RC-BE", of_centre(n, "RC-BE"))
    cluster_client.xadd(KEYS.decisions, {"body": json.dumps({**referral(0), "decision": "control"})})
    keeper = Keeper(cluster_client, Settings().with_redis_url(cluster[1]))
    done = keeper.once()
    assert done["taken_in"] == 12 and done["decisions_counted"] == 1
    nl, be = keeper.queue("RC-NL"), keeper.queue("RC-BE")
    assert cluster_client.keyslot(nl.keys.stream) != cluster_client.keyslot(be.keys.stream)  # two centres, two slots
    for q in (nl, be):
        assert slots_of(cluster_client, f"cs:wb:{{{q.centre}}}:*") == {cluster_client.keyslot(q.keys.stream)}
    assert nl.page().total == 6 and [r["mode"] for r in nl.page(mode="air").rows] == ["air"] * 3
    assert cluster_client.get(referral_of("cs", "26BE00000000000002")) == b"RC-BE|REF-26BE00000000000002"
    assert "ics2-starter@1.0.0|R-security-safety|2026-11-23|hits" in read_counts(cluster_client)


def test_claim_release_resolve_withdraw_and_filters_on_the_cluster(cluster_client):
    q = ReferralQueue(cluster_client, "RC-NL", claim_seconds=60)
    for n in range(5):
        put(cluster_client, "RC-NL", referral(n, score=10 * n, areas=("security-safety", "drugs")[: 1 + n % 2]))
    assert q.take_in() == 5
    rid = "REF-26NL00000000000004"
    q.claim(rid, "alice")
    with pytest.raises(QueueError, match="claimed by alice"):
        q.resolve(rid, "bob", "no-finding")
    assert [r["referral_id"] for r in q.page(claimed="yes").rows] == [rid]
    assert q.page(claimed="no", area="drugs").total == 2  # an intersection of filter sets, in the slot
    assert q.page(older_than_hours=1, claimed="no").total == 4  # the aged scan by score, a script
    q.release(rid, "alice")
    q.claim(rid, "bob")
    done = q.resolve(rid, "bob", "finding", "drugs", "in the cover load")
    assert (done["state"], done["outcome"], done["body"]["referral_id"]) == ("resolved", "finding", rid)
    put(cluster_client, "RC-NL", {"withdrawn": "sea:DOC1", "mrn": "26NL00000000000001",
                                  "referral_id": "REF-26NL00000000000001"})
    q.take_in()
    assert q.show("REF-26NL00000000000001")["state"] == "withdrawn" and q.page().total == 3
    assert not any(cluster_client.sismember(key, rid) for key in cluster_client.scan_iter(match="cs:wb:{RC-NL}:f:*"))
    assert cluster_client.hget(q.keys.rule_stats, "ics2-starter@1.0.0|R-security-safety|2026-11-23|confirmed") == b"1"
    assert [(e["who"], e["action"]) for e in audit.entries(cluster_client, q.keys.audit)] == \
        [("alice", "claim"), ("alice", "release"), ("bob", "claim"), ("bob", "resolve"), ("system", "withdrawn")]
    # A newer version while claimed keeps the claim and moves the filter sets (declared keys, both lists).
    q.claim("REF-26NL00000000000003", "carol")
    put(cluster_client, "RC-NL", referral(3, score=99, version=2, mode="air", areas=("weapons",)))
    q.take_in()
    assert q.show("REF-26NL00000000000003")["claimed_by"] == "carol"
    assert [r["referral_id"] for r in q.page(area="weapons").rows] == ["REF-26NL00000000000003"]
    assert q.page(area="drugs").total == 0
    assert q.forget_closed(0, now=time.time() + 10) == 2  # resolved and withdrawn: gone, with their MRN pointers
    assert cluster_client.get(referral_of("cs", "26NL00000000000004")) is None


def test_a_resolved_referral_keeps_its_summary_and_shows_its_body_while_the_stream_has_it(cluster_client):
    q = ReferralQueue(cluster_client, "RC-NL")
    put(cluster_client, "RC-NL", referral(7))
    q.take_in()
    rid = "REF-26NL00000000000007"
    q.claim(rid, "alice")
    q.resolve(rid, "alice", "no-finding")
    kept = {k.decode() for k in cluster_client.hkeys(q.keys.referral(rid))}
    assert "body" not in kept and {"mrn", "outcome", "resolved_by", "rules", "score", "entry"} <= kept
    assert cluster_client.object("encoding", q.keys.referral(rid)) == b"listpack"  # written anew: compact
    assert q.show(rid)["body"]["filing"]["transport_document"] == "DOC7"  # from the referral stream
    cluster_client.xtrim(q.keys.stream, maxlen=0)  # the stream's retention has passed
    shown = q.show(rid)
    assert shown["summary_only"] and shown["body"]["mrn"] == "26NL00000000000007"
    assert [h["rule"] for h in shown["body"]["hits"]] == ["R-security-safety"]


def test_sessions_and_sign_in_throttles_on_the_cluster(cluster_client):
    sessions = Sessions(cluster_client)
    sid = sessions.open(Analyst("alice", "RC-NL", "stamp"))
    assert sessions.get(sid).analyst == "alice" and 0 < cluster_client.ttl(sessions._key(sid)) <= 30 * 60
    assert sessions.end(sid, "signed out") and sessions.get(sid).ended == "signed out"
    throttle = SignInThrottle(cluster_client)
    now = time.time()
    verdicts = [throttle.attempt("mallory", "198.51.100.7", now=now + 120 * n) for n in range(ACCOUNT_LIMIT)]
    assert verdicts[-1].refused == "locked" and verdicts[-1].locked_now == ("account",)
    assert throttle.attempt("mallory", "198.51.100.8", now=now + 120 * ACCOUNT_LIMIT).refused == "locked"


def test_the_web_workbench_and_its_commands_on_any_node(cluster_client, cluster, tmp_path):
    """Through the HTTP API and the CLI, on another node than the data's: sign-in, the queue, a claim and
    a resolution, risk information, the audit trail; an analyst of another centre sees none of it."""
    for n in range(3):
        body = referral(n, score=10 * (n + 1))
        put(cluster_client, "RC-NL", {**body, "hits": [{**h, "contribution": 1.0} for h in body["hits"]]})  # as scored
    analysts = tmp_path / "analysts"
    add(analysts, "alice")
    add(analysts, "bruno", centre="RC-BE")
    url = cluster[4]  # a replica: the cluster_client follows the slots to their masters
    with workbench_server(url, analysts, tmp_path) as base:
        alice, bruno = Client(base, "192.0.2.1"), Client(base, "192.0.2.2")
        assert alice.sign_in("alice").status == 200 and bruno.sign_in("bruno").status == 200
        rid = "REF-26NL00000000000002"
        deadline = time.monotonic() + 30
        while rid not in alice.request("/").text:  # the server's keeper takes them in
            assert time.monotonic() < deadline, "the referrals never reached the queue"
            time.sleep(0.2)
        assert bruno.request(f"/referrals/{rid}").status == 404
        token = alice.token(f"/referrals/{rid}")
        assert alice.request(f"/referrals/{rid}/claim", {"csrf": token}).status == 200
        answer = alice.request(f"/referrals/{rid}/resolve", {"csrf": token, "outcome": "no-finding", "note": "ok"})
        assert answer.status == 200 and re.search(r'id="state">resolved<', answer.text)
        form = {"csrf": alice.token("/risk-information"), "kind": "container", "title": "Watch this box",
                "watch_container": "MSKU1234565", "area": "drug-precursors", "action": "control",
                "valid_until": "2099-01-01T00:00:00Z"}
        assert alice.request("/risk-information", form).status == 200
        trail = alice.request("/audit").text
        assert all(a in trail for a in ("sign-in", "claim", "resolve", "publish-risk-information"))
        assert rid not in bruno.request("/audit").text and "Watch this box" not in bruno.request("/audit").text
        listed = json.loads(run("workbench", "list", "--redis-url", url, "--centre", "RC-NL"))
        assert listed["total"] == 2
        other = listed["referrals"][0]["referral_id"]
        run("workbench", "claim", "--redis-url", url, "--centre", "RC-NL", "--analyst", "carl", other)
        run("workbench", "resolve", "--redis-url", url, "--centre", "RC-NL", "--analyst", "carl", other,
            "--outcome", "not-controlled")
        exported = [json.loads(line) for line in run("workbench", "audit", "--redis-url", url).splitlines()]
        assert {("carl", "resolve"), ("alice", "resolve"), ("bruno", "sign-in")} <= \
            {(e["who"], e["action"]) for e in exported}
        nl_only = run("workbench", "audit", "--redis-url", url, "--centre", "RC-NL")
        assert "bruno" not in nl_only and "publish-risk-information" in nl_only
        cluster_client.xtrim(KEYS.referrals("RC-NL"), maxlen=0)  # past the stream's retention: the summary only
        page = alice.request(f"/referrals/{rid}")
        assert page.status == 200 and "only its summary is kept here" in page.text and "R-security-safety" in page.text


def test_an_analysts_resolution_waits_for_a_replica_and_outlives_its_master(tmp_path):
    """On a cluster of its own (a master is killed): each queue operation waits for a replica of its
    master (WAIT) before it is answered, so a resolution the analyst saw done is still there once the
    replica took over; an operation asked for while the master is down fails as a whole (the analyst
    tries again) and works once the replica is promoted, through the same client; the web workbench
    answers 503 with Retry-After meanwhile, never a server error."""
    analysts = tmp_path / "analysts.txt"
    add(analysts, "alice")
    with redis_cluster(tmp_path / "cluster") as urls, workbench_server(",".join(urls), analysts, tmp_path) as base:
        client = connect(urls[1])
        q = ReferralQueue(client, "RC-NL", claim_seconds=600)
        for n in range(2):
            put(client, "RC-NL", referral(n))
        assert q.take_in() == 2
        node = client.get_node_from_key(q.keys.stream)
        master = redis.Redis(host=node.host, port=node.port)
        waits = master.info("commandstats").get("cmdstat_wait", {}).get("calls", 0)
        first, second = "REF-26NL00000000000000", "REF-26NL00000000000001"
        q.claim(first, "alice")
        q.claim(second, "alice")
        assert q.resolve(first, "alice", "no-finding")["state"] == "resolved"
        assert master.info("commandstats")["cmdstat_wait"]["calls"] >= waits + 3  # claim, claim, resolve
        browser = Client(base, "10.0.0.7")
        browser.sign_in("alice")
        assert browser.signed_in()
        os.kill(master.info("server")["process_id"], signal.SIGKILL)
        started, pages = time.monotonic(), []
        while not pages or pages[-1].status != 200:
            assert time.monotonic() - started < 60, "the workbench did not come back"
            pages.append(browser.request("/"))
            time.sleep(0.2)
        assert {p.status for p in pages} <= {200, 503} and "/login" not in pages[-1].url, [p.status for p in pages]
        assert all(p.headers["Retry-After"] == "5" and "try again" in p.text for p in pages if p.status == 503)
        refused = 0
        while True:
            assert time.monotonic() - started < 60, "the replica was not promoted"
            try:
                done = q.resolve(second, "alice", "finding", "drugs", "in the cover load")
                break
            except redis.RedisError:
                refused += 1
                time.sleep(0.5)
        assert done["state"] == "resolved" and client.get_node_from_key(q.keys.stream).port != node.port
        assert [q.show(rid)["state"] for rid in (first, second)] == ["resolved", "resolved"]
        assert [e["action"] for e in audit.entries(client, q.keys.audit) if e["action"] == "resolve"] == \
            ["resolve", "resolve"]  # the second once, however often it was tried
        print(f"after the master's kill: {sum(p.status == 503 for p in pages)} pages answered 503, the queue page "
              f"again after {len(pages)} tries; the resolution refused {refused} times, done after "
              f"{time.monotonic() - started:.1f} s")
