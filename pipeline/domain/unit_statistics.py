"""Reference statistics of goods, learned from traffic: unit values and masses per package.

Three measures per goods item, each a positive number:

    eur_per_kg       declared value in euros (ECB rate of the filing's day, currency.py) / gross mass
    eur_per_piece    declared value / count, where the package type counts pieces (unpacked goods)
    kg_per_package   gross mass / number of packages, per package type

Per cell -- a measure, an HS code at one level (subheading: 6 digits, heading: 4, chapter: 2)
and, for the per-package and per-piece measures, a package type -- the learner keeps robust
statistics in log space: unit values and masses are skewed and multiplicative, so the median
of the logarithms and 1.4826 x their median absolute deviation (the MAD scaled to a normal
sigma) describe the bulk without letting a few wild declarations move them. Cells with fewer
observations than a minimum count are not kept. A goods item is compared with the most
specific cell there is: its subheading, else its heading, else its chapter, and the
comparison says which one it used.

Pure: no files, no Beam. `pipeline/statistics_learn.py` reads traffic and writes the table.
"""
from __future__ import annotations

import csv
import io
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Iterator

EUR_PER_KG, EUR_PER_PIECE, KG_PER_PACKAGE = "eur_per_kg", "eur_per_piece", "kg_per_package"
MEASURES = (EUR_PER_KG, EUR_PER_PIECE, KG_PER_PACKAGE)
UNITS = {EUR_PER_KG: "EUR/kg", EUR_PER_PIECE: "EUR/piece", KG_PER_PACKAGE: "kg/package"}
LEVELS = (("subheading", 6), ("heading", 4), ("chapter", 2))  # the fallback chain, most specific first
# Goods whose price is not a function of their mass: works of art, collectors' pieces and antiques
# (chapter 97), pearls and precious or semi-precious stones (7101-7104: cut, colour and clarity make
# the price). No value per kg is learned or judged for them.
PRICED_BY_THE_PIECE = ("97", "7101", "7102", "7103", "7104")
MAD_TO_SIGMA = 1.4826  # the MAD of a normal distribution is 0.6745 sigma
COLUMNS = ("measure", "level", "hs", "package_type", "n", "median", "log_sigma", "q05", "q25", "q75", "q95")


@dataclass(frozen=True)
class Robust:
    """Robust statistics of a sample of positive numbers."""

    n: int
    median: float
    log_sigma: float  # 1.4826 x the median absolute deviation of the logarithms
    q05: float
    q25: float
    q75: float
    q95: float


def robust(values: Iterable[float]) -> Robust | None:
    """Median, log-space robust sigma and quantiles of the positive values (None without any)."""
    xs = sorted(v for v in values if v > 0 and math.isfinite(v))
    if not xs:
        return None
    logs = [math.log(v) for v in xs]
    centre = statistics.median(logs)
    sigma = MAD_TO_SIGMA * statistics.median(abs(x - centre) for x in logs)
    cuts = statistics.quantiles(xs, n=20, method="inclusive") if len(xs) > 1 else [xs[0]] * 19
    return Robust(len(xs), math.exp(centre), sigma, cuts[0], cuts[4], cuts[14], cuts[18])


@dataclass(frozen=True)
class Cell:
    """The reference of one measure for one HS code at one level (and one package type)."""

    measure: str
    level: str  # subheading, heading, chapter
    hs: str
    package_type: str  # "" for value per kg
    stats: Robust

    def describe(self, min_log_sigma: float = 0.0) -> str:
        """What evidence names: 'subheading 851713, n=412, median 350 EUR/kg, log sigma 0.31' or
        'chapter 85 fallback, ...'; the spread a deviation was measured in (the floor, if it applied)."""
        where = f"{self.level} {self.hs}" + (" fallback" if self.level != LEVELS[0][0] else "")
        of = f" in {self.package_type}" if self.package_type else ""
        sigma = self.stats.log_sigma
        spread = f"log sigma {sigma:.2f}" if sigma >= min_log_sigma else \
            f"log sigma {min_log_sigma:.2f} (the floor; learned {sigma:.2f})"
        return f"{where}{of}, n={self.stats.n}, median {self.stats.median:.4g} {UNITS[self.measure]}, {spread}"


def valued_by_mass(hs_code: str | None) -> bool:
    """Whether a value per kilogram says anything about goods of this code (PRICED_BY_THE_PIECE)."""
    return not (hs_code or "").startswith(PRICED_BY_THE_PIECE)


# -- observations -------------------------------------------------------------------------------
def observations(item, piece_types: frozenset[str] | set[str]) -> Iterator[tuple[str, str, float]]:
    """(measure, package type, value) of one goods item (a screening record's GoodsLine)."""
    if not item.hs_code or len(item.hs_code) < 6:
        return
    value, mass, packages = item.value, item.gross_mass, item.packages
    euros = item.value_eur if value and value > 0 else None
    if euros and mass and mass > 0 and valued_by_mass(item.hs_code):
        yield EUR_PER_KG, "", euros / mass
    types = set(item.package_types)
    if len(types) != 1 or not packages or packages <= 0:
        return  # mixed package types: no one type the mass or count belongs to
    (kind,) = types
    if mass and mass > 0:
        yield KG_PER_PACKAGE, kind, mass / packages
    if euros and kind in piece_types:
        yield EUR_PER_PIECE, kind, euros / packages


def learn(observed: Iterable[tuple[str, str, str, float]], min_count: int) -> list[Cell]:
    """Cells of every level from (measure, HS code, package type, value) observations; those with
    fewer than min_count observations are left out (the lookup falls back past them)."""
    samples: dict[tuple[str, str, str, str], list[float]] = defaultdict(list)
    for measure, hs, package_type, value in observed:
        for level, digits in LEVELS:
            if len(hs) >= digits:
                samples[(measure, level, hs[:digits], package_type)].append(value)
    cells = []
    for (measure, level, hs, package_type), values in samples.items():
        stats = robust(values)
        if stats is not None and stats.n >= min_count:
            cells.append(Cell(measure, level, hs, package_type, stats))
    order = {m: i for i, m in enumerate(MEASURES)}
    return sorted(cells, key=lambda c: (order[c.measure], c.hs, len(c.hs), c.package_type))


# -- the table as a file ------------------------------------------------------------------------
def to_csv(cells: Iterable[Cell], header: Iterable[str] = ()) -> str:
    """The table as CSV, after `# ` comment lines saying where it came from."""
    out = io.StringIO()
    for line in header:
        out.write(f"# {line}\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for c in cells:
        s = c.stats
        writer.writerow([c.measure, c.level, c.hs, c.package_type, s.n, f"{s.median:.6g}", f"{s.log_sigma:.4f}",
                         f"{s.q05:.6g}", f"{s.q25:.6g}", f"{s.q75:.6g}", f"{s.q95:.6g}"])
    return out.getvalue()


def from_csv(text: str) -> list[Cell]:
    """Cells from the CSV to_csv writes (comment lines skipped). Raises ValueError naming the line."""
    numbered = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if not line.startswith("#")]
    reader = csv.DictReader(line for _, line in numbered)
    missing = set(COLUMNS) - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"needs columns {', '.join(COLUMNS)} (missing {', '.join(sorted(missing))})")
    cells, levels = [], dict(LEVELS)
    for (number, _), row in zip(numbered[1:], reader):
        try:
            measure, level, hs = row["measure"], row["level"], row["hs"]
            if measure not in MEASURES or level not in levels or len(hs) != levels[level] or not hs.isdigit():
                raise ValueError(f"measure {measure!r}, level {level!r} and hs {hs!r} do not fit together")
            stats = Robust(int(row["n"]), *(float(row[k]) for k in COLUMNS[5:]))
            if stats.median <= 0 or stats.log_sigma < 0:
                raise ValueError("median must be positive and log_sigma not negative")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"line {number}: {exc}") from None
        cells.append(Cell(measure, level, hs, row["package_type"] or "", stats))
    return cells


# -- lookup -------------------------------------------------------------------------------------
class UnitReference:
    """The learned cells, looked up through the fallback chain subheading -> heading -> chapter.

    min_count: cells with fewer observations are passed over (a pack may ask for more than the
    learner kept); min_log_sigma: the spread a deviation is measured in is at least this much
    (a narrow learned spread, e.g. of generated traffic, would make ordinary price differences
    look like many sigmas).
    """

    def __init__(self, cells: Iterable[Cell], min_count: int = 1, min_log_sigma: float = 0.0):
        self.min_log_sigma = min_log_sigma
        self._cells = {(c.measure, c.hs, c.package_type): c for c in cells if c.stats.n >= min_count}

    def __len__(self) -> int:
        return len(self._cells)

    def cells(self) -> list[Cell]:
        """Every cell kept (min_count applied): what SQL backtests join goods against (rule_sql.py)."""
        return list(self._cells.values())

    def cell(self, measure: str, hs_code: str | None, package_type: str = "") -> Cell | None:
        """The most specific cell for the code (callers on the hot path remember what it found)."""
        for _, digits in LEVELS:
            if hs_code and len(hs_code) >= digits:
                found = self._cells.get((measure, hs_code[:digits], package_type))
                if found is not None:
                    return found
        return None

    def spread(self, cell: Cell) -> float:
        """The log sigma a deviation from the cell is measured in: the learned one, at least the floor."""
        return max(cell.stats.log_sigma, self.min_log_sigma, 1e-9)

    def z(self, cell: Cell, value: float) -> float:
        """How many (robust, log-space) standard deviations the value lies from the cell's median."""
        return math.log(value / cell.stats.median) / self.spread(cell)

    def describe(self, cell: Cell) -> str:
        return cell.describe(self.min_log_sigma)
