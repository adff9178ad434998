"""The world the generator draws traffic from: places weighted by trade, commodities, parties.

Read from the reference data (rules/reference/): `trade-places.csv` (the ports, airports, road
crossings and rail terminals of EU-bound trade, weighted by traffic), `commodities.csv` (what
travels, by which mode, from where, at what value and in which packages, including honest
traffic that looks unusual) and the full UN/LOCODE list for the long tail of places and for
town names. Parties carry the legal forms and national identification formats of their
country. Every choice takes the caller's random stream: the generator stays deterministic.
"""
from __future__ import annotations

import csv
import random
import re
from dataclasses import dataclass
from pathlib import Path

from . import resources
from .domain.reference import EU_MEMBER_STATES as EU, Commodity, ReferenceData

# The UN/LOCODE function each mode leaves from or arrives at (express and post fly).
MODE_FUNCTION = {"sea": "1", "air": "4", "express": "4", "postal": "4", "road": "3", "rail": "2"}
LONG_TAIL = 0.08  # share of places drawn from the whole code list of a trading country, not the table

LEGAL_FORMS = {
    "DE": ("GmbH", "GmbH & Co. KG", "AG"), "AT": ("GmbH", "AG"), "CH": ("AG", "GmbH", "SA"), "NL": ("B.V.", "N.V."),
    "BE": ("NV", "BV", "SA"), "FR": ("SAS", "SARL", "SA"), "IT": ("S.r.l.", "S.p.A."), "ES": ("S.L.", "S.A."),
    "PT": ("Lda.", "S.A."), "PL": ("Sp. z o.o.", "S.A."), "CZ": ("s.r.o.", "a.s."), "SK": ("s.r.o.",),
    "SE": ("AB",), "DK": ("A/S", "ApS"), "FI": ("Oy", "Oyj"), "NO": ("AS",), "IE": ("Ltd", "DAC"),
    "GB": ("Ltd", "plc"), "HU": ("Kft.", "Zrt."), "RO": ("S.R.L.", "S.A."), "BG": ("EOOD", "OOD"),
    "GR": ("S.A.", "Ltd"), "HR": ("d.o.o.",), "SI": ("d.o.o.",), "LT": ("UAB",), "LV": ("SIA",), "EE": ("OÜ", "AS"),
    "CN": ("Co., Ltd.", "Trading Co., Ltd.", "Import & Export Co., Ltd."), "HK": ("Limited", "Co., Limited"),
    "TW": ("Co., Ltd.", "Corp."), "JP": ("Co., Ltd.", "Corporation", "K.K."), "KR": ("Co., Ltd.", "Corp."),
    "IN": ("Pvt. Ltd.", "Ltd.", "Exports"), "PK": ("(Pvt) Ltd",), "BD": ("Ltd.",), "VN": ("Co., Ltd", "JSC"),
    "TH": ("Co., Ltd.", "Public Co., Ltd."), "MY": ("Sdn. Bhd.", "Bhd."), "ID": ("PT", "Tbk"), "SG": ("Pte. Ltd.",),
    "TR": ("A.S.", "Ltd. Sti."), "US": ("Inc.", "LLC", "Corp."), "CA": ("Inc.", "Ltd."), "MX": ("S.A. de C.V.",),
    "BR": ("Ltda.", "S.A."), "AR": ("S.A.", "S.R.L."), "CL": ("S.A.", "SpA"), "PE": ("S.A.C.", "S.A."),
    "CO": ("S.A.S.", "S.A."), "EC": ("S.A.", "Cia. Ltda."), "ZA": ("(Pty) Ltd",), "MA": ("SARL", "S.A."),
    "EG": ("S.A.E.", "LLC"), "AE": ("LLC", "FZE", "FZCO"), "SA": ("Co.", "LLC"), "IL": ("Ltd.",), "AU": ("Pty Ltd",),
    "NZ": ("Limited",), "UA": ("LLC", "PJSC"), "RS": ("d.o.o.",), "MK": ("DOOEL",), "BA": ("d.o.o.",),
}
NAME_WORDS = ("Northern", "Pacific", "Golden", "Blue River", "Silverline", "Orient", "Delta", "Atlas", "Summit",
              "Harbour", "Eastern", "Prime", "Unity", "Crescent", "Evergreen", "Meridian", "Aurora", "Vertex",
              "Lotus", "Phoenix", "Sunrise", "Greenfield", "Horizon", "Keystone", "Oakwood", "Riverside",
              "Starlight", "Pioneer", "Cedar", "Coastal", "Granite", "Highland", "Maple", "Silk Road", "Jade")
TRADE_WORDS = ("Trading", "Logistics", "Industries", "Textiles", "Electronics", "Foods", "Supply", "Manufacturing",
               "Distribution", "Commerce", "Machinery", "Chemicals", "Garments", "Components", "Metals", "Agro",
               "Home Goods", "Pharma", "Auto Parts", "Furniture", "Tools", "Plastics", "Ceramics", "Packaging")
GIVEN = ("Anna", "Lukas", "Marie", "Jan", "Sofia", "Mateo", "Emma", "Noah", "Julia", "Luca", "Eva", "Piotr",
         "Elena", "Hugo", "Ines", "Mikkel", "Aino", "Tomas", "Zofia", "Bram", "Chiara", "Nikos", "Ana", "Ole")
FAMILY = ("Muller", "Jansen", "Rossi", "Garcia", "Kowalski", "Dubois", "Nielsen", "Novak", "Papadopoulos",
          "Silva", "Horvat", "Virtanen", "Schmidt", "Peeters", "Fernandez", "Bianchi", "Lindqvist", "Nagy")
STREETS = {"DE": "{name}strasse {n}", "AT": "{name}gasse {n}", "NL": "{name}straat {n}", "BE": "{name}straat {n}",
           "FR": "{n} rue {name}", "IT": "Via {name} {n}", "ES": "Calle {name} {n}", "PT": "Rua {name} {n}",
           "PL": "ul. {name} {n}", "CN": "No. {n} {name} Road", "US": "{n} {name} Avenue", "GB": "{n} {name} Road"}
STREET_NAMES = ("Industrie", "Haven", "Markt", "Garibaldi", "Mayor", "Victoria", "Lindens", "Mickiewicza",
                "Jiangchang West", "Harbor", "Station", "Commerce", "Ocean", "Liberty", "Kennedy", "Central")
_CLEAN_NAME = re.compile(r"[A-Za-z][A-Za-z .'()/-]{1,33}")


@dataclass(frozen=True)
class TradePlace:
    locode: str
    role: str  # origin (loaded outside the EU) or entry (where goods reach the EU)
    modes: frozenset[str]
    weight: float


def _weighted(rng: random.Random, items: list, weights: list[float]):
    return rng.choices(items, weights)[0]


class TradeModel:
    """Weighted choices of places, commodities and parties, from the reference data."""

    def __init__(self, ref: ReferenceData, places_file: Path | None = None):
        self.ref = ref
        path = places_file or resources.rules_dir() / "reference" / "trade-places.csv"
        with path.open(encoding="utf-8", newline="") as f:
            self.places = tuple(TradePlace(r["locode"], r["role"], frozenset(r["modes"].split()), float(r["weight"]))
                                for r in csv.DictReader(f))
        self._table: dict[tuple[str, str], tuple[list[str], list[float]]] = {}
        self._countries: dict[tuple[str, str], tuple[list[str], list[float]]] = {}
        self._goods: dict[tuple[str, str], tuple[list[Commodity], list[float]]] = {}
        self._local: dict[tuple[str, str], list[str]] = {}
        self._towns: dict[str, list[str]] = {}
        self._offices: dict[str, list[str]] = {}

    # -- places ------------------------------------------------------------------------------
    def _listed(self, role: str, mode: str) -> tuple[list[str], list[float]]:
        key = (role, mode)
        if key not in self._table:
            chosen = [p for p in self.places if p.role == role and mode in p.modes]
            self._table[key] = ([p.locode for p in chosen], [p.weight for p in chosen])
            by_country: dict[str, float] = {}
            for p in chosen:
                by_country[p.locode[:2]] = by_country.get(p.locode[:2], 0) + p.weight
            self._countries[key] = (list(by_country), list(by_country.values()))
        return self._table[key]

    def place(self, rng: random.Random, role: str, mode: str, exclude_countries=frozenset(),
              countries=None) -> str:
        """A place of loading (role origin) or of unloading (entry) for the mode: mostly the trade
        table's places by weight, sometimes any place of that function in a trading country."""
        codes, weights = self._listed(role, mode)
        pairs = [(c, w) for c, w in zip(codes, weights) if c[:2] not in exclude_countries
                 and (countries is None or c[:2] in countries)]
        if not pairs:
            raise ValueError(f"no {role} place for {mode} in {sorted(countries or ())}")
        if rng.random() < LONG_TAIL:
            by_country: dict[str, float] = {}
            for c, w in pairs:
                by_country[c[:2]] = by_country.get(c[:2], 0) + w
            country = _weighted(rng, list(by_country), list(by_country.values()))
            local = self.places_in(country, MODE_FUNCTION[mode])
            if local:
                return rng.choice(local)
        return _weighted(rng, [c for c, _ in pairs], [w for _, w in pairs])

    def places_in(self, country: str, function: str) -> list[str]:
        """Every code of a country whose function classifier has `function` (1 port, 4 airport, ...)."""
        key = (country, function)
        if key not in self._local:
            self._local[key] = sorted(p.locode for p in self.ref.locations.in_country(country)
                                      if p.serves(function))
        return self._local[key]

    def office_of_entry(self, rng: random.Random, country: str) -> str:
        """An office of entry of the country from the Customs Office List. One random draw, as the
        made-up office numbers of earlier versions took: seeded corpora keep all their other values."""
        if country not in self._offices:
            self._offices[country] = sorted(code for code, o in self.ref.customs_offices.items()
                                            if o.country == country and o.of_entry)
        offices = self._offices[country]
        return offices[rng.randint(0, 999999) % len(offices)]

    def town(self, rng: random.Random, country: str) -> str:
        """A real town of the country, from the code list (its clean names)."""
        if country not in self._towns:
            self._towns[country] = sorted({p.name for p in self.ref.locations.in_country(country)
                                           if _CLEAN_NAME.fullmatch(p.name)}) or ["Capital"]
        return rng.choice(self._towns[country])

    # -- goods -------------------------------------------------------------------------------
    def commodity(self, rng: random.Random, mode: str, origin: str | None) -> Commodity:
        key = (mode, origin or "")
        if key not in self._goods:
            rows = [c for c in self.ref.commodities if (not c.modes or mode in c.modes)
                    and (not c.origins or origin in c.origins)]
            rows = rows or [c for c in self.ref.commodities if not c.modes or mode in c.modes]
            self._goods[key] = (rows, [c.share for c in rows])
        rows, weights = self._goods[key]
        return _weighted(rng, rows, weights)

    # -- parties -----------------------------------------------------------------------------
    def company(self, rng: random.Random, country: str) -> str:
        forms = LEGAL_FORMS.get(country, ("Ltd",))
        town = self.town(rng, country).split("/")[0].split("(")[0].strip()
        first = town if rng.random() < 0.3 and len(town) < 20 else rng.choice(NAME_WORDS)
        return f"{first} {rng.choice(TRADE_WORDS)} {rng.choice(forms)}"[:70]

    @staticmethod
    def person(rng: random.Random) -> str:
        return f"{rng.choice(GIVEN)} {rng.choice(FAMILY)}"

    def identification(self, rng: random.Random, country: str) -> str:
        """An identification number in the country's national EORI format (digits drawn, letters kept
        from the published example), else the country code and 8 to 12 digits."""
        national = self.ref.eori_formats.get(country)
        if national:
            example = national[2][2:]
            for _ in range(20):
                value = "".join(rng.choice("0123456789") if ch.isdigit() else ch for ch in example)
                if national[0].fullmatch(value):
                    return country + value
            return national[2]
        return country + "".join(rng.choice("0123456789") for _ in range(rng.randint(8, 12)))

    def street(self, rng: random.Random, country: str) -> str:
        pattern = STREETS.get(country, "{n} {name} Street")
        return pattern.format(name=rng.choice(STREET_NAMES), n=rng.randint(1, 400))
