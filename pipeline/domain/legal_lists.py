"""The legal lists behind risk rules, from rules/reference/, each traced to its legal text.

  - EU scheduled drug precursors (Regulation (EC) No 273/2004, Annex I; Regulation (EC)
    No 111/2005, Annex; as amended up to Delegated Regulation (EU) 2025/1475):
    `drug-precursors.csv`;
  - the Common High Priority items (battlefield goods) by HS subheading and tier: `chp-items.csv`;
  - countries and areas under EU restrictive measures relevant to goods: `restrictive-measures.csv`;
  - controlled goods headings (firearms, ammunition, explosives, pyrotechnics, cultural goods,
    cash, lithium batteries) with the UN numbers they need: `controlled-goods.csv`, with the
    details of the cultural goods, cash and lithium battery regimes in `cultural-goods.csv`,
    `cash-instruments.csv`, `cash-terms.csv` and `lithium-batteries.csv`.

Where each list comes from, its edition and how it was made are in SOURCES.csv and the
README beside them. Loaded once per process (`bundled_legal_lists()`), looked up by
dictionary; `check()` says where a list disagrees with the code lists it refers to
(`cargoscreen reference check`).
"""
from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, NamedTuple

import pycountry

from .. import resources
from .reference import Location, ReferenceData

FILES = {
    "precursors": "drug-precursors.csv",
    "chp": "chp-items.csv",
    "measures": "restrictive-measures.csv",
    "controlled": "controlled-goods.csv",
    "cultural": "cultural-goods.csv",
    "cash": "cash-instruments.csv",
    "cash-terms": "cash-terms.csv",
    "lithium": "lithium-batteries.csv",
}

# What each category's entry in the annexes says about salts and stereoisomers (the `salts` column).
SALTS = {
    "stereoisomers-salts-1": "the stereoisomeric forms of the substances in category 1 (not cathine) and their "
                             "salts (not the salts of cathine), whenever such forms and salts can exist",
    "salts-2": "the salts of the substances in category 2, whenever such salts can exist",
    "salts-3": "the salts of the substances in category 3, whenever such salts can exist, not being hydrochloric "
               "acid and sulphuric acid salts",
    "": "",
}

_CAS = re.compile(r"(\d{2,7})-(\d{2})-(\d)")


def cas_valid(cas: str) -> bool:
    """Whether a CAS Registry Number is well formed and its check digit right: the digits
    before the check digit, read from the right, weighted 1, 2, 3, ... and summed, modulo 10."""
    m = _CAS.fullmatch(cas.strip())
    if not m:
        return False
    digits = (m[1] + m[2])[::-1]
    return sum(weight * int(d) for weight, d in enumerate(digits, 1)) % 10 == int(m[3])


def _digits(code: str) -> str:
    """An HS or CN code as digits only ('2939 41 00', '2939.41' -> '29394100', '293941')."""
    return re.sub(r"[\s.]", "", code or "")


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


@dataclass(frozen=True)
class Precursor:
    substance: str
    category_273: str | None  # Regulation 273/2004, Annex I: "1", "2A", "2B", "3"; None for category 4
    category_111: str  # Regulation 111/2005, Annex: "1", "2", "3", "4"
    cn_designation: str
    synonyms: tuple[str, ...]
    cas: str | None
    cn: tuple[str, ...]  # 8-digit CN codes as the annexes give them
    cn_partial: bool  # an "ex" code: the CN code covers other substances too
    hs: tuple[str, ...]  # 6-digit HS subheadings
    salts: str  # key into SALTS
    added_by: str  # the act that put the entry in the annexes ("273/2004", "2020/1737", ...)
    notes: str

    @property
    def legal_reference(self) -> str:
        parts = []
        if self.category_273:
            parts.append(f"Regulation (EC) No 273/2004, Annex I, category {self.category_273}")
        parts.append(f"Regulation (EC) No 111/2005, Annex, category {self.category_111}")
        return "; ".join(parts) + f" (entry from {self.added_by})"

    @property
    def salts_text(self) -> str:
        return SALTS[self.salts]

    @property
    def names(self) -> tuple[str, ...]:
        """Every name the entry goes by: the annex's, its CN designation and the synonyms."""
        plain = re.sub(r"\s*\([^()]*\)$", "", self.substance)  # "... (APAAN)" -> "..."
        return tuple(dict.fromkeys(n for n in (self.substance, plain, self.cn_designation, *self.synonyms) if n))


@dataclass(frozen=True)
class ChpItem:
    hs: str
    tier: str  # "1", "2", "3.A", "3.B", "4.A", "4.B"
    description: str
    list_date: str


@dataclass(frozen=True)
class RestrictiveMeasure:
    key: str  # ISO alpha-2 country, or an area's ISO 3166-2 subdivision ("UA-43")
    country: str
    area: str  # the area's name; "" for a whole country
    subdivision: str
    locodes: tuple[str, ...]  # places in the area that the code list publishes without a subdivision
    coverage: str  # "whole": every place of the country/subdivision; "partial": only part of it
    regulation: str
    restricts: frozenset[str]  # arms, dual-use, chp, luxury, import-ban, asset-freeze, cultural, ...
    applies: frozenset[str]  # origin, destination, party: which role of a country the measures bear on
    notes: str


class NameMatch(NamedTuple):
    phrase: str  # the name as found (lower case)
    precursor: Precursor
    abbreviation: bool  # an acronym such as BMK or MEK: more often ambiguous than a chemical name


@dataclass(frozen=True)
class ControlledHeading:
    kind: str  # firearm, firearm-part, weapon, ammunition, explosive, pyrotechnic, cultural, cash, lithium
    hs: str
    description: str
    un_numbers: tuple[str, ...]
    legal_basis: str
    notes: str


@dataclass(frozen=True)
class CulturalGoodsCategory:
    key: str  # the category of Regulation 2019/880's Annex ("a" ... "l", "g-i"), or the origin country
    description: str
    headings: tuple[str, ...]
    origin: str | None  # a country whose cultural property is banned whatever the age or value
    import_licence_min_age: int | None  # years (Annex Part B)
    importer_statement_min_age: int | None  # years (Annex Part C)
    importer_statement_min_value_eur: int | None
    legal_reference: str
    notes: str


@dataclass(frozen=True)
class CashInstrument:
    kind: str  # currency, bearer-negotiable-instrument, commodity, prepaid-card
    description: str
    hs: tuple[str, ...]
    legal_reference: str
    notes: str


@dataclass(frozen=True)
class LithiumBattery:
    un_number: str
    packaging: str  # batteries alone, packed with equipment, contained in equipment
    hs: str
    air_packing_instruction: str
    passenger_aircraft: str  # "allowed" or "forbidden"
    notes: str


@dataclass(frozen=True)
class LegalLists:
    precursors: tuple[Precursor, ...]
    chp: dict[str, ChpItem]  # HS subheading -> item
    measures: tuple[RestrictiveMeasure, ...]
    controlled: tuple[ControlledHeading, ...]
    cultural: tuple[CulturalGoodsCategory, ...]
    cash: tuple[CashInstrument, ...]
    cash_terms: dict[str, str]  # term (lower case, any of several languages) -> cash kind
    lithium: tuple[LithiumBattery, ...]
    sources: dict[str, dict] = field(default_factory=dict)  # file -> its line in SOURCES.csv
    locations: Mapping[str, Location] | None = field(default=None, compare=False, repr=False)
    _index: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Built once here so that every lookup is a dictionary access.
        by_cas, by_cn, by_hs, names = {}, {}, {}, {}
        for p in self.precursors:
            if p.cas:
                by_cas[p.cas] = p
            for code in p.cn:
                by_cn.setdefault(code, []).append(p)
            for code in p.hs:
                by_hs.setdefault(code, []).append(p)
            for name in {n.lower() for n in p.names}:
                names.setdefault(name, []).append(p)
        measures: dict[str, list[RestrictiveMeasure]] = {}
        area_by_locode = {}
        for m in self.measures:
            measures.setdefault(m.key, []).append(m)
            for code in m.locodes:
                area_by_locode[code] = m.key
        controlled: dict[str, list[ControlledHeading]] = {}
        for c in self.controlled:
            controlled.setdefault(c.hs, []).append(c)
        cultural_origin = {c.origin: c for c in self.cultural if c.origin}
        # One alternation, longest names first, bounded so that a name matches as a whole phrase
        # (not "ether" inside "together", nor "mek" inside "meks").
        phrases = sorted(names, key=len, reverse=True)
        pattern = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, phrases)) + r")(?![\w-])") if phrases else None
        cash = sorted(self.cash_terms, key=len, reverse=True)
        cash_pattern = re.compile(r"(?<!\w)(" + "|".join(map(re.escape, cash)) + r")(?!\w)") if cash else None
        abbreviations = {n.lower() for p in self.precursors for n in p.synonyms if n.upper() == n and any(
            ch.isalpha() for ch in n)}
        self._index.update(
            cas=by_cas, cn={k: tuple(v) for k, v in by_cn.items()},
            hs={k: tuple(v) for k, v in by_hs.items()}, names={k: tuple(v) for k, v in names.items()},
            name_pattern=pattern, abbreviations=abbreviations, cash_pattern=cash_pattern,
            measures={k: tuple(v) for k, v in measures.items()}, area_by_locode=area_by_locode,
            controlled={k: tuple(v) for k, v in controlled.items()}, cultural_origin=cultural_origin,
            lithium={b.un_number: tuple(x for x in self.lithium if x.un_number == b.un_number) for b in self.lithium})

    # -- drug precursors ----------------------------------------------------------------------
    def precursor_by_cas(self, cas: str) -> Precursor | None:
        """The scheduled substance with this CAS number, if any."""
        return self._index["cas"].get(cas.strip())

    def precursors_for_code(self, code: str) -> tuple[Precursor, ...]:
        """Scheduled substances an HS or CN code may hold. An 8-digit CN code listed in the
        annexes gives its substances; otherwise (a 6-digit code, or a CN code the annexes do
        not list) the substances of its HS subheading. Whether a code holds only scheduled
        substances says `Precursor.cn_partial` (an "ex" code) and the subheading's breadth."""
        digits = _digits(code)
        if len(digits) >= 8 and digits[:8] in self._index["cn"]:
            return self._index["cn"][digits[:8]]
        return self._index["hs"].get(digits[:6], ())

    @property
    def precursor_names(self) -> dict[str, tuple[Precursor, ...]]:
        """Lower-cased name or synonym -> the entries it names (for the description classifier)."""
        return self._index["names"]

    def precursor_names_in(self, text: str) -> list[NameMatch]:
        """The scheduled substances a goods description names, each name matched as a whole
        phrase, case-insensitively, in the order found."""
        pattern = self._index["name_pattern"]
        if pattern is None:
            return []
        found = []
        for m in pattern.finditer(text.lower()):
            phrase = m[1]
            for p in self._index["names"][phrase]:
                found.append(NameMatch(phrase, p, phrase in self._index["abbreviations"]))
        return found

    # -- common high priority items ------------------------------------------------------------
    def chp_tier(self, code: str) -> str | None:
        """The Common High Priority tier ("1" ... "4.B") of an HS/CN code's subheading, or None."""
        item = self.chp.get(_digits(code)[:6])
        return item.tier if item else None

    # -- restrictive measures ------------------------------------------------------------------
    def restrictive_measures(self, key: str) -> tuple[RestrictiveMeasure, ...]:
        """The measures on a country (ISO alpha-2) or an area (its ISO 3166-2 key, "UA-43").
        A country only some of whose areas are under measures (UA) has none of its own."""
        return self._index["measures"].get(key.strip().upper(), ())

    def area_of(self, locode: str) -> RestrictiveMeasure | None:
        """The area under restrictive measures a UN/LOCODE lies in, by the code list's
        subdivision or our list of places published without one; None when it lies in none (or
        its subdivision is unknown). `coverage` says whether the whole subdivision is covered."""
        code = locode.strip().upper()
        key = self._index["area_by_locode"].get(code)
        if key is None and self.locations is not None and code in self.locations:
            subdivision = self.locations[code].subdivision
            key = f"{code[:2]}-{subdivision}" if subdivision else None
        measures = self._index["measures"].get(key, ()) if key else ()
        return measures[0] if measures and measures[0].area else None

    def countries_under_measures(self) -> frozenset[str]:
        """Every country (ISO alpha-2) with measures of its own."""
        return frozenset(m.key for m in self.measures if not m.area)

    # -- controlled goods -----------------------------------------------------------------------
    def controlled_headings(self, code: str) -> tuple[ControlledHeading, ...]:
        """The controlled-goods entries of an HS/CN code's subheading; for a 4-digit heading,
        those of every subheading under it."""
        digits = _digits(code)
        if len(digits) == 4:
            return tuple(c for hs, cs in self._index["controlled"].items() if hs.startswith(digits) for c in cs)
        return self._index["controlled"].get(digits[:6], ())

    def is_controlled(self, code: str) -> tuple[str, ...]:
        """The kinds of controlled goods an HS/CN code covers (firearm, firearm-part, weapon,
        ammunition, explosive, pyrotechnic, cultural, cash, lithium); empty when none."""
        return tuple(dict.fromkeys(c.kind for c in self.controlled_headings(code)))

    def un_numbers_for(self, code: str) -> tuple[str, ...]:
        """The UN numbers goods under this HS/CN code are carried under (explosives,
        pyrotechnics, ammunition, lithium batteries); empty for goods that need none."""
        return tuple(dict.fromkeys(n for c in self.controlled_headings(code) for n in c.un_numbers))

    def cultural_categories(self, code: str) -> tuple[CulturalGoodsCategory, ...]:
        """Regulation 2019/880's categories (and origin bans) an HS/CN code's heading may hold."""
        heading = _digits(code)[:4]
        return tuple(c for c in self.cultural if heading in c.headings)

    def cultural_origin_ban(self, country: str) -> CulturalGoodsCategory | None:
        """The ban on cultural property removed from this country (Iraq, Syria), if any."""
        return self._index["cultural_origin"].get(country.strip().upper())

    def cash_terms_in(self, text: str) -> list[tuple[str, str]]:
        """(term, kind) for each cash term a description holds, as a whole phrase."""
        pattern = self._index["cash_pattern"]
        return [(m[1], self.cash_terms[m[1]]) for m in pattern.finditer(text.lower())] if pattern else []

    def lithium_battery(self, un_number: str) -> tuple[LithiumBattery, ...]:
        """How batteries under this UN number are packed for air, one entry per packaging."""
        return self._index["lithium"].get(un_number.strip().upper().removeprefix("UN"), ())

    # -- loading -------------------------------------------------------------------------------
    @classmethod
    def load(cls, directory: Path | None = None, locations: Mapping[str, Location] | None = None) -> "LegalLists":
        directory = directory or resources.rules_dir() / "reference"
        rows = {name: _rows(directory / file) for name, file in FILES.items()}
        return cls(
            precursors=tuple(
                Precursor(r["substance"], r["category_273"] or None, r["category_111"], r["cn_designation"],
                          tuple(s.strip() for s in r["synonyms"].split("|") if s.strip()), r["cas"] or None,
                          _words(r["cn"]), r["cn_partial"] == "ex", _words(r["hs"]), r["salts"], r["added_by"],
                          r["notes"])
                for r in rows["precursors"]),
            chp={r["hs"]: ChpItem(r["hs"], r["tier"], r["description"], r["list_date"]) for r in rows["chp"]},
            measures=tuple(
                RestrictiveMeasure(r["key"], r["country"], r["area"], r["subdivision"], _words(r["locodes"]),
                                   r["coverage"], r["regulation"], frozenset(r["restricts"].split()),
                                   frozenset(r["applies"].split()), r["notes"])
                for r in rows["measures"]),
            controlled=tuple(ControlledHeading(r["kind"], r["hs"], r["description"], _words(r["un_numbers"]),
                                               r["legal_basis"], r["notes"]) for r in rows["controlled"]),
            cultural=tuple(
                CulturalGoodsCategory(r["key"], r["description"], _words(r["hs"]), r["origin"] or None,
                                      _int(r["import_licence_min_age"]), _int(r["importer_statement_min_age"]),
                                      _int(r["importer_statement_min_value_eur"]), r["legal_reference"], r["notes"])
                for r in rows["cultural"]),
            cash=tuple(CashInstrument(r["kind"], r["description"], _words(r["hs"]), r["legal_reference"], r["notes"])
                       for r in rows["cash"]),
            cash_terms={r["term"].lower(): r["kind"] for r in rows["cash-terms"]},
            lithium=tuple(LithiumBattery(r["un_number"], r["packaging"], r["hs"], r["air_packing_instruction"],
                                         r["passenger_aircraft"], r["notes"]) for r in rows["lithium"]),
            sources={r["file"]: r for r in _rows(directory / "SOURCES.csv") if r["file"] in FILES.values()}
            if (directory / "SOURCES.csv").exists() else {},
            locations=locations,
        )


@lru_cache(maxsize=4)
def bundled_legal_lists() -> LegalLists:
    """The bundled legal lists, loaded once per process (read-only), with the bundled UN/LOCODE
    table for `area_of`."""
    from .reference import bundled_reference

    return LegalLists.load(locations=bundled_reference().locations)


def check(lists: LegalLists, ref: ReferenceData, directory: Path | None = None) -> list[str]:
    """Where the legal lists disagree with the code lists they refer to, one line per problem:
    CAS check digits, HS/CN codes missing from the HS edition (checked at subheading level),
    UN numbers missing from the dangerous goods list, countries, subdivisions and UN/LOCODEs
    that do not exist, and row counts that differ from SOURCES.csv. Empty when all agree."""
    problems: list[str] = []
    hs_known = ref.hs

    def codes(where: str, found: Iterable[str], length: int) -> None:
        for code in found:
            if not re.fullmatch(rf"\d{{{length}}}", code):
                problems.append(f"{where}: {code!r} is not a {length}-digit code")
            elif code[:6 if length >= 6 else length] not in hs_known:
                problems.append(f"{where}: {code} is not in {ref.edition('hs2022.csv')}")

    def un_numbers(where: str, found: Iterable[str]) -> None:
        for n in found:
            if n not in ref.dangerous_goods:
                problems.append(f"{where}: UN{n} is not in {ref.edition('un-numbers.csv')}")

    seen_cas: set[str] = set()
    for p in lists.precursors:
        where = f"drug-precursors.csv {p.substance}"
        if p.cas is not None:
            if not cas_valid(p.cas):
                problems.append(f"{where}: CAS {p.cas} has a wrong check digit or form")
            if p.cas in seen_cas:
                problems.append(f"{where}: CAS {p.cas} listed twice")
            seen_cas.add(p.cas)
        if not p.hs:
            problems.append(f"{where}: no HS subheading")
        codes(where, p.cn, 8)
        codes(where, p.hs, 6)
        for cn in p.cn:
            if cn[:6] not in p.hs:
                problems.append(f"{where}: CN {cn} is not under its HS subheadings {' '.join(p.hs)}")
        if p.category_273 not in (None, "1", "2A", "2B", "3") or p.category_111 not in ("1", "2", "3", "4"):
            problems.append(f"{where}: unknown category {p.category_273}/{p.category_111}")
        if p.salts not in SALTS:
            problems.append(f"{where}: unknown salts note {p.salts!r}")
    for item in lists.chp.values():
        codes(f"chp-items.csv {item.hs}", [item.hs], 6)
        if item.tier not in ("1", "2", "3.A", "3.B", "4.A", "4.B"):
            problems.append(f"chp-items.csv {item.hs}: unknown tier {item.tier}")
    subdivisions = {s.code for s in pycountry.subdivisions}
    for m in lists.measures:
        where = f"restrictive-measures.csv {m.key} {m.regulation}"
        if m.country not in ref.countries:
            problems.append(f"{where}: {m.country} is not an ISO 3166 country")
        if m.area and m.subdivision not in subdivisions:
            problems.append(f"{where}: {m.subdivision} is not an ISO 3166-2 subdivision")
        if m.key != (m.subdivision if m.area else m.country):
            problems.append(f"{where}: key {m.key} is neither its country nor its subdivision")
        for code in m.locodes:
            if code not in ref.locations or not code.startswith(m.country):
                problems.append(f"{where}: UN/LOCODE {code} is not a place of {m.country} in {ref.edition('unlocode.csv.gz')}")
        if not m.applies <= {"origin", "destination", "party"} or m.coverage not in ("whole", "partial"):
            problems.append(f"{where}: unknown applies/coverage {sorted(m.applies)} {m.coverage}")
    for c in lists.controlled:
        where = f"controlled-goods.csv {c.hs}"
        codes(where, [c.hs], 6)
        un_numbers(where, c.un_numbers)
    for c in lists.cultural:
        codes(f"cultural-goods.csv {c.key}", c.headings, 4)
        if c.origin and c.origin not in ref.countries:
            problems.append(f"cultural-goods.csv {c.key}: {c.origin} is not an ISO 3166 country")
    for c in lists.cash:
        codes(f"cash-instruments.csv {c.kind}", c.hs, 6)
    kinds = {c.kind for c in lists.cash}
    for term, kind in lists.cash_terms.items():
        if kind not in kinds:
            problems.append(f"cash-terms.csv {term}: unknown kind {kind}")
    for b in lists.lithium:
        where = f"lithium-batteries.csv UN{b.un_number}"
        un_numbers(where, [b.un_number])
        codes(where, [b.hs], 6)
    directory = directory or resources.rules_dir() / "reference"
    for name, file in FILES.items():
        source = lists.sources.get(file)
        rows = len(_rows(directory / file))
        if source is None:
            problems.append(f"SOURCES.csv: no line for {file}")
        elif int(source["rows"]) != rows:
            problems.append(f"SOURCES.csv: {file} has {rows} rows, SOURCES.csv says {source['rows']}")
    return problems


def _int(text: str) -> int | None:
    return int(text) if text.strip() else None


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))
