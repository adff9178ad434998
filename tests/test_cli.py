"""The cargoscreen command, as a carrier or operator uses it."""
from __future__ import annotations

import json

from click.testing import CliRunner

from cargoscreen.cli import main

from .conftest import OTHER_SCHEMAS


def test_generate_is_deterministic_and_writes_labels(tmp_path):
    runner = CliRunner()
    for name in ("a", "b"):
        result = runner.invoke(main, ["generate", "--out", str(tmp_path / name), "--count", "40", "--seed", "3"])
        assert result.exit_code == 0, result.output
    files_a = sorted(p.name for p in (tmp_path / "a" / "filings").iterdir())
    assert len(files_a) == 40
    for name in files_a:
        assert (tmp_path / "a" / "filings" / name).read_bytes() == (tmp_path / "b" / "filings" / name).read_bytes()
    labels = [json.loads(line) for line in (tmp_path / "a" / "labels.jsonl").open()]
    assert [label["file"] for label in labels] == files_a


def test_validate_reports_and_sets_the_exit_status(tmp_path):
    runner = CliRunner()
    runner.invoke(main, ["generate", "--out", str(tmp_path), "--count", "60", "--seed", "8", "--defect-rate", "0.3"])
    labels = [json.loads(line) for line in (tmp_path / "labels.jsonl").open()]
    good = [tmp_path / "filings" / label["file"] for label in labels if label["expected"] == "registered"][:3]
    bad = next(tmp_path / "filings" / label["file"] for label in labels if label["defects"]
               and label["defects"][0]["layer"] != "envelope")
    ok = runner.invoke(main, ["validate", *map(str, good)])
    assert ok.exit_code == 0 and ok.output.count("ACCEPTED") == 3
    rejected = runner.invoke(main, ["validate", str(good[0]), str(bad)])
    assert rejected.exit_code == 1 and "REJECTED" in rejected.output and "1 accepted, 1 rejected" in rejected.output
    as_json = runner.invoke(main, ["validate", "--json", str(bad)])
    [report] = json.loads(as_json.output)
    assert as_json.exit_code == 1 and not report["accepted"]
    assert all(e["pointer"].startswith("/") and e["reason"] and e["line"] for e in report["errors"])


def test_validate_with_an_added_schema_folder(tmp_path):
    invoice = tmp_path / "invoice.xml"
    invoice.write_text("<Invoice><Number>INV-000001</Number><Amount>3</Amount></Invoice>")
    runner = CliRunner()
    assert runner.invoke(main, ["validate", str(invoice)]).exit_code == 1  # unknown without the folder
    result = runner.invoke(main, ["validate", "--schemas", str(OTHER_SCHEMAS), str(invoice)])
    assert result.exit_code == 0, result.output


def test_run_prints_a_balanced_summary(tmp_path, redis_server):
    runner = CliRunner()
    runner.invoke(main, ["generate", "--out", str(tmp_path), "--count", "50", "--seed", "12"])
    result = runner.invoke(main, ["run", "--input", str(tmp_path / "filings"), "--output", str(tmp_path / "out"),
                                  "--redis-url", redis_server.url])
    assert result.exit_code == 0, result.output
    assert "inputs 50 = accepted" in result.output and "balanced" in result.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["balanced"] and summary["inputs"] == 50 == summary["accepted"] + summary["rejected"]


def test_demo_runs_the_whole_flow(tmp_path):
    """What `make demo` runs, smaller: generate, screen with an embedded Redis, compare with the ground truth."""
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path), "--count", "80", "--seed", "4"])
    assert result.exit_code == 0, result.output
    assert "balanced" in result.output and "agree with the ground truth for 80 of 80" in result.output
    assert "IE3R01" in result.output and "IE3N99" in result.output
    assert json.loads((tmp_path / "results" / "summary.json").read_text())["inputs"] == 80


def test_generate_plants_only_the_chosen_defects(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["generate", "--out", str(tmp_path), "--count", "200", "--seed", "6",
                                  "--defect-rate", "0.5", "--envelope-rate", "0", "--defects",
                                  "vague-description,container-check-digit"])
    assert result.exit_code == 0, result.output
    labels = [json.loads(line) for line in (tmp_path / "labels.jsonl").open()]
    planted = {d["kind"] for label in labels for d in label["defects"]}
    assert planted == {"vague-description", "container-check-digit"}
    bad = runner.invoke(main, ["generate", "--out", str(tmp_path / "x"), "--count", "1", "--defects", "nonsense"])
    assert bad.exit_code == 2 and "unknown defect" in bad.output
