"""Learning a pack's reference statistics (unit values, masses per package) from traffic.

    learned = learn_statistics(source, settings, labels=None, min_count=20)
    Path(out).write_text(learned.csv(command))

The source is a run's Parquet archive (its accepted filings, with their bytes) or a folder of
filings; each filing is validated as the pipeline does, so only accepted filings count, each
once (a re-sent filing is read once). With labels (the generator's labels.jsonl, or any file
of {"file", "risk", "consignment"} lines), the filings of risky consignments are left out;
without them every accepted filing counts and the robust statistics (medians, MADs) keep the
few unusual ones from moving the reference. The table says in its header what it was learned
from, so a pack carries its own provenance. The statistics themselves: domain/unit_statistics.py.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .backtest import submissions
from .config import Settings
from .domain.reference import ReferenceData
from .domain.currency import bundled_euro_rates, in_euros
from .domain.unit_statistics import LEVELS, MEASURES, Cell, learn, observations, to_csv
from .validation import FilingValidator, Submission

FORMAT = "cargoscreen unit statistics 1"


@dataclass
class Learned:
    cells: list[Cell]
    source: str
    kind: str  # "archive" or "folder"
    min_count: int
    read: int = 0
    rejected: int = 0
    resent: int = 0
    risky: int = 0  # left out: in a consignment labelled risky
    used: int = 0
    goods: int = 0
    observed: Counter = field(default_factory=Counter)  # measure -> observations
    first: float | None = None  # issue times of the filings used (epoch)
    last: float | None = None

    def header(self, command: str) -> list[str]:
        def day(epoch):
            return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d") if epoch is not None else "-"
        cells = Counter((c.measure, c.level) for c in self.cells)
        return [
            FORMAT,
            f"learned by: {command}",
            f"source: {self.kind} {self.source}; filings read {self.read}, used {self.used} "
            f"(rejected {self.rejected}, re-sent {self.resent}, in risky consignments {self.risky}); goods items {self.goods}",
            f"filings issued: {day(self.first)} to {day(self.last)}",
            f"min count per cell: {self.min_count}; fallback: {' -> '.join(name for name, _ in LEVELS)}",
            "observations: " + ", ".join(f"{m} {self.observed[m]}" for m in MEASURES),
            "cells: " + ", ".join(f"{m} {'/'.join(str(cells[(m, lv)]) for lv, _ in LEVELS)}" for m in MEASURES)
            + " (subheading/heading/chapter)",
            "median and quantiles in the measure's unit; log_sigma = 1.4826 x MAD of the natural logarithms",
        ]

    def csv(self, command: str) -> str:
        return to_csv(self.cells, self.header(command))


def _risky(labels: dict[str, dict]) -> set[str]:
    """The files of consignments labelled risky: a risky filing's own, and those of its consignment."""
    consignments = {x.get("consignment") for x in labels.values() if x.get("risk") and x.get("consignment")}
    return {name for name, x in labels.items() if x.get("risk") or (x.get("consignment") in consignments
                                                                      and x.get("consignment"))}


def read_labels(path: Path) -> dict[str, dict]:
    return {x["file"]: x for x in (json.loads(line) for line in Path(path).open(encoding="utf-8") if line.strip())}


def learn_statistics(source: Path, settings: Settings, labels: dict[str, dict] | None = None,
                     min_count: int = 20) -> Learned:
    source = Path(source)
    archive = (source / "filings").is_dir() and any((source / "filings").glob("date=*"))
    validator = FilingValidator(settings)
    pieces = frozenset(code for code, t in ReferenceData.load().package_types.items() if t.kind == "unpacked")
    risky = _risky(labels) if labels else set()
    rates = bundled_euro_rates()
    learned = Learned([], str(source), "archive" if archive else "folder", min_count)
    observed, seen = [], set()
    for name, payload in submissions(source):
        learned.read += 1
        outcome = validator.validate(Submission(name, payload))
        record = outcome.record
        if not outcome.accepted or record is None:
            learned.rejected += 1
            continue
        identity = (outcome.filer, outcome.summary.lrn, outcome.summary.digest)
        if identity in seen:
            learned.resent += 1
            continue
        seen.add(identity)
        if risky and (name in risky or Path(name).name in risky):  # labels name files, a folder may hold them deeper
            learned.risky += 1
            continue
        learned.used += 1
        if record.issued_at:
            learned.first = min(learned.first or record.issued_at, record.issued_at)
            learned.last = max(learned.last or record.issued_at, record.issued_at)
        for item in in_euros(record, rates).goods:
            learned.goods += 1
            for measure, package_type, value in observations(item, pieces):
                learned.observed[measure] += 1
                observed.append((measure, item.hs_code[:6], package_type, value))
    learned.cells = learn(observed, min_count)
    return learned
