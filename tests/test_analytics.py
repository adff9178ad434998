"""Analytics over the archive: the screening record in columns (and back), SQL over it, backtests
compiled to SQL against the row-by-row scorer, old archives still read."""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from cargoscreen.analytics import archive_connection, run_query
from cargoscreen.archive_backtest import ArchiveReplay, fired_row_by_row, has_records
from cargoscreen.cli import load_feed
from cargoscreen.config import Settings
from cargoscreen.connectors.archive import DECISIONS, read_archive, write_part
from cargoscreen.connectors.redis_store import connect
from cargoscreen.corpus import write_container_status, write_corpus
from cargoscreen.domain.record_columns import record_columns, record_from_columns
from cargoscreen.domain.rulepack import RulePack
from cargoscreen.domain.scoring import Scorer, example_subject
from cargoscreen.job import run_batch

pytestmark = pytest.mark.slow
OLD_ARCHIVE = Path(__file__).parent / "data" / "archive-v1"  # written by the code before version 2
SPEC = dict(defect_rate=0.05, envelope_rate=0.0, resubmission_rate=0.0, risk_rate=0.25, decoy_rate=0.15)


@pytest.fixture(scope="module")
def pack():
    return RulePack.load(Settings().rules.pack_dir)


@pytest.fixture(scope="module")
def archived(tmp_path_factory, redis_server):
    """A batch run of 500 generated filings (planted risks, decoys, container histories with anomalies)."""
    root = tmp_path_factory.mktemp("analytics")
    write_corpus(root, count=500, seed=20, **SPEC)
    write_container_status(root, 500, seed=20, anomaly_rate=0.3, **SPEC)
    connect(redis_server.url).flushall()
    load_feed([root / "container-events.jsonl"], redis_server.url, root / "rejected.jsonl")
    summary = run_batch(Settings().with_redis_url(redis_server.url), root / "filings", root / "out")
    return root / "out" / "archive", summary


def test_each_decision_carries_the_record_and_facts_it_was_made_on(archived, pack):
    archive, summary = archived
    rows = read_archive(archive, DECISIONS).to_pylist()
    assert len(rows) == summary.assessed and has_records(archive)
    scorer = Scorer(pack)
    kinds = Counter()
    for row in rows:
        record, facts = record_from_columns(row)
        kinds.update(f.kind for f in facts)
        # Scored again from the columns alone, at its own time: the same rules fire.
        again = scorer.assess(record, facts, row["container_status"], row["assessed_at"].timestamp())
        assert sorted(h.rule for h in again.hits) == sorted(h["rule"] for h in row["hits"]), row["submission_id"]
        assert record_from_columns(record_columns(record, facts)) == (record, facts)
    assert kinds["party-history"] and len(kinds) > 3  # container facts as well as the filing's own
    goods = [g for row in rows for g in row["goods"]]
    assert goods and all(g["pointer"] and (g["hs_code"] is None or len(g["hs_code"]) >= 6) for g in goods)
    assert {p["person"] for row in rows for p in row["parties"]} >= {"natural", "legal"}


def test_an_archive_written_before_the_record_columns_is_still_read():
    decisions = read_archive(OLD_ARCHIVE, DECISIONS)
    assert decisions.num_rows == 29 and decisions.column("goods").null_count == 29
    assert not has_records(OLD_ARCHIVE)  # so a backtest takes the row-by-row path
    with archive_connection(OLD_ARCHIVE) as con:
        assert run_query(con, "SELECT count(*), count(goods) FROM filings").rows == [(29, 0)]
        assert run_query(con, "SELECT count(*) FROM submissions WHERE accepted").rows == [(35,)]
        assert run_query(con, "SELECT count(*) FROM goods").rows == [(0,)]


def _examples_archive(pack, folder: Path) -> dict[float | None, Path]:
    """Every example of every rule as an archived decision, one archive per assessment time."""
    by_now: dict[float | None, list[dict]] = {}
    for rule in pack.rules:
        for i, example in enumerate(rule.examples):
            subject = example_subject(example.data)
            name = f"{rule.id}-{i}-{'fires' if example.fires else 'passes'}"
            by_now.setdefault(example.data.get("now"), []).append({
                "submission_id": name, "consignment": f"mrn:{name}", "version": 1, "state": name,
                "filing_code": subject.record.filing_code, "container_status": subject.container_status,
                "assessed_at": datetime(2026, 11, 20, tzinfo=timezone.utc), "member_submissions": [name],
                "missing": [], **record_columns(subject.record, subject.facts)})
    archives = {}
    for n, (now, rows) in enumerate(by_now.items()):
        archives[now] = folder / f"examples-{n}"
        write_part(archives[now], DECISIONS, "2026-11-20", "sea", rows)
    return archives


def _same_hits(archive: Path, scorer: Scorer, now: float) -> dict[str, set[int]]:
    with ArchiveReplay(archive) as replay:
        fired, slow = replay.fired(scorer.pack, now)
        reference = fired_row_by_row(replay, scorer, now)
    assert slow == []  # every rule of the starter pack compiles to SQL
    for rule in scorer.pack.rules:
        assert fired.get(rule.id, set()) == reference.get(rule.id, set()), rule.id
    return reference


def test_every_starter_rule_fires_in_sql_where_the_scorer_fires_it_on_its_examples(pack, tmp_path):
    scorer = Scorer(pack)
    fired_somewhere = set()
    for now, archive in _examples_archive(pack, tmp_path).items():
        reference = _same_hits(archive, scorer, now or datetime(2026, 11, 20, 8, tzinfo=timezone.utc).timestamp())
        fired_somewhere |= {rule for rule, rows in reference.items() if rows}
    assert fired_somewhere == {r.id for r in pack.rules}  # each rule fired on an example, each passed one too


def test_sql_and_the_scorer_give_the_same_hits_on_a_generated_archive(archived, pack):
    archive, _ = archived
    reference = _same_hits(archive, Scorer(pack), datetime.now(timezone.utc).timestamp())
    assert len([r for r, rows in reference.items() if rows]) >= 25


def test_a_decision_archived_twice_counts_once_with_its_items(archived, pack, tmp_path):
    """An uncompacted streaming archive may hold a decision twice (at-least-once writes): the replay
    reads its record and its goods, parties and containers once, so count() and sum() rules see them once."""
    import shutil

    archive, _ = archived
    twice = tmp_path / "archive"
    shutil.copytree(archive, twice)
    rows = [r for r in read_archive(archive, DECISIONS).to_pylist() if r["goods"]][:5]
    again = {(r["consignment"], r["version"]) for r in rows}
    for table in (DECISIONS, "goods", "parties", "containers"):  # a crashed streaming run wrote these twice
        if not (archive / table).is_dir():
            continue
        rewritten = [r for r in read_archive(archive, table).to_pylist() if (r["consignment"], r["version"]) in again]
        for day, mode in {(r["date"], r["mode"]) for r in rewritten}:
            write_part(twice, table, day, mode, [{k: v for k, v in r.items() if k not in ("date", "mode")}
                                                 for r in rewritten if (r["date"], r["mode"]) == (day, mode)])

    def counts(root):
        with ArchiveReplay(root) as replay:
            return {t: replay.con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                    for t in ("records", "goods", "parties", "containers")}

    assert counts(twice) == counts(archive) and counts(archive)["goods"] > 0
    assert _same_hits(twice, Scorer(pack), datetime.now(timezone.utc).timestamp())


def test_the_backtest_takes_the_fast_path_on_an_archive_with_records_and_reports_alike(archived, tmp_path, pack):
    archive, _ = archived
    out = tmp_path / "report.json"
    run = subprocess.run([sys.executable, "-m", "cargoscreen.cli", "rules", "backtest", str(archive), "--candidate",
                          str(Settings().rules.pack_dir), "--json", str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "every rule of both packs in set-based SQL" in run.stdout
    report = json.loads(out.read_text())
    with ArchiveReplay(archive) as replay:
        scorer = Scorer(pack)
        now = datetime.now(timezone.utc).timestamp()
        by_rows = replay.assessments(scorer, fired_row_by_row(replay, scorer, now))
    assert report["filings"] == len(by_rows)
    assert report["decisions"]["candidate"] == dict(Counter(r.assessment.decision for r in by_rows.values()))
    hits = Counter(h.rule for r in by_rows.values() for h in r.assessment.hits)
    assert {r["rule"]: r["hits_candidate"] for r in report["rules"] if r["hits_candidate"]} == dict(hits)


def test_the_backtest_of_an_old_archive_replays_its_filings_row_by_row(tmp_path):
    run = subprocess.run([sys.executable, "-m", "cargoscreen.cli", "rules", "backtest", str(OLD_ARCHIVE),
                          "--candidate", str(Settings().rules.pack_dir)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "row by row" in run.stdout and "35 filings read" in run.stdout


def _query(archive: Path, sql: str, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cargoscreen.cli", "query", "--archive", str(archive), *options, "--", sql],
                          capture_output=True, text=True)


def test_cargoscreen_query_answers_in_sql_over_the_views_and_reads_nothing_else(archived, tmp_path):
    archive, summary = archived
    decisions = read_archive(archive, DECISIONS).to_pylist()
    by_hs4 = Counter(g["hs_code"][:4] for d in decisions for g in d["goods"] if g["hs_code"])
    top = min(by_hs4.items(), key=lambda kv: (-kv[1], kv[0]))
    run = _query(archive, "SELECT hs4, count(*) AS items FROM goods WHERE hs4 IS NOT NULL GROUP BY hs4 "
                          "ORDER BY items DESC, hs4 LIMIT 1",
                 "--format", "csv")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["hs4,items", f"{top[0]},{top[1]}"]
    run = _query(archive, "SELECT '=HYPERLINK(\"x\")' AS name, -3 AS n", "--format", "csv")
    assert run.stdout.splitlines() == ["name,n", '"\'=HYPERLINK(""x"")",-3']  # shown as text, not run as a formula
    run = _query(archive, "SELECT count(*) AS n FROM submissions s JOIN filings f USING (submission_id)", "--format", "json")
    assert json.loads(run.stdout) == {"n": len(decisions)}
    run = _query(archive, "SELECT * FROM read_csv('/etc/passwd')")  # outside the archive: no access
    assert run.returncode == 1 and "disabled by configuration" in run.stderr
    for sql in (f"COPY filings TO '{tmp_path}/copy.parquet'", f"COPY filings TO '{archive}/decisions/x.parquet'",
                f"ATTACH '{archive}/x.duckdb' AS x", "CREATE TABLE t AS SELECT 1", "SELECT 1; SELECT 2"):
        run = _query(archive, sql)
        assert run.returncode == 1 and "read-only" in run.stderr, sql
    assert list(tmp_path.iterdir()) == [] and not list(archive.glob("*/x.*")) and not (archive / "x.duckdb").exists()
    run = _query(archive, "SELECT count(*) FROM range(1000000000000) a, range(1000) b", "--timeout", "1")
    assert run.returncode == 1 and "longer than its limit of 1 s" in run.stderr


def test_the_documented_example_question_runs_on_an_archive(archived):
    archive, _ = archived
    doc = (Path(__file__).parent.parent / "connectors" / "ARCHIVE.md").read_text()
    example = next(block for block in doc.split("```sql")[1:] if "HS 2939" in block).split("```")[0]
    run = _query(archive, example.strip().rstrip(";"), "--format", "csv")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[0] == "mrn,assessed_at,decision,outcome,category"
