#!/usr/bin/env python3
"""Builds an independent set of realistic, clean ENS filings and their containers' DCSA histories.

Written from the published message specification (xsd/ics2-v1, its documentation annotations;
the filing kinds of pipeline/domain/filings.py) and from public knowledge of real trade (the CSV
files under data/, see data/README.md), the way a careful carrier's or forwarder's IT team would:
nothing here comes from the product's own generator or reference data.

    python tests/independent/build.py OUT [--count 1200] [--seed 2026]   # at least COUNT: a consignment is never cut

writes OUT/filings/<kind>/<lrn>.xml, OUT/container-events.jsonl (DCSA Track & Trace 2.2 events,
JSON lines, as carriers report them) and OUT/manifest.json (what was written: each filing's kind,
the consignment it belongs to, and the counts). The same seed gives the same files.

Every consignment is complete (a master and every house it lists, with who files each); every
filing is meant to be valid against the XSD and honest: totals are the sums of their parts, routing
countries include every country the goods pass, check digits are right, times follow real sailing
and flight times.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import random
import sys
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parent))
import idnumbers as ids  # noqa: E402  (tests/independent/idnumbers.py)

DATA = Path(__file__).resolve().parent / "data"
ENS = "urn:cargoscreen:ics2:ens:v1"
START = datetime(2026, 8, 3, tzinfo=timezone.utc)  # first filing day; all events end well before today
SPAN_DAYS = 35  # filings are issued over five weeks
KG = 1000  # masses are kept in grams (integers) so totals add up exactly


# --------------------------------------------------------------------------------------------------
# Reference data: the CSV files
# --------------------------------------------------------------------------------------------------
def _rows(name: str) -> list[dict]:
    with open(DATA / name, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@dataclass(frozen=True)
class Loc:
    code: str
    name: str
    country: str
    kinds: str
    lat: float
    lon: float
    offset: timedelta
    weight: float
    eu: bool


@dataclass(frozen=True)
class Commodity:
    hs6: str
    cn8: str
    undg: str
    package: str
    kg_min: float
    kg_max: float
    count_min: int
    count_max: int
    eur_kg_min: float
    eur_kg_max: float
    modes: str
    origins: tuple[str, ...]
    tags: frozenset
    weight: float
    description: str

    @property
    def bulk(self) -> bool:
        return self.package.startswith("V")

    @property
    def unpacked(self) -> bool:
        return self.package in ("NE", "NF", "NG")


@dataclass
class Party:
    key: str
    role: str
    name: str
    street: str
    city: str
    postcode: str
    country: str
    phone: str
    email: str
    chapters: str = ""
    id: str | None = None

    def trades(self, hs: str) -> bool:
        """Whether this shipper or consignee deals in goods of that HS chapter."""
        return self.chapters == "*" or hs[:2] in self.chapters.split()


def _offset(text: str) -> timedelta:
    sign = -1 if text.startswith("-") else 1
    h, m = text[1:].split(":")
    return sign * timedelta(hours=int(h), minutes=int(m))


class Reference:
    """Everything under data/, loaded once and checked for consistency."""

    def __init__(self, seed: int):
        self.locs = {r["locode"]: Loc(r["locode"], r["name"], r["country"], r["kinds"], float(r["lat"]),
                                      float(r["lon"]), _offset(r["utc_offset"]), float(r["weight"]),
                                      r["side"] == "eu") for r in _rows("locations.csv")}
        self.commodities = [Commodity(r["hs6"], r["cn8"], r["undg"], r["package"], float(r["kg_min"]),
                                      float(r["kg_max"]), int(r["count_min"] or 0), int(r["count_max"] or 0),
                                      float(r["eur_kg_min"]), float(r["eur_kg_max"]), r["modes"],
                                      tuple(r["origins"].split()), frozenset(r["tags"].split()), float(r["weight"]),
                                      r["description"])
                            for r in _rows("commodities.csv")]
        self.parties: dict[str, Party] = {}
        for r in _rows("parties.csv"):
            p = Party(**r)
            p.id = self._party_id(p, seed)
            self.parties[p.key] = p
        self.by_role: dict[str, list[Party]] = defaultdict(list)
        for p in self.parties.values():
            self.by_role[p.role].append(p)
        self.vessels = _rows("vessels.csv")
        for v in self.vessels:
            ids.check_imo(v["imo"])
        self.carriers = {r["key"]: r for r in _rows("carriers.csv")}
        prefixes = _rows("container_prefixes.csv")
        self.prefixes = [r["prefix"] for r in prefixes if "reefer" not in r["note"]]  # dry boxes
        self.reefer_prefixes = [r["prefix"] for r in prefixes if "reefer" in r["note"] or r["kind"] == "carrier"]
        self.airlines = {r["key"]: r for r in _rows("airlines.csv")}
        self.offices = {r["locode"]: r["office"] for r in _rows("customs_offices.csv")}
        self.feeders: dict[str, list[str]] = defaultdict(list)  # hub -> feeder ports
        for r in _rows("feeders.csv"):
            self.feeders[r["hub"]].append(r["feeder_port"])
        self.services = _rows("services.csv")
        self.bulk_lanes = {r["hs6"]: r for r in _rows("bulk_lanes.csv")}
        self.road_lanes = _rows("road_lanes.csv")
        self.rail_lanes = _rows("rail_lanes.csv")
        self._check()

    @staticmethod
    def _party_id(p: Party, seed: int) -> str | None:
        rng = random.Random(f"{seed}:{p.key}")
        if p.role == "person":
            return None
        if p.key == "fw13":  # a Northern Ireland forwarder: XI EORI, valid in the EU
            return ids.eori("XI", rng)
        if p.role == "haulier":  # third-country hauliers register in the member state of first entry
            issuer = {"TR": "BG", "UA": "PL", "CH": "DE", "NO": "SE", "RS": "HU", "GB": "FR"}[p.country]
            return ids.eori(issuer, rng)
        if p.country in ids.EU or p.role != "shipper":
            return ids.eori(p.country if p.country in ids.EU else "DE", rng)
        return ids.tin(p.country, rng) if rng.random() < 0.8 else None

    def _check(self) -> None:
        for s in self.services:
            for code in s["origin_rotation"].split() + s["eu_rotation"].split():
                assert "s" in self.locs[code].kinds, f"service {s['code']}: {code} is not a seaport here"
            assert self.services and all(self.locs[c].eu for c in s["eu_rotation"].split())
            assert s["eu_rotation"].split()[0] in self.offices, s
        for hub, ports in self.feeders.items():
            for code in ports + [hub]:
                assert "s" in self.locs[code].kinds, code
        for lane in self.bulk_lanes.values():
            for code in lane["load_ports"].split() + lane["eu_ports"].split():
                assert "s" in self.locs[code].kinds, code
            assert all(c in self.offices for c in lane["eu_ports"].split()), lane
        for a in self.airlines.values():
            for code in a["origin_airports"].split() + a["eu_airports"].split():
                assert "a" in self.locs[code].kinds, code
            assert all(c in self.offices for c in a["eu_airports"].split()), a
        for lane in self.road_lanes + self.rail_lanes:
            for code in lane["origin_places"].split() + [lane["destination"]]:
                assert code in self.locs, code
        assert len(self.locs) >= 300 and len({c.hs6 for c in self.commodities}) >= 150

    # -- look-ups ---------------------------------------------------------------------------------
    def goods_for(self, mode: str, country: str, rng: random.Random, tags_without=()) -> Commodity | None:
        """Goods of that mode from that country, that one of its shippers deals in."""
        found = [c for c in self.commodities if mode in c.modes and country in c.origins
                 and not (c.tags & set(tags_without)) and self.shippers_in([country], c)]
        return rng.choices(found, [c.weight for c in found])[0] if found else None

    def shippers_in(self, countries, commodity: Commodity | None = None) -> list[Party]:
        return [p for p in self.by_role["shipper"] if p.country in countries
                and (commodity is None or p.trades(commodity.hs6))]

    def km(self, a: str, b: str) -> float:
        x, y = self.locs[a], self.locs[b]
        p1, p2 = math.radians(x.lat), math.radians(y.lat)
        dl, dp = math.radians(y.lon - x.lon), p2 - p1
        h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
        return 2 * 6371 * math.asin(math.sqrt(h))


# Where a ship really goes between two ports: great-circle distance times a detour factor. Asia,
# the Gulf, East Africa and Oceania to north-west Europe is round the Cape of Good Hope since 2024.
FAR_EAST = frozenset("CN HK TW KR JP VN TH MY SG ID PH KH MM BD IN PK LK AE OM SA QA KW BH IQ KE TZ DJ MU MG AU NZ".split())
NW_EUROPE = frozenset("NL BE DE FR GB IE DK SE FI PL LT LV EE NO PT".split())
SEA_KMH = 33.0  # 18 knots, a container ship's service speed


def sail_hours(ref: Reference, a: str, b: str) -> float:
    ca, cb = ref.locs[a].country, ref.locs[b].country
    factor = 1.3
    if (ca in FAR_EAST) != (cb in FAR_EAST):
        factor = 2.3 if (ca in NW_EUROPE or cb in NW_EUROPE) else 1.8
    return max(10.0, ref.km(a, b) * factor / SEA_KMH)


# Member states an EU port of unloading serves (its hinterland, by road, rail or barge).
_NORTH_RANGE = set("NL BE DE LU AT CZ PL HU SK DK SE FI FR IT LT LV EE IE SI".split())
HINTERLAND = {"NL": _NORTH_RANGE, "BE": _NORTH_RANGE, "DE": _NORTH_RANGE, "FR": set("FR LU BE ES IT".split()),
              "ES": {"ES", "PT", "FR"}, "PT": {"PT", "ES"}, "IT": set("IT AT SI HU SK CZ DE FR".split()),
              "SI": set("SI HR AT HU SK CZ IT DE".split()), "HR": set("HR SI HU AT".split()),
              "GR": set("GR BG RO HU CY CZ SK".split()), "MT": {"MT", "IT"}, "RO": {"RO", "BG", "HU"},
              "BG": {"BG", "RO"}, "PL": set("PL CZ SK LT LV HU DE".split())}


# --------------------------------------------------------------------------------------------------
# XML
# --------------------------------------------------------------------------------------------------
def E(parent, name: str, text=None, **attrs):
    el = etree.SubElement(parent, f"{{{ENS}}}{name}", **attrs)
    if text is not None:
        el.text = str(text)
    return el


def utc(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def kg(grams: int) -> str:
    whole, rest = divmod(grams, KG)
    return f"{whole}.{rest:03d}".rstrip("0").rstrip(".") if rest else str(whole)


def party_el(parent, tag: str, p: Party, with_id=True):
    """A party (Party), or with its EORI a registered one (RegisteredParty): the same elements."""
    el = E(parent, tag)
    E(el, "Name", p.name)
    if with_id and p.id:
        E(el, "IdentificationNumber", p.id)
    a = E(el, "Address")
    E(a, "Street", p.street)
    E(a, "City", p.city)
    if p.postcode:
        E(a, "PostCode", p.postcode)
    E(a, "Country", p.country)
    if p.phone:
        E(el, "Phone", p.phone)
    if p.email:
        E(el, "Email", p.email)
    return el


def registered_el(parent, tag: str, p: Party):
    assert p.id, f"{p.key} has no EORI"
    return party_el(parent, tag, p)


def doc_el(parent, tag: str, kind: str, number: str):
    el = E(parent, tag)
    E(el, "Type", kind)
    E(el, "Number", number)
    return el


def postal_means(parent, number: str, arrive: datetime):
    m = E(parent, "ActiveBorderTransportMeans")
    E(m, "ModeOfTransport", 5)
    E(m, "ConveyanceReference", number)
    E(m, "EstimatedArrival", utc(arrive))


def road_means(parent, plate: str, nationality: str, arrive: datetime):
    m = E(parent, "ActiveBorderTransportMeans")
    E(m, "ModeOfTransport", 3)
    E(m, "VehicleRegistration", plate)
    E(m, "Nationality", nationality)
    E(m, "EstimatedArrival", utc(arrive))


def rail_means(parent, train: str, arrive: datetime):
    m = E(parent, "ActiveBorderTransportMeans")
    E(m, "ModeOfTransport", 2)
    E(m, "TrainNumber", train)
    E(m, "EstimatedArrival", utc(arrive))


# --------------------------------------------------------------------------------------------------
# Goods
# --------------------------------------------------------------------------------------------------
@dataclass
class Goods:
    c: Commodity
    grams: int
    count: int | None
    value_eur: float | None
    currency: str
    containers: list[str] = field(default_factory=list)
    marks: str | None = None
    hs: str = ""
    package: str = ""  # the package code, when not the commodity's usual one (a postal item)


def make_goods(c: Commodity, rng: random.Random, scale: float = 1.0, max_count: int | None = None) -> Goods:
    if c.bulk:  # kg_min/kg_max of a bulk commodity are tonnes per shipload
        grams = int(rng.uniform(c.kg_min, c.kg_max)) * 1000 * KG
        count = None
    else:
        count = max(1, int(round(rng.randint(c.count_min, c.count_max) * scale)))
        if max_count:
            count = min(count, max_count)
        per = rng.uniform(c.kg_min, c.kg_max)
        grams = max(1, int(count * per * KG * rng.uniform(1.0, 1.02)))
    value = None
    if c.eur_kg_max > 0:
        value = round(grams / KG * rng.uniform(c.eur_kg_min, c.eur_kg_max), 2)
    currency = rng.choice(["EUR", "EUR", "USD"]) if value is not None else "EUR"
    if currency == "USD":
        value = round(value * 1.08, 2)
    hs = c.cn8 if c.cn8 and rng.random() < 0.4 else c.hs6
    return Goods(c, grams, count, value, currency, hs=hs)


def goods_el(parent, n: int, g: Goods, rng: random.Random, with_value=True):
    el = E(parent, "GoodsItem")
    E(el, "ItemNumber", n)
    E(el, "Description", g.c.description)
    E(el, "HSCode", g.hs)
    if g.c.undg:
        E(el, "UNDGNumber", g.c.undg)
    E(el, "GrossMass", kg(g.grams))
    pk = E(el, "Packaging")
    E(pk, "Type", g.package or g.c.package)
    if g.count is not None:  # bulk takes no count; unpacked units (NE/NF/NG) are counted
        E(pk, "Count", g.count)
    if g.marks:
        E(pk, "ShippingMarks", g.marks)
    if with_value and g.value_eur is not None:
        E(el, "DeclaredValue", f"{g.value_eur:.2f}", currency=g.currency)
    for cid in g.containers:
        E(el, "ContainerRef", cid)
    return el


def totals_el(parent, goods: list[Goods]):
    E(parent, "TotalGrossMass", kg(sum(g.grams for g in goods)))
    E(parent, "TotalPackages", sum(g.count or 0 for g in goods))


def route_el(parent, pol: str, pou: str, itinerary: list[str]):
    E(E(parent, "PlaceOfLoading"), "UNLocode", pol)
    E(E(parent, "PlaceOfUnloading"), "UNLocode", pou)
    it = E(parent, "Itinerary")
    for c in itinerary:
        E(it, "Country", c)


def ordered(*groups) -> list[str]:
    """Countries in order, each once."""
    out: list[str] = []
    for g in groups:
        for c in ([g] if isinstance(g, str) or g is None else g):
            if c and c not in out:
                out.append(c)
    return out


# --------------------------------------------------------------------------------------------------
# The builder
# --------------------------------------------------------------------------------------------------
@dataclass
class Voyage:
    vessel: dict
    service: str
    number: str
    calls: list[tuple[str, datetime, datetime]]  # port, arrival, departure
    call_ids: dict = field(default_factory=dict)

    def first_eu(self, ref: "Reference") -> str:
        """The first EU port of call: where the customs office of first entry is."""
        return next(p for p, _, _ in self.calls if ref.locs[p].eu)

    def at(self, port: str) -> tuple[datetime, datetime]:
        for p, a, d in self.calls:
            if p == port:
                return a, d
        raise KeyError(port)


class Builder:
    def __init__(self, out: Path, count: int, seed: int):
        self.out, self.count, self.rng = out, count, random.Random(seed)
        self.ref = Reference(seed)
        self.files: list[dict] = []
        self.events: list[dict] = []
        self.containers: set[str] = set()
        self.lrn_seq: Counter = Counter()
        self.doc_seq = 0
        self.transport_calls: set[tuple] = set()
        self.kinds: Counter = Counter()
        self.consignments = 0

    # -- helpers --------------------------------------------------------------------------------
    def when(self) -> datetime:
        return START + timedelta(seconds=self.rng.randint(0, SPAN_DAYS * 86400))

    def lrn(self, filer: Party) -> str:
        self.lrn_seq[filer.key] += 1
        return f"{filer.key.upper()}-{self.rng.randint(100, 999)}{self.lrn_seq[filer.key]:05d}"

    def docno(self, prefix: str, digits: int = 9) -> str:
        self.doc_seq += 1
        return f"{prefix}{self.rng.randint(10 ** (digits - 4), 10 ** (digits - 3) - 1)}{self.doc_seq % 1000:03d}"

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def pick(self, items, weights=None):
        return self.rng.choices(items, weights=weights)[0] if weights else self.rng.choice(items)

    def write(self, kind: str, consignment: str, root, issued: datetime, declarant: Party, office: str,
              representative: Party | None = None):
        """Header first, then the body that was built on `root`; then the file."""
        header = etree.Element(f"{{{ENS}}}Header")
        filer = representative or declarant
        lrn = self.lrn(filer)
        E(header, "LRN", lrn)
        E(header, "IssueDateTime", utc(issued))
        E(header, "CustomsOfficeOfFirstEntry", office)
        registered_el(header, "Declarant", declarant)
        if representative is not None:
            registered_el(header, "Representative", representative)
        root.insert(0, header)
        path = Path("filings") / kind / f"{lrn}.xml"
        (self.out / path).parent.mkdir(parents=True, exist_ok=True)
        (self.out / path).write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8",
                                                     pretty_print=True))
        self.files.append({"file": str(path), "kind": kind, "consignment": consignment, "lrn": lrn,
                           "filer": filer.id})
        self.kinds[kind] += 1

    def root(self, kind: str):
        return etree.Element(f"{{{ENS}}}IE3{kind}", nsmap={None: ENS})

    def maybe_rep(self, p=0.15) -> Party | None:
        return self.pick(self.ref.by_role["forwarder"]) if self.rng.random() < p else None

    def office(self, locode: str) -> str:
        return self.ref.offices[locode]

    def lane_for(self, lanes: list[dict], lane: dict, origin: str, goods: list) -> tuple[dict, Party]:
        """The consignee first (an importer of these goods in a country one of the origin's lanes
        reaches), then the lane that ends in its country."""
        mine = [x for x in lanes if origin in {self.ref.locs[p].country for p in x["origin_places"].split()}]
        reached = {self.ref.locs[x["destination"]].country for x in mine}
        traders = [p for p in self.ref.by_role["consignee"] if all(p.trades(g.c.hs6) for g in goods)]
        near = [p for p in traders if p.country in reached]
        consignee = self.pick(near) if near else self.consignee_for(None, goods)
        matching = [x for x in mine if self.ref.locs[x["destination"]].country == consignee.country]
        return (self.pick(matching) if matching else lane), consignee

    def consignee_for(self, country: str | None = None, goods: list | None = None, port: str | None = None) -> Party:
        """An importer that deals in the goods: in that member state where there is one, else in
        the hinterland the EU port of unloading serves."""
        c = [p for p in self.ref.by_role["consignee"] if all(p.trades(g.c.hs6) for g in goods or ())]
        specialist = [p for p in c if p.chapters != "*"]
        if specialist and self.rng.random() < 0.8:
            c = specialist
        if port:
            served = HINTERLAND.get(self.ref.locs[port].country, {self.ref.locs[port].country})
            near = [p for p in c if p.country in served]
            c = near or c  # no importer of these goods nearby: one further inland (the goods go on)
        if country:
            local = [p for p in c if p.country == country]
            if local and (port is None or self.rng.random() < 0.6):
                return self.pick(local)
        return self.pick(c)

    def shipper_for(self, commodity: Commodity) -> tuple[Party, str] | None:
        """A shipper dealing in the commodity, in one of its origin countries (and that country)."""
        countries = [c for c in commodity.origins if self.ref.shippers_in([c], commodity)]
        if not countries:
            return None
        country = self.pick(countries)
        return self.pick(self.ref.shippers_in([country], commodity)), country

    # -- sea ------------------------------------------------------------------------------------
    def voyage(self, service: dict, depart: datetime) -> Voyage:
        ops = [v for v in self.ref.vessels if v["operator"] == service["operator"] and v["type"] == "container"]
        vessel = self.pick(ops)
        style = self.ref.carriers[service["operator"]]["voyage_style"]
        n = self.rng.randint(100, 699)
        number = {"3digits+W": f"{n}W", "2letters+3digits+W": f"{service['code'][:2]}{n}W",
                  "4digits+W": f"{self.rng.randint(2601, 2652)}W", "4digits": f"{self.rng.randint(2601, 2652)}"}[style]
        calls, t, prev = [], depart, None
        for port in service["origin_rotation"].split() + service["eu_rotation"].split():
            if prev is not None:
                t = t + timedelta(hours=sail_hours(self.ref, prev, port))
            arrive = t
            t = t + timedelta(hours=self.rng.uniform(14, 40))
            calls.append((port, arrive, t))
            prev = port
        return Voyage(vessel, service["code"], number, calls)

    def feeder_vessel(self, operator: str) -> dict:
        own = [v for v in self.ref.vessels if v["operator"] == operator and v["type"] == "feeder"]
        return self.pick(own or [v for v in self.ref.vessels if v["type"] == "feeder"])

    def call(self, vessel: dict, voyage: str, port: str, service: str, seq: int) -> dict:
        key = (vessel["imo"], voyage, port)
        call_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "call:" + "|".join(key)))
        return {"transportCallID": call_id, "carrierServiceCode": service[:5], "exportVoyageNumber": voyage,
                "importVoyageNumber": voyage, "transportCallSequenceNumber": seq, "UNLocationCode": port,
                "facilityTypeCode": "POTE", "modeOfTransport": "VESSEL",
                "vessel": {"vesselIMONumber": vessel["imo"], "vesselName": vessel["name"],
                           "vesselFlag": vessel["flag"], "vesselCallSignNumber": vessel["call_sign"],
                           "vesselOperatorCarrierCode": self.ref.carriers[vessel["operator"]]["scac"],
                           "vesselOperatorCarrierCodeListProvider": "NMFTA"}}

    def local(self, t: datetime, port: str) -> str:
        off = self.ref.locs[port].offset
        return (t + off).replace(tzinfo=timezone(off)).isoformat(timespec="seconds")

    def equipment_event(self, code: str, t: datetime, cid: str, size: str, empty: str, place: str,
                        documents: list, seals=(), call: dict | None = None, facility: str | None = None):
        ev = {"eventID": self.uuid(), "eventCreatedDateTime": utc(t + timedelta(minutes=self.rng.randint(1, 45))),
              "eventType": "EQUIPMENT", "eventClassifierCode": "ACT", "eventDateTime": self.local(t, place),
              "equipmentEventTypeCode": code, "equipmentReference": cid, "ISOEquipmentCode": size,
              "emptyIndicatorCode": empty,
              "eventLocation": {"locationName": facility or self.ref.locs[place].name, "UNLocationCode": place}}
        if call is not None:
            ev["transportCall"] = call
        if documents:
            ev["documentReferences"] = documents
        if seals:
            ev["seals"] = [{"sealNumber": s, "sealSource": "CAR", "sealType": "BLT"} for s in seals]
        self.events.append(ev)

    def transport_event(self, code: str, t: datetime, call: dict, port: str):
        key = (call["transportCallID"], code)
        if key in self.transport_calls:
            return
        self.transport_calls.add(key)
        self.events.append({"eventID": self.uuid(), "eventCreatedDateTime": utc(t + timedelta(minutes=20)),
                            "eventType": "TRANSPORT", "eventClassifierCode": "ACT",
                            "eventDateTime": self.local(t, port), "transportEventTypeCode": code,
                            "transportCall": call})

    def container_history(self, boxes: list[tuple[str, str, list[str]]], voy: Voyage, pol: str, pou: str,
                          stuffing: str, documents: list, feeder: str | None, relay: str | None,
                          operator: str) -> dict:
        """DCSA ACT events of each box, from the empty pick-up to the discharge in the EU (and the
        gate-out for some). Returns the times the filing needs: earliest pick-up, stuffing, loading."""
        rng = self.rng
        _, dep_pol = voy.at(pol)
        load = dep_pol - timedelta(hours=rng.uniform(4, 20))
        seq = {p: i + 1 for i, (p, _, _) in enumerate(voy.calls)}
        mother_call_pol = self.call(voy.vessel, voy.number, pol, voy.service, seq[pol])
        self.transport_event("DEPA", dep_pol, mother_call_pol, pol)
        first_eu = voy.first_eu(self.ref)
        arr_first = voy.at(first_eu)[0]
        self.transport_event("ARRI", arr_first, self.call(voy.vessel, voy.number, first_eu, voy.service,
                                                          seq[first_eu]), first_eu)
        arr_pou, _ = voy.at(pou)
        disc = arr_pou + timedelta(hours=rng.uniform(4, 30))
        gate_port = feeder or pol
        if feeder:  # feeder leg to the hub where the filing's place of loading is
            fv = self.feeder_vessel(operator)
            fvoy = f"{rng.randint(100, 999)}S"
            dwell = timedelta(hours=rng.uniform(40, 160))
            feeder_disc = load - dwell
            feeder_load = feeder_disc - timedelta(hours=sail_hours(self.ref, feeder, pol) + rng.uniform(6, 20))
            first_load = feeder_load
        else:
            first_load = load
        gate_in = first_load - timedelta(hours=rng.uniform(12, 96))
        trucking = timedelta(hours=self.ref.km(stuffing, gate_port) * 1.3 / 35 + rng.uniform(3, 10))
        stuffed = gate_in - trucking - timedelta(hours=rng.uniform(2, 30))
        picked = stuffed - trucking - timedelta(hours=rng.uniform(4, 48))
        out = {"picked": picked, "stuffed": stuffed, "load": load, "first_load": first_load, "disc": disc,
               "arr_first": arr_first}
        for cid, size, seals in boxes:
            jitter = lambda: timedelta(minutes=rng.randint(-90, 90))  # noqa: E731 - boxes move one by one
            depot = f"{self.ref.locs[gate_port].name} Container Depot"
            self.equipment_event("PICK", picked + jitter(), cid, size, "EMPTY", gate_port, documents,
                                 facility=depot)
            self.equipment_event("STUF", stuffed + jitter(), cid, size, "LADEN", stuffing, documents,
                                 facility=f"{self.ref.locs[stuffing].name} shipper's warehouse")
            if feeder:
                fcall = self.call(fv, fvoy, feeder, "FDR", 1)
                self.equipment_event("GTIN", gate_in + jitter(), cid, size, "LADEN", feeder, documents, seals,
                                     fcall)
                self.equipment_event("LOAD", feeder_load + jitter(), cid, size, "LADEN", feeder, documents, seals,
                                     fcall)
                hub_call = self.call(fv, fvoy, pol, "FDR", 2)
                self.equipment_event("DISC", feeder_disc + jitter(), cid, size, "LADEN", pol, documents, seals,
                                     hub_call)
                self.equipment_event("LOAD", load + jitter(), cid, size, "LADEN", pol, documents, seals,
                                     mother_call_pol)
            else:
                self.equipment_event("GTIN", gate_in + jitter(), cid, size, "LADEN", pol, documents, seals,
                                     mother_call_pol)
                self.equipment_event("LOAD", load + jitter(), cid, size, "LADEN", pol, documents, seals,
                                     mother_call_pol)
            pou_call = self.call(voy.vessel, voy.number, pou, voy.service, seq[pou])
            self.equipment_event("DISC", disc + jitter(), cid, size, "LADEN", pou, documents, seals, pou_call)
            last, last_place = disc, pou
            if relay:  # an EU feeder onwards to another member state's port
                rv = self.feeder_vessel(operator)
                rvoy = f"{rng.randint(100, 999)}N"
                reload = disc + timedelta(hours=rng.uniform(24, 120))
                self.equipment_event("LOAD", reload, cid, size, "LADEN", pou, documents, seals,
                                     self.call(rv, rvoy, pou, "EUF", 1))
                last = reload + timedelta(hours=sail_hours(self.ref, pou, relay) + rng.uniform(4, 20))
                last_place = relay
                self.equipment_event("DISC", last, cid, size, "LADEN", relay, documents, seals,
                                     self.call(rv, rvoy, relay, "EUF", 2))
            if rng.random() < 0.6:
                self.equipment_event("GTOT", last + timedelta(hours=rng.uniform(10, 96)), cid, size, "LADEN",
                                     last_place, documents, seals)
        return out

    def sea_issue(self, times: dict, short_sea: bool) -> datetime:
        """The 24-hour rule: deep-sea containers are declared at least 24 h before loading at the
        place of loading (often before the box is stuffed); the number is known from the pick-up.
        Short sea: at least 2 h before arrival at the first EU port."""
        rng = self.rng
        earliest = times["picked"] + timedelta(hours=1)
        if short_sea:
            latest = times["arr_first"] - timedelta(hours=2)
            t = times["load"] + timedelta(hours=rng.uniform(-48, 12))
        else:
            latest = times["load"] - timedelta(hours=24)
            t = times["load"] - timedelta(hours=rng.uniform(24, 144))
        t = min(max(t, earliest), latest)
        assert earliest <= t <= latest or t == latest, "no honest filing time"
        return t.replace(microsecond=0)

    def sea_route(self, commodity: Commodity, origin_country: str):
        """A service, the place of loading (a port of the service, or a hub fed from the origin
        country's port), the place of unloading and the stuffing place."""
        rng = self.rng
        services, choices = self.ref.services, []
        for s in services:
            rot = s["origin_rotation"].split()
            for p in rot:
                if self.ref.locs[p].country == origin_country:
                    choices.append((s, p, None))
                for f in self.ref.feeders.get(p, []):
                    if self.ref.locs[f].country == origin_country:
                        choices.append((s, p, f))
        if not choices:
            return None
        direct = [c for c in choices if c[2] is None]
        s, pol, feeder = self.pick(direct) if direct and rng.random() < 0.8 else self.pick(choices)
        eu = s["eu_rotation"].split()
        pou = self.pick(eu, [self.ref.locs[p].weight for p in eu])
        gate = feeder or pol
        inland = [c for c, l in self.ref.locs.items() if l.country == self.ref.locs[gate].country and "d" in l.kinds
                  and c != gate and self.ref.km(c, gate) < 1500]
        stuffing = self.pick(inland) if inland and rng.random() < 0.4 else gate
        return s, pol, pou, feeder, stuffing

    def size_for(self, c: Commodity) -> str:
        if "reefer" in c.tags:
            return "45R1"
        heavy = c.kg_max >= 20 and c.eur_kg_max < 3 or c.package in ("WA", "DR", "43", "PX", "CR", "BE", "CL")
        return self.pick(["22G1", "22G1", "42G1"]) if heavy else self.pick(["45G1", "45G1", "42G1"])

    def boxes_for(self, goods: list[Goods], size: str, operator: str | None, max_kg=26000) -> list[tuple[str, str, list]]:
        """Enough boxes for the goods (an ocean carrier's own or leased; a railway's leased), each sealed."""
        own = self.ref.carriers[operator]["own_container_prefixes"].split() if operator else []
        pool = self.ref.reefer_prefixes if size[2] == "R" else self.ref.prefixes
        seal_prefix = self.ref.carriers[operator]["scac"][:2] if operator else "RW"
        boxes = []
        for g in goods:
            n = max(1, math.ceil(g.grams / KG / max_kg))
            for _ in range(n):
                owner = self.pick(own + pool)
                cid = ids.container_id(owner, self.rng, self.containers)
                seal = f"{seal_prefix}{self.rng.randint(1000000, 9999999)}"
                boxes.append((cid, size, [seal]))
                g.containers.append(cid)
        return boxes

    packed = "LADEN"  # the declared PackedStatus of the boxes being written (tests/scenarios declares some EMPTY)

    def equipment_els(self, parent, boxes, with_seals: bool):
        for cid, size, seals in boxes:
            te = E(parent, "TransportEquipment")
            E(te, "ContainerId", cid)
            E(te, "SizeType", size)
            E(te, "PackedStatus", self.packed)
            if with_seals:
                for s in seals:
                    E(te, "Seal", s)

    def straight(self, kind: str, means, carrier: Party, doc_type: str, doc: str, pol: str, pou: str,
                 itinerary: list[str], shipper: Party, consignee: Party, goods: list[Goods], boxes=(),
                 sealed: bool = False, notify: Party | None = None):
        """A filing whose consignment is one transport document with its goods (straight bill,
        direct air waybill, road or rail consignment note). `means` writes the transport means."""
        root = self.root(kind)
        means(root)
        registered_el(root, "Carrier", carrier)
        con = E(root, "Consignment")
        doc_el(con, "TransportDocument", doc_type, doc)
        route_el(con, pol, pou, itinerary)
        party_el(con, "Consignor", shipper)
        party_el(con, "Consignee", consignee)
        if notify is not None:
            party_el(con, "NotifyParty", notify)
        totals_el(con, goods)
        self.equipment_els(con, boxes, sealed)
        for n, g in enumerate(goods, 1):
            goods_el(con, n, g, self.rng)
        return root

    def house_level(self, kind: str, means, master: tuple[str, str], doc: tuple[str, str], pol: str, pou: str,
                    itinerary: list[str], shipper: Party, consignee: Party, goods: list[Goods], boxes=(),
                    sealed: bool = False, notify: Party | None = None):
        """A house-level filing: its own document, the master document it belongs to, its goods."""
        root = self.root(kind)
        if means is not None:
            means(root)
        con = E(root, "Consignment")
        doc_el(con, "MasterTransportDocument", *master)
        doc_el(con, "TransportDocument", *doc)
        route_el(con, pol, pou, itinerary)
        party_el(con, "Consignor", shipper)
        party_el(con, "Consignee", consignee, with_id=consignee.role != "person")
        if notify is not None:
            party_el(con, "NotifyParty", notify, with_id=notify.role != "person")
        totals_el(con, goods)
        self.equipment_els(con, boxes, sealed)
        for n, g in enumerate(goods, 1):
            goods_el(con, n, g, self.rng)
        return root

    def _master(self, kind, means, carrier, doc, pol, pou, itinerary, goods, boxes, sealed):
        """The master level both complete and partial datasets start with: (root, consignment)."""
        root = self.root(kind)
        means(root)
        registered_el(root, "Carrier", carrier)
        con = E(root, "Consignment")
        doc_el(con, "TransportDocument", *doc)
        route_el(con, pol, pou, itinerary)
        totals_el(con, goods)
        self.equipment_els(con, boxes, sealed)
        return root, con

    def master_with_houses(self, kind: str, means, carrier: Party, doc: tuple[str, str], pol: str, pou: str,
                           itinerary: list[str], houses: list, house_type: str, boxes=(), sealed: bool = False):
        """A complete dataset: the master document and every house consignment in it. houses:
        (consignor, consignee, goods, house document[, notify party or None])."""
        root, con = self._master(kind, means, carrier, doc, pol, pou, itinerary, [g for h in houses for g in h[2]],
                                 boxes, sealed)
        for shipper, consignee, gs, number, *notify in houses:
            h = E(con, "HouseConsignment")
            doc_el(h, "TransportDocument", house_type, number)
            party_el(h, "Consignor", shipper)
            party_el(h, "Consignee", consignee, with_id=consignee.role != "person")
            if notify and notify[0] is not None:
                party_el(h, "NotifyParty", notify[0], with_id=notify[0].role != "person")
            totals_el(h, gs)
            for n, g in enumerate(gs, 1):
                goods_el(h, n, g, self.rng)
        return root

    def partial_master(self, kind: str, means, carrier: Party, doc: tuple[str, str], pol: str, pou: str,
                       itinerary: list[str], goods: list[Goods], house_docs: tuple[str, list[str]],
                       house_filer: Party, boxes=(), sealed: bool = False):
        """The carrier's master-level filing: transport, route, totals, equipment and the house
        documents the house filings will quote, each with the EORI of the party that files it (the
        carrier's customer, who told it the house bills): a house joins its master on that word."""
        root, con = self._master(kind, means, carrier, doc, pol, pou, itinerary, goods, boxes, sealed)
        for number in house_docs[1]:
            E(doc_el(con, "HouseTransportDocument", house_docs[0], number), "Filer", house_filer.id)
        return root

    def sea_means(self, parent, voy: Voyage, arrival: datetime):
        m = E(parent, "ActiveBorderTransportMeans")
        E(m, "ModeOfTransport", 1)
        E(m, "VesselIMO", voy.vessel["imo"])
        E(m, "VesselName", voy.vessel["name"])
        E(m, "VoyageNumber", voy.number)
        E(m, "Nationality", voy.vessel["flag"])
        E(m, "EstimatedArrival", utc(arrival))

    def sea_itinerary(self, voy: Voyage, origin: str, stuffing: str, feeder: str | None, pol: str, pou: str,
                      relay: str | None, consignee_country: str | None) -> list[str]:
        ports = [p for p, _, _ in voy.calls]
        between = ports[ports.index(pol): ports.index(pou) + 1]
        return ordered(origin, self.ref.locs[stuffing].country, feeder and self.ref.locs[feeder].country,
                       [self.ref.locs[p].country for p in between], relay and self.ref.locs[relay].country,
                       consignee_country)  # to the final destination: the consignee's country

    def short_sea(self, pol: str) -> bool:
        return self.ref.locs[pol].country in {"TR", "EG", "MA", "TN", "DZ", "IL", "LB", "GB", "NO", "UA", "GE"}

    def sea_plan(self, commodity: Commodity, origin: str):
        route = self.sea_route(commodity, origin)
        if route is None:
            return None
        s, pol, pou, feeder, stuffing = route
        depart = self.when() - timedelta(days=self.rng.uniform(2, 12))
        voy = self.voyage(s, depart)
        relay = None
        if pou in ("NLRTM", "DEHAM", "BEANR", "DEBRV") and self.rng.random() < 0.05:
            relay = self.pick(["FIHEL", "SEGOT", "LVRIX", "LTKLJ", "EETLL", "IEDUB", "PLGDY", "DKAAR"])
        return s, voy, pol, pou, feeder, stuffing, relay

    def containerised(self, candidates: list[Commodity]):
        """Goods for a container (weighted by how common the trade is), a shipper of them and the
        sailing: (commodity, shipper, origin country, sea plan), or None."""
        c = self.pick(candidates, [x.weight for x in candidates])
        found = self.shipper_for(c)
        if found is None:
            return None
        shipper, origin = found
        plan = self.sea_plan(c, origin)
        return None if plan is None else (c, shipper, origin, plan)

    def f10_container(self):
        rng = self.rng
        start = self.containerised([x for x in self.ref.commodities if "s" in x.modes and not x.bulk
                                    and "breakbulk" not in x.tags and "ro-ro" not in x.tags])
        if start is None:
            return False
        c, shipper, origin, (s, voy, pol, pou, feeder, stuffing, relay) = start
        goods = [make_goods(c, rng)]
        if rng.random() < 0.25:  # a second line from the same shipper's range
            other = self.ref.goods_for("s", origin, rng, ("bulk", "breakbulk", "ro-ro"))
            if other and other.package == c.package and "reefer" not in other.tags | c.tags \
                    and shipper.trades(other.hs6) and other.hs6 != c.hs6:
                goods.append(make_goods(other, rng, scale=0.3))
        consignee = self.consignee_for(self.ref.locs[relay or pou].country, goods, relay or pou)
        size = self.size_for(c)
        boxes = self.boxes_for(goods, size, s["operator"])
        carrier = self.ref.parties[s["operator"]]
        bl = self.docno(self.ref.carriers[s["operator"]]["bl_prefix"], 10)
        documents = [{"documentReferenceType": "BKG", "documentReferenceValue": self.docno("", 9)},
                     {"documentReferenceType": "TRD", "documentReferenceValue": bl}]
        times = self.container_history(boxes, voy, pol, pou, stuffing, documents, feeder, relay, s["operator"])
        issued = self.sea_issue(times, self.short_sea(pol))
        for i, g in enumerate(goods):
            g.marks = f"{consignee.name.split()[0].upper()}/{pou[2:]}/1-{g.count}" if rng.random() < 0.5 else None
        root = self.straight("F10", lambda r: self.sea_means(r, voy, times["arr_first"]), carrier, "N705", bl, pol,
                             pou, self.sea_itinerary(voy, origin, stuffing, feeder, pol, pou, relay, consignee.country),
                             shipper, consignee, goods, boxes, issued >= times["stuffed"] or rng.random() < 0.5,
                             self.pick(self.ref.by_role["forwarder"]) if rng.random() < 0.3 else None)
        first_eu = voy.first_eu(self.ref)
        self.write("F10", bl, root, issued, carrier, self.office(first_eu), self.maybe_rep())
        return True

    def f10_bulk(self):
        rng = self.rng
        c = self.pick([x for x in self.ref.commodities if x.bulk])
        lane = self.ref.bulk_lanes[c.hs6]
        ports = [p for p in lane["load_ports"].split() if self.ref.shippers_in([self.ref.locs[p].country], c)]
        if not ports:
            return False
        pol = self.pick(ports)
        pou = self.pick(lane["eu_ports"].split())
        origin = self.ref.locs[pol].country
        ops = {"bulk": "ocean07", "tanker": "ocean09", "gas": "ocean09"}[lane["vessel_type"]]
        vessel = self.pick([v for v in self.ref.vessels if v["operator"] == ops and v["type"] == lane["vessel_type"]]
                           or [v for v in self.ref.vessels if v["operator"] == ops])
        depart = self.when() - timedelta(days=rng.uniform(3, 20))
        arrive = depart + timedelta(hours=sail_hours(self.ref, pol, pou))
        issued = (depart + (arrive - depart) * rng.uniform(0.0, 0.9)).replace(microsecond=0)
        issued = min(issued, arrive - timedelta(hours=4))
        shipper = self.pick(self.ref.shippers_in([origin], c))
        return self.one_ship(c, shipper, origin, pol, pou, vessel, f"{rng.randint(1, 52):02d}/{str(depart.year)[2:]}",
                             arrive, issued, ops)

    def one_ship(self, c: Commodity, shipper: Party, origin: str, pol: str, pou: str, vessel: dict, voyage: str,
                 arrive: datetime, issued: datetime, operator: str) -> bool:
        """A straight bill for one lot that is not in a container (bulk, ro-ro, break-bulk)."""
        g = make_goods(c, self.rng)
        consignee = self.consignee_for(self.ref.locs[pou].country, [g], pou)
        voy = Voyage(vessel, "", voyage, [])
        carrier = self.ref.parties[operator]
        bl = self.docno(self.ref.carriers[operator]["bl_prefix"], 8)
        root = self.straight("F10", lambda r: self.sea_means(r, voy, arrive), carrier, "N705", bl, pol, pou,
                             ordered(origin, self.ref.locs[pou].country, consignee.country), shipper, consignee, [g])
        self.write("F10", bl, root, issued, carrier, self.office(pou), self.maybe_rep(0.25))
        return True

    def f10_unpacked(self):
        """Cars on a ro-ro ship, coils and machines on a general cargo ship: counted, not packed."""
        rng = self.rng
        c = self.pick([x for x in self.ref.commodities if x.unpacked and ("ro-ro" in x.tags or "breakbulk" in x.tags)])
        roro = "ro-ro" in c.tags
        found = self.shipper_for(c)
        if found is None:
            return False
        shipper, origin = found
        ports = [p for p, l in self.ref.locs.items() if l.country == origin and "s" in l.kinds]
        pol = self.pick(ports)
        eu = ["BEZEE", "BEANR", "DEBRV", "DEEME", "NLVLI", "SIKOP", "ESBCN", "GRPIR"] if roro else \
            ["BEANR", "NLRTM", "DEHAM", "ITGOA", "ESVLC", "PLGDY"]
        pou = self.pick(eu)
        ops = "ocean08" if roro else "ocean07"
        vessel = self.pick([v for v in self.ref.vessels if v["operator"] == ops and v["type"] in ("roro", "breakbulk")])
        depart = self.when() - timedelta(days=rng.uniform(3, 25))
        arrive = depart + timedelta(hours=sail_hours(self.ref, pol, pou))
        issued = min((depart - timedelta(hours=rng.uniform(0, 48))).replace(microsecond=0),
                     arrive - timedelta(hours=24))
        return self.one_ship(c, shipper, origin, pol, pou, vessel, f"{rng.randint(2601, 2652)}", arrive, issued, ops)

    def lcl_houses(self, origin: str, n: int, pou: str) -> list[tuple[Party, Party, list[Goods]]]:
        """House consignments of one consolidation: small lots from shippers of one country."""
        houses = []
        for _ in range(n):
            c = self.ref.goods_for("s", origin, self.rng, ("bulk", "breakbulk", "ro-ro", "reefer"))
            if c is None:
                return []
            shipper = self.pick(self.ref.shippers_in([origin], c))
            g = make_goods(c, self.rng, scale=self.rng.uniform(0.02, 0.15))
            houses.append((shipper, self.consignee_for(None, [g], pou), [g]))
        return houses

    def sea_consolidation(self, kind: str):
        """F11 (master and houses in one filing) or F12 with its house filings F15/F16/F17."""
        rng = self.rng
        origin = self.pick(["CN", "CN", "CN", "IN", "VN", "BD", "TR", "US", "TH", "ID", "KR", "BR", "PK", "MY"])
        seed_goods = self.ref.goods_for("s", origin, rng, ("bulk", "breakbulk", "ro-ro", "reefer"))
        if seed_goods is None:
            return False
        plan = self.sea_plan(seed_goods, origin)
        if plan is None:
            return False
        s, voy, pol, pou, feeder, stuffing, relay = plan
        stuffing = feeder or pol  # consolidations are stuffed at a container freight station at the port
        houses = self.lcl_houses(origin, rng.randint(2, 6), pou)
        if not houses:
            return False
        all_goods = [g for _, _, gs in houses for g in gs]
        size = self.pick(["45G1", "42G1"])
        boxes = []
        nboxes = 1 if sum(g.grams for g in all_goods) < 20000 * KG else 2
        for _ in range(nboxes):
            own = self.ref.carriers[s["operator"]]["own_container_prefixes"].split()
            cid = ids.container_id(self.pick(own + self.ref.prefixes), rng, self.containers)
            boxes.append((cid, size, [f"{self.ref.carriers[s['operator']]['scac'][:2]}{rng.randint(1000000, 9999999)}"]))
        for i, g in enumerate(all_goods):
            g.containers = [boxes[i % nboxes][0]]
        carrier = self.ref.parties[s["operator"]]
        nvocc = self.pick(self.ref.by_role["forwarder"])
        master = self.docno(self.ref.carriers[s["operator"]]["bl_prefix"], 10)
        house_docs = [f"{nvocc.key.upper()}{pol[2:]}{self.docno('', 8)}" for _ in houses]
        documents = [{"documentReferenceType": "BKG", "documentReferenceValue": self.docno("", 9)},
                     {"documentReferenceType": "TRD", "documentReferenceValue": master}]
        times = self.container_history(boxes, voy, pol, pou, stuffing, documents, feeder, relay, s["operator"])
        issued = self.sea_issue(times, self.short_sea(pol))
        first_eu = voy.first_eu(self.ref)
        itinerary = self.sea_itinerary(voy, origin, stuffing, feeder, pol, pou, relay, None)
        sealed = issued >= times["stuffed"] or rng.random() < 0.5
        means = lambda r: self.sea_means(r, voy, times["arr_first"])  # noqa: E731
        if kind == "F11":
            root = self.master_with_houses("F11", means, carrier, ("N704", master), pol, pou, itinerary,
                                           [(*h, doc) for h, doc in zip(houses, house_docs)], "N703", boxes, sealed)
            self.write("F11", master, root, issued, carrier, self.office(first_eu), self.maybe_rep(0.3))
            return True
        # F12: the carrier's master, listing the NVOCC's house bills; the NVOCC files each house (F15
        # complete, F16 partial, F17 for a master filed by another party).
        root = self.partial_master("F12", means, carrier, ("N704", master), pol, pou, itinerary, all_goods,
                                   ("N703", house_docs), nvocc, boxes, sealed)
        self.write("F12", master, root, issued, carrier, self.office(first_eu), self.maybe_rep(0.2))
        house_kind = self.pick(["F15", "F15", "F16", "F17"])
        for (shipper, consignee, gs), doc in zip(houses, house_docs):
            mine = {cid for g in gs for cid in g.containers}
            root = self.house_level(house_kind, means if rng.random() < 0.8 else None, ("N704", master), ("N703", doc),
                                    pol, pou, ordered(itinerary, consignee.country), shipper, consignee, gs,
                                    [b for b in boxes if b[0] in mine], sealed)
            h_issued = min(issued + timedelta(hours=rng.uniform(0, 20)),
                           times["load"] - timedelta(hours=24) if not self.short_sea(pol) else times["arr_first"]
                           - timedelta(hours=2)).replace(microsecond=0)
            self.write(house_kind, master, root, max(h_issued, issued), nvocc, self.office(first_eu))
        return True

    def f13_f14(self):
        """A carrier's partial filing for a straight bill (F13) and the goods data of that bill (F14)."""
        rng = self.rng
        start = self.containerised([x for x in self.ref.commodities if "s" in x.modes and not x.bulk and not x.unpacked])
        if start is None:
            return False
        c, shipper, origin, (s, voy, pol, pou, feeder, stuffing, relay) = start
        goods = [make_goods(c, rng)]
        boxes = self.boxes_for(goods, self.size_for(c), s["operator"])
        carrier = self.ref.parties[s["operator"]]
        consignee = self.consignee_for(self.ref.locs[pou].country, goods, pou)
        bl = self.docno(self.ref.carriers[s["operator"]]["bl_prefix"], 10)
        documents = [{"documentReferenceType": "TRD", "documentReferenceValue": bl}]
        times = self.container_history(boxes, voy, pol, pou, stuffing, documents, feeder, relay, s["operator"])
        issued = self.sea_issue(times, self.short_sea(pol))
        first_eu = voy.first_eu(self.ref)
        itinerary = self.sea_itinerary(voy, origin, stuffing, feeder, pol, pou, relay, consignee.country)
        sealed = issued >= times["stuffed"]
        means = lambda r: self.sea_means(r, voy, times["arr_first"])  # noqa: E731
        filer = self.pick(self.ref.by_role["forwarder"])  # who files the bill's goods data, as the carrier says
        root = self.partial_master("F13", means, carrier, ("N705", bl), pol, pou, itinerary, goods, ("N705", [bl]),
                                   filer, boxes, sealed)
        self.write("F13", bl, root, issued, carrier, self.office(first_eu))
        root = self.house_level("F14", means, ("N705", bl), ("N705", bl), pol, pou, itinerary, shipper, consignee,
                                goods, boxes, sealed)
        self.write("F14", bl, root, issued + timedelta(hours=rng.uniform(0.5, 12)), filer, self.office(first_eu))
        return True

    # -- air, express, postal ---------------------------------------------------------------------
    def flight(self, airline: dict, origin_airport: str | None = None, eu_airport: str | None = None):
        rng = self.rng
        pol = origin_airport or self.pick(airline["origin_airports"].split())
        pou = eu_airport or self.pick(airline["eu_airports"].split())
        number = f"{airline['designator']}{rng.randint(1, 9999):04d}"
        depart = self.when() + timedelta(hours=rng.uniform(6, 30))
        arrive = depart + timedelta(hours=self.ref.km(pol, pou) / 820 + 0.6)
        return pol, pou, number, depart.replace(microsecond=0), arrive.replace(microsecond=0)

    def air_means(self, parent, number: str, arrive: datetime):
        m = E(parent, "ActiveBorderTransportMeans")
        E(m, "ModeOfTransport", 4)
        E(m, "FlightNumber", number)
        E(m, "EstimatedArrival", utc(arrive))

    def air_goods(self, mode: str, origin: str, scale: float, small: bool = False) -> Goods | None:
        c = self.ref.goods_for(mode, origin, self.rng)
        if c is None:
            return None
        if small:
            return make_goods(c, self.rng, scale=0.01, max_count=max(1, min(c.count_max, 5)))
        return make_goods(c, self.rng, scale=scale)

    def air_origin(self, pol: str) -> str:
        """The country the goods come from: the airport's, or for a Gulf or Istanbul hub often a
        country further east (flown in, then on the flight to the EU)."""
        country = self.ref.locs[pol].country
        if country in ("QA", "AE", "TR") and self.rng.random() < 0.5:
            return self.pick(["IN", "VN", "BD", "KE", "PK", "CN", "LK"])
        return country

    def shipper_in(self, country: str, mode: str) -> tuple[Party, Goods] | None:
        g = self.air_goods(mode, country, self.rng.uniform(0.05, 0.4))
        if g is None:
            return None
        return self.pick(self.ref.shippers_in([country], g.c)), g

    def air_airline(self) -> dict:
        return self.pick([a for a in self.ref.airlines.values() if a["kind"] == "airline"])

    def air_straight(self):
        """F22: a direct air waybill, sometimes preceded by its pre-loading data (F20)."""
        rng = self.rng
        a = self.air_airline()
        pol, pou, number, depart, arrive = self.flight(a)
        origin = self.air_origin(pol)
        got = self.shipper_in(origin, "a")
        if got is None:
            return False
        shipper, g = got
        goods = [g]
        airline = self.ref.parties[a["key"]]
        consignee = self.consignee_for(self.ref.locs[pou].country if rng.random() < 0.5 else None, goods)
        awb = ids.awb_number(a["awb_prefix"], rng)
        issued = depart - timedelta(hours=rng.uniform(0.5, 18))
        itinerary = ordered(origin, self.ref.locs[pol].country, self.ref.locs[pou].country, consignee.country)
        if rng.random() < 0.35:
            self.pre_loading("F20", awb, "N740", None, None, shipper, consignee, goods, number, arrive,
                             issued - timedelta(hours=rng.uniform(1, 12)), airline, pou)
        root = self.straight("F22", lambda r: self.air_means(r, number, arrive), airline, "N740", awb, pol, pou,
                             itinerary, shipper, consignee, goods)
        self.write("F22", awb, root, issued, airline, self.office(pou), self.maybe_rep(0.2))
        return True

    def pre_loading(self, kind, doc, doc_type, master, master_type, shipper, consignee, goods, number, arrive,
                    issued, declarant, pou, postal=False):
        root = self.root(kind)
        if self.rng.random() < 0.7:
            if postal:
                postal_means(root, number, arrive)
            else:
                self.air_means(root, number, arrive)
        con = E(root, "Consignment")
        doc_el(con, "TransportDocument", doc_type, doc)
        if master:
            doc_el(con, "MasterTransportDocument", master_type, master)
        party_el(con, "Consignor", shipper)
        party_el(con, "Consignee", consignee)
        totals_el(con, goods)
        for n, g in enumerate(goods, 1):
            el = E(con, "GoodsItem")
            E(el, "ItemNumber", n)
            E(el, "Description", g.c.description)
            if self.rng.random() < 0.8:
                E(el, "HSCode", g.hs)
        self.write(kind, doc, root, issued.replace(microsecond=0), declarant, self.office(pou))

    def air_consolidation(self, kind: str):
        """F21 (master with its houses) or F23 with the forwarders' house filings F24."""
        rng = self.rng
        a = self.air_airline()
        pol, pou, number, depart, arrive = self.flight(a)
        origin = self.air_origin(pol)
        fwd = self.pick(self.ref.by_role["forwarder"])
        houses = []
        for _ in range(rng.randint(2, 5)):
            got = self.shipper_in(origin, "a")
            if got is None:
                return False
            shipper, g = got
            houses.append((shipper, self.consignee_for(None, [g]), [g], f"{fwd.key.upper()}{pol[2:]}{self.docno('', 7)}"))
        airline = self.ref.parties[a["key"]]
        mawb = ids.awb_number(a["awb_prefix"], rng)
        issued = (depart - timedelta(hours=rng.uniform(0.5, 18))).replace(microsecond=0)
        itinerary = ordered(origin, self.ref.locs[pol].country, self.ref.locs[pou].country)
        all_goods = [g for _, _, gs, _ in houses for g in gs]
        for shipper, consignee, gs, hawb in houses:
            if rng.random() < 0.3:
                self.pre_loading("F20", hawb, "N714", mawb, "N741", shipper, consignee, gs, number, arrive,
                                 issued - timedelta(hours=rng.uniform(1, 10)), fwd, pou)
        means = lambda r: self.air_means(r, number, arrive)  # noqa: E731
        route = ordered(itinerary, [h[1].country for h in houses])
        if kind == "F21":
            root = self.master_with_houses("F21", means, airline, ("N741", mawb), pol, pou, route, houses, "N714")
            self.write("F21", mawb, root, issued, airline, self.office(pou), self.maybe_rep(0.2))
            return True
        root = self.partial_master("F23", means, airline, ("N741", mawb), pol, pou, route, all_goods,
                                   ("N714", [h[3] for h in houses]), fwd)
        self.write("F23", mawb, root, issued, airline, self.office(pou))
        for shipper, consignee, gs, hawb in houses:
            self.air_house("F24", mawb, hawb, pol, pou, ordered(itinerary, consignee.country), shipper, consignee,
                           gs, number, arrive, issued + timedelta(minutes=rng.randint(5, 600)), fwd)
        return True

    def air_house(self, kind, mawb, hawb, pol, pou, itinerary, shipper, consignee, goods, number, arrive, issued,
                  filer):
        means = (lambda r: self.air_means(r, number, arrive)) if self.rng.random() < 0.7 else None
        root = self.house_level(kind, means, ("N741", mawb), ("N714", hawb), pol, pou, itinerary, shipper, consignee,
                                goods)
        self.write(kind, mawb, root, min(issued, arrive - timedelta(hours=1)).replace(microsecond=0), filer,
                   self.office(pou))

    def express_houses(self, pol: str, n: int) -> list:
        rng = self.rng
        houses = []
        for _ in range(n):
            origin = self.ref.locs[pol].country if rng.random() < 0.8 else self.pick(["CN", "US", "GB", "IN", "JP"])
            c = self.ref.goods_for("e", origin, rng)
            if c is None:
                origin = "CN"
                c = self.ref.goods_for("e", origin, rng)
            shipper = self.pick(self.ref.shippers_in([origin], c))
            g = make_goods(c, rng, scale=0.01, max_count=max(1, min(c.count_max, 6)))
            private = rng.random() < 0.4 and not ({"highvalue", "licensed", "docs"} & c.tags)
            consignee = self.pick(self.ref.by_role["person"]) if private else self.consignee_for(None, [g])
            waybill = f"{rng.randint(10 ** 9, 10 ** 10 - 1)}"
            waybill = waybill[:-1] + str(int(waybill[:-1]) % 7)  # express waybill: 10 digits, mod 7 check
            houses.append((shipper, consignee, [g], waybill, origin))
        return houses

    def express_complete(self):
        """F30: an express operator's own flight into its EU hub, every house in one filing; some
        houses were declared before loading too (F32)."""
        rng = self.rng
        e = self.pick([a for a in self.ref.airlines.values() if a["kind"] == "express"])
        pol, pou, number, depart, arrive = self.flight(e)
        operator = self.ref.parties[e["key"]]
        houses = self.express_houses(pol, rng.randint(3, 12))
        mawb = ids.awb_number(e["awb_prefix"], rng)
        issued = (depart - timedelta(hours=rng.uniform(0.5, 6))).replace(microsecond=0)
        for shipper, consignee, gs, waybill, origin in houses:
            if rng.random() < 0.15:
                self.pre_loading("F32", waybill, "N714", mawb, "N741", shipper, consignee, gs, number, arrive,
                                 issued - timedelta(hours=rng.uniform(1, 8)), operator, pou)
        route = ordered([h[4] for h in houses], self.ref.locs[pol].country, self.ref.locs[pou].country,
                        [h[1].country for h in houses])
        root = self.master_with_houses("F30", lambda r: self.air_means(r, number, arrive), operator, ("N741", mawb),
                                       pol, pou, route, [h[:4] for h in houses], "N714")
        self.write("F30", mawb, root, issued, operator, self.office(pou))
        return True

    def express_houses_on_airline(self):
        """F31: express houses carried on an airline's flight; the airline files the master air
        waybill (F23) listing them."""
        rng = self.rng
        a = self.air_airline()
        pol, pou, number, depart, arrive = self.flight(a)
        e = self.pick([x for x in self.ref.airlines.values() if x["kind"] == "express"])
        operator = self.ref.parties[e["key"]]
        houses = self.express_houses(pol, rng.randint(2, 6))
        airline = self.ref.parties[a["key"]]
        mawb = ids.awb_number(a["awb_prefix"], rng)
        issued = (depart - timedelta(hours=rng.uniform(0.5, 12))).replace(microsecond=0)
        itinerary = ordered([h[4] for h in houses], self.ref.locs[pol].country, self.ref.locs[pou].country)
        root = self.partial_master("F23", lambda r: self.air_means(r, number, arrive), airline, ("N741", mawb), pol,
                                   pou, ordered(itinerary, [h[1].country for h in houses]),
                                   [g for h in houses for g in h[2]], ("N714", [h[3] for h in houses]), operator)
        self.write("F23", mawb, root, issued, airline, self.office(pou))
        for shipper, consignee, gs, waybill, origin in houses:
            self.air_house("F31", mawb, waybill, pol, pou, ordered(itinerary, consignee.country), shipper, consignee,
                           gs, number, arrive, issued + timedelta(minutes=rng.randint(5, 300)), operator)
        return True

    def postal_dispatch(self):
        """F42: a postal dispatch (its receptacles) on a flight; F43: each item in it, quoting the
        dispatch as master; F45: pre-loading data of some items."""
        rng = self.rng
        post = self.pick(self.ref.by_role["post"])
        flights = [(a, p) for a in self.ref.airlines.values() if a["kind"] == "airline"
                   for p in a["eu_airports"].split() if self.ref.locs[p].country == post.country]
        if not flights:
            return False
        a, pou = self.pick(flights)
        pol, pou, number, depart, arrive = self.flight(a, eu_airport=pou)
        origin = self.ref.locs[pol].country
        if origin in ("QA", "AE"):
            origin = self.pick(["CN", "IN", "PK", "BD"])  # mail routed through a Gulf hub
        items = []
        nrec = rng.randint(1, 3)
        registered = rng.random() < 0.3
        parcels = rng.random() < 0.3  # a dispatch of parcels (subclass CN), else small packets (UN)
        for r in range(nrec):
            room = 30 * KG - 600  # a receptacle weighs at most 30 kg
            for _ in range(rng.randint(2, 6)):
                c = self.ref.goods_for("p", origin, rng) or self.ref.goods_for("p", "CN", rng)
                g = make_goods(c, rng, scale=0.01, max_count=1)
                # one postal item is one package: a packet under 2 kg or a parcel up to 10 kg
                g.grams = int(rng.uniform(0.5, 10) * KG) if parcels else int(rng.uniform(0.05, 1.95) * KG)
                if g.grams > room:
                    break
                room -= g.grams
                g.count = 1
                g.package = "PC" if parcels else "PK"
                if g.value_eur is not None:
                    g.value_eur = round(g.grams / KG * rng.uniform(c.eur_kg_min, c.eur_kg_max), 2)
                seller = self.pick(self.ref.shippers_in([origin], c) or self.ref.shippers_in(list(c.origins), c))
                person = self.pick([p for p in self.ref.by_role["person"] if p.country == post.country]
                                   or self.ref.by_role["person"])
                service = "CP" if parcels else "RB" if registered else self.pick(["LX", "LY", "UA"])
                items.append((r, seller, person, [g], ids.s10_item(service, origin, rng)))
        # receptacle ids (UPU S9): origin and destination office of exchange, category, subclass,
        # year, dispatch number, receptacle number, last-receptacle flag, registered flag, weight (hg)
        exchange = pol if self.ref.locs[pol].country == origin else self.pick(
            [c for c, l in self.ref.locs.items() if l.country == origin and "a" in l.kinds])
        o_impc = f"{origin}{exchange[2:]}A"  # the origin post's office of exchange
        d_impc = f"{post.country}{pou[2:]}A"
        subclass = "CN" if parcels else "UN"
        dispatch = f"{o_impc}{d_impc}A{subclass}{START.year % 10}{rng.randint(1, 9999):04d}"
        receptacles = []
        for r in range(nrec):
            mine = [it for it in items if it[0] == r]
            grams = sum(g.grams for it in mine for g in it[3]) + rng.randint(250, 600)  # bag and label
            hg = max(1, round(grams / 100))
            grams = hg * 100
            rid = f"{dispatch}{r + 1:03d}{1 if r == nrec - 1 else 0}{1 if registered else 0}{hg:04d}"
            assert len(rid) == 29, rid
            receptacles.append((rid, grams, len(mine)))
        carrier = self.ref.parties[a["key"]]
        issued = (depart - timedelta(hours=rng.uniform(0.5, 10))).replace(microsecond=0)
        itinerary = ordered(origin, self.ref.locs[pol].country, post.country)
        root = self.root("F42")
        postal_means(root, number, arrive)
        registered_el(root, "Carrier", carrier)
        con = E(root, "Consignment")
        doc_el(con, "TransportDocument", "N750", dispatch)
        route_el(con, pol, pou, itinerary)
        E(con, "TotalGrossMass", kg(sum(x[1] for x in receptacles)))
        # The published guide checks totals against their parts: here the receptacles' item counts
        # (a carrier would count the bags; the guide counts the postal items in them).
        E(con, "TotalPackages", sum(x[2] for x in receptacles))
        for rid, grams, count in receptacles:
            rec = E(con, "Receptacle")
            E(rec, "ReceptacleId", rid)
            E(rec, "GrossMass", kg(grams))
            E(rec, "ItemCount", count)
        self.write("F42", dispatch, root, issued, post, self.office(pou))
        for _, seller, person, gs, item_id in items:
            if rng.random() < 0.25:
                self.pre_loading("F45", item_id, "N750", dispatch, "N750", seller, person, gs, number, arrive,
                                 issued - timedelta(hours=rng.uniform(2, 24)), post, pou, postal=True)
            means = (lambda r: postal_means(r, number, arrive)) if rng.random() < 0.5 else None
            root = self.house_level("F43", means, ("N750", dispatch), ("N750", item_id), pol, pou, itinerary, seller,
                                    person, gs)
            self.write("F43", dispatch, root, issued + timedelta(minutes=rng.randint(1, 120)), post,
                       self.office(pou))
        return True

    # -- road and rail ----------------------------------------------------------------------------
    def plate(self, style: str) -> str:
        r, L = self.rng, "ABCDEFGHJKLMNPRSTUVYZ"
        pick = lambda n: "".join(r.choice(L) for _ in range(n))  # noqa: E731
        return {"TR": f"{r.choice(['34', '35', '41', '16'])} {pick(3)} {r.randint(100, 999)}",
                "UA": f"{r.choice(['BC', 'AA', 'KA'])} {r.randint(1000, 9999)} {pick(2)}",
                "CH": f"{r.choice(['BS', 'BL', 'TI', 'ZH'])} {r.randint(10000, 999999)}",
                "NO": f"{pick(2)} {r.randint(10000, 99999)}",
                "RS": f"{r.choice(['BG', 'NS', 'NI'])} {r.randint(100, 9999)}-{pick(2)}",
                "GB": f"{pick(2)}{r.randint(10, 75)} {pick(3)}"}[style]

    def road(self):
        rng = self.rng
        lane = self.pick(self.ref.road_lanes)
        pol = self.pick(lane["origin_places"].split())
        origin = self.ref.locs[pol].country
        c = self.ref.goods_for("d", origin, rng)
        if c is None:
            return False
        shipper = self.pick(self.ref.shippers_in([origin], c))
        goods = [make_goods(c, rng, scale=rng.uniform(0.05, 0.6), max_count=None)]
        while sum(g.grams for g in goods) > 24000 * KG:
            goods[0] = make_goods(c, rng, scale=0.2)
        lane, consignee = self.lane_for(self.ref.road_lanes, lane, origin, goods)
        if pol not in lane["origin_places"].split():
            pol = self.pick(lane["origin_places"].split())
        haulier = self.ref.parties[lane["carrier"]]
        dest = lane["destination"]
        arrive = (self.when() + timedelta(hours=rng.uniform(1, 48))).replace(microsecond=0)
        issued = (arrive - timedelta(hours=rng.uniform(1.2, 30))).replace(microsecond=0)
        cmr = f"{origin}{self.docno('', 8)}"
        plate = self.plate(lane["plate"])
        means = lambda r: road_means(r, plate, lane["plate"], arrive)  # noqa: E731
        root = self.straight("F50", means, haulier, "N730", cmr, pol, dest,
                             ordered(lane["itinerary"].split(), consignee.country), shipper, consignee, goods)
        rep = self.pick([f for f in self.ref.by_role["forwarder"]]) if rng.random() < 0.4 else None
        self.write("F50", cmr, root, issued, haulier, lane["entry_office"], rep)
        return True

    def rail(self):
        rng = self.rng
        lane = self.pick(self.ref.rail_lanes)
        pol = self.pick(lane["origin_places"].split())
        origin = self.ref.locs[pol].country
        if origin == "CN":  # block trains carry what container ships do, less bulk, reefers and dangerous goods
            c = self.ref.goods_for("r", origin, rng) if rng.random() < 0.2 else \
                self.ref.goods_for("s", origin, rng, ("bulk", "breakbulk", "ro-ro", "reefer", "dg"))
        else:
            c = self.ref.goods_for("d", origin, rng) or self.ref.goods_for("s", origin, rng, ("bulk", "breakbulk",
                                                                                              "ro-ro", "reefer"))
        if c is None:
            return False
        shipper = self.pick(self.ref.shippers_in([origin], c))
        goods = [make_goods(c, rng, scale=rng.uniform(0.3, 1.0))]
        lane, consignee = self.lane_for(self.ref.rail_lanes, lane, origin, goods)
        if pol not in lane["origin_places"].split():
            pol = self.pick(lane["origin_places"].split())
        operator = self.ref.parties[lane["carrier"]]
        dest = lane["destination"]
        boxes = []
        if origin in ("CN", "UA", "TR") or rng.random() < 0.5:  # block trains of 40-foot boxes
            boxes = self.boxes_for(goods, self.size_for(c), None)
        arrive = (self.when() + timedelta(hours=rng.uniform(1, 48))).replace(microsecond=0)
        issued = (arrive - timedelta(hours=rng.uniform(2.5, 72))).replace(microsecond=0)
        cim = f"CIM{self.docno('', 9)}"
        train = f"{lane['train_prefix']}{rng.randint(8000, 9999)}"
        means = lambda r: rail_means(r, train, arrive)  # noqa: E731
        root = self.straight("F51", means, operator, "N720", cim, pol, dest,
                             ordered(lane["itinerary"].split(), consignee.country), shipper, consignee, goods, boxes, True)
        self.write("F51", cim, root, issued, operator, lane["entry_office"])
        return True

    # -- the mix ------------------------------------------------------------------------------------
    def build(self) -> dict:
        mix = [  # (weight, maker): shares of consignments, tuned so filings come out about
            (22, self.f10_container),  # 40% sea, 20% air, 15% express, 12% postal, 8% road, 5% rail
            (4, self.f10_bulk),
            (3, self.f10_unpacked),
            (4, lambda: self.sea_consolidation("F11")),
            (6, lambda: self.sea_consolidation("F12")),
            (1.5, self.f13_f14),
            (10, self.air_straight),
            (4, lambda: self.air_consolidation("F21")),
            (3, lambda: self.air_consolidation("F23")),
            (3.5, self.express_complete),
            (2.5, self.express_houses_on_airline),
            (2.6, self.postal_dispatch),
            (15, self.road),
            (6.5, self.rail),
        ]
        weights, makers = [w for w, _ in mix], [m for _, m in mix]
        while len(self.files) < self.count:
            if self.pick(makers, weights)():
                self.consignments += 1
        events = self.out / "container-events.jsonl"
        self.events.sort(key=lambda e: e["eventCreatedDateTime"])
        with open(events, "w", encoding="utf-8") as f:
            for e in self.events:
                f.write(json.dumps(e, separators=(",", ":")) + "\n")
        manifest = {"filings": len(self.files), "consignments": self.consignments, "kinds": dict(sorted(self.kinds.items())),
                    "containers": len(self.containers), "events": len(self.events), "files": self.files}
        (self.out / "manifest.json").write_text(json.dumps(manifest, indent=1))
        return manifest


def build(out: Path, count: int = 1200, seed: int = 2026) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    return Builder(out, count, seed).build()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=1200)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    m = build(args.out, args.count, args.seed)
    print(json.dumps({k: v for k, v in m.items() if k != "files"}, indent=1))


if __name__ == "__main__":
    main()
