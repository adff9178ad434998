"""`cargoscreen workbench migrate-keys`: moves the keys an older version wrote on one Redis to the
layout a Redis Cluster needs (hash tags, ops/REDIS-KEYS.md), in place, for the families this
package owns: the workbench's queues, MRN pointers, rule statistics and throttles, the rule store,
risk information and the container store. Run it on the single Redis with the pipelines, the
workbench and the feed stopped; then start them, or copy the Redis into a cluster first
(`redis-cli --cluster import`, ops/runbooks/workbench.md). Each step skips what is already moved,
so a second run (or one after a crash) finishes the first one's work.

Done on the way: a closed referral keeps only its summary (queue.SUMMARY_FIELDS), as the new
version keeps it, and every referral gets the list of its filings' MRNs and filers.
"""
from __future__ import annotations

import json
from collections import Counter
from typing import Callable

import redis

from ..connectors.redis_streams import StreamKeys
from ..risk_information import RiskInformationStore
from ..rule_store import RulePackStore
from .effectiveness import DecisionCounter
from .queue import QueueKeys, referral_of, summary

CENTRE_GLOB = "RC-[A-Z][A-Z]"


def _rename(client: redis.Redis, old: str, new: str, moved: Counter, family: str) -> None:
    """RENAME keeps the value, its TTL and a stream's consumer groups; an existing new key is kept
    (and the old one with it, for a person to look at)."""
    if client.exists(old) and client.renamenx(old, new):
        moved[family] += 1


def _scan(client: redis.Redis, pattern: str) -> list[str]:
    return sorted({k.decode() for k in client.scan_iter(match=pattern, count=1000)})


def migrate(client: redis.Redis, prefix: str = "cs") -> Counter:
    """Moves every old key found; returns how many per family."""
    moved: Counter = Counter()
    for step in (_queues, _pointers, _rule_stats, _throttles, _rules, _risk_information, _containers):
        step(client, prefix, moved)
    return moved


def _queues(client: redis.Redis, prefix: str, moved: Counter) -> None:
    for stream in _scan(client, f"{prefix}:referrals:{CENTRE_GLOB}"):
        centre = stream.rsplit(":", 1)[1]
        _rename(client, stream, StreamKeys(prefix).referrals(centre), moved, "referral streams")
    for key in _scan(client, f"{prefix}:wb:{CENTRE_GLOB}:*"):
        centre, rest = key.split(":", 3)[2:]
        keys = QueueKeys(prefix, centre)
        new = keys.base(rest)
        if rest.startswith("ref:"):
            _referral(client, key, keys)
        _rename(client, key, new, moved, "workbench queues")


def _referral(client: redis.Redis, key: str, keys: QueueKeys) -> None:
    """The filter sets it names, renamed too; its filings' MRNs and filers; a closed one's body dropped."""
    state, filters, raw = client.hmget(key, "state", "filters", "body")
    body = json.loads(raw) if raw else {}
    s = summary(body)
    old = f"{keys.prefix}:wb:{keys.centre}:"
    fields = {"mrns": " ".join(s["mrns"]), "filers": " ".join(s["filers"])} if body else {}
    if filters:
        fields["filters"] = " ".join(keys.base(f[len(old):]) if f.startswith(old) else f
                                     for f in filters.decode().split())
    if fields:
        client.hset(key, mapping=fields)
    if state not in (b"open", b"claimed"):
        client.hdel(key, "body", "filters")


def _pointers(client: redis.Redis, prefix: str, moved: Counter) -> None:
    old = f"{prefix}:wb:referral-of-mrn"
    for mrn, where in client.hscan_iter(old, count=1000):
        client.set(referral_of(prefix, mrn.decode()), where, nx=True)
        moved["MRN pointers"] += 1
    client.delete(old)


def _rule_stats(client: redis.Redis, prefix: str, moved: Counter) -> None:
    old = f"{prefix}:wb:rulestats"
    new = DecisionCounter(client, prefix).stats
    for name, value in client.hscan_iter(old, count=5000):
        client.hincrby(new, name, int(value))
        moved["rule statistics"] += 1
    client.delete(old)


def _throttles(client: redis.Redis, prefix: str, moved: Counter) -> None:
    for key in _scan(client, f"{prefix}:wb:throttle:*"):
        _rename(client, key, f"{prefix}:wb:{{throttle}}:{key.split(':', 3)[3]}", moved, "sign-in throttles")


def _rules(client: redis.Redis, prefix: str, moved: Counter) -> None:
    store = RulePackStore(client, prefix)
    for name, new in (("active", store.active_key), ("log", store.log_key)):
        _rename(client, f"{prefix}:rules:{name}", new, moved, "rule store")
    for key in _scan(client, f"{prefix}:rules:pack:*"):
        _rename(client, key, store.pack_key(key.split(":", 3)[3]), moved, "rule store")


def _risk_information(client: redis.Redis, prefix: str, moved: Counter) -> None:
    store = RiskInformationStore(client, prefix)
    for name, new in (("forms", store.forms_key), ("version", store.version_key), ("seq", store.seq_key)):
        _rename(client, f"{prefix}:riskinfo:{name}", new, moved, "risk information")


def _containers(client: redis.Redis, prefix: str, moved: Counter) -> None:
    """Events under their container's tag, its histories too; the voyage and document indexes name
    each event with its container (`c|eventID`)."""
    tag_of: dict[str, str] = {}
    for key in _scan(client, f"{prefix}:ev:*"):
        rest = key.split(":", 2)[2]
        if rest.startswith("{"):  # moved already (or written by the new version)
            tag, _, event_id = rest[1:].partition("}:")
            tag_of[event_id] = tag
            continue
        raw = client.get(key)
        if raw is not None:
            tag_of[rest] = json.loads(raw)[6] or rest  # the ContainerEvent array: [6] its container
            _rename(client, key, f"{prefix}:ev:{{{tag_of[rest]}}}:{rest}", moved, "container events")
    for key in _scan(client, f"{prefix}:eq:[^{{]*"):
        container, classifier = key.split(":", 2)[2].rsplit(":", 1)
        _rename(client, key, f"{prefix}:eq:{{{container}}}:{classifier}", moved, "container histories")
    for pattern in (f"{prefix}:vv:*", f"{prefix}:td:*"):
        for key in _scan(client, pattern):
            _members(client, key, lambda m: f"{tag_of[m]}|{m}" if "|" not in m and m in tag_of else None, moved)


def _members(client: redis.Redis, key: str, new_name: Callable[[str], str | None], moved: Counter) -> None:
    for member, score in client.zrange(key, 0, -1, withscores=True):
        name = new_name(member.decode())
        if name is not None:
            client.zadd(key, {name: score})
            client.zrem(key, member)
            moved["container indexes"] += 1

