"""The scenario set written independently of the generator (tests/scenarios) and the one command that
measures detection on it (bench/scenarios.py, `make scenarios`), small.

The set: 150 risky consignments over 15 patterns written from public typologies, honest-but-unusual
decoys and ordinary clean traffic, as ENS filings with their containers' DCSA histories. Every filing
must be valid against the schema, every label must name a written filing, and the same seed must give
the same files. The bench runs the product's backtest over it and over the demo's traffic; the report
must give recall for each of the 15 patterns and each rule's share of clean referrals with its flag.
No recall target is asserted here: detection is still being improved; the numbers are recorded in
tests/scenarios/data/README.md.
"""
from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from bench.scenarios import scenario_builder

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "tests" / "scenarios"
BENCH = ROOT / "bench" / "scenarios.py"

pytestmark = pytest.mark.slow


build = scenario_builder()  # tests/scenarios/build.py


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The set, small: all 150 risky consignments, a tenth of the decoys, 60 clean filings."""
    corpus = tmp_path_factory.mktemp("set") / "scenarios"
    return corpus, build.build(corpus, seed=2026, clean=600, scale=0.1)


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """`bench/scenarios.py` once, small: the set built and kept, the backtest run on it and on the demo's traffic."""
    base = tmp_path_factory.mktemp("scenarios")
    done = subprocess.run([sys.executable, str(BENCH), "--clean", "120", "--scale", "0.1", "--demo-count", "120",
                           "--keep", str(base), "--json", str(base / "summary.json")],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {"base": base, "stdout": done.stdout, "summary": json.loads((base / "summary.json").read_text()),
            "report": json.loads((base / "scenarios" / "report.json").read_text()),
            "demo_report": json.loads((base / "demo" / "report.json").read_text())}


def test_every_filing_is_valid_against_the_schema(built):
    corpus, manifest = built
    schema = etree.XMLSchema(etree.parse(str(ROOT / "xsd" / "ics2-v1" / "ens.xsd")))
    written = sorted(str(p.relative_to(corpus)) for p in (corpus / "filings").rglob("*.xml"))
    assert written == sorted(f["file"] for f in manifest["files"])
    invalid = [f"{name}: {schema.error_log.last_error}" for name in written
               if not schema.validate(etree.parse(str(corpus / name)))]
    assert not invalid, "\n".join(invalid)


def test_every_label_names_a_written_filing_and_every_pattern_has_its_ten_consignments(built):
    corpus, manifest = built
    labels = [json.loads(line) for line in (corpus / "labels.jsonl").open()]
    on_disk = {str(p.relative_to(corpus / "filings")) for p in (corpus / "filings").rglob("*.xml")}
    assert sorted(x["file"] for x in labels) == sorted(on_disk)  # one label per filing, none for another
    assert {x["risk"] for x in labels if x["risk"]} == set(build.PATTERNS)
    scenarios = {}
    for x in labels:
        if x["risk"]:
            scenarios.setdefault(x["risk"], set()).add(x["scenario"])
    assert {p: len(s) for p, s in scenarios.items()} == {p: 10 for p in build.PATTERNS}
    assert manifest["risky_consignments"] == {p: 10 for p in build.PATTERNS}
    # several wordings, codes and filing kinds per pattern, not one template
    rows = list(csv.DictReader((SCENARIOS / "data" / "risky.csv").open(encoding="utf-8")))
    for pattern in build.PATTERNS:
        mine = [r for r in rows if r["pattern"] == pattern]
        assert len({r["description"] for r in mine}) >= 6 and len({r["kind"] for r in mine}) >= 2, pattern


def test_the_backtest_reports_recall_for_every_pattern_and_flags_rules_mostly_clean(measured):
    quality = measured["report"]["quality"]["candidate"]
    by_pattern = quality["by_pattern"]
    assert set(by_pattern) == set(build.PATTERNS)
    for pattern, p in by_pattern.items():
        assert p["planted"] > 0, f"{pattern}: no consignment of it was assessed"
        assert p["referred"] == p["planted"] - quality["missed_by_pattern"].get(pattern, 0)
        assert p["recall"] == round(p["referred"] / p["planted"], 4)
    assert sum(p["planted"] for p in by_pattern.values()) == quality["planted"]
    referring = [r for r in measured["report"]["rules"] if r["referrals_candidate"]]
    assert referring
    for r in referring:
        assert r["clean_referral_share"] == round(r["clean_referrals"] / r["referrals_candidate"], 4)
        assert r["mostly_clean"] == (r["clean_referrals"] * 2 > r["referrals_candidate"])
    # the bench prints it all, for the scenario set and for the demo's traffic through the same report
    scenario, demo = measured["summary"]
    assert set(scenario["by_pattern"]) == set(build.PATTERNS)
    assert scenario["mostly_clean_rules"] == [r["rule"] for r in scenario["rules"] if r["mostly_clean"]]
    assert demo["by_pattern"] and demo["traffic"].startswith("demo traffic")
    for pattern in build.PATTERNS:
        assert pattern in measured["stdout"]
    assert measured["stdout"].count("rules whose referrals are mostly clean:") == 2


def test_the_demo_traffics_container_anomalies_count_as_risk_not_as_clean_referrals(measured):
    corpus = measured["base"] / "demo"
    anomalous = {x["file"] for x in map(json.loads, (corpus / "container-labels.jsonl").open()) if x["anomaly"]}
    labels = {x["file"]: x for x in map(json.loads, (corpus / "labels.jsonl").open())}
    assert anomalous and all(labels[f]["risk"] for f in anomalous)


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_same_seed_builds_the_same_set(tmp_path):
    a = build.build(tmp_path / "a", seed=5, clean=60, scale=0.1)
    b = build.build(tmp_path / "b", seed=5, clean=60, scale=0.1)
    c = build.build(tmp_path / "c", seed=6, clean=60, scale=0.1)
    assert a == b and _digests(tmp_path / "a") == _digests(tmp_path / "b")
    assert _digests(tmp_path / "a") != _digests(tmp_path / "c")


def test_every_source_a_scenario_cites_is_listed_and_cited_in_the_readme():
    sources = {r["id"]: r for r in csv.DictReader((SCENARIOS / "data" / "sources.csv").open(encoding="utf-8"))}
    readme = (SCENARIOS / "data" / "README.md").read_text(encoding="utf-8")
    for name in ("risky.csv", "decoys.csv"):
        for row in csv.DictReader((SCENARIOS / "data" / name).open(encoding="utf-8")):
            cited = row["sources"].split()
            assert cited, f"{name} {row['id']} cites no source"
            for s in cited:
                assert s in sources, f"{name} {row['id']}: {s} not in sources.csv"
    for s, row in sources.items():
        assert s in readme and row["url"] in readme, f"{s} not cited in data/README.md"
