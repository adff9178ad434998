"""Reference data behind the data-quality rules, the enrichment and the generator, from rules/reference/.

Code lists from their maintainers, each file's source, edition and licence in
rules/reference/SOURCES.csv and how to rebuild it in rules/reference/README.md:
  - UN/LOCODE (UNECE): every location with its function classifier and, where published, its
    position (`unlocode.csv.gz`, ~116,000 codes);
  - the HS nomenclature, 2022 edition (WCO, via UN Comtrade): chapters, headings, subheadings;
  - package types (UN/ECE Recommendation 21), each marked package, bulk or unpacked;
  - UN numbers of dangerous goods (the UN Model Regulations' list as in ADR Table A);
  - the customs offices of the EU Customs Office List (European Commission), with their roles;
and our own tables: the vague goods-description terms, national EORI formats, commodities the
generator draws from, and a curated list of places whose positions fill the code list's gaps.
Loaded once per process (`bundled_reference()`), looked up by dictionary.
"""
from __future__ import annotations

import csv
import gc
import gzip
import hashlib
import math
import re
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

import pycountry

from .. import resources

# Codes ISO 3166 does not assign but the regime uses (XI: Northern Ireland in EORI numbers).
EXTRA_COUNTRY_CODES = frozenset({"XI"})
EU_MEMBER_STATES = frozenset("AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK".split())
# Where an office of first entry can be: the member states, and Northern Ireland (XI), where the
# Union's entry rules apply. Customs offices in Greece are GR, as the Customs Office List writes them.
ENTRY_OFFICE_COUNTRIES = EU_MEMBER_STATES | {"XI"}
ENTRY_ROLE = "ENT"  # the Customs Office List's role of an office of entry
HS_EDITION = "HS 2022"


class Location(NamedTuple):
    locode: str
    name: str
    country: str
    functions: str  # UNECE function classifier, e.g. "12345---": 1 port, 2 rail, 3 road, 4 airport, 5 postal, 7 fixed transport, B border
    latitude: float | None
    longitude: float | None
    subdivision: str = ""  # ISO 3166-2 code after the country's, as the code list publishes it ("43": UA-43, Crimea)

    def serves(self, function: str) -> bool:
        return function in self.functions


class LocationTable(Mapping):
    """UN/LOCODE -> Location over the whole code list. Rows are kept as text and read on first
    use: validation only asks whether a code exists, and 116,000 parsed rows would cost every
    worker a second and 40 MB at start. With the list's codes file beside it (codes_file_of), the
    rows themselves are read only when a place is first asked for: `cargoscreen validate` then
    starts without unzipping and indexing the list (90 ms of its start-up)."""

    def __init__(self, rows: dict[str, str] | None = None, *, source: Path | None = None, codes: str = ""):
        self._rows = rows  # code -> its CSV line (our layout, see reference_build.Place.row); None: not read yet
        self._source = source  # where the rows are read from when first needed
        self._codes = codes  # every code, sorted, one per line (6 characters each): answers `in` until then
        self._read: dict[str, Location] = {}

    def _all(self) -> dict[str, str]:
        if self._rows is None:
            self._rows = _read_rows(self._source)
        return self._rows

    def read(self) -> "LocationTable":
        """The rows read now: a worker reads them in its set-up rather than on its first filing."""
        self._all()
        return self

    def __contains__(self, code) -> bool:
        if self._rows is None:
            return isinstance(code, str) and _in_sorted_lines(self._codes, code)
        return code in self._rows

    def __getitem__(self, code: str) -> Location:
        try:
            return self._read[code]
        except KeyError:
            pass
        line = self._all()[code]  # KeyError for an unknown code, as a Mapping should
        _, name, subdivision, function, _, coordinates, _ = next(csv.reader([line]))
        lat, lon = (float(x) for x in coordinates.split()) if coordinates else (None, None)
        location = self._read[code] = Location(code, name, code[:2], function, lat, lon, subdivision)
        return location

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._rows) if self._rows is not None else len(self._codes) // CODE_LINE

    def in_country(self, country: str) -> list[Location]:
        """Every place of one country (read on demand: a scan of the codes, then only its rows)."""
        return [self[code] for code in self._all() if code.startswith(country)]

    @classmethod
    def from_file(cls, path: Path) -> "LocationTable":
        """Our layout, gzipped or not (`cargoscreen reference build unlocode` makes it from an
        official UNECE release). Its rows are read when first needed if its codes file is beside
        it and was made from this very file; otherwise now."""
        codes = read_codes_file(path)
        return cls(source=path, codes=codes) if codes is not None else cls(_read_rows(path))


CODE_LINE = 6  # a UN/LOCODE and its newline


def codes_file_of(table: Path) -> Path:
    """unlocode.csv.gz -> unlocode-codes.txt"""
    return table.with_name(table.name.split(".")[0] + "-codes.txt")


def _fingerprint(table: Path) -> str:
    return f"# codes of {table.name}, sha256 {hashlib.sha256(table.read_bytes()).hexdigest()}\n"


def write_codes_file(table: Path, codes: Iterable[str]) -> Path:
    """The table's codes, sorted, one per line, under a first line naming the table's bytes."""
    out = codes_file_of(table)
    out.write_text(_fingerprint(table) + "".join(f"{c}\n" for c in sorted(codes)), encoding="ascii")
    return out


def read_codes_file(table: Path) -> str | None:
    """The codes (one per line) of the table's codes file, or None when there is none or it was
    made from other bytes than the table's (then the table is read as it is)."""
    try:
        text = codes_file_of(table).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None
    head, _, codes = text.partition("\n")
    if head + "\n" != _fingerprint(table) or len(codes) % CODE_LINE:
        return None
    return codes


def _in_sorted_lines(codes: str, code: str) -> bool:
    """Binary search of fixed-width sorted lines: no index to build at start."""
    if len(code) != CODE_LINE - 1:
        return False
    i = bisect_left(range(len(codes) // CODE_LINE), code,
                    key=lambda n: codes[n * CODE_LINE: n * CODE_LINE + CODE_LINE - 1])
    return codes.startswith(code, i * CODE_LINE)


def _read_rows(path: Path) -> dict[str, str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        lines = f.read().splitlines()
    if not lines or not lines[0].startswith("locode,"):
        raise ValueError(f"{path}: not a UN/LOCODE table (build one with `cargoscreen reference build unlocode`)")
    return {line[:5]: line for line in lines[1:] if line}


class CustomsOffice(NamedTuple):
    code: str  # reference number: country and six letters or digits, e.g. NL000396
    country: str
    name: str
    roles: frozenset[str]  # the list's role codes (ENT entry, EXT exit, DEP departure, ...)

    @property
    def of_entry(self) -> bool:
        return ENTRY_ROLE in self.roles


@dataclass(frozen=True)
class PackageType:
    code: str
    name: str
    kind: str  # "package" (counted), "bulk" (never counted) or "unpacked" (NE, NF, NG: counted as pieces)


@dataclass(frozen=True)
class DangerousGoods:
    number: str
    hazard_class: str  # "1" explosives ... "9" miscellaneous (lithium batteries)
    classification: str  # e.g. 1.4G, 1.1D, M4
    description: str


@dataclass(frozen=True)
class Commodity:
    hs6: str
    description: str
    package_type: str
    kg_per_package: float
    eur_per_kg: float
    undg: str | None = None  # UN dangerous goods number, always declared when there is one
    origins: tuple[str, ...] = ()  # the countries it is usually loaded in; empty: anywhere
    modes: tuple[str, ...] = ()  # how it travels (sea, air, express, postal, road, rail); empty: any
    share: float = 1.0  # relative frequency in EU imports
    unusual: str | None = None  # honest traffic a naive rule would refer (chemical-dg, antique, gold, ...)


@dataclass(frozen=True)
class ReferenceData:
    locations: Mapping[str, Location]
    countries: frozenset[str]
    hs: dict[str, str]  # HS code (2, 4 or 6 digits) -> its official description
    package_types: dict[str, PackageType]
    dangerous_goods: dict[str, DangerousGoods]
    vague_terms: tuple[str, ...]
    eori_formats: dict[str, tuple[re.Pattern, str, str]]  # country -> (rest of the number, in words, example)
    commodities: tuple[Commodity, ...]
    curated_places: dict[str, Location] = field(default_factory=dict)
    sources: dict[str, dict] = field(default_factory=dict)  # file -> its line in SOURCES.csv
    customs_offices: dict[str, CustomsOffice] = field(default_factory=dict)  # reference number -> office
    _distances: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def hs_chapters(self) -> dict[str, str]:
        return {code: text for code, text in self.hs.items() if len(code) == 2}

    def edition(self, file: str) -> str:
        """'UN/LOCODE 2024-1' and the like, for messages that say which list a code was missing from."""
        source = self.sources.get(file)
        return source["edition"] if source else file

    def km_between(self, a: str, b: str) -> float | None:
        """Great-circle distance between two UN/LOCODEs that have positions (cached: ports repeat);
        None when either has none (the code list publishes positions for about 87% of codes)."""
        key = (a, b)
        if key not in self._distances:
            la, lb = self.position(a), self.position(b)
            if la is None or lb is None:
                self._distances[key] = None
            else:
                p1, p2 = math.radians(la[0]), math.radians(lb[0])
                dp, dl = p2 - p1, math.radians(lb[1] - la[1])
                h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
                self._distances[key] = 2 * 6371.0 * math.asin(math.sqrt(h))
        return self._distances[key]

    def position(self, locode: str) -> tuple[float, float] | None:
        place = self.locations.get(locode) if locode in self.locations else self.curated_places.get(locode)
        if place is None or place.latitude is None:
            return None
        return place.latitude, place.longitude

    @classmethod
    def load(cls, directory: Path | None = None, unlocode_file: Path | None = None) -> "ReferenceData":
        directory = directory or resources.rules_dir() / "reference"
        curated = {r["locode"]: Location(r["locode"], r["name"], r["country"], r["function"],
                                         *unece_position(r["coordinates"]))
                   for r in _rows(directory / "places-curated.csv")}
        return cls(
            locations=LocationTable.from_file(unlocode_file or directory / "unlocode.csv.gz"),
            countries=frozenset(c.alpha_2 for c in pycountry.countries),
            hs={r["code"]: r["description"] for r in _rows(directory / "hs2022.csv")},
            package_types={r["code"]: PackageType(r["code"], r["name"], r["kind"])
                           for r in _rows(directory / "package-types.csv")},
            dangerous_goods={r["number"]: DangerousGoods(r["number"], r["class"], r["classification"],
                                                         r["description"])
                             for r in _rows(directory / "un-numbers.csv")},
            vague_terms=tuple(
                line.strip().lower() for line in (directory / "vague-goods-descriptions.txt").read_text("utf-8").splitlines()
                if line.strip() and not line.startswith("#")),
            eori_formats={r["country"]: (re.compile(r["pattern"]), r["format"], r["example"])
                          for r in _rows(directory / "eori-formats.csv")},
            commodities=tuple(
                Commodity(r["hs6"], r["description"], r["package_type"], float(r["kg_per_package"]),
                          float(r["eur_per_kg"]), r.get("undg") or None, tuple((r.get("origins") or "").split()),
                          tuple((r.get("modes") or "").split()), float(r.get("share") or 1), r.get("unusual") or None)
                for r in _rows(directory / "commodities.csv")),
            curated_places=curated,
            sources={r["file"]: r for r in _rows(directory / "SOURCES.csv")} if (directory / "SOURCES.csv").exists()
            else {},
            customs_offices={r["code"]: CustomsOffice(r["code"], r["country"], r["name"],
                                                      frozenset(r["roles"].split()))
                             for r in _rows(directory / "customs-offices.csv")},
        )


@lru_cache(maxsize=4)
def bundled_reference() -> ReferenceData:
    """The bundled reference data, loaded once per process (it is read-only). What is loaded by
    then is moved out of the cycle collector's way (gc.freeze): the few thousand long-lived
    objects of the code lists would otherwise be traversed again by every full collection,
    which measured about 3% of validation time."""
    ref = ReferenceData.load()
    gc.freeze()
    return ref


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


_UNECE_POSITION = re.compile(r"(\d{2})(\d{2})([NS])\s+(\d{3})(\d{2})([EW])")


def unece_position(text: str) -> tuple[float | None, float | None]:
    """UNECE writes positions as 'ddmmN dddmmE'."""
    m = _UNECE_POSITION.fullmatch(text.strip())
    if not m:
        return None, None
    lat, lon = int(m[1]) + int(m[2]) / 60, int(m[4]) + int(m[5]) / 60
    return (-lat if m[3] == "S" else lat), (-lon if m[6] == "W" else lon)
