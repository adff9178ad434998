"""The audit trail: every claim, release, resolution, withdrawal and publication, with who, when, what.

Redis streams, trimmed by the keeper to `workbench.audit_retention_seconds` (400 days; an operator
exports and archives them, see `cargoscreen workbench audit`): one per risk centre, `{p}:wb:{CENTRE}:audit`
in the slot of the centre's queue (workbench/queue.py), and the system's, `{p}:audit`, for what no
centre does alone (risk information, refused claims, sign-ins under an unknown name). Queue changes
append their record in the same Lua script as the change itself, so the trail cannot miss one or
record one that did not happen; a Redis Cluster runs each such script on the one slot it touches.
A centre's trail as people read it is its own stream merged with the system's records about it.
"""
from __future__ import annotations

import heapq
import io
import json
from typing import Iterator

import redis

from .connectors.redis_streams import entry_key
from .csvcells import DictWriter
from .validation import utc_now

FIELDS = ("at", "who", "centre", "action", "subject", "detail")


def audit_fields(who: str, centre: str, action: str, subject: str, detail: str) -> dict[str, str]:
    return dict(zip(FIELDS, (utc_now(), who, centre, action, subject, detail[:4000])))


def audit_args(who: str, centre: str, action: str, subject: str, detail: str) -> list[str]:
    """An audit record as the flat field/value list XADD takes in a Lua script."""
    return [x for pair in audit_fields(who, centre, action, subject, detail).items() for x in pair]


def system_trail(prefix: str) -> str:
    return f"{prefix}:audit"


def trail(prefix: str, centre: str) -> str:
    """Where a record about `centre` goes: the centre's stream (the slot of its queue), else the system's."""
    if not centre:
        return system_trail(prefix)
    from .workbench.queue import QueueKeys  # the centre's keys are laid out by its queue

    return QueueKeys(prefix, centre).audit


def trails(prefix: str, centre: str) -> list[str]:
    """The streams a centre's trail is read from: its own and the system's (read for its records)."""
    return [trail(prefix, centre), system_trail(prefix)] if centre else [system_trail(prefix)]


def every_trail(client: redis.Redis, prefix: str) -> list[str]:
    """Every centre's stream there is (on every node of a cluster), and the system's."""
    from .workbench.queue import centres_having

    return [*(trail(prefix, c) for c in centres_having(client, lambda c: trail(prefix, c))), system_trail(prefix)]


def record(client: redis.Redis, key: str, who: str, centre: str, action: str, subject: str, detail: str) -> None:
    client.xadd(key, audit_fields(who, centre, action, subject, detail))


def note(client: redis.Redis, prefix: str, who: str, centre: str, action: str, subject: str, detail: str) -> None:
    """A record on the trail of `centre` (the system's for none)."""
    record(client, trail(prefix, centre), who, centre, action, subject, detail)


def entries(client: redis.Redis, keys: str | list[str], since: str = "-", until: str = "+",
            centre: str | None = None, batch: int = 1000, newest_first: bool = False) -> Iterator[dict]:
    """Audit records of the streams `keys`, merged in order (or newest first), `since`/`until` as stream
    ids or epoch milliseconds; read in batches, so a caller that stops early reads no more than it needs."""
    keys = [keys] if isinstance(keys, str) else keys
    streams = [_entries(client, k, since, until, centre, batch, newest_first) for k in keys]
    if len(streams) == 1:
        return streams[0]
    return heapq.merge(*streams, key=lambda row: entry_key(row["id"]), reverse=newest_first)


def _entries(client: redis.Redis, key: str, since: str, until: str, centre: str | None, batch: int,
             newest_first: bool) -> Iterator[dict]:
    low, high = since, until
    while True:
        chunk = client.xrevrange(key, high, low, count=batch) if newest_first else \
            client.xrange(key, low, high, count=batch)
        for entry_id, fields in chunk:
            row = {"id": entry_id.decode(), **{k.decode(): v.decode() for k, v in fields.items()}}
            if centre is None or row.get("centre") == centre:
                yield row
        if len(chunk) < batch:
            return
        if newest_first:
            high = "(" + chunk[-1][0].decode()
        else:
            low = "(" + chunk[-1][0].decode()


def export(rows: Iterator[dict], fmt: str) -> str:
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    out = io.StringIO()
    writer = DictWriter(out, fieldnames=("id", *FIELDS), extrasaction="ignore")  # names, titles: outside text
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
