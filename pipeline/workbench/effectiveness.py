"""Rule effectiveness: per rule and pack version, hits, referrals, confirmed findings, false hits.

Counted into Redis hashes `{p}:wb:{tag}:rulestats`, field `pack@version|rule|day|metric`, where day
is the day the consignment was assessed, and read as their sum:
    hits, referrals     from every decision on `{p}:decisions` (the keeper reads it through the
                        consumer group `rule-stats`; one Lua script per batch adds the counts
                        and acknowledges the entries, so a crash neither loses nor doubles them),
                        into the hash in the stream's slot (the tag is the stream's), each field
                        under the decision's risk centre: `centre|pack@version|rule|day|metric`
    resolved, confirmed, false
                        from analysts' resolutions (queue.py, in the resolving script itself),
                        into the centre's hash, in its queue's slot
An analyst's page counts their own centre only (its decisions and its resolutions: what another
centre's traffic and outcomes say is that centre's); the operators' report counts every centre.

A false hit is a referral controlled or checked with nothing found; a confirmed finding is a
seizure or finding. The false-hit rate of a rule is false / (false + confirmed): referrals not
controlled, and RFIs settled by the filer's answer, say nothing either way. A rule is flagged
when that rate is at least FLAG_RATE over at least FLAG_MIN_OUTCOMES outcomes.
"""
from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import redis

from ..connectors.redis_slots import SlotScript
from ..connectors.redis_streams import StreamKeys, read_group
from . import palette
from ..connectors.redis_store import hash_tag
from .queue import ALL_RULES, QueueKeys, centres_having, day_of, pack_version

GROUP = "rule-stats"
CONSUMER = "stats"
FLAG_RATE = 0.9
FLAG_MIN_OUTCOMES = 10
METRICS = ("hits", "referrals", "resolved", "confirmed", "false")
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")  # what HSCAN MATCH would read as a pattern

_COUNT = """
local stats, stream, group, n = KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2])
for i = 1, n do redis.call('XACK', stream, group, ARGV[2 + i]) end
for i = 3 + n, #ARGV do redis.call('HINCRBY', stats, ARGV[i], 1) end
return n
"""


def decision_counts(body: dict) -> list[str]:
    """The counters one decision adds, under its risk centre: a hit for each rule that fired, a
    referral if it referred."""
    if "withdrawn" in body or not body.get("hits"):
        return []
    centre = body.get("risk_centre") or ""
    pack, day = pack_version(body.get("rule_pack") or ""), day_of(body.get("assessed_at") or "")
    referral = body.get("decision") not in (None, "assessment-complete")
    return [f"{centre}|{pack}|{h['rule']}|{day}|{m}" for h in body["hits"]
            for m in (("hits", "referrals") if referral else ("hits",))] + \
        ([f"{centre}|{pack}|{ALL_RULES}|{day}|referrals"] if referral else [])


class DecisionCounter:
    """Counts hits and referrals per rule from the decisions stream (run by the keeper)."""

    def __init__(self, client: redis.Redis, key_prefix: str = "cs"):
        self.client = client
        self.stream = StreamKeys(key_prefix).decisions
        self.stats = self.stats_key(key_prefix)
        self._script = SlotScript(client, _COUNT)

    @staticmethod
    def stats_key(key_prefix: str) -> str:
        """The decisions' counters: in the slot of the decisions stream, which the counting script reads."""
        return f"{key_prefix}:wb:{{{hash_tag(StreamKeys(key_prefix).decisions)}}}:rulestats"

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


def read_counts(client: redis.Redis, key_prefix: str = "cs", centre: str | None = None) -> dict[str, int]:
    """The counters (`pack@version|rule|day|metric`) of every centre summed (on every node of a
    cluster), or with `centre` that centre's alone: the hits and referrals of its decisions and its
    analysts' resolutions. (Decisions counted before the counts named their centre, by a keeper
    older than that, count for every centre together only.)"""
    counts: dict[str, int] = defaultdict(int)
    for name, value in client.hscan_iter(DecisionCounter.stats_key(key_prefix), count=5000,
                                         match=None if centre is None else _GLOB_SPECIAL.sub(r"\\\1", centre) + "|*"):
        name = name.decode()
        if name.count("|") == 4:
            name = name.partition("|")[2]
        elif centre is not None:
            continue
        counts[name] += int(value)
    centres = [centre] if centre is not None else centres_having(client, lambda c: QueueKeys(key_prefix, c).rule_stats)
    for c in centres:
        for name, value in client.hscan_iter(QueueKeys(key_prefix, c).rule_stats, count=5000):
            counts[name.decode()] += int(value)
    return dict(counts)


def outcome_split(referrals: int, resolved: int, confirmed: int, false: int) -> dict[str, int]:
    """Referrals by what came of them (palette.OUTCOME_SERIES). Resolutions counted without their
    decisions (a stream trimmed before a keeper read it) still count as referrals."""
    return {"confirmed": confirmed, "false": false, "open": max(0, max(referrals, resolved) - confirmed - false)}


def plot(rows: list[RuleRow], days: dict[str, dict[str, int]], path, top: int = 15):
    """Two panels in the palette's outcome colours, one legend for both: per rule (most referrals
    first), its referrals stacked by what came of them, the false-hit rate beside (flagged rules in
    the false-hit colour); and per day of assessment (every day from the first to the last) the
    same stack. Counts start at zero on whole-number ticks; a panel with nothing to count says so.
    `path`: a file name or a binary file object."""
    import matplotlib

    matplotlib.use("Agg")  # no screen; set before pyplot is imported
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    shown = [r for r in rows if r.referrals or r.resolved][:top][::-1]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, max(3.5, 0.35 * len(shown) + 2)))
    by_rule = _stacked(left, [f"{r.rule} ({r.pack.split('@')[-1]})" for r in shown],
                       [outcome_split(r.referrals, r.resolved, r.confirmed, r.false) for r in shown], horizontal=True)
    if by_rule:
        for y, r in enumerate(shown):
            if r.false_hit_rate is not None:
                left.text(max(r.referrals, r.resolved), y, f" {r.false_hit_rate:.0%} false"
                          + (" (flagged)" if r.flagged else ""), va="center", fontsize=8,
                          color=palette.FALSE_HIT if r.flagged else palette.INK)
        for tick, r in zip(left.get_yticklabels(), shown):
            tick.set_color(palette.FALSE_HIT if r.flagged else palette.INK)
    left.set_title("Referrals per rule, by what came of them")
    calendar = _every_day(days)
    by_day = _stacked(right, list(calendar), [outcome_split(d["referrals"], d["resolved"], d["confirmed"],
                                                            d["false"]) for d in calendar.values()], horizontal=False)
    right.set_title("Referrals per day of assessment, by what came of them")
    drawn = by_rule or by_day
    if drawn:
        fig.legend(handles=[Patch(color=colour, label=label) for _, label, colour in palette.OUTCOME_SERIES],
                   loc="upper center", ncol=len(palette.OUTCOME_SERIES), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.93 if drawn else 1))
    fig.savefig(path, dpi=90, format="png")
    plt.close(fig)
    return path


def _every_day(days: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """The days from the first to the last, those without counts as zeros: gaps show as gaps."""
    if not days:
        return {}
    first, last = date.fromisoformat(min(days)), date.fromisoformat(max(days))
    every = (first + timedelta(n) for n in range((last - first).days + 1))
    return {d.isoformat(): days.get(d.isoformat(), dict.fromkeys(METRICS, 0)) for d in every}


def _stacked(ax, labels: list[str], splits: list[dict[str, int]], horizontal: bool, slots: int = 7) -> bool:
    """Bars stacked by outcome, from zero on whole-number ticks, at least `slots` bar widths of
    room (one bar is a bar, not a wall); False, and a note instead of an empty axis, if all are 0."""
    from matplotlib.ticker import MaxNLocator

    if not any(sum(s.values()) for s in splits):
        ax.set_axis_off()
        ax.text(0.5, 0.5, "No referrals or outcomes counted yet", ha="center", va="center",
                transform=ax.transAxes, color=palette.INK)
        return False
    places, base = range(len(labels)), [0] * len(splits)  # positions, not categories: labels may repeat
    for key, label, colour in palette.OUTCOME_SERIES:
        values = [s[key] for s in splits]
        (ax.barh if horizontal else ax.bar)(places, values, 0.8, base, color=colour, label=label)
        base = [b + v for b, v in zip(base, values)]
    pad = max(0.0, (slots - len(labels)) / 2)
    (ax.xaxis if horizontal else ax.yaxis).set_major_locator(MaxNLocator(integer=True))
    (ax.set_xlim if horizontal else ax.set_ylim)(0, max(base) * (1.3 if horizontal else 1.05))  # room for rates
    (ax.set_ylim if horizontal else ax.set_xlim)(-0.5 - pad, len(labels) - 0.5 + pad)
    (ax.set_xlabel if horizontal else ax.set_ylabel)("referrals")
    if horizontal:
        ax.set_yticks(places, labels)
    else:
        step = -(-len(labels) // 14)  # at most 14 day labels
        ax.set_xticks(places[::step], labels[::step], rotation=45, ha="right")
    return True


def table_context(rows: list[RuleRow]) -> dict:
    """What the rule table (templates/rule_table.html) shows, on the page and in the report."""
    return {"rows": rows, "flag_rate": FLAG_RATE, "flag_min_outcomes": FLAG_MIN_OUTCOMES}


def report_html(rows: list[RuleRow], image: str) -> str:
    """A standalone page: the plot and the table, as the workbench shows them."""
    from jinja2 import Environment, FileSystemLoader

    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True)
    return env.get_template("report.html").render(image=image, palette_css=palette.css(), **table_context(rows))
