"""The audit trail: every claim, release, resolution, withdrawal and publication, with who, when, what.

One Redis stream `{p}:audit`, trimmed by the keeper to `workbench.audit_retention_seconds` (400
days; an operator exports and archives it, see `cargoscreen workbench audit`). Queue changes append their record
in the same Lua script as the change itself, so the trail cannot miss one or record one that
did not happen.
"""
from __future__ import annotations

import io
import json
from typing import Iterator

import redis

from .csvcells import DictWriter
from .validation import utc_now

FIELDS = ("at", "who", "centre", "action", "subject", "detail")


def audit_fields(who: str, centre: str, action: str, subject: str, detail: str) -> dict[str, str]:
    return dict(zip(FIELDS, (utc_now(), who, centre, action, subject, detail[:4000])))


def audit_args(who: str, centre: str, action: str, subject: str, detail: str) -> list[str]:
    """An audit record as the flat field/value list XADD takes in a Lua script."""
    return [x for pair in audit_fields(who, centre, action, subject, detail).items() for x in pair]


def record(client: redis.Redis, key: str, who: str, centre: str, action: str, subject: str, detail: str) -> None:
    client.xadd(key, audit_fields(who, centre, action, subject, detail))


def entries(client: redis.Redis, key: str, since: str = "-", until: str = "+", centre: str | None = None,
            batch: int = 1000, newest_first: bool = False) -> Iterator[dict]:
    """Audit records in order (or newest first), `since`/`until` as stream ids or epoch milliseconds;
    read in batches, so a caller that stops early reads no more of the trail than it needs."""
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
