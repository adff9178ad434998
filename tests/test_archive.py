"""The Parquet archive: every validated filing with its bytes, every decision; whole files only; documented columns."""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from cargoscreen.backtest import backtest, load_traffic
from cargoscreen.config import Settings
from cargoscreen.connectors.archive import DECISIONS, FILINGS, SCHEMAS, compact, read_archive, write_part
from cargoscreen.connectors.files import read_json_lines
from cargoscreen.connectors.redis_store import connect
from cargoscreen.corpus import write_corpus
from cargoscreen.domain.rulepack import RulePack
from cargoscreen.domain.scoring import Scorer
from cargoscreen.job import run_batch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def archived(tmp_path_factory, redis_server):
    root = tmp_path_factory.mktemp("archive")
    write_corpus(root, count=300, seed=21, defect_rate=0.15, envelope_rate=0.03, resubmission_rate=0.0,
                 risk_rate=0.1)
    connect(redis_server.url).flushall()
    summary = run_batch(Settings().with_redis_url(redis_server.url), root / "filings", root / "out")
    return root, summary


def test_every_validated_filing_is_archived_once_with_its_bytes(archived):
    root, summary = archived
    filings = read_archive(root / "out" / "archive", FILINGS).to_pylist()
    dead = {d["submission_id"] for d in read_json_lines(root / "out" / "dead-letters")}
    ids = [f["submission_id"] for f in filings]
    assert len(ids) == len(set(ids)) == summary.inputs - len(dead)
    for f in filings:
        assert f["payload"] == (root / "filings" / f["submission_id"]).read_bytes()
        assert f["accepted"] == (not f["error_codes"])
    labels = {json.loads(line)["file"]: json.loads(line) for line in (root / "labels.jsonl").open()}
    assert all(f["accepted"] == (labels[f["submission_id"]]["expected"] == "registered") for f in filings)
    modes = {f["mode"] for f in filings}
    assert {"sea", "air", "unknown"} <= modes and all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", f["date"]) for f in filings)


def test_every_decision_is_archived_with_its_pack_and_referral_evidence(archived):
    root, summary = archived
    decisions = read_archive(root / "out" / "archive", DECISIONS).to_pylist()
    assert len(decisions) == summary.assessed == len({d["submission_id"] for d in decisions})
    referrals = [d for d in decisions if d["referral_id"]]
    assert referrals and all(d["decision"] != "assessment-complete" for d in referrals)
    for d in referrals:
        explained = json.loads(d["explanation"])
        assert {e["rule"] for e in explained} <= {h["rule"] for h in d["hits"]}
        assert any(ev["pointer"] for e in explained for ev in e["evidence"])
    assert all(d["rule_pack"].startswith("ics2-starter@") for d in decisions)


def test_no_half_written_file_is_ever_visible(archived, tmp_path):
    root, _ = archived
    assert not [p for p in (root / "out" / "archive").rglob("*") if p.name.startswith(".")]
    with pytest.raises(pa.ArrowInvalid):  # a row that does not fit the schema fails the write...
        write_part(tmp_path, FILINGS, "2026-11-23", "sea", [{"submission_id": "x", "size_bytes": "many"}])
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # ...and leaves nothing behind


def test_compaction_leaves_one_file_per_old_partition_without_duplicates_and_today_alone(archived, tmp_path):
    import shutil

    root, _ = archived
    archive = tmp_path / "archive"
    shutil.copytree(root / "out" / "archive", archive)
    before = {t: read_archive(archive, t).to_pylist() for t in (FILINGS, DECISIONS)}
    [day] = {r["date"] for r in before[FILINGS]}
    sea = [r for r in before[DECISIONS] if r["mode"] == "sea"]
    again = [{k: v for k, v in r.items() if k not in ("date", "mode")} for r in sea[:5]]
    write_part(archive, DECISIONS, day, "sea", again)  # a crashed streaming run archived these twice
    write_part(archive, DECISIONS, "2999-01-01", "sea", again[:1])
    write_part(archive, DECISIONS, "2999-01-01", "sea", again[:1])  # "today": still being written
    done = compact(archive, before_day="2999-01-01")
    assert done and all(len(list(folder.glob("*.parquet"))) == 1 for folder, _, _ in done)
    after = {t: read_archive(archive, t).to_pylist() for t in (FILINGS, DECISIONS)}
    assert sorted(r["submission_id"] for r in after[FILINGS]) == sorted(r["submission_id"] for r in before[FILINGS])
    assert [r for r in after[DECISIONS] if r["date"] == day] and \
        sorted((r["consignment"], r["state"]) for r in after[DECISIONS] if r["date"] == day) == \
        sorted((r["consignment"], r["state"]) for r in before[DECISIONS])  # the five duplicates are gone
    assert len(list((archive / DECISIONS / "date=2999-01-01" / "mode=sea").glob("*.parquet"))) == 2


def test_the_documentation_names_every_column():
    doc = (Path(__file__).parent.parent / "connectors" / "ARCHIVE.md").read_text()
    for table, schema in SCHEMAS.items():
        section = doc.split(f"## {table}", 1)[1].split("\n## ", 1)[0]
        documented = {name.strip() for row in re.findall(r"^\| ([a-z_, ]+) \|", section, re.M)
                      for name in row.split(",")} - {"column"}
        assert documented == set(schema.names), table


def test_a_backtest_replays_the_archive_and_reaches_the_same_decisions(archived):
    root, summary = archived
    settings = Settings()
    scorer = Scorer(RulePack.load(settings.rules.pack_dir))
    traffic = load_traffic(root / "out" / "archive", settings)
    report = backtest(traffic.filings, scorer, scorer)
    assert traffic.read == summary.accepted and traffic.rejected == 0
    archived_decisions = Counter(d["decision"] for d in read_archive(root / "out" / "archive", DECISIONS).to_pylist())
    assert report.decisions_active == archived_decisions  # no container status in this run: same input, same answer
