"""Rule effectiveness: hits and referrals counted once from the decisions stream, outcomes from
resolutions, per pack version and day; the report with its plot; rules that mostly make false hits flagged."""
import json

from click.testing import CliRunner

from cargoscreen.cli import main
from cargoscreen.connectors.redis_streams import StreamKeys
from cargoscreen.workbench.effectiveness import DecisionCounter, daily_totals, decision_counts, read_counts, rule_rows
from cargoscreen.workbench.queue import ReferralQueue

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
    assert (tmp_path / "rules.png").read_bytes()[:4] == b"\x89PNG"
    assert "flagged: mostly false hits" in (tmp_path / "report.html").read_text()
    assert "ics2-starter@1.0.0,R-ipr,0,0,12,1,11,0.917,True" in (tmp_path / "rules.csv").read_text()
    assert "ics2-starter@1.0.0,R-ipr,2026-11-23,0,0,12,1,11" in (tmp_path / "rules-by-day.csv").read_text()
    assert daily_totals(read_counts(redis_client)) == {"2026-11-23": {"hits": 0, "referrals": 0, "resolved": 12,
                                                                      "confirmed": 1, "false": 11}}
