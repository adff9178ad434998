"""`cargoscreen rules`: check, publish, status, activate and backtest, as a risk expert uses them."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cargoscreen import resources
from cargoscreen.cli import main

from .conftest import STARTER_VERSION

STARTER = resources.rules_dir() / "risk" / "ics2-starter"


@pytest.fixture
def candidate(tmp_path) -> Path:
    pack = Path(shutil.copytree(STARTER, tmp_path / "candidate"))
    manifest = pack / "pack.yaml"
    manifest.write_text(manifest.read_text().replace(f"version: {STARTER_VERSION}", "version: 99.1.0"))
    (pack / "rules" / "zz-new.yaml").write_text("""rules:
  - id: NEW-TOYS
    title: Toys (product safety campaign)
    area: health-safety
    owner: tests
    weight: 60
    decision: control
    when: any(goods, prefixed(hs_code, '9503'))
    examples:
      fires: [{goods: [{description: Plastic toys, hs_code: "950300"}]}]
      passes: [{goods: [{description: Tyres, hs_code: "401110"}]}]
""")
    return pack


def test_check_accepts_the_starter_pack():
    result = CliRunner().invoke(main, ["rules", "check", str(STARTER)])
    assert result.exit_code == 0, result.output
    assert f"OK ics2-starter@{STARTER_VERSION}+" in result.output and "examples pass" in result.output


def test_check_refuses_a_broken_pack_naming_file_line_and_rule(candidate):
    rules = candidate / "rules" / "zz-new.yaml"
    rules.write_text(rules.read_text().replace("prefixed(hs_code, '9503')", "prefixed(hs_cod, '9503')"))
    result = CliRunner().invoke(main, ["rules", "check", str(candidate)])
    assert result.exit_code == 1
    assert "rules/zz-new.yaml:8: rule NEW-TOYS: condition: column 21: unknown name 'hs_cod'; did you mean hs_code?" \
        in result.output


def test_publish_status_and_rollback(candidate, redis_server, redis_client):
    runner = CliRunner()
    url = ["--redis-url", redis_server.url]
    first = runner.invoke(main, ["rules", "publish", str(STARTER), *url])
    assert first.exit_code == 0 and "published and active" in first.output
    second = runner.invoke(main, ["rules", "publish", str(candidate), *url])
    assert second.exit_code == 0 and "ics2-starter@99.1.0" in second.output
    status = runner.invoke(main, ["rules", "status", *url])
    assert "active: ics2-starter@99.1.0" in status.output and f"ics2-starter@{STARTER_VERSION}" in status.output
    back = runner.invoke(main, ["rules", "activate", f"ics2-starter@{STARTER_VERSION}", *url])
    assert back.exit_code == 0
    assert f"active: ics2-starter@{STARTER_VERSION}" in runner.invoke(main, ["rules", "status", *url]).output
    unknown = runner.invoke(main, ["rules", "activate", "ics2-starter@7.0.0", *url])
    assert unknown.exit_code == 3 and "not published" in unknown.output


def test_publish_refuses_a_pack_whose_examples_fail(candidate, redis_server, redis_client):
    rules = candidate / "rules" / "zz-new.yaml"
    rules.write_text(rules.read_text().replace("hs_code: \"401110\"", "hs_code: \"950310\""))
    result = CliRunner().invoke(main, ["rules", "publish", str(candidate), "--redis-url", redis_server.url])
    assert result.exit_code == 1 and "nothing changed" in result.output
    assert "rule NEW-TOYS: example should not fire but does" in result.output
    assert redis_client.get("cs:rules:active") is None


def test_backtest_compares_with_the_pack_active_in_redis(candidate, tmp_path, redis_server, redis_client):
    runner = CliRunner()
    corpus = tmp_path / "traffic"
    assert runner.invoke(main, ["generate", "--out", str(corpus), "--count", "60", "--seed", "2"]).exit_code == 0
    assert runner.invoke(main, ["rules", "publish", str(candidate), "--redis-url", redis_server.url]).exit_code == 0
    result = runner.invoke(main, ["rules", "backtest", str(corpus / "filings"), "--candidate", str(candidate),
                                  "--redis-url", redis_server.url])
    assert result.exit_code == 0, result.output
    assert "active ics2-starter@99.1.0" in result.output and "0 new referrals, 0 dropped" in result.output


def labelled_traffic(folder: Path, count: int, seed: int, decoy_rate: float) -> Path:
    """Generated filings with planted risks and look-alikes, their labels and container histories."""
    generated = CliRunner().invoke(main, ["generate", "--out", str(folder), "--count", str(count), "--seed", str(seed),
                                          "--risk-rate", "0.1", "--decoy-rate", str(decoy_rate), "--container-status",
                                          "--anomaly-rate", "0"])
    assert generated.exit_code == 0, generated.output
    return folder


def test_backtest_reports_the_new_rule_and_its_cost_on_labelled_traffic(candidate, tmp_path):
    runner = CliRunner()
    corpus = labelled_traffic(tmp_path / "traffic", 400, 5, 0.1)
    report_path = tmp_path / "report.json"
    result = runner.invoke(main, ["rules", "backtest", str(corpus / "filings"), "--candidate", str(candidate),
                                  "--container-status", str(corpus / "container-events.jsonl"),
                                  "--labels", str(corpus / "labels.jsonl"), "--json", str(report_path)])
    assert result.exit_code == 0, result.output
    assert "NEW-TOYS" in result.output and "new referrals" in result.output and "recall" in result.output
    report = json.loads(report_path.read_text())
    toys = next(r for r in report["rules"] if r["rule"] == "NEW-TOYS")
    assert toys["hits_candidate"] > 0 and toys["hits_active"] == 0 and toys["weight_active"] is None
    assert len(report["new_referrals"]) == toys["only_because"] > 0
    assert report["quality"]["candidate"]["clean_referral_rate"] > report["quality"]["active"]["clean_referral_rate"]
    assert report["quality"]["active"]["recall"] >= 0.95


def test_bundled_packs_are_named_from_anywhere(tmp_path, monkeypatch):
    """`cargoscreen rules check ics2-starter` works outside the checkout; a name that is neither a
    folder nor a bundled pack is a usage error naming the bundled ones."""
    monkeypatch.chdir(tmp_path)
    ok = CliRunner().invoke(main, ["rules", "check", "ics2-starter"])
    assert ok.exit_code == 0 and f"OK ics2-starter@{STARTER_VERSION}+" in ok.output
    wrong = CliRunner().invoke(main, ["rules", "check", "no-such-pack"])
    assert wrong.exit_code == 3 and "bundled: ics2-starter" in wrong.output


def test_check_refuses_pack_rules_past_the_bounds_and_questions_an_answer_cannot_carry(candidate):
    """The bounds of risk information hold for pack rules too, located like any other problem."""
    rules = candidate / "rules" / "zz-new.yaml"
    rules.write_text(rules.read_text().replace(
        "when: any(goods, prefixed(hs_code, '9503'))",
        "when: any(goods, prefixed(hs_code, '9503') and count(goods, gross_mass > 5) > 1)\n"
        "    ask: \"Which toys?\\a\"").replace("decision: control", "decision: request-for-information"))
    result = CliRunner().invoke(main, ["rules", "check", str(candidate)])
    assert result.exit_code == 1
    assert "rules/zz-new.yaml:8: rule NEW-TOYS: condition: column 1: any(goods, ...) may evaluate" in result.output
    assert "rules/zz-new.yaml:9: rule NEW-TOYS: the question holds a control character (U+0007)" in result.output


def test_calibrate_weights_weak_indicators_within_the_clean_referral_target(tmp_path):
    """`rules calibrate` on real generated labelled traffic: a calibrated pack that records where its
    weights came from, and on that traffic refers at most the target share of clean consignments."""
    # The product's default target. The backtest replays party history, so PH-001 (strong) refers the
    # generator's "legal ammunition" look-alikes, ammunition posted to a private person by a shipper
    # new to the traffic: 4 of 173 clean consignments here, above the 2% this test once asked for.
    TARGET = 0.03
    runner = CliRunner()
    corpus = labelled_traffic(tmp_path / "traffic", 300, 11, 0.2)
    out = tmp_path / "calibrated"
    args = ["rules", "calibrate", str(STARTER), "--traffic", str(corpus / "filings"),
            "--labels", str(corpus / "labels.jsonl"), "--container-status", str(corpus / "container-events.jsonl"),
            "--target-clean-rate", str(TARGET),
            "--as-of", "2026-11-28T12:00:00", "--out", str(out)]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    import hashlib

    import yaml
    calibration = yaml.safe_load((out / "calibration.yaml").read_text())
    record = calibration["record"]
    assert record["labels"]["digest"] == "sha256:" + hashlib.sha256((corpus / "labels.jsonl").read_bytes()).hexdigest()
    assert record["traffic"]["digest"].startswith("sha256:") and record["traffic"]["filings"] == 300
    assert record["target_clean_rate"] == TARGET and record["search"]["seed"] == 0 and record["calibrated_at"]
    assert "rules calibrate" in record["command"] and record["after"]["clean_referral_rate"] <= TARGET
    assert "calibration: calibration.yaml" in (out / "pack.yaml").read_text()
    assert all(w < 40 for w in calibration["weights"].values())  # weak indicators stay below every threshold
    # The calibrated pack, scored by the backtest as production scores, keeps the constraint.
    report_path = tmp_path / "report.json"
    backtest = runner.invoke(main, ["rules", "backtest", str(corpus / "filings"), "--candidate", str(out),
                                    "--container-status", str(corpus / "container-events.jsonl"),
                                    "--labels", str(corpus / "labels.jsonl"), "--as-of", "2026-11-28T12:00:00",
                                    "--json", str(report_path)])
    assert backtest.exit_code == 0, backtest.output
    quality = json.loads(report_path.read_text())["quality"]["candidate"]
    assert quality["clean_referral_rate"] <= TARGET and quality["clean"] == record["after"]["clean"] > 0
    assert quality["recall"] == record["after"]["recall"] and quality["planted"] == record["after"]["planted"] > 0
    # The same seed on the same traffic gives the same weights.
    again = runner.invoke(main, args[:-1] + [str(tmp_path / "again")])
    assert again.exit_code == 0, again.output
    assert yaml.safe_load((tmp_path / "again" / "calibration.yaml").read_text())["weights"] == calibration["weights"]
