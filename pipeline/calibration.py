"""`cargoscreen rules calibrate`: weak indicators' weights from a backtest on labelled traffic.

    cases = labelled_cases(traffic.filings, scorer, labels, now)
    result = calibrate(scorer, cases, target_clean_rate)        # domain/calibration.py
    write_calibrated_pack(pack_dir, out_dir, result, record)      # pack + calibration.yaml

The traffic goes through the backtest's production steps (validation, linking, enrichment,
`load_traffic`); each consignment is scored once and labelled as the backtest labels it. The
calibrated pack is the pack with a `calibration.yaml` (the weights and the record of where they
came from: the traffic's and labels' digests, the date, the command, recall and clean-referral
rate before and after), named by `calibration:` in its pack.yaml, so every decision's pack
digest covers the calibration it used.
"""
from __future__ import annotations

import hashlib
import shutil
from datetime import datetime
from pathlib import Path
from typing import Iterable

import yaml

from .backtest import consignment_label, submissions
from .domain.calibration import Calibration, Case
from .domain.scoring import Scorer, Subject
from .enrichment import EnrichedFiling

CALIBRATION_FILE = "calibration.yaml"


def labelled_cases(filings: Iterable[EnrichedFiling], scorer: Scorer, labels: dict[str, dict],
                   now: datetime) -> list[Case]:
    """Each labelled consignment (not a re-submission) with the rules that fire on it."""
    cases = []
    for f in filings:
        label = consignment_label(f, labels)
        if label is None or label.get("resubmission_of"):
            continue
        fired, _ = scorer.fired(Subject(f.record, f.facts, f.container_status, now.timestamp()))
        cases.append(Case(f.filing_code, tuple(r.id for r in fired), bool(label.get("risk")), label.get("risk")))
    return cases


def with_container_anomalies(labels: dict[str, dict], anomalies: Iterable[tuple[str, str]]) -> dict[str, dict]:
    """Labels where a filing whose container the status generator gave an anomaly (other than no
    events at all, which is common) is risky: the generator labels such filings clean, their
    containers apart."""
    out = dict(labels)
    for file, anomaly in anomalies:
        if anomaly != "container-unknown" and file in out and not out[file].get("risk"):
            out[file] = {**out[file], "risk": f"container-{anomaly}"}
    return out


def traffic_digest(source: Path) -> str:
    """Names the traffic: a SHA-256 over each filing's name and the SHA-256 of its bytes, in order."""
    h = hashlib.sha256()
    for name, payload in sorted(submissions(source)):
        h.update(f"{name}\0{hashlib.sha256(payload).hexdigest()}\n".encode())
    return "sha256:" + h.hexdigest()


def file_digest(path: Path) -> str:
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_calibrated_pack(pack_dir: Path, out_dir: Path, result: Calibration, record: dict) -> Path:
    """The pack in out_dir (a copy, or the pack itself when out_dir is pack_dir) with its calibration
    file written and named in pack.yaml."""
    pack_dir, out_dir = Path(pack_dir).resolve(), Path(out_dir).resolve()
    if out_dir != pack_dir:
        shutil.copytree(pack_dir, out_dir, dirs_exist_ok=True)
    header = ("# Written by `cargoscreen rules calibrate` (pipeline/calibration.py): the weights of the weak\n"
              "# indicators, searched on labelled traffic, and the record of where they came from. Run the\n"
              "# command again rather than editing by hand; strong indicators are not calibrated.\n")
    body = {"record": record, "weights": {r: _number(w) for r, w in sorted(result.weights.items())}}
    (out_dir / CALIBRATION_FILE).write_text(header + yaml.safe_dump(body, sort_keys=False, allow_unicode=True),
                                            encoding="utf-8")
    manifest = out_dir / "pack.yaml"
    text = manifest.read_text(encoding="utf-8")
    if not any(line.startswith("calibration:") for line in text.splitlines()):
        manifest.write_text(text.rstrip("\n") + f"\n\n# Weights of the weak indicators: `cargoscreen rules calibrate`."
                                                 f"\ncalibration: {CALIBRATION_FILE}\n", encoding="utf-8")
    return out_dir


def _number(weight: float) -> int | float:
    return int(weight) if float(weight).is_integer() else weight
