"""`cargoscreen workbench migrate-keys` on a Redis as the previous version left it (its key names,
written here as it wrote them): afterwards the queues, the RFI desk's pointers, rule statistics, the
rule store, risk information and the container store work from the cluster layout, and a second
run moves nothing."""
from __future__ import annotations

import json

from cargoscreen.container_store import ContainerEventStore
from cargoscreen.domain.container_events import normalize
from cargoscreen.risk_information import RiskInformationStore
from cargoscreen.rule_store import RulePackStore
from cargoscreen.workbench.effectiveness import read_counts
from cargoscreen.workbench.queue import GROUP, ReferralQueue, referral_of

from .test_container_feed import equipment_event
from .test_workbench_cli import run
from .test_workbench_queue import referral


def old_layout(client) -> None:
    """Two referrals of RC-NL (one open, one resolved) and the rest, under the previous key names."""
    stream = "cs:referrals:RC-NL"
    client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    old = "cs:wb:RC-NL:"
    for n, state in ((1, "open"), (2, "resolved")):
        body = referral(n)
        entry = client.xadd(stream, {"effect": "x", "body": json.dumps(body)}).decode()
        client.xreadgroup(GROUP, "queue", {stream: ">"})
        filters = [f"{old}f:mode:sea", f"{old}f:decision:control", f"{old}f:area:security-safety"]
        client.hset(f"{old}ref:{body['referral_id']}", mapping={
            "referral_id": body["referral_id"], "mrn": body["mrn"], "mode": "sea", "decision": "control",
            "score": 50.0, "rules": "R-security-safety", "assessed_at": body["assessed_at"], "entry": entry,
            "version": 1, "state": state, "body": json.dumps(body), "filters": " ".join(filters) if n == 1 else "",
            **({"outcome": "no-finding", "resolved_by": "alice", "resolved_at": 1_790_000_000} if n == 2 else {})})
        if n == 1:
            client.zadd(f"{old}open", {body["referral_id"]: 50})
            client.zadd(f"{old}unclaimed", {body["referral_id"]: 50})
            client.zadd(f"{old}age", {body["referral_id"]: 1_790_000_000})
            for f in filters:
                client.sadd(f, body["referral_id"])
        else:
            client.xack(stream, GROUP, entry)
            client.zadd(f"{old}resolved", {body["referral_id"]: 1_790_000_000})
        client.hset("cs:wb:referral-of-mrn", body["mrn"], f"RC-NL|{body['referral_id']}")
    client.hset("cs:wb:rulestats", "ics2-starter@1.0.0|R-security-safety|2026-11-23|hits", 7)
    client.set("cs:rules:active", "ics2-starter@9.0.0")
    client.hset("cs:rules:pack:ics2-starter@9.0.0", mapping={"files": "{}", "digest": "d", "published_at": "t"})
    client.hset("cs:riskinfo:forms", "RIF-RC-NL-1", json.dumps({
        "id": "RIF-RC-NL-1", "centre": "RC-NL", "kind": "container", "watch": {"container": "MSKU1234565"},
        "title": "Box", "area": "drugs", "action": "control", "valid_from": "2026-01-01T00:00:00Z",
        "valid_until": "2099-01-01T00:00:00Z"}))
    client.set("cs:riskinfo:version", 3)
    for day in (1, 2):
        event = normalize(equipment_event(when=f"2026-11-0{day}T10:00:00Z"))
        client.set(f"cs:ev:{event.event_id}", event.to_json(), ex=86400)
        client.zadd(f"cs:eq:{event.equipment}:ACT", {event.event_id: event.event_time})
        client.zadd("cs:td:TRD:DOC-1", {event.event_id: event.event_time})


def test_old_keys_move_to_the_cluster_layout_and_everything_reads_them(redis_client, redis_server):
    old_layout(redis_client)
    out = run("workbench", "migrate-keys", "--redis-url", redis_server.url)
    assert "workbench queues: 9" in out and "MRN pointers: 2" in out and "container events: 2" in out, out
    assert not list(redis_client.scan_iter("cs:wb:RC-NL:*")) and not redis_client.exists("cs:referrals:RC-NL")
    queue = ReferralQueue(redis_client, "RC-NL")
    assert [r["referral_id"] for r in queue.page(mode="sea", claimed="no").rows] == ["REF-26NL00000000000001"]
    queue.claim("REF-26NL00000000000001", "bob")
    queue.resolve("REF-26NL00000000000001", "bob", "no-finding")  # out of the renamed filter sets, acknowledged
    assert not any(redis_client.smembers(k) for k in redis_client.scan_iter("cs:wb:{RC-NL}:f:*"))
    assert redis_client.xpending(queue.keys.stream, GROUP)["pending"] == 0
    closed = queue.show("REF-26NL00000000000002")
    assert "body" not in {k.decode() for k in redis_client.hkeys(queue.keys.referral("REF-26NL00000000000002"))}
    assert closed["outcome"] == "no-finding" and closed["body"]["referral_id"] == "REF-26NL00000000000002"
    assert redis_client.get(referral_of("cs", "26NL00000000000002")) == b"RC-NL|REF-26NL00000000000002"
    assert read_counts(redis_client)["ics2-starter@1.0.0|R-security-safety|2026-11-23|hits"] == 7
    assert RulePackStore(redis_client).active() == "ics2-starter@9.0.0"
    risk = RiskInformationStore(redis_client)
    assert risk.version() == 3 and [f.id for f in risk.forms()] == ["RIF-RC-NL-1"]
    store = ContainerEventStore(redis_client)
    assert len(store.histories(["MSCU6639870"])["MSCU6639870"]) == 2 and len(store.by_document("TRD:DOC-1")) == 2
    assert 0 < redis_client.ttl(next(iter(redis_client.scan_iter("cs:ev:{MSCU6639870}:*")))) <= 86400
    assert run("workbench", "migrate-keys", "--redis-url", redis_server.url).strip() == "nothing to move"
