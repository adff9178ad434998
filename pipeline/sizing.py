"""Redis memory: each key family, what bounds it, its bytes per filing, and the memory a deployment
needs at steady state (`cargoscreen sizing`).

Bytes per filing are measured, never assumed: `measure` reads every key of a Redis after a run
(MEMORY USAGE, exact), sorts it into its family and divides by the filings screened;
`bench/redis_memory.py` does that on a generated run of the service and its workbench and writes
the table the command uses by default (rules/sizing/redis-bytes.json). At steady state a family
kept for D days holds D days of filings: bytes per filing x filings a day x D. The families sized
by something else than filings (party history per party, container status per container, a few
single keys) are listed apart with what bounds them.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import redis

from . import resources
from .config import Settings

DAY = 86400


@dataclass(frozen=True)
class Family:
    name: str
    pattern: str  # the key without its prefix and colon, as a regular expression
    kept: Callable[[Settings], float] | None  # days a filing's share is kept; None: not per filing
    bound: str  # what bounds it, for people


def _days(seconds: int) -> float:
    return seconds / DAY


# Order matters: the first family whose pattern matches takes the key.
FAMILIES = (
    Family("registration", r"\{r\d+\}:reg:.*", lambda s: _days(s.registration_retention_seconds),
           "(filer, LRN) -> MRN and per MRN its registration, in hashes per bucket, period and sub-bucket; "
           "TTL registration_retention_seconds (400 days) + a period"),
    Family("consignment members", r"\{p\d+\}:cons:(?!due$).*", lambda s: _days(s.linking.amendment_window_seconds),
           "partial filings of a consignment, whole; TTL amendment_window_seconds after each decision "
           "(registration retention while undecided, a deadline of hours)"),
    Family("latest decisions", r"\{p\d+\}:decision-of:.*", lambda s: _days(s.linking.amendment_window_seconds),
           "consignment -> latest decision; TTL amendment_window_seconds"),
    Family("effect markers", r"fx:.*", lambda s: _days(s.streams.effect_retention_seconds),
           "one per effect written; TTL effect_retention_seconds (7 days)"),
    Family("answers", r"answers:.*", lambda s: _days(s.streams.output_retention_seconds),
           "stream per filer; trimmed to output_retention_seconds (7 days) and maxlen entries"),
    Family("decisions", r"decisions", lambda s: _days(s.streams.output_retention_seconds),
           "stream; trimmed to output_retention_seconds and maxlen"),
    Family("referral streams", r"referrals:.*", lambda s: _days(s.streams.output_retention_seconds),
           "stream per risk centre; trimmed to output_retention_seconds and maxlen"),
    Family("rfi answers", r"rfi-answers", lambda s: _days(s.streams.output_retention_seconds),
           "stream; answers the workbench has handled, trimmed output_retention_seconds (2 days) after"),
    Family("dead letters", r"dead-letters", lambda s: _days(s.streams.output_retention_seconds),
           "stream; trimmed to output_retention_seconds and maxlen"),
    Family("workbench referrals", r"wb:\{RC-..\}:ref:.*", lambda s: _days(s.workbench.closed_retention_seconds),
           "hash per referral, its summary only once resolved or withdrawn; forgotten "
           "closed_retention_seconds (90 days) after"),
    Family("audit", r"audit|wb:\{RC-..\}:audit", lambda s: _days(s.workbench.audit_retention_seconds),
           "streams (the system's, one per centre); trimmed to audit_retention_seconds (400 days) by the keeper"),
    Family("workbench indexes", r"wb:\{RC-..\}:(?!rulestats$).*|wb:referral-of:.*",
           lambda s: _days(s.workbench.closed_retention_seconds),
           "queue indexes per centre, MRN -> referral; entries leave with their referral"),
    Family("container watches", r"watch(-of)?:.*", lambda s: _days(s.container_status.rejudge_window_seconds),
           "consignments decided before their boxes' events; TTL rejudge_window_seconds (10 days)"),
    Family("filings in flight", r"\{p\d+\}:filings", None, "stream; trimmed as the workers finish (the backlog only)"),
    Family("party history", r"ph:.*", None,
           "per party and filer; TTL party_history.retention_seconds (400 days) after it was last seen"),
    Family("container status", r"(ev|eq|vv|td|csm):.*|rejudge", None,
           "per container, voyage, document; TTL container_status.retention_seconds, max_per_key events"),
    Family("other", r".*", None, "single keys: sequences, rule packs, health, deadlines, rule statistics"),
)


def family_of(key: str, prefix: str) -> Family:
    rest = key[len(prefix) + 1:] if key.startswith(prefix + ":") else key
    return next(f for f in FAMILIES if re.fullmatch(f.pattern, rest))


def measure(client: redis.Redis, prefix: str = "cs") -> dict[str, dict[str, int]]:
    """Per family: keys, bytes (MEMORY USAGE with every element sampled) and keys without a TTL."""
    out: dict[str, dict[str, int]] = {f.name: {"keys": 0, "bytes": 0, "without_ttl": 0} for f in FAMILIES}
    for key in client.scan_iter(f"{prefix}:*", count=1000):
        pipe = client.pipeline(transaction=False)
        pipe.memory_usage(key, samples=0)
        pipe.ttl(key)
        size, ttl = pipe.execute()
        if size is None:  # expired meanwhile
            continue
        row = out[family_of(key.decode(errors="replace"), prefix).name]
        row["keys"] += 1
        row["bytes"] += size
        row["without_ttl"] += ttl == -1
    return out


def per_filing(measured: dict[str, dict[str, int]], filings: int) -> dict[str, float]:
    return {name: row["bytes"] / filings for name, row in measured.items() if row["keys"]}


@dataclass(frozen=True)
class SizedFamily:
    name: str
    bytes_per_filing: float
    days: float | None
    steady_bytes: float | None
    bound: str


def steady_state(bytes_per_filing: dict[str, float], filings_per_day: float,
                 settings: Settings) -> list[SizedFamily]:
    """Each family's memory once every retention has filled: bytes per filing x filings a day x days kept."""
    out = []
    for f in FAMILIES:
        b = bytes_per_filing.get(f.name, 0.0)
        days = f.kept(settings) if f.kept else None
        out.append(SizedFamily(f.name, b, days, b * filings_per_day * days if days is not None else None, f.bound))
    return out


def measured_table(path: Path | None = None) -> dict:
    """The bundled measurement (bench/redis_memory.py writes it): {"bytes_per_filing": {...}, "source": ...}."""
    return json.loads((path or resources.rules_dir() / "sizing" / "redis-bytes.json").read_text())
