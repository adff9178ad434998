"""The load and soak script, in the short form CI runs (the 30-minute run is by hand, see bench/soak.py):
it drives real service processes at an offered rate, samples as it goes, and writes its report."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
SOAK = Path(__file__).resolve().parent.parent / "bench" / "soak.py"


def test_a_short_soak_finishes_everything_and_reports_over_time(tmp_path):
    result = subprocess.run([sys.executable, str(SOAK), "--rate", "80", "--minutes", "0.5", "--workers", "1",
                             "--pool", "300", "--sample-seconds", "5", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    summary = json.loads((tmp_path / "soak.json").read_text())
    assert summary["submitted"] == 2400 and summary["lost_or_unfinished"] == 0 and summary["dead_letters"] == 0
    rows = list(csv.DictReader((tmp_path / "soak.csv").open()))
    assert len(rows) >= 5 and all(float(r["worker_rss_mb"]) > 50 for r in rows)
    assert sum(int(r["decisions"]) for r in rows) > 500
    assert (tmp_path / "soak.png").read_bytes()[:4] == b"\x89PNG"
