"""The operations files: alert rules checked and unit-tested by promtool (Debian's prometheus), the
Prometheus configuration checked, every alert with its runbook section, the dashboard's queries
valid PromQL over metrics that exist."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cargoscreen import metrics

OPS = Path(__file__).resolve().parent.parent / "ops"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(not PROMTOOL and not os.environ.get("CARGOSCREEN_REQUIRE_TOOLS"),
                                    reason="Debian's prometheus (promtool) is not installed")


def promtool(*args: str, cwd: Path = OPS / "prometheus") -> str:
    result = subprocess.run([PROMTOOL or "promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def alerts() -> list[dict]:
    return yaml.safe_load((OPS / "prometheus" / "alerts.yml").read_text())["groups"][0]["rules"]


def exported() -> set[str]:
    names = set()
    for family in metrics.REGISTRY.collect():
        names |= {s.name for s in family.samples} | {family.name + ("_total" if family.type == "counter" else "")}
    return names


@needs_promtool
def test_alert_rules_pass_promtool_and_their_unit_tests():
    assert f"SUCCESS: {len(alerts())} rules found" in promtool("check", "rules", "alerts.yml")
    assert "SUCCESS" in promtool("test", "rules", "alerts.test.yml")
    assert "is valid prometheus config file syntax" in promtool("check", "config", "prometheus.yml")


def test_every_alert_has_a_runbook_section_and_uses_real_metrics():
    sections = {h.lower() for h in re.findall(r"^## (\w+)$", (OPS / "runbooks" / "alerts.md").read_text(), re.M)}
    tested = (OPS / "prometheus" / "alerts.test.yml").read_text()
    for rule in alerts():
        assert rule["annotations"]["runbook_url"] == f"ops/runbooks/alerts.md#{rule['alert'].lower()}"
        assert rule["alert"].lower() in sections, rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert set(re.findall(r"cargoscreen_[a-z_]+", rule["expr"])) <= exported(), rule["alert"]
    covered = set(re.findall(r"alertname: (\w+)", tested))
    assert covered == {r["alert"] for r in alerts()}  # each alert has its case in the unit tests


@needs_promtool
def test_dashboard_queries_are_valid_promql_over_exported_metrics(tmp_path):
    dashboard = json.loads((OPS / "grafana" / "cargoscreen.json").read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(dashboard["panels"]) >= 15 and all(p["datasource"]["uid"] == "${datasource}"
                                                  for p in dashboard["panels"])
    for q in queries:
        assert set(re.findall(r"cargoscreen_[a-z_]+", q)) <= exported(), q
    # promtool checks PromQL in rule files: each query as a recording rule
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:query_{i}", "expr": q}
                                                        for i, q in enumerate(queries)]}]}
    (tmp_path / "dashboard-rules.yml").write_text(yaml.safe_dump(rules))
    assert f"SUCCESS: {len(queries)} rules found" in promtool("check", "rules", "dashboard-rules.yml", cwd=tmp_path)
