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

import redis

from ..connectors.redis_streams import StreamKeys, read_group
from .queue import ALL_RULES, QueueKeys, day_of, pack_version

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
            for m in (("hits", "referrals") if referral else ("hits",))] + \
        ([f"{pack}|{ALL_RULES}|{day}|referrals"] if referral else [])


class DecisionCounter:
    """Counts hits and referrals per rule from the decisions stream (run by the keeper)."""

    def __init__(self, client: redis.Redis, key_prefix: str = "cs"):
        self.client = client
        self.stream = StreamKeys(key_prefix).decisions
        self.stats = QueueKeys(key_prefix, "").rule_stats
        self._script = client.register_script(_COUNT)

    def count_new(self, count: int = 1000) -> int:
        entries = read_group(self.client, self.stream, GROUP, CONSUMER, count)
        if entries:
            counts = [c for _, fields in entries for c in decision_counts(json.loads(fields[b"body"]))]
            self._script(keys=[self.stats, self.stream], args=[GROUP, len(entries), *(e[0] for e in entries), *counts])
        return len(entries)


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
        if not since <= day <= until or metric not in METRICS or rule == ALL_RULES:
            continue
        row = rows.setdefault((pack, rule), RuleRow(pack, rule))
        setattr(row, metric, getattr(row, metric) + value)
        row.by_day[day][metric] += value
    return sorted(rows.values(), key=lambda r: (-r.referrals, -r.hits, r.pack, r.rule))


def daily_totals(counts: dict[str, int], since: str = "") -> dict[str, dict[str, int]]:
    """Per day, over all packs: referrals, resolved, confirmed findings, false hits (each referral once)."""
    days: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(METRICS, 0))
    for name, value in counts.items():
        _, rule, day, metric = name.rsplit("|", 3)
        if rule == ALL_RULES and day >= since and metric in METRICS:
            days[day][metric] += value
    return dict(sorted(days.items()))


def read_counts(client: redis.Redis, key_prefix: str = "cs") -> dict[str, int]:
    return {k.decode(): int(v) for k, v in client.hscan_iter(QueueKeys(key_prefix, "").rule_stats, count=5000)}


def plot(rows: list[RuleRow], days: dict[str, dict[str, int]], path, top: int = 15):
    """Two panels: per rule (most referrals first), its referrals split by what came of them, with
    the false-hit rate written beside (flagged rules in red); and referrals and confirmed findings
    per day. `path`: a file name or a binary file object."""
    import matplotlib

    matplotlib.use("Agg")  # no screen; set before pyplot is imported
    import matplotlib.pyplot as plt

    shown = [r for r in rows if r.referrals][:top][::-1]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, max(3.5, 0.35 * len(shown) + 1.5)))
    labels = [f"{r.rule} ({r.pack.split('@')[-1]})" for r in shown]
    confirmed = [r.confirmed for r in shown]
    false = [r.false for r in shown]
    other = [max(0, r.referrals - r.confirmed - r.false) for r in shown]
    left.barh(labels, confirmed, color="#1e8449", label="confirmed finding")
    left.barh(labels, false, left=confirmed, color="#c0392b", label="false hit")
    left.barh(labels, other, left=[c + f for c, f in zip(confirmed, false)], color="#bdc3c7",
              label="open, or no control")
    for y, r in enumerate(shown):
        if r.false_hit_rate is not None:
            left.text(r.referrals, y, f" {r.false_hit_rate:.0%} false" + (" (flagged)" if r.flagged else ""),
                      va="center", fontsize=8, color="#c0392b" if r.flagged else "#1b2631")
    for tick, r in zip(left.get_yticklabels(), shown):
        tick.set_color("#c0392b" if r.flagged else "#1b2631")
    left.set_xlabel("referrals")
    left.set_title("Referrals per rule and what came of them")
    left.legend(loc="lower right", fontsize=8)
    left.margins(x=0.25)
    for metric, style in (("referrals", "-"), ("confirmed", "--"), ("false", ":")):
        right.plot(list(days), [d[metric] for d in days.values()], style, marker="o",
                   label={"false": "false hits", "confirmed": "confirmed findings"}.get(metric, metric))
    right.set_title("Referrals and their outcomes per day (day of assessment)")
    right.legend()
    right.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    fig.savefig(path, dpi=90, format="png")
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
