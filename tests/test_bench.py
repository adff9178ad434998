"""`make bench`'s first script, small: it runs to the end when xmlschema meets broken filings in its
share of the corpus (is_valid raises on XML it cannot parse), and reports each step's CPU per filing
and the CLI's next to raw lxml's."""
import subprocess
import sys
from pathlib import Path

VALIDATION = Path(__file__).resolve().parent.parent / "bench" / "validation.py"


def test_the_validation_benchmark_runs_to_the_end_over_broken_filings():
    result = subprocess.run([sys.executable, str(VALIDATION), "--count", "200", "--xmlschema-count", "200",
                             "--envelope-rate", "0.2", "--cli-runs", "1", "--skip-beam"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    rows = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    assert {"raw", "stage", "stage,", "xmlschema"} <= rows
    steps = result.stdout.split("CPU per filing by step")[1]
    for step in ("raw lxml: parse + XSD (baseline)", "guards + parse", "XSD", "summary", "data quality + record, Python",
                 "cargoscreen validate --json", "raw lxml over the files"):
        assert step in steps, step
