"""Rule effectiveness: hits and referrals counted once from the decisions stream, outcomes from
resolutions, per pack version and day; the report with its plot; rules that mostly make false hits flagged.
The plots are looked at: their pixels, in the palette's colours (tests/pictures.py)."""
import io
import json

from click.testing import CliRunner

from cargoscreen.cli import main
from cargoscreen.connectors.redis_streams import StreamKeys
from cargoscreen.workbench import palette
from cargoscreen.workbench.effectiveness import (DecisionCounter, daily_totals, decision_counts, plot, read_counts,
                                                  rule_rows)
from cargoscreen.workbench.queue import ReferralQueue

from .pictures import boxes, foreign_colours, is_dark, outcome_bars, pixels
from .test_workbench_queue import put, referral


def decision(n: int, rules, decided: str, pack="ics2-starter@1.0.0+abc", day="2026-11-20") -> dict:
    return {"mrn": f"M{n}", "decision": decided, "rule_pack": pack, "assessed_at": f"{day}T10:00:00Z",
            "filings": [], "hits": [{"rule": r, "weight": 30} for r in rules]}


def test_decisions_count_hits_and_referrals_once_even_after_a_crash(redis_client):
    stream = StreamKeys().decisions
    for n, (rules, decided) in enumerate([(["A", "B"], "control"), (["A"], "assessment-complete"), ([], "x")]):
        redis_client.xadd(stream, {"effect": f"d{n}", "body": json.dumps(decision(n, rules, decided))})
    redis_client.xadd(stream, {"effect": "w", "body": json.dumps({"withdrawn": "sea:X", "mrn": "M0"})})
    counter = DecisionCounter(redis_client)
    counter.client.xgroup_create(stream, "rule-stats", id="0")
    redis_client.xreadgroup("rule-stats", "stats", {stream: ">"}, count=2)  # read, then the keeper died
    assert counter.count_new() == 4
    assert counter.count_new() == 0
    assert read_counts(redis_client) == {"ics2-starter@1.0.0|A|2026-11-20|hits": 2,
                                         "ics2-starter@1.0.0|A|2026-11-20|referrals": 1,
                                         "ics2-starter@1.0.0|B|2026-11-20|hits": 1,
                                         "ics2-starter@1.0.0|B|2026-11-20|referrals": 1,
                                         "ics2-starter@1.0.0|*|2026-11-20|referrals": 1}
    assert decision_counts({"withdrawn": "x"}) == []



def test_each_centre_counts_its_own_decisions_and_resolutions_and_the_operators_every_centre(redis_client):
    """An analyst's page reads their centre's counts only: the hits and referrals of decisions whose risk
    centre it is, and its own analysts' resolutions; the operators' report sums every centre, counts from
    before decisions named their centre included. A centre name is matched as written, not as a pattern."""
    stream = StreamKeys().decisions
    for n, (centre, rules) in enumerate([("RC-NL", ["A"]), ("RC-NL", ["A", "B"]), ("RC-BE", ["A"]), ("RC-*", ["C"])]):
        body = {**decision(n, rules, "control"), "risk_centre": centre}
        redis_client.xadd(stream, {"effect": f"d{n}", "body": json.dumps(body)})
    redis_client.xgroup_create(stream, "rule-stats", id="0")
    assert DecisionCounter(redis_client).count_new() == 4
    redis_client.hset(DecisionCounter.stats_key("cs"), "ics2-starter@1.0.0|A|2026-11-19|hits", 5)  # an older keeper's
    put(redis_client, "RC-BE", referral(1, areas=("ipr",)))
    queue = ReferralQueue(redis_client, "RC-BE")
    queue.take_in()
    queue.claim("REF-26NL00000000000001", "bob")
    queue.resolve("REF-26NL00000000000001", "bob", "no-finding", "")

    def hits(counts, rule):
        return sum(v for k, v in counts.items() if k.split("|")[1] == rule and k.endswith("|hits"))

    nl, be, star, every = (read_counts(redis_client, centre=c) for c in ("RC-NL", "RC-BE", "RC-*", None))
    assert (hits(nl, "A"), hits(nl, "B"), hits(nl, "C")) == (2, 1, 0)
    assert (hits(be, "A"), hits(be, "B")) == (1, 0) and hits(star, "C") == 1 and hits(star, "A") == 0
    assert not any(k.endswith(("|resolved", "|false")) for k in nl) and be["ics2-starter@1.0.0|R-ipr|2026-11-23|false"] == 1
    assert (hits(every, "A"), hits(every, "B"), hits(every, "C")) == (2 + 1 + 5, 1, 1)
    assert every["ics2-starter@1.0.0|R-ipr|2026-11-23|false"] == 1
    assert all(k.count("|") == 3 for k in every)

def test_rows_rates_and_flags():
    counts = {"p@1|NOISY|2026-11-20|referrals": 12, "p@1|NOISY|2026-11-20|false": 10,
              "p@1|NOISY|2026-11-21|false": 1, "p@1|NOISY|2026-11-21|confirmed": 1,
              "p@1|GOOD|2026-11-20|referrals": 5, "p@1|GOOD|2026-11-20|confirmed": 4,
              "p@1|GOOD|2026-11-20|false": 1, "p@2|NOISY|2026-11-21|referrals": 1}
    rows = {(r.pack, r.rule): r for r in rule_rows(counts)}
    noisy, good = rows[("p@1", "NOISY")], rows[("p@1", "GOOD")]
    assert (noisy.false, noisy.confirmed, round(noisy.false_hit_rate, 3), noisy.flagged) == (11, 1, 0.917, True)
    assert (good.false_hit_rate, good.flagged) == (0.2, False)
    assert rows[("p@2", "NOISY")].false_hit_rate is None  # each pack version on its own
    assert noisy.by_day["2026-11-21"]["confirmed"] == 1
    assert not rule_rows(counts, since="2026-11-21")[0].flagged  # one day: too few outcomes to flag


def test_report_from_outcomes_recorded_in_the_queue(redis_client, redis_server, tmp_path):
    queue = ReferralQueue(redis_client, "RC-NL")
    for n in range(12):
        put(redis_client, "RC-NL", referral(n, areas=("ipr",)))
    queue.take_in()
    for n in range(12):
        rid = f"REF-26NL{n:014d}"
        queue.claim(rid, "alice")
        queue.resolve(rid, "alice", "finding" if n == 0 else "no-finding", "counterfeit" if n == 0 else "")
    result = CliRunner().invoke(main, ["rules", "report", "--redis-url", redis_server.url, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "1 flagged" in result.output and "R-ipr: 11/12 false hits" in result.output
    assert "flagged: mostly false hits" in (tmp_path / "report.html").read_text()
    assert "ics2-starter@1.0.0,R-ipr,0,0,12,1,11,0.917,True" in (tmp_path / "rules.csv").read_text()
    assert "ics2-starter@1.0.0,R-ipr,2026-11-23,0,0,12,1,11" in (tmp_path / "rules-by-day.csv").read_text()
    assert daily_totals(read_counts(redis_client)) == {"2026-11-23": {"hits": 0, "referrals": 0, "resolved": 12,
                                                                      "confirmed": 1, "false": 11}}

    # The picture, looked at. Outcomes without counted referrals (the decisions were not counted), one day.
    img = pixels(tmp_path / "rules.png")
    bars = outcome_bars(img)
    assert foreign_colours(img) == [] and bars["open"] == []  # every resolution here had a control
    middle = img.shape[1] // 2
    (rule_confirmed, day_confirmed), (rule_false, day_false) = (sorted(bars[k], key=lambda b: b.x0)
                                                                for k in ("confirmed", "false"))
    # Per rule: 1 confirmed then 11 false on one bar, starting on the axis line (at zero).
    assert rule_false.x0 < middle and (rule_confirmed.y0, rule_confirmed.y1) == (rule_false.y0, rule_false.y1)
    assert rule_false.x0 == rule_confirmed.x1 and round(rule_false.width / rule_confirmed.width) == 11
    assert is_dark(img, rule_confirmed.x0 - 1, rule_confirmed.y0)
    # Per day: the one day is a bar, not a dot, 11 false on 1 confirmed, standing on the axis line:
    # the count axis starts at zero, not below.
    assert day_confirmed.x0 > middle and day_confirmed.width >= 20
    assert (day_false.x0, day_false.x1, day_false.y1) == (day_confirmed.x0, day_confirmed.x1, day_confirmed.y0)
    assert round(day_false.height / day_confirmed.height) == 11
    assert is_dark(img, (day_confirmed.x0 + day_confirmed.x1) // 2, day_confirmed.y1)


def test_report_with_nothing_counted_says_so(redis_client, redis_server, tmp_path):
    result = CliRunner().invoke(main, ["rules", "report", "--redis-url", redis_server.url, "--out", str(tmp_path)])
    assert result.exit_code == 0 and "0 rules with hits" in result.output
    img = pixels(tmp_path / "rules.png")
    dark = [max((len(run) for run in "".join("x" if v < 120 else " " for v in row.max(axis=1)).split()), default=0)
            for row in img]
    assert max(dark) < 100  # no axis line: the panels say "no referrals or outcomes counted yet" instead
    assert all(not boxes(img, c) for c in (palette.CONFIRMED, palette.FALSE_HIT, palette.OPEN))
    assert "No rule hits, referrals or outcomes counted yet." in (tmp_path / "report.html").read_text()


def test_days_without_referrals_show_as_gaps_in_every_outcome_colour():
    counts = {f"p@1|{rule}|{day}|{m}": v for rule in ("R", "*") for day, m, v in (
        ("2026-11-20", "referrals", 4), ("2026-11-20", "resolved", 2), ("2026-11-20", "confirmed", 1),
        ("2026-11-20", "false", 1), ("2026-11-23", "referrals", 2))}
    out = io.BytesIO()
    plot(rule_rows(counts), daily_totals(counts), out)
    img = pixels(out.getvalue())
    bars = outcome_bars(img)
    assert foreign_colours(img) == []
    days = sorted((b for k in bars for b in bars[k] if b.x0 > img.shape[1] // 2), key=lambda b: (b.x0, -b.y0))
    first, last = days[0], days[-1]  # the 20th: 1 confirmed, 1 false, 2 open, stacked; the 23rd: 2 open
    assert [round(b.height / first.height) for b in days] == [1, 1, 2, 2] and last in bars["open"]
    assert round((last.x0 - first.x0) / first.width * 0.8) == 3  # the 21st and 22nd: empty slots, not skipped
