"""Writing generated corpora to disk: filings with their labels, and their containers' histories."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from .generator import CONTENT_DEFECTS, MODE_WEIGHTS, GeneratorSpec, generate
from .status_generator import StatusSpec, generate_status


def corpus_spec(count: int, seed: int = 1, defect_rate: float = 0.1, envelope_rate: float = 0.02,
                resubmission_rate: float = 0.02, size: str = "mixed", modes: tuple[str, ...] | None = None,
                defects: tuple[str, ...] | None = None, risk_rate: float = 0.0,
                decoy_rate: float = 0.0) -> GeneratorSpec:
    return GeneratorSpec(count=count, seed=seed, defect_rate=defect_rate, envelope_rate=envelope_rate,
                         resubmission_rate=resubmission_rate, size=size, modes=modes or tuple(MODE_WEIGHTS),
                         defects=defects or CONTENT_DEFECTS, risk_rate=risk_rate, decoy_rate=decoy_rate)


def write_corpus(out_dir: Path, count: int, seed: int = 1, defect_rate: float = 0.1, envelope_rate: float = 0.02,
                 resubmission_rate: float = 0.02, size: str = "mixed", modes: tuple[str, ...] | None = None,
                 defects: tuple[str, ...] | None = None, on_progress: Callable[[int], None] | None = None,
                 risk_rate: float = 0.0, decoy_rate: float = 0.0) -> int:
    """OUT/filings/*.xml and OUT/labels.jsonl (one label per filing)."""
    spec = corpus_spec(count, seed, defect_rate, envelope_rate, resubmission_rate, size, modes, defects, risk_rate,
                       decoy_rate)
    filings_dir = out_dir / "filings"
    filings_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "labels.jsonl").open("w", encoding="utf-8") as labels:
        for n, filing in enumerate(generate(spec), 1):
            (filings_dir / filing.name).write_bytes(filing.data)
            labels.write(json.dumps(filing.label) + "\n")
            if on_progress and (n % 200 == 0 or n == count):
                on_progress(n)
    return count


def write_container_status(out_dir: Path, count: int, seed: int = 1, anomaly_rate: float = 0.1, **corpus) -> int:
    """OUT/container-events.jsonl and OUT/container-labels.jsonl: the DCSA histories of the containers
    of the filings write_corpus writes with the same arguments (same seed, same filings)."""
    spec = corpus_spec(count, seed, **corpus)
    written = 0
    with (out_dir / "container-events.jsonl").open("w") as events, \
            (out_dir / "container-labels.jsonl").open("w") as labels:
        for history, label in generate_status(generate(spec), StatusSpec(seed=seed, anomaly_rate=anomaly_rate)):
            for event in history:
                events.write(json.dumps(event) + "\n")
            written += len(history)
            if label:
                labels.write(json.dumps({"file": label.file, "container": label.container,
                                         "anomaly": label.anomaly}) + "\n")
    return written
