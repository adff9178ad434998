"""The filing as risk rules see it: a ScreeningRecord, read once from a validated ENS tree.

Pure data, no lxml objects: it pickles between pipeline steps, and rule examples build it
from a few lines of YAML (`record_from_dict`). Every part keeps the pointer of the element
it came from (/IE3F10/Consignment/GoodsItem[2]), so an explanation can say which data
made a rule fire. Consignments with houses are flattened: goods and parties of every house
are in one list, each pointing into its own house.
"""
from __future__ import annotations

import re
from functools import lru_cache
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import NamedTuple

from lxml import etree

from .container_events import utc_epoch
from .filings import BY_CODE
from .frozen import fast_init

PARTY_ROLES = ("declarant", "representative", "carrier", "consignor", "consignee", "notify")
_LEGAL_FORMS = frozenset("co ltd limited gmbh bv b v sa s a llc inc sp z o o srl s r l ab plc corp company".split())
_WORD = re.compile(r"[a-z0-9]+")
_PUNCTUATION = str.maketrans({c: " " for c in ".,;:'\"/\\-_()[]#&+*!?@"})


@lru_cache(maxsize=65536)
def name_key(name: str | None) -> str | None:
    """'Golden Trading Co. Ltd' -> 'golden trading': how watch lists match names despite spelling of legal forms."""
    if not name:
        return None
    words = [w for w in _WORD.findall(name.lower()) if w not in _LEGAL_FORMS]
    return " ".join(words) or None


@lru_cache(maxsize=65536)
def address_key(street: str | None, city: str | None, country: str | None) -> str | None:
    if not street or not city:
        return None
    street, city = street.lower().translate(_PUNCTUATION), city.lower().translate(_PUNCTUATION)
    return f"{' '.join(street.split())}|{' '.join(city.split())}|{country or ''}"


class Party(NamedTuple):
    role: str  # one of PARTY_ROLES
    id: str | None = None  # EORI or other identification number
    name: str | None = None
    street: str | None = None
    city: str | None = None
    postcode: str | None = None
    country: str | None = None
    pointer: str = ""

    @property
    def name_key(self) -> str | None:
        return name_key(self.name)

    @property
    def address_key(self) -> str | None:
        return address_key(self.street, self.city, self.country)


# The attributes each property of a party or goods line follows from (the scorer's index looks keys up
# once per distinct values of them).
MADE_OF = {"name_key": ("name",), "address_key": ("street", "city", "country"), "hs2": ("hs_code",),
           "hs4": ("hs_code",), "hs6": ("hs_code",)}


class GoodsLine(NamedTuple):
    number: int = 1
    description: str = ""
    hs_code: str | None = None  # 6 digits, or 8 with the CN extension
    undg: str | None = None
    gross_mass: float | None = None  # kg
    packages: int | None = None  # sum of the package counts; None when only bulk
    package_types: tuple[str, ...] = ()
    value: float | None = None
    currency: str | None = None
    containers: tuple[str, ...] = ()
    house: int | None = None  # 1-based house consignment, in master filings
    pointer: str = ""
    converted_value: float | None = None  # a value in another currency, in euros (set at enrichment: currency.py)

    @property
    def hs2(self) -> str | None:
        return self.hs_code[:2] if self.hs_code else None

    @property
    def hs4(self) -> str | None:
        return self.hs_code[:4] if self.hs_code else None

    @property
    def hs6(self) -> str | None:
        return self.hs_code[:6] if self.hs_code else None

    @property
    def value_eur(self) -> float | None:
        """The declared value in euros: as declared, or converted (None for a currency without a rate)."""
        return self.value if self.currency == "EUR" else self.converted_value

    @property
    def value_per_kg(self) -> float | None:
        """Declared value per kilogram in euros (None without a euro value)."""
        euros = self.value_eur
        return euros / self.gross_mass if euros is not None and self.gross_mass else None

    @property
    def kg_per_package(self) -> float | None:
        return self.gross_mass / self.packages if self.gross_mass is not None and self.packages else None


class Equipment(NamedTuple):
    container_id: str
    packed_status: str | None = None  # EMPTY or LADEN
    seals: tuple[str, ...] = ()
    size_type: str | None = None
    pointer: str = ""


class DataQualityWarning(NamedTuple):
    """A data-quality finding the filing was accepted with (e.g. a UN/LOCODE newer than our code list)."""

    code: str
    pointer: str
    value: str = ""
    message: str = ""


@dataclass(frozen=True)
class ScreeningRecord:
    filing_code: str
    mode: str
    level: str
    lrn: str | None = None
    issued_at: float = 0.0  # UTC epoch seconds
    office_of_first_entry: str | None = None
    place_of_loading: str | None = None  # UN/LOCODE, or None when given as a name
    loading_country: str | None = None
    place_of_unloading: str | None = None
    unloading_country: str | None = None
    routing_countries: tuple[str, ...] = ()
    vessel_imo: str | None = None
    voyage: str | None = None
    conveyance: str | None = None  # flight, voyage, train, vehicle or postal conveyance reference
    means_nationality: str | None = None
    transport_document: str | None = None
    master_document: str | None = None
    house_documents: tuple[str, ...] = ()
    # The filer a master expects to file each house it lists (as house_documents, "" where it names
    # none: its own filer files that house); see linking.py, who may file what.
    house_filers: tuple[str, ...] = ()
    total_gross_mass: float | None = None
    total_packages: int | None = None
    receptacles: int = 0
    parties: tuple[Party, ...] = ()
    goods: tuple[GoodsLine, ...] = ()
    containers: tuple[Equipment, ...] = ()
    warnings: tuple[DataQualityWarning, ...] = ()
    pointers: dict = field(default_factory=dict, compare=False)  # record field -> element pointer

    @property
    def entry_country(self) -> str | None:
        return self.office_of_first_entry[:2] if self.office_of_first_entry else None

    @property
    def declarant(self) -> str | None:
        return next((p.id for p in self.parties if p.role == "declarant"), None)

    @property
    def filer(self) -> str | None:
        return next((p.id for p in self.parties if p.role == "representative"), None) or self.declarant


# ScreeningRecord(**values) as a filing's hot path makes it: 1.1 µs instead of 3.3 (frozen.py); a
# filing's record is made once or twice.
new_record = fast_init(ScreeningRecord)


def changed(record: ScreeningRecord, **changes) -> ScreeningRecord:
    """dataclasses.replace(record, **changes), made as new_record makes a record."""
    return new_record({**record.__dict__, **changes})


class _LocalNames(dict):
    """'{urn:...:ens:v1}GoodsItem' -> 'GoodsItem', remembered: a dict look-up beats slicing per element."""

    def __missing__(self, tag):
        name = self[tag] = tag.rpartition("}")[2] if isinstance(tag, str) else ""
        return name


_LOCAL = _LocalNames()
_PARTY_ELEMENTS = {"Declarant": "declarant", "Representative": "representative", "Carrier": "carrier",
                   "Consignor": "consignor", "Consignee": "consignee", "NotifyParty": "notify"}
_PARTY_FIELDS = {"Name": 2, "IdentificationNumber": 1, "Street": 3, "City": 4, "PostCode": 5, "Country": 6}
_MEANS_FIELDS = {"VesselIMO": "vessel_imo", "VoyageNumber": "voyage", "Nationality": "means_nationality"}
_CONVEYANCE = frozenset({"VoyageNumber", "FlightNumber", "TrainNumber", "VehicleRegistration", "ConveyanceReference"})


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _indexed(parent: str, name: str, index: int, count: int) -> str:
    return f"{parent}/{name}[{index}]" if count > 1 else f"{parent}/{name}"


class _Reader:
    """Reads a filing in one pass over its elements in document order.

    The schema fixes the order of every sequence, so an element's owner is the last
    "opening" element seen (a party, a place, a goods item...): no parent look-ups, no
    per-level child iteration (each costs about a microsecond per element in lxml).
    Pointers are made at the end, when the sibling counts that index them are known.
    """

    def __init__(self, top: str):
        self.top = top
        self.opener = ""
        self.values: dict = {}
        self.pointers: dict[str, str] = {}
        self.house = 0  # houses seen so far; parts read after the first belong to the latest
        self.parties: list[list] = []  # [role, id, name, street, city, postcode, country, owner, element]
        self.goods: list[list] = []  # GoodsLine fields + owner
        self.containers: list[list] = []
        self.house_documents: list[str] = []
        self.house_filers: list[str] = []
        self.routing: list[str] = []
        self.doc = ""
        self.place = ""

    def read(self, root) -> None:
        handlers = _HANDLERS
        for el in root.iter():  # one pass; lxml's multi-tag filter iter(*tags) measured slower
            handler = handlers.get(_LOCAL[el.tag])
            if handler is not None:
                handler(self, el)

    # -- one handler per element name; the opener says whose the element is ---------------------
    def party(self, el) -> None:
        self.opener = "party"
        name = _LOCAL[el.tag]
        self.parties.append([_PARTY_ELEMENTS[name], None, None, None, None, None, None, self.house, name])

    def party_field(self, el) -> None:
        if self.opener == "party":
            self.parties[-1][_PARTY_FIELDS[_LOCAL[el.tag]]] = el.text

    def country(self, el) -> None:
        if self.opener == "party":
            self.parties[-1][6] = el.text
        elif self.opener == "place":
            self.values[f"{self.place}_country"] = el.text
        elif self.opener == "itinerary":
            self.routing.append(el.text)

    def goods_item(self, el) -> None:
        self.opener = "goods"
        # number, description, hs, undg, mass, packages, types, value, currency, containers, house
        self.goods.append([1, "", None, None, None, None, [], None, None, [], self.house or None])

    def item_number(self, el) -> None:
        if self.opener == "goods":
            self.goods[-1][0] = int(el.text)

    def description(self, el) -> None:
        self.goods[-1][1] = el.text or ""

    def hs_code(self, el) -> None:
        self.goods[-1][2] = el.text

    def undg(self, el) -> None:
        self.goods[-1][3] = el.text

    def gross_mass(self, el) -> None:
        if self.opener == "goods":
            self.goods[-1][4] = _number(el.text)

    def packaging(self, el) -> None:
        self.opener = "packaging"

    def type_code(self, el) -> None:
        if self.opener == "packaging":
            self.goods[-1][6].append(el.text)

    def count(self, el) -> None:
        if self.opener == "packaging":
            g = self.goods[-1]
            g[5] = (g[5] or 0) + int(el.text)

    def declared_value(self, el) -> None:
        self.goods[-1][7], self.goods[-1][8] = _number(el.text), el.get("currency")

    def container_ref(self, el) -> None:
        self.goods[-1][9].append(el.text)

    def place_of(self, el) -> None:
        name = _LOCAL[el.tag]
        self.opener, self.place = "place", "loading" if name == "PlaceOfLoading" else "unloading"
        self.pointers[f"place_of_{self.place}"] = self.pointers[f"{self.place}_country"] = \
            f"{self.top}/Consignment/{name}"

    def unlocode(self, el) -> None:
        if self.opener == "place":
            self.values[f"place_of_{self.place}"], self.values[f"{self.place}_country"] = el.text, el.text[:2]

    def itinerary(self, el) -> None:
        self.opener = "itinerary"
        self.pointers["routing_countries"] = f"{self.top}/Consignment/Itinerary"

    def equipment(self, el) -> None:
        self.opener = "equipment"
        self.containers.append([None, None, [], None])

    def equipment_field(self, el) -> None:
        name = _LOCAL[el.tag]
        if name == "Seal":
            self.containers[-1][2].append(el.text)
        else:
            self.containers[-1][{"ContainerId": 0, "PackedStatus": 1, "SizeType": 3}[name]] = el.text

    def document(self, el) -> None:
        self.opener, self.doc = "document", _LOCAL[el.tag]

    def document_number(self, el) -> None:
        if self.opener != "document":
            return
        if self.doc == "HouseTransportDocument" or (self.house and self.doc == "TransportDocument"):
            self.house_documents.append(el.text)
            self.house_filers.append("")
        else:
            key = "transport_document" if self.doc == "TransportDocument" else "master_document"
            self.values[key], self.pointers[key] = el.text, f"{self.top}/Consignment/{self.doc}"

    def house_filer(self, el) -> None:
        self.house_filers[-1] = el.text

    def house_consignment(self, el) -> None:
        self.opener, self.house = "house", self.house + 1

    def receptacle(self, el) -> None:
        self.opener = "receptacle"
        self.values["receptacles"] = self.values.get("receptacles", 0) + 1

    def means(self, el) -> None:
        self.opener = "means"

    def means_field(self, el) -> None:
        name = _LOCAL[el.tag]
        pointer = f"{self.top}/ActiveBorderTransportMeans/{name}"
        if name in _MEANS_FIELDS:
            self.values[_MEANS_FIELDS[name]], self.pointers[_MEANS_FIELDS[name]] = el.text, pointer
        if name in _CONVEYANCE:
            self.values["conveyance"], self.pointers["conveyance"] = el.text, pointer

    def total(self, el) -> None:
        if not self.house:
            name = _LOCAL[el.tag]
            key = "total_gross_mass" if name == "TotalGrossMass" else "total_packages"
            self.values[key] = _number(el.text) if name == "TotalGrossMass" else int(el.text)
            self.pointers[key] = f"{self.top}/Consignment/{name}"

    def header_field(self, el) -> None:
        name = _LOCAL[el.tag]
        key = "lrn" if name == "LRN" else "office_of_first_entry"
        self.values[key], self.pointers[key] = el.text, f"{self.top}/Header/{name}"

    def issued(self, el) -> None:
        self.values["issued_at"] = utc_epoch(el.text)

    def owner_pointer(self, house: int) -> str:
        consignment = f"{self.top}/Consignment"
        return _indexed(consignment, "HouseConsignment", house, self.house) if house else consignment

    def parts(self) -> tuple[tuple[Party, ...], tuple[GoodsLine, ...], tuple[Equipment, ...]]:
        goods_per_owner: dict[int, int] = {}
        for g in self.goods:
            goods_per_owner[g[10] or 0] = goods_per_owner.get(g[10] or 0, 0) + 1
        seen: dict[int, int] = {}
        goods = []
        for g in self.goods:
            owner = g[10] or 0
            seen[owner] = seen.get(owner, 0) + 1
            pointer = _indexed(self.owner_pointer(owner), "GoodsItem", seen[owner], goods_per_owner[owner])
            goods.append(GoodsLine(g[0], g[1], g[2], g[3], g[4], g[5], tuple(g[6]), g[7], g[8], tuple(g[9]), g[10],
                                   pointer))
        parties = []
        for role, pid, name, street, city, postcode, country, house, element in self.parties:
            where = f"{self.top}/Header" if role in ("declarant", "representative") else \
                self.top if role == "carrier" else self.owner_pointer(house)
            parties.append(Party(role, pid, name, street, city, postcode, country, f"{where}/{element}"))
        n = len(self.containers)
        containers = tuple(Equipment(c[0], c[1], tuple(c[2]), c[3],
                                     _indexed(f"{self.top}/Consignment", "TransportEquipment", i, n))
                           for i, c in enumerate(self.containers, start=1))
        return tuple(parties), tuple(goods), containers


_HANDLERS = {
    **dict.fromkeys(_PARTY_ELEMENTS, _Reader.party),
    **dict.fromkeys(("Name", "IdentificationNumber", "Street", "City", "PostCode"), _Reader.party_field),
    "Country": _Reader.country, "GoodsItem": _Reader.goods_item, "ItemNumber": _Reader.item_number,
    "Description": _Reader.description, "HSCode": _Reader.hs_code, "UNDGNumber": _Reader.undg,
    "GrossMass": _Reader.gross_mass, "Packaging": _Reader.packaging, "Type": _Reader.type_code,
    "Count": _Reader.count, "DeclaredValue": _Reader.declared_value, "ContainerRef": _Reader.container_ref,
    "PlaceOfLoading": _Reader.place_of, "PlaceOfUnloading": _Reader.place_of, "UNLocode": _Reader.unlocode,
    "Itinerary": _Reader.itinerary, "TransportEquipment": _Reader.equipment,
    **dict.fromkeys(("ContainerId", "PackedStatus", "SizeType", "Seal"), _Reader.equipment_field),
    **dict.fromkeys(("TransportDocument", "MasterTransportDocument", "HouseTransportDocument"), _Reader.document),
    "Number": _Reader.document_number, "Filer": _Reader.house_filer, "HouseConsignment": _Reader.house_consignment,
    "Receptacle": _Reader.receptacle, "ActiveBorderTransportMeans": _Reader.means,
    **dict.fromkeys((*_MEANS_FIELDS, *_CONVEYANCE), _Reader.means_field),
    "TotalGrossMass": _Reader.total, "TotalPackages": _Reader.total,
    "LRN": _Reader.header_field, "CustomsOfficeOfFirstEntry": _Reader.header_field, "IssueDateTime": _Reader.issued,
}


def screening_record(root: etree._Element, filing_code: str) -> ScreeningRecord:
    """Reads an ENS filing's tree (valid against the schema) into the record the rules see.

    filing_code: F10..F51, or A10..A51 for an amendment (read like the filing it replaces)."""
    reader = _Reader(f"/{_LOCAL[root.tag]}")
    reader.read(root)
    return _record(reader, filing_code)


def _record(reader: _Reader, filing_code: str) -> ScreeningRecord:
    kind = BY_CODE["F" + filing_code[1:]]
    parties, goods, containers = reader.parts()
    return new_record({
        **reader.values, "filing_code": filing_code, "mode": kind.mode, "level": kind.level, "parties": parties,
        "goods": goods, "containers": containers, "routing_countries": tuple(reader.routing),
        "house_documents": tuple(reader.house_documents), "house_filers": tuple(reader.house_filers),
        "pointers": reader.pointers})


# -- records from data: rule examples and tests -------------------------------------------------
_DEFAULTS = {"filing_code": "F10", "lrn": "EXAMPLE", "issued_at": 1795176000.0,  # 2026-11-20T08:00:00Z
             "office_of_first_entry": "NL000396", "place_of_loading": "CNSHA", "loading_country": "CN",
             "place_of_unloading": "NLRTM", "unloading_country": "NL", "routing_countries": ("CN", "NL")}
_PARTS = {"parties": Party, "goods": GoodsLine, "containers": Equipment, "warnings": DataQualityWarning}


def record_from_dict(data: dict) -> ScreeningRecord:
    """A record from plain data (a rule example): unspecified fields take the values of a plain
    sea filing from Shanghai to Rotterdam. Loading and unloading countries follow the places."""
    values = {**_DEFAULTS, **data}
    for key in ("place_of_loading", "place_of_unloading"):
        country_key = key.removeprefix("place_of_") + "_country"
        if key in data and country_key not in data:
            values[country_key] = data[key][:2] if data[key] else None
    kind = BY_CODE["F" + values["filing_code"][1:]]
    values.setdefault("mode", kind.mode)
    values.setdefault("level", kind.level)
    for key, part in _PARTS.items():
        values[key] = tuple(_part(part, item, i) for i, item in enumerate(values.get(key, ()), start=1))
    for key in ("routing_countries", "house_documents", "house_filers"):
        values[key] = tuple(values.get(key, ()))
    known = {f.name for f in fields(ScreeningRecord)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown record field(s): {', '.join(sorted(unknown))}")
    return ScreeningRecord(**values)


def _part(cls, item: dict, index: int):
    known = set(cls._fields)
    unknown = set(item) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s): {', '.join(sorted(unknown))}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in item.items()}
    if cls is GoodsLine:
        values.setdefault("number", index)
        if "hs_code" in values and values["hs_code"] is not None:
            values["hs_code"] = str(values["hs_code"])
    values.setdefault("pointer", f"/example/{cls.__name__}[{index}]")
    return cls(**values)



_RECORD_FIELDS = tuple(f.name for f in fields(ScreeningRecord))
_RECORD_VALUES = attrgetter(*_RECORD_FIELDS)


def record_to_dict(record: ScreeningRecord) -> dict:
    """The record as plain JSON-able data; record_from_dict(record_to_dict(r)) == r."""
    data = dict(zip(_RECORD_FIELDS, _RECORD_VALUES(record)))  # every linked filing and watch: kept cheap
    for key in _PARTS:
        data[key] = [part._asdict() for part in data[key]]
    return data
