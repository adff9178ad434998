"""Rule effectiveness: per rule and pack version, hits, referrals, confirmed findings, false hits.

Counted into one Redis hash `{p}:wb:rulestats`, field `pack@version|rule|day|metric`, where day
is the day the consignment was assessed:
    hits, referrals     from every decision on `{p}:decisions` (the keeper reads it through the
                        consumer group `rule-stats`; one Lua script per batch adds the counts
                        and acknowledges the entries, so a crash neither loses nor doubles them)
    resolved, confirmed, false
                        from analysts' resolutions (queue.py, in the resolving script itself)

A false hit is a referral controlled or checked with nothing found; a confirmed finding is a
seizure or finding. The false-hit rate of a rule is false / (false + confirmed): referrals not
controlled, and RFIs settled by the filer's answer, say nothing either way. A rule is flagged
when that rate is at least FLAG_RATE over at least FLAG_MIN_OUTCOMES outcomes.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import redis

from ..connectors.redis_streams import StreamKeys
from .queue import QueueKeys, day_of, pack_version

GROUP = "rule-stats"
CONSUMER = "stats"
FLAG_RATE = 0.9
FLAG_MIN_OUTCOMES = 10
METRICS = ("hits", "referrals", "resolved", "confirmed", "false")

_COUNT = """
local stats, stream, group, n = KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2])
for i = 1, n do redis.call('XACK', stream, group, ARGV[2 + i]) end
for i = 3 + n, #ARGV do redis.call('HINCRBY', stats, ARGV[i], 1) end
return n
"""


def decision_counts(body: dict) -> list[str]:
    """The counters one decision adds: a hit for each rule that fired, a referral if it referred."""
    if "withdrawn" in body or not body.get("hits"):
        return []
    pack, day = pack_version(body.get("rule_pack") or ""), day_of(body.get("assessed_at") or "")
    referral = body.get("decision") not in (None, "assessment-complete")
    return [f"{pack}|{h['rule']}|{day}|{m}" for h in body["hits"]
            for m in (("hits", "referrals") if referral else ("hits",))]


class DecisionCounter:
    """Counts hits and referrals per rule from the decisions stream (run by the keeper)."""

    def __init__(self, client: redis.Redis, key_prefix: str = "cs"):
        self.client = client
        self.stream = StreamKeys(key_prefix).decisions
        self.stats = QueueKeys(key_prefix, "").rule_stats
        self._script = client.register_script(_COUNT)

    def count_new(self, count: int = 1000, block_ms: int | None = None) -> int:
        try:
            self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        done = 0
        for start in ("0", ">"):  # first what a crashed keeper read and did not count
            reply = self.client.xreadgroup(GROUP, CONSUMER, {self.stream: start}, count=count,
                                           block=block_ms if start == ">" else None)
            for _, entries in reply or ():
                ids = [e[0] for e in entries]
                counts = [c for _, fields in entries for c in decision_counts(json.loads(fields[b"body"]))]
                self._script(keys=[self.stats, self.stream], args=[GROUP, len(ids), *ids, *counts])
                done += len(ids)
        return done


@dataclass
class RuleRow:
    pack: str
    rule: str
    hits: int = 0
    referrals: int = 0
    resolved: int = 0
    confirmed: int = 0
    false: int = 0
    by_day: dict = field(default_factory=lambda: defaultdict(lambda: dict.fromkeys(METRICS, 0)))

    @property
    def outcomes(self) -> int:
        return self.confirmed + self.false

    @property
    def false_hit_rate(self) -> float | None:
        return self.false / self.outcomes if self.outcomes else None

    @property
    def flagged(self) -> bool:
        return self.outcomes >= FLAG_MIN_OUTCOMES and self.false_hit_rate >= FLAG_RATE


def rule_rows(counts: dict[str, int], since: str = "", until: str = "9999") -> list[RuleRow]:
    """Rows per (pack version, rule) from the counters, days in [since, until], most referrals first."""
    rows: dict[tuple[str, str], RuleRow] = {}
    for name, value in counts.items():
        pack, rule, day, metric = name.rsplit("|", 3)
        if not since <= day <= until or metric not in METRICS:
            continue
        row = rows.setdefault((pack, rule), RuleRow(pack, rule))
        setattr(row, metric, getattr(row, metric) + value)
        row.by_day[day][metric] += value
    return sorted(rows.values(), key=lambda r: (-r.referrals, -r.hits, r.pack, r.rule))


def read_counts(client: redis.Redis, key_prefix: str = "cs") -> dict[str, int]:
    return {k.decode(): int(v) for k, v in client.hscan_iter(QueueKeys(key_prefix, "").rule_stats, count=5000)}


def plot(rows: list[RuleRow], path: Path, top: int = 15) -> Path:
    """Two panels: false-hit rate per rule (flagged in red), and referrals and confirmed findings per day."""
    import matplotlib

    matplotlib.use("Agg")  # no screen; set before pyplot is imported
    import matplotlib.pyplot as plt

    shown = [r for r in rows if r.referrals][:top]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, max(3.5, 0.35 * len(shown) + 1.5)))
    labels = [f"{r.rule} ({r.pack.split('@')[-1]})" for r in shown][::-1]
    rates = [(r.false_hit_rate or 0) * 100 for r in shown][::-1]
    colours = ["#c0392b" if r.flagged else "#2e86c1" for r in shown][::-1]
    left.barh(labels, rates, color=colours)
    left.set_xlim(0, 100)
    left.set_xlabel("false-hit rate, % of outcomes (red: flagged)")
    left.set_title("False hits per rule")
    days = sorted({d for r in rows for d in r.by_day})
    for metric, style in (("referrals", "-"), ("confirmed", "--")):
        right.plot(days, [sum(r.by_day[d][metric] for r in rows if d in r.by_day) for d in days], style,
                   marker="o", label=metric)
    right.set_title("Referrals and confirmed findings per day (all rules)")
    right.legend()
    right.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def report_html(rows: list[RuleRow], image: str) -> str:
    """A standalone page: the plot and the table (the workbench shows the same)."""
    from html import escape

    body = "".join(
        f"<tr class='{'flagged' if r.flagged else ''}'><td>{escape(r.pack)}</td><td>{escape(r.rule)}</td>"
        f"<td>{r.hits}</td><td>{r.referrals}</td><td>{r.resolved}</td><td>{r.confirmed}</td><td>{r.false}</td>"
        f"<td>{'' if r.false_hit_rate is None else f'{r.false_hit_rate:.0%}'}</td>"
        f"<td>{'flagged: mostly false hits' if r.flagged else ''}</td></tr>" for r in rows)
    return ("<!doctype html><meta charset='utf-8'><title>Rule effectiveness</title>"
            "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:right}"
            "td:nth-child(-n+2){text-align:left}.flagged{background:#f9d6d5}</style>"
            f"<h1>Rule effectiveness</h1><img src='{escape(image)}' alt='plots'>"
            "<table><tr><th>pack</th><th>rule</th><th>hits</th><th>referrals</th><th>resolved</th>"
            "<th>confirmed</th><th>false hits</th><th>false-hit rate</th><th></th></tr>"
            f"{body}</table><p>False-hit rate = false / (false + confirmed); flagged at "
            f"&ge; {FLAG_RATE:.0%} over &ge; {FLAG_MIN_OUTCOMES} outcomes.</p>")
