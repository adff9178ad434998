"""The labelled traffic the starter pack's weak weights are calibrated on: generated traffic and the
scenario set written apart from the generator, side by side in one folder.

    python bench/calibration_traffic.py --out DIR [--count 10000] [--seed 16] [--scenario-seed 2026]

Writes DIR/filings/generated/ (`cargoscreen generate --count 10000 --seed 16 --risk-rate 0.05
--decoy-rate 0.1 --container-status`) and DIR/filings/scenarios/ (tests/scenarios/, as `make
scenarios` builds it: 2,000 ordinary clean filings), with one labels.jsonl, container-events.jsonl and container-labels.jsonl
naming files under filings/, then prints the `cargoscreen rules calibrate` command to run on it.
Calibrating on the generator's traffic alone fits the weights to the generator's world (it zeroed
the explosives rules that the scenario set and outside traffic need); on both, a weight must serve
traffic the generator did not write too.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scenarios import scenario_builder  # noqa: E402

AS_OF = "2026-11-28T12:00:00"  # after both calendars: the generated traffic's and the scenario set's
SCENARIO_CLEAN = 2000  # ordinary clean filings of the scenario set, as `make scenarios` builds it


def _relabelled(path: Path, prefix: str) -> list[str]:
    rows = []
    if path.exists():
        for line in path.open(encoding="utf-8"):
            if line.strip():
                row = json.loads(line)
                row["file"] = prefix + row["file"]
                rows.append(json.dumps(row))
    return rows


def build(out: Path, count: int, seed: int, scenario_seed: int) -> str:
    exe = Path(sys.executable).with_name("cargoscreen")
    parts = {"generated": out / "parts" / "generated", "scenarios": out / "parts" / "scenarios"}
    subprocess.run([str(exe), "generate", "--out", str(parts["generated"]), "--count", str(count), "--seed", str(seed),
                    "--risk-rate", "0.05", "--decoy-rate", "0.1", "--container-status"], check=True,
                   stdout=subprocess.DEVNULL)
    scenario_builder().build(parts["scenarios"], scenario_seed, clean=SCENARIO_CLEAN)
    (out / "filings").mkdir(parents=True)
    labels, containers, events = [], [], []
    for name, part in parts.items():
        (part / "filings").rename(out / "filings" / name)
        labels += _relabelled(part / "labels.jsonl", f"{name}/")
        containers += _relabelled(part / "container-labels.jsonl", f"{name}/")
        events += [line.rstrip("\n") for line in (part / "container-events.jsonl").open(encoding="utf-8") if line.strip()]
    for file, rows in (("labels.jsonl", labels), ("container-labels.jsonl", containers),
                       ("container-events.jsonl", events)):
        (out / file).write_text("\n".join(rows) + "\n", encoding="utf-8")
    return (f"cargoscreen rules calibrate rules/risk/ics2-starter --traffic {out}/filings --labels {out}/labels.jsonl "
            f"--container-status {out}/container-events.jsonl --container-labels {out}/container-labels.jsonl "
            f"--as-of {AS_OF} --out CALIBRATED")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="an empty or new folder")
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--scenario-seed", type=int, default=2026)
    args = ap.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(f"{args.out} is not empty")
    print(build(args.out, args.count, args.seed, args.scenario_seed))


if __name__ == "__main__":
    main()
