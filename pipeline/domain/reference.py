"""Reference data behind the data-quality rules and the generator, loaded from rules/reference/.

Plain files, versioned with the rules: UN/LOCODEs (ours is a subset with functions and
coordinates; point `unlocode_file` at the full UNECE release to use all of it), HS chapters,
the vague goods-description terms, national EORI formats, and a commodity table.
"""
from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pycountry

from .. import resources

# Codes ISO 3166 does not assign but the regime uses (XI: Northern Ireland in EORI numbers).
EXTRA_COUNTRY_CODES = frozenset({"XI"})


@dataclass(frozen=True)
class Location:
    locode: str
    name: str
    country: str
    functions: str  # UNECE function classifier, e.g. "12345---": 1 port, 2 rail, 3 road, 4 airport, 5 postal
    latitude: float | None
    longitude: float | None

    def serves(self, function: str) -> bool:
        return function in self.functions


@dataclass(frozen=True)
class Commodity:
    hs6: str
    description: str
    package_type: str
    kg_per_package: float
    eur_per_kg: float
    undg: str | None = None  # UN dangerous goods number, always declared when there is one
    origins: tuple[str, ...] = ()  # the countries it is usually loaded in; empty: anywhere


@dataclass(frozen=True)
class ReferenceData:
    locations: dict[str, Location]
    countries: frozenset[str]
    hs_chapters: dict[str, str]
    vague_terms: tuple[str, ...]
    eori_formats: dict[str, tuple[re.Pattern, str, str]]  # country -> (rest of the number, in words, example)
    commodities: tuple[Commodity, ...]
    _distances: dict = field(default_factory=dict, compare=False, repr=False)

    def km_between(self, a: str, b: str) -> float | None:
        """Great-circle distance between two UN/LOCODEs that have coordinates (cached: ports repeat)."""
        key = (a, b)
        if key not in self._distances:
            la, lb = self.locations.get(a), self.locations.get(b)
            if not la or not lb or la.latitude is None or lb.latitude is None:
                self._distances[key] = None
            else:
                p1, p2 = math.radians(la.latitude), math.radians(lb.latitude)
                dp, dl = p2 - p1, math.radians(lb.longitude - la.longitude)
                h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
                self._distances[key] = 2 * 6371.0 * math.asin(math.sqrt(h))
        return self._distances[key]

    @classmethod
    def load(cls, directory: Path | None = None, unlocode_file: Path | None = None) -> "ReferenceData":
        directory = directory or resources.rules_dir() / "reference"
        return cls(
            locations=_load_locations(unlocode_file or directory / "unlocode.csv"),
            countries=frozenset(c.alpha_2 for c in pycountry.countries),
            hs_chapters={r["chapter"]: r["title"] for r in _rows(directory / "hs-chapters.csv")},
            vague_terms=tuple(
                line.strip().lower() for line in (directory / "vague-goods-descriptions.txt").read_text("utf-8").splitlines()
                if line.strip() and not line.startswith("#")),
            eori_formats={r["country"]: (re.compile(r["pattern"]), r["format"], r["example"])
                          for r in _rows(directory / "eori-formats.csv")},
            commodities=tuple(
                Commodity(r["hs6"], r["description"], r["package_type"], float(r["kg_per_package"]),
                          float(r["eur_per_kg"]), r.get("undg") or None, tuple((r.get("origins") or "").split()))
                for r in _rows(directory / "commodities.csv")),
        )


@lru_cache(maxsize=4)
def bundled_reference() -> ReferenceData:
    """The bundled reference data, loaded once per process (it is read-only)."""
    return ReferenceData.load()


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _coordinate(text: str) -> tuple[float | None, float | None]:
    """UNECE writes coordinates as 'ddmmN dddmmE'."""
    m = re.fullmatch(r"(\d{2})(\d{2})([NS])\s+(\d{3})(\d{2})([EW])", text.strip())
    if not m:
        return None, None
    lat = int(m[1]) + int(m[2]) / 60
    lon = int(m[4]) + int(m[5]) / 60
    return (-lat if m[3] == "S" else lat), (-lon if m[6] == "W" else lon)


def _load_locations(path: Path) -> dict[str, Location]:
    """Reads our CSV (with a header) or an official UNECE UN/LOCODE CodeList CSV (without one)."""
    out: dict[str, Location] = {}
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        reader = csv.reader(f)
        first = next(reader, None)
        if first is None:
            return out
        if first[0] == "locode":
            for row in reader:
                rec = dict(zip(first, row))
                lat, lon = _coordinate(rec.get("coordinates", ""))
                out[rec["locode"]] = Location(rec["locode"], rec["name"], rec["country"], rec["function"], lat, lon)
            return out
        # UNECE layout: change, country, location, name, name w/o diacritics, subdivision,
        # function, status, date, IATA, coordinates, remarks.
        for row in (first, *reader):
            if len(row) < 11 or not row[2].strip():
                continue
            code = row[1].strip() + row[2].strip()
            lat, lon = _coordinate(row[10])
            out[code] = Location(code, row[4] or row[3], row[1].strip(), row[6], lat, lon)
    return out
