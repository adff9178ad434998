"""Risk-centre queues on a real Redis: intake, claim, release, resolve, timeouts, filters, audit."""
import json
import threading
import time

import pytest

from cargoscreen.connectors.redis_store import EmbeddedRedis, connect
from cargoscreen.connectors.redis_streams import StreamKeys
from cargoscreen import audit
from cargoscreen.workbench.effectiveness import read_counts
from cargoscreen.workbench.queue import GROUP, QueueError, ReferralQueue, centres, referral_of


def referral(n: int, score: float = 50.0, mode: str = "sea", decision: str = "control", version: int = 1,
             areas=("security-safety",), assessed_at: str = "2026-11-23T10:00:00Z") -> dict:
    return {"referral_id": f"REF-26NL{n:014d}", "risk_centre": "RC-NL", "mrn": f"26NL{n:014d}", "lrn": f"L{n}",
            "filer": "NL123456789", "mode": mode, "filing_code": "F10", "decision": decision, "score": score,
            "risk_level": "high", "rule_pack": "ics2-starter@1.0.0+abc", "assessed_at": assessed_at,
            "consignment": f"sea:DOC{n}", "version": version, "state": f"s{version}",
            "hits": [{"rule": f"R-{a}", "title": a, "area": a, "weight": 30, "decision": decision,
                      "explanation": a, "evidence": []} for a in areas],
            "filing": {"transport_document": f"DOC{n}"}}


def put(client, centre: str, body: dict) -> None:
    client.xadd(StreamKeys("cs").referrals(centre), {"effect": "x", "body": json.dumps(body)})


@pytest.fixture
def queue(redis_client):
    return ReferralQueue(redis_client, "RC-NL", claim_seconds=60)


def test_intake_claim_release_resolve_and_nothing_resolved_twice(redis_client, queue):
    for n in range(5):
        put(redis_client, "RC-NL", referral(n, score=10 * n))
    assert queue.take_in() == 5
    assert queue.take_in() == 0  # each entry is taken in once
    page = queue.page()
    assert page.total == 5 and [r["score"] for r in page.rows] == ["40.0", "30.0", "20.0", "10.0", "0.0"]
    assert queue.holdings() == {"intake": 0, "queue": 5}

    rid = "REF-26NL00000000000004"
    assert queue.claim(rid, "alice")["claimed_by"] == "alice"
    with pytest.raises(QueueError, match="claimed by alice"):
        queue.claim(rid, "bob")
    with pytest.raises(QueueError, match="claimed by alice"):
        queue.resolve(rid, "bob", "no-finding")
    assert queue.holdings()["alice"] == 1
    queue.release(rid, "alice")
    assert queue.holdings() == {"intake": 0, "queue": 5, "alice": 0}
    with pytest.raises(QueueError, match="not claimed"):
        queue.resolve(rid, "bob", "no-finding")

    queue.claim(rid, "bob")
    with pytest.raises(QueueError, match="category"):
        queue.resolve(rid, "bob", "finding")
    done = queue.resolve(rid, "bob", "finding", "drugs", "2 kg in the cover load")
    assert (done["state"], done["outcome"], done["category"], done["resolved_by"]) == \
        ("resolved", "finding", "drugs", "bob")
    with pytest.raises(QueueError, match="already resolved by bob"):
        queue.resolve(rid, "bob", "no-finding")
    with pytest.raises(QueueError, match="resolved"):
        queue.claim(rid, "alice")
    assert queue.page().total == 4
    pending = redis_client.xpending(queue.keys.stream, GROUP)["pending"]
    assert pending == 4  # the resolved one is acknowledged, the rest still pending
    assert redis_client.hgetall(queue.keys.rule_stats) == {
        b"ics2-starter@1.0.0|R-security-safety|2026-11-23|resolved": b"1",
        b"ics2-starter@1.0.0|R-security-safety|2026-11-23|confirmed": b"1",
        b"ics2-starter@1.0.0|*|2026-11-23|resolved": b"1", b"ics2-starter@1.0.0|*|2026-11-23|confirmed": b"1"}
    actions = [(e["who"], e["action"], e["subject"]) for e in audit.entries(redis_client, queue.keys.audit)]
    assert actions == [("alice", "claim", rid), ("alice", "release", rid), ("bob", "claim", rid),
                       ("bob", "resolve", rid)]


def test_concurrent_resolutions_resolve_once(redis_client, queue):
    put(redis_client, "RC-NL", referral(1))
    queue.take_in()
    rid = "REF-26NL00000000000001"
    queue.claim(rid, "alice")
    results = []

    def attempt():
        try:
            queue.resolve(rid, "alice", "no-finding")
            results.append("ok")
        except QueueError as exc:
            results.append(str(exc))

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 1 and len(results) == 8
    assert redis_client.hget(queue.keys.rule_stats, "ics2-starter@1.0.0|R-security-safety|2026-11-23|false") == b"1"


def test_abandoned_claim_returns_to_the_queue(redis_client, queue):
    put(redis_client, "RC-NL", referral(1))
    queue.take_in()
    rid = "REF-26NL00000000000001"
    queue.claim(rid, "alice", now=1_000_000)
    assert queue.return_expired(now=1_000_000 + 59) == []
    with pytest.raises(QueueError, match="claimed by alice"):
        queue.claim(rid, "bob", now=1_000_000 + 30)
    assert queue.return_expired(now=1_000_000 + 61) == [rid]
    shown = queue.show(rid)
    assert shown["state"] == "open" and "claimed_by" not in shown
    assert queue.holdings()["queue"] == 1
    queue.claim(rid, "bob")
    assert [e["action"] for e in audit.entries(redis_client, queue.keys.audit)] == \
        ["claim", "claim-expired", "claim"]


def test_new_version_replaces_keeps_claim_and_withdrawal_closes(redis_client, queue):
    put(redis_client, "RC-NL", referral(1, score=40))
    queue.take_in()
    rid = "REF-26NL00000000000001"
    queue.claim(rid, "alice")
    put(redis_client, "RC-NL", referral(1, score=80, version=2, decision="control"))
    put(redis_client, "RC-NL", referral(1, score=10, version=1))  # a late redelivery of the old one
    queue.take_in()
    shown = queue.show(rid)
    assert (shown["version"], shown["score"], shown["claimed_by"]) == ("2", "80.0", "alice")
    assert redis_client.xpending(queue.keys.stream, GROUP)["pending"] == 1  # only the current version
    assert queue.holdings()["alice"] == 1
    put(redis_client, "RC-NL", {"withdrawn": "sea:DOC1", "mrn": "26NL00000000000001", "referral_id": rid})
    queue.take_in()
    assert queue.show(rid)["state"] == "withdrawn" and queue.page().total == 0
    assert redis_client.xpending(queue.keys.stream, GROUP)["pending"] == 0


def test_intake_left_half_done_is_finished_on_restart(redis_client, queue):
    put(redis_client, "RC-NL", referral(1))
    queue.ensure_group()
    redis_client.xreadgroup(GROUP, "intake", {queue.keys.stream: ">"})  # read, then the keeper died
    assert queue.page().total == 0
    assert queue.take_in() == 1
    assert queue.page().total == 1 and queue.holdings() == {"intake": 0, "queue": 1}


def test_filters_age_and_sort(redis_client, queue):
    put(redis_client, "RC-NL", referral(1, 90, "air", "request-for-information", areas=("security-safety",),
                                        assessed_at="2026-11-23T09:00:00Z"))
    put(redis_client, "RC-NL", referral(2, 70, "sea", "control", areas=("drugs", "security-safety"),
                                        assessed_at="2026-11-23T11:00:00Z"))
    put(redis_client, "RC-NL", referral(3, 50, "sea", "control", areas=("drugs",),
                                        assessed_at="2026-11-23T11:30:00Z"))
    queue.take_in()
    now = 1795435200.0  # 2026-11-23T12:00:00Z

    def ids(**kw):
        return [r["mrn"][-1] for r in queue.page(now=now, **kw).rows]

    assert ids() == ["1", "2", "3"]
    assert ids(mode="sea") == ["2", "3"]
    assert ids(area="drugs", decision="control") == ["2", "3"]
    assert ids(area="security-safety") == ["1", "2"]
    assert ids(older_than_hours=2) == ["1"]
    assert ids(newer_than_hours=0.75) == ["3"]
    assert ids(sort="age") == ["1", "2", "3"]
    queue.claim("REF-26NL00000000000002", "alice")
    assert ids(claimed="yes") == ["2"]
    assert ids(claimed="no") == ["1", "3"]
    assert ids(mode="road") == []


def test_centres_are_separate(redis_client):
    put(redis_client, "RC-NL", referral(1))
    put(redis_client, "RC-BE", referral(2))
    nl, be = ReferralQueue(redis_client, "RC-NL"), ReferralQueue(redis_client, "RC-BE")
    nl.take_in()
    be.take_in()
    assert [r["mrn"] for r in nl.page().rows] == ["26NL00000000000001"]
    with pytest.raises(QueueError, match="no such referral in RC-BE"):
        be.claim("REF-26NL00000000000001", "bob")


def test_the_centres_and_their_trails_are_found_without_walking_the_keys(tmp_path):
    """The keeper, the audit export and the rule statistics find the centres by asking for every name
    a centre can have, never by SCAN: at EU volume a SCAN walks billions of keys to find a few dozen.
    A Redis of its own: the SCANs counted are this test's only."""
    with EmbeddedRedis(tmp_path / "redis") as server:
        _centres_without_scan(connect(server.url))


def _centres_without_scan(redis_client) -> None:
    put(redis_client, "RC-NL", referral(1))
    put(redis_client, "RC-EU", referral(2))
    audit.note(redis_client, "cs", "alice", "RC-DE", "sign-in", "alice", "")  # a trail, no referrals yet
    redis_client.hset("cs:wb:{RC-BE}:rulestats", "ics2-starter@1.0.0|R-x|2026-11-23|hits", 2)
    scans = redis_client.info("commandstats").get("cmdstat_scan", {}).get("calls", 0)
    assert centres(redis_client) == ["RC-EU", "RC-NL"]
    assert audit.every_trail(redis_client, "cs") == [audit.trail("cs", "RC-DE"), audit.system_trail("cs")]
    assert read_counts(redis_client) == {"ics2-starter@1.0.0|R-x|2026-11-23|hits": 2}
    assert redis_client.info("commandstats").get("cmdstat_scan", {}).get("calls", 0) == scans


def test_every_query_shape_agrees_with_a_plain_reading_of_the_queue(redis_client, queue):
    """Each path page() takes (index as is, scan by score with ages, intersection) against the
    same question answered by brute force over the referral hashes."""
    import itertools
    import random

    rng = random.Random(3)
    now = 1795435200.0
    for n in range(120):
        hours_ago = rng.uniform(0, 30)
        put(redis_client, "RC-NL", referral(
            n, score=float(rng.randint(1, 40) * 5), mode=rng.choice(("sea", "air")),
            decision=rng.choice(("control", "request-for-information")),
            areas=tuple(rng.sample(("ipr", "financial", "security-safety"), rng.choice((1, 2)))),
            assessed_at=time_iso(now - hours_ago * 3600)))
    queue.take_in()
    for n in rng.sample(range(120), 25):
        queue.claim(f"REF-26NL{n:014d}", "alice", now=now)
    rows = {r: queue.show(r) for r in (f"REF-26NL{n:014d}" for n in range(120))}

    def expected(mode, decision, area, claimed, older, newer, sort):
        out = []
        for rid, r in rows.items():
            age_h = (now - epoch(r["assessed_at"])) / 3600
            if (mode and r["mode"] != mode) or (decision and r["decision"] != decision) or \
                    (area and area not in r["areas"].split(",")) or \
                    (claimed == "yes" and r["state"] != "claimed") or (claimed == "no" and r["state"] != "open") or \
                    (older is not None and age_h < older) or (newer is not None and age_h > newer):
                continue
            out.append((rid, float(r["score"]), epoch(r["assessed_at"])))
        key = (lambda x: (x[2], x[0])) if sort == "age" else (lambda x: (-x[1], x[0]))
        return [x[0] for x in sorted(out, key=key)]

    shapes = itertools.product(("", "sea"), ("", "control"), ("", "ipr"), ("", "yes", "no"), (None, 10),
                               (None, 20), ("score", "age"))
    for mode, decision, area, claimed, older, newer, sort in shapes:
        want = expected(mode, decision, area, claimed, older, newer, sort)
        page = queue.page(mode, decision, area, claimed, older, newer, sort, offset=3, count=7, now=now)
        assert page.total == len(want), (mode, decision, area, claimed, older, newer, sort)
        got = [r["referral_id"] for r in page.rows]
        if sort == "age":
            assert got == want[3:10], (mode, decision, area, claimed, older, newer, sort)
        else:  # equal scores may come in either order: compare the scores, and the set on a full page
            assert [float(rows[g]["score"]) for g in got] == [float(rows[w]["score"]) for w in want[3:10]]
            full = queue.page(mode, decision, area, claimed, older, newer, sort, count=200, now=now)
            assert sorted(r["referral_id"] for r in full.rows) == sorted(want)


def time_iso(epoch_s: float) -> str:
    import time as _time
    return _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime(epoch_s))


def epoch(iso: str) -> float:
    from cargoscreen.domain.container_events import utc_epoch
    return utc_epoch(iso)


def test_closed_referrals_leave_redis_after_their_retention_and_open_ones_stay(redis_client, queue):
    """Resolved and withdrawn referrals are forgotten once older than the retention: their hash, their
    place in the resolved index and the MRNs pointing at them; open and claimed ones, younger closed
    ones and an MRN another referral has taken since all stay; the audit trail keeps the record."""
    for n in range(4):
        put(redis_client, "RC-NL", referral(n))
    queue.take_in()
    resolved, withdrawn, claimed, young = (f"REF-26NL{n:014d}" for n in range(4))
    queue.claim(resolved, "alice")
    queue.resolve(resolved, "alice", "no-finding")
    put(redis_client, "RC-NL", {"withdrawn": "sea:DOC1", "mrn": "26NL00000000000001", "referral_id": withdrawn})
    queue.take_in()
    queue.claim(claimed, "bob")
    def of_mrn(mrn):
        return redis_client.get(referral_of("cs", mrn))

    redis_client.set(referral_of("cs", "26NL00000000000001"), "RC-DE|REF-OTHER")  # taken by a referral elsewhere since
    now = time.time()
    queue.claim(young, "carol")
    queue.resolve(young, "carol", "no-finding")
    redis_client.zadd(queue.keys.base("resolved"), {young: now + 86400})  # resolved a day after the others

    assert queue.forget_closed(90 * 86400, now=now) == 0  # nothing is 90 days old yet
    assert queue.forget_closed(90 * 86400, now=now + 90 * 86400 + 60) == 2
    assert not redis_client.exists(queue.keys.referral(resolved), queue.keys.referral(withdrawn))
    assert queue.show(claimed)["state"] == "claimed" and queue.show(young)["state"] == "resolved"
    assert redis_client.zrange(queue.keys.base("resolved"), 0, -1) == [young.encode()]
    assert of_mrn("26NL00000000000000") is None
    assert of_mrn("26NL00000000000001") == b"RC-DE|REF-OTHER"
    assert of_mrn("26NL00000000000003") == f"RC-NL|{young}".encode()
    assert ("alice", "resolve", resolved) in [(e["who"], e["action"], e["subject"])
                                             for e in audit.entries(redis_client, queue.keys.audit)]


def test_the_keeper_forgets_closed_referrals_past_the_retention(redis_client):
    from dataclasses import replace

    from cargoscreen.config import Settings, WorkbenchSettings
    from cargoscreen.workbench.keeper import Keeper

    put(redis_client, "RC-NL", referral(7))
    settings = replace(Settings(), workbench=WorkbenchSettings(closed_retention_seconds=0))
    keeper = Keeper(redis_client, settings)
    keeper.once()
    q = keeper.queue("RC-NL")
    q.claim("REF-26NL00000000000007", "alice")
    q.resolve("REF-26NL00000000000007", "alice", "no-finding")
    assert q.show("REF-26NL00000000000007")["state"] == "resolved"
    time.sleep(1.1)  # retention 0: anything resolved before this second is past it
    assert keeper.once().get("forgotten") is None  # it looks once a minute
    assert Keeper(redis_client, settings).once()["forgotten"] == 1  # a keeper (re)started looks at once
    assert not redis_client.exists(q.keys.referral("REF-26NL00000000000007"))
