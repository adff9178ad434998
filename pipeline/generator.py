"""Deterministic generator of realistic ENS filings, with planted defects and ground-truth labels.

Clean traffic is drawn from the reference data (traffic.py): places of loading and unloading
weighted by trade and mode (and a long tail from the whole UN/LOCODE list), commodities with
their real HS 2022 subheadings, the packages, masses and unit values they travel with, UN
numbers where they are dangerous goods, parties with their country's legal forms and national
identification formats. Honest traffic that a naive rule would refer (chemicals with their UN
numbers, sporting ammunition, declared fireworks and lithium batteries, gold and luxury at true
value, antiques with provenance, produce from drug-source countries on direct routes, cheap
bulk) comes with the commodities, labelled `decoy`. A few filings name a well-formed place of
a known country that the code list lacks (accepted, with a warning; labelled `warnings`).

Each filing depends only on (seed, index), so a corpus is reproducible and can be made in
parts. A label says what the validator must answer: registered, or rejected with which
error codes on which data elements. Tests and benchmarks count against the labels.
"""
from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from functools import lru_cache
from typing import Iterator

from lxml import etree
from stdnum import imo, iso6346

from . import resources
from .domain.filings import (BY_CODE, ENS_NS, FILING_KINDS, HOUSE, MASTER, PARTIAL_MASTER, POSTAL_MASTER, PRE_LOADING,
                             STRAIGHT, FilingKind)
from .domain.reference import Commodity, ReferenceData, bundled_reference
from .traffic import EU, LEGAL_FORMS, TRADE_WORDS, TradeModel

# What each planted defect must produce: (layer, expected error code, element in error).
DEFECTS: dict[str, tuple[str, str, str]] = {
    # The XSD catches these.
    "container-format": ("xsd", "XSD_FORMAT", "ContainerId"),
    "missing-element": ("xsd", "XSD_MISSING", "Consignment"),
    "description-too-long": ("xsd", "XSD_LENGTH", "Description"),
    "datetime-not-utc": ("xsd", "XSD_FORMAT", "IssueDateTime"),
    "hs-format": ("xsd", "XSD_FORMAT", "HSCode"),
    "unexpected-element": ("xsd", "XSD_UNEXPECTED", "Remarks"),
    # The data-quality rules catch these.
    "container-check-digit": ("dq", "DQ_CONTAINER_CHECK_DIGIT", "ContainerId"),
    "imo-check-digit": ("dq", "DQ_IMO_CHECK_DIGIT", "VesselIMO"),
    "unknown-country": ("dq", "DQ_COUNTRY_UNKNOWN", "Country"),
    "locode-country": ("dq", "DQ_LOCODE_COUNTRY_UNKNOWN", "UNLocode"),
    "eori-shape": ("dq", "DQ_EORI_SHAPE", "IdentificationNumber"),
    "hs-unknown-subheading": ("dq", "DQ_HS_SUBHEADING_UNKNOWN", "HSCode"),
    "package-type-unknown": ("dq", "DQ_PACKAGE_TYPE_UNKNOWN", "Type"),
    "vague-description": ("dq", "DQ_VAGUE_DESCRIPTION", "Description"),
    "mass-total": ("dq", "DQ_TOTAL_GROSS_MASS", "TotalGrossMass"),
    "package-total": ("dq", "DQ_TOTAL_PACKAGES", "TotalPackages"),
    "duplicate-house-document": ("dq", "DQ_HOUSE_DOCUMENT_DUPLICATE", "Number"),
    "routing": ("dq", "DQ_ROUTING_COUNTRIES", "Itinerary"),
    "bulk-with-count": ("dq", "DQ_BULK_PACKAGE_COUNT", "Count"),
    "unpacked-without-count": ("dq", "DQ_UNPACKED_PIECE_COUNT", "Count"),  # on a count, as bulk-with-count: one of the two
    # The envelope: refused before the schema is consulted.
    "not-well-formed": ("envelope", "NOT_WELL_FORMED", ""),
    "dtd-entities": ("envelope", "DTD_FORBIDDEN", ""),
    "wrong-encoding": ("envelope", "NOT_WELL_FORMED", ""),
    "unknown-message": ("envelope", "UNKNOWN_MESSAGE", ""),
}
CONTENT_DEFECTS = tuple(k for k, v in DEFECTS.items() if v[0] != "envelope")

# Planted risk: consignments a risk analyst wants referred. The filings stay valid; the label
# says which pattern was planted, and tests and benchmarks count referrals against it. The
# watch-listed parties come from the bundled starter rule pack's reference data.
RISK_PATTERNS = ("watch-listed-party", "watch-listed-name", "precursor", "undervalued-brands", "dual-use-sanctioned",
                 "weapons-misdeclared", "protected-species", "imminent-threat", "lithium-undeclared",
                 "heavy-packages", "container-deception", "counterfeit-wording", "explosives")
# Planted decoys: innocent traffic that resembles risk (a name like a listed one, goods cheap but
# within the usual spread, ...). They are labelled clean, as is the honest-but-unusual traffic
# the commodities bring (their `unusual` tag becomes the label's decoy): what a pack refers among
# them is its false-hit cost.
DECOYS = ("legal-ammunition", "similar-name", "cheap-but-plausible", "fireworks", "bananas-from-source")
PRECURSORS = (("PMK glycidate powder", "293292"), ("Pseudoephedrine hydrochloride", "293942"),
              ("Safrole oil in drums", "293294"), ("Piperonal crystals", "293293"))
BRANDS = ("420221", "910211", "640399", "900410")  # brand-prone commodities of the reference list
RISKY_GOODS = {"dual-use-sanctioned": ("Industrial fibre lasers", "901320"),
               "weapons-misdeclared": ("Pistol frames and slides", "732690"),
               "protected-species": ("Carved ivory figurines", "960110"),
               "counterfeit-wording": ("Designer style handbags AAA quality", "420221"),
               "explosives": ("Electric detonators for quarries", "360360"),
               "imminent-threat": ("Printer toner cartridges", "844399"),
               "lithium-undeclared": ("Lithium-ion power banks", "850760")}
ENVELOPE_DEFECTS = tuple(k for k, v in DEFECTS.items() if v[0] == "envelope")

MODE_WEIGHTS = {"sea": 30, "air": 25, "express": 20, "postal": 15, "road": 6, "rail": 4}
SANCTIONED = frozenset(("IR", "RU", "BY", "KP", "SY"))  # everyday traffic is not loaded there (EU restrictive measures)
# Where deep-sea boxes from a region are transhipped on the way to Europe (routing countries).
TRANSIT = {"CN": ("SG", "LK", "MY", "EG"), "KR": ("SG", "CN"), "JP": ("SG", "CN"), "TW": ("SG", "HK"),
           "VN": ("SG", "MY"), "TH": ("SG", "MY"), "ID": ("SG", "MY"), "IN": ("AE", "LK", "EG", "OM"),
           "BD": ("LK", "SG"), "PK": ("AE", "OM"), "BR": ("MA", "PA"), "AR": ("BR",), "CL": ("PA", "PE"),
           "AU": ("SG", "LK"), "ZA": ("MA", "TG")}
AIR_HUBS = ("AE", "QA", "TR", "CN", "HK")
CONTAINER_OWNERS = ("MSCU", "MAEU", "CMAU", "HLXU", "OOLU", "EGHU", "CSQU", "TGHU", "COSU", "ONEU", "TCNU", "BMOU")
VESSELS = ("MSC Tessa", "Maersk Elba", "CMA CGM Jacques Saade", "Ever Alot", "HMM Algeciras", "ONE Apus",
           "Cosco Shipping Universe", "OOCL Hong Kong", "Hapag Berlin Express", "MSC Irina", "Madrid Maersk")
CARRIERS_AIR = ("KL", "LH", "AF", "CX", "EK", "QR", "TK", "SQ", "CV", "5X", "FX", "D0", "ET", "CA", "KE")
EXPRESS_LIKE = ("express", "postal")
LONG_DESCRIPTION = "Stainless steel kitchen knives in gift boxes of six " * 12  # > 512 characters
BASE_TIME = datetime(2026, 11, 20, tzinfo=timezone.utc)
NEW_PLACE_RATE = 0.004  # filings naming a place newer than the code list (accepted with a warning)


@dataclass(frozen=True)
class GeneratedFiling:
    name: str
    data: bytes
    label: dict = field(hash=False)


@dataclass(frozen=True)
class GeneratorSpec:
    count: int = 100
    seed: int = 1
    defect_rate: float = 0.1  # share of filings with at least one content defect
    envelope_rate: float = 0.02  # share refused before the schema (hostile or broken XML)
    resubmission_rate: float = 0.02  # share that re-sends an earlier filing unchanged
    modes: tuple[str, ...] = tuple(MODE_WEIGHTS)
    defects: tuple[str, ...] = CONTENT_DEFECTS
    size: str = "mixed"  # mixed | small | large
    risk_rate: float = 0.0  # share of valid filings with a planted risk pattern
    risks: tuple[str, ...] = RISK_PATTERNS
    decoy_rate: float = 0.0  # share of valid filings with an innocent look-alike of a risk (labelled clean)
    # Who files partial filings (masters list their houses' filers; linking.py, who may file what):
    # None, EORIs drawn per consignment and written into each filing as its declared filer (a folder
    # has no channel to say who sends it); or the identities of a channel's senders (an ingress's
    # tokens), drawn from, left out of the filings and named in each label (`filer`) for the sender.
    filers: tuple[str, ...] | None = None


def _fmt_time(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _mass(value: float) -> str:
    return str(Decimal(str(round(value, 3))).normalize()) if value % 1 else str(int(value))


class _Builder:
    """Builds one filing's tree; every choice comes from the filing's own random stream."""

    def __init__(self, rng: random.Random, ref: ReferenceData, model: TradeModel, kind: FilingKind, index: int,
                 spec: GeneratorSpec, link: "_Link | None" = None):
        self.rng, self.ref, self.model, self.kind, self.index, self.spec = rng, ref, model, kind, index, spec
        self.link = link
        self.origin: str | None = None  # where the goods come from: the loading country, else the consignor's
        self.entry: str | None = None  # the EU country of unloading
        self.unusual: str | None = None  # the first honest-but-unusual commodity drawn, for the label
        self.new_place: str | None = None  # a place newer than the code list, when drawn

    # -- small pieces ------------------------------------------------------------------
    def el(self, parent, tag, text=None):
        e = etree.SubElement(parent, f"{{{ENS_NS}}}{tag}")
        if text is not None:
            e.text = str(text)
        return e

    def address(self, parent, country: str):
        a = self.el(parent, "Address")
        self.el(a, "Street", self.model.street(self.rng, country))
        self.el(a, "City", self.model.town(self.rng, country)[:35])
        self.el(a, "PostCode", str(self.rng.randint(1000, 99999)))
        self.el(a, "Country", country)

    def party(self, parent, tag, country, registered=False, person=False):
        p = self.el(parent, tag)
        self.el(p, "Name", self.model.person(self.rng) if person else self.model.company(self.rng, country))
        if registered or (not person and self.rng.random() < 0.5):
            self.el(p, "IdentificationNumber", self.model.identification(self.rng, country))
        if not registered or self.rng.random() < 0.8:
            self.address(p, country)
        if self.rng.random() < 0.3:
            self.el(p, "Phone", f"+{self.rng.randint(10, 99)} {self.rng.randint(10, 99)} {self.rng.randint(100000, 9999999)}")
        return p

    def container_id(self, k: int) -> str:
        """Unique per filing index (up to 100,000 filings): two filings never declare the same box by chance."""
        owner = self.rng.choice(CONTAINER_OWNERS)
        body = owner + f"{(self.index * 10 + k) % 1_000_000:06d}"
        return body + iso6346.calc_check_digit(body)

    def imo_number(self) -> str:
        body = f"{self.rng.randint(900000, 999999)}"
        return body + imo.calc_check_digit(body)

    def doc(self, parent, tag, doc_type, prefix, number: str | None = None):
        d = self.el(parent, tag)
        self.el(d, "Type", doc_type)
        suffix = self.rng.randint(100, 999)  # drawn either way: the filing's other choices stay the same
        self.el(d, "Number", number or f"{prefix}{self.index:07d}{suffix}")
        return d

    # -- structure ---------------------------------------------------------------------
    def item_count(self) -> int:
        """mixed: the 1-20 KB filings of everyday traffic; large: 60 to 250 goods items (50-120 KB)."""
        r, size = self.rng.random(), self.spec.size
        if self.kind.mode in EXPRESS_LIKE and size != "large":
            return self.rng.choice((1, 1, 1, 2, 3))
        if size == "small" or (size == "mixed" and r < 0.55):
            return self.rng.randint(1, 3)
        if size == "mixed" and r < 0.85:
            return self.rng.randint(4, 15)
        if size == "mixed":
            return self.rng.randint(16, 45)
        return self.rng.randint(60, 250)

    def commodities(self, n: int) -> list[Commodity]:
        goods = [self.model.commodity(self.rng, self.kind.mode, self.origin) for _ in range(n)]
        self.unusual = self.unusual or next((c.unusual for c in goods if c.unusual), None)
        return goods

    def package_kind(self, c: Commodity) -> str:
        known = self.ref.package_types.get(c.package_type)
        return known.kind if known else "package"

    def goods(self, parent, commodities: list[Commodity], containers, pre_loading=False) -> tuple[float, int]:
        total_mass, total_packages = 0.0, 0
        small = self.kind.mode in EXPRESS_LIKE
        for i, c in enumerate(commodities, start=1):
            g = self.el(parent, "GoodsItem")
            self.el(g, "ItemNumber", i)
            self.el(g, "Description", c.description)
            kind = self.package_kind(c)
            if kind == "bulk":  # a shipment's worth: no packages to count
                mass, packages = round(c.kg_per_package * self.rng.uniform(0.5, 1.5), 1), 0
            else:
                packages = self.rng.randint(1, 3) if small else (
                    self.rng.randint(1, 12) if kind == "unpacked" else self.rng.randint(1, 40))
                mass = round(packages * c.kg_per_package * self.rng.uniform(0.8, 1.2), 1) or 0.1
            total_mass += mass
            total_packages += packages
            if pre_loading:
                if self.rng.random() < 0.6:
                    self.el(g, "HSCode", c.hs6)
                continue
            self.el(g, "HSCode", c.hs6 + (f"{self.rng.randint(10, 99)}" if self.rng.random() < 0.3 else ""))
            if c.undg:
                self.el(g, "UNDGNumber", c.undg)
            self.el(g, "GrossMass", _mass(mass))
            pk = self.el(g, "Packaging")
            self.el(pk, "Type", c.package_type)
            if kind != "bulk":
                self.el(pk, "Count", packages)
            if self.rng.random() < 0.3:
                self.el(pk, "ShippingMarks", f"MARKS {self.rng.randint(1, 999)}/{self.index}")
            if self.rng.random() < 0.7:
                value = self.el(g, "DeclaredValue", f"{mass * c.eur_per_kg * self.rng.uniform(0.75, 1.3):.2f}")
                value.set("currency", "EUR")
            if containers:
                self.el(g, "ContainerRef", self.rng.choice(containers))
        return round(total_mass, 3), total_packages

    def equipment(self, parent, commodities: list[Commodity]) -> list[str]:
        """Boxes for sea, rail and some road traffic; bulk and unpacked goods (ore, cars) travel without."""
        mode = self.kind.mode
        if mode not in ("sea", "rail", "road") or (mode == "road" and self.rng.random() < 0.7):
            return []
        if commodities and all(self.package_kind(c) in ("bulk", "unpacked") for c in commodities):
            return []
        ids = [self.container_id(k) for k in range(self.rng.choice((1, 1, 1, 2, 2, 3, 5)))]
        for cid in ids:
            e = self.el(parent, "TransportEquipment")
            self.el(e, "ContainerId", cid)
            self.el(e, "SizeType", self.rng.choice(("22G1", "42G1", "45G1", "45R1")))
            self.el(e, "PackedStatus", "LADEN")
            for _ in range(self.rng.randint(1, 2)):
                self.el(e, "Seal", f"SL{self.rng.randint(1000000, 9999999)}")
        return ids

    def new_place_code(self, country: str) -> str:
        """A well-formed code of a known country that the code list does not have (yet)."""
        letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
        while True:
            code = country + "".join(self.rng.choice(letters) for _ in range(3))
            if code not in self.ref.locations:
                return code

    def route(self, parent) -> tuple[str, str]:
        mode = self.kind.mode
        loading = self.model.place(self.rng, "origin", mode, exclude_countries=SANCTIONED | EU)
        self.origin = loading[:2]
        unloading = self.model.place(self.rng, "entry", mode)
        self.entry = unloading[:2]
        if self.rng.random() < NEW_PLACE_RATE:
            loading = self.new_place = self.new_place_code(loading[:2])
        for tag, code in (("PlaceOfLoading", loading), ("PlaceOfUnloading", unloading)):
            p = self.el(parent, tag)
            if self.rng.random() < 0.92 or code == self.new_place:
                self.el(p, "UNLocode", code)
            else:
                self.el(p, "Name", self.ref.locations[code].name[:35])
                self.el(p, "Country", code[:2])
        it = self.el(parent, "Itinerary")
        countries = [loading[:2]]
        hubs = TRANSIT.get(loading[:2], ()) if mode == "sea" else AIR_HUBS if mode in ("air", "express", "postal") else ()
        if hubs and self.rng.random() < 0.4:
            transit = self.rng.choice(hubs)
            if transit not in countries:
                countries.append(transit)
        if unloading[:2] not in countries:
            countries.append(unloading[:2])
        for c in countries:
            self.el(it, "Country", c)
        return loading, unloading

    def transport_means(self, parent, eta: datetime, optional: bool):
        if optional and self.rng.random() < 0.4:
            return
        t = self.el(parent, "ActiveBorderTransportMeans")
        mode = self.kind.mode
        if mode == "sea":
            self.el(t, "ModeOfTransport", 1)
            self.el(t, "VesselIMO", self.imo_number())
            self.el(t, "VesselName", self.rng.choice(VESSELS))
            self.el(t, "VoyageNumber", f"{self.rng.choice(('', 'FA', 'AE', 'NE'))}{self.rng.randint(100, 999)}W")
        elif mode in ("air", "express"):
            self.el(t, "ModeOfTransport", 4)
            self.el(t, "FlightNumber", f"{self.rng.choice(CARRIERS_AIR)}{self.rng.randint(1, 9999):04d}")
        elif mode == "postal":
            self.el(t, "ModeOfTransport", 5)
            self.el(t, "ConveyanceReference", f"{self.rng.choice(CARRIERS_AIR)}{self.rng.randint(1, 9999):04d}")
        elif mode == "road":
            self.el(t, "ModeOfTransport", 3)
            self.el(t, "VehicleRegistration", f"{self.rng.randint(10, 99)} {self.rng.choice('ABCDEFGHKLMN')}"
                                                f"{self.rng.choice('ABCDEFGHKLMN')} {self.rng.randint(100, 999)}")
            self.el(t, "Nationality", self.origin or self.rng.choice(("TR", "UA", "RS", "MA")))
        else:
            self.el(t, "ModeOfTransport", 2)
            self.el(t, "TrainNumber", f"CR{self.rng.randint(10000, 99999)}")
        self.el(t, "EstimatedArrival", _fmt_time(eta))

    def doc_types(self) -> tuple[str, str]:
        """(master, house) transport document types for the mode."""
        return {"sea": ("N705", "N703"), "road": ("N730", "N730"), "rail": ("N720", "N720"),
                "postal": ("N750", "N750")}.get(self.kind.mode, ("N741", "N714"))

    def build(self, lrn: str, filer_country: str, issue: datetime) -> etree._Element:
        kind = self.kind
        root = etree.Element(f"{{{ENS_NS}}}{kind.root}", nsmap={"ens": ENS_NS})
        h = self.el(root, "Header")
        self.el(h, "LRN", lrn)
        self.el(h, "IssueDateTime", _fmt_time(issue))
        office = self.el(h, "CustomsOfficeOfFirstEntry", "")
        self.party(h, "Declarant", filer_country, registered=True)
        if self.rng.random() < 0.3:
            self.party(h, "Representative", self.rng.choice(sorted(EU)), registered=True)
        eta = issue + timedelta(hours=self.rng.randint(6, 24 * 20))
        optional_means = kind.level in (HOUSE, PRE_LOADING)
        means = self.el(root, "_means")  # filled once the route is known (road vehicles carry its country)
        if kind.level not in (HOUSE, PRE_LOADING):
            self.party(root, "Carrier", filer_country if kind.mode != "road" else self.rng.choice(sorted(EU)),
                       registered=True)
        c = self.el(root, "Consignment")
        master_type, house_type = self.doc_types()
        n = self.item_count()
        if kind.level == STRAIGHT:
            self.doc(c, "TransportDocument", master_type, "BL")
            self.route(c)
            self.consignor_consignee(c)
            totals = self.totals_placeholder(c)
            goods = self.commodities(n)
            containers = self.equipment(c, goods)
            self.fill_totals(totals, self.goods(c, goods, containers))
        elif kind.level == MASTER:
            self.doc(c, "TransportDocument", master_type, "MB")
            self.route(c)
            totals = self.totals_placeholder(c)
            houses = [self.commodities(max(1, n // 3)) for _ in range(self.rng.randint(1, 4))]
            containers = self.equipment(c, [g for h in houses for g in h])
            grand_mass, grand_packages = 0.0, 0
            for goods in houses:
                hc = self.el(c, "HouseConsignment")
                self.doc(hc, "TransportDocument", house_type, f"HB{self.rng.randint(10, 99)}")
                self.consignor_consignee(hc)
                house_totals = self.totals_placeholder(hc)
                mass, packages = self.goods(hc, goods, containers)
                self.fill_totals(house_totals, (mass, packages))
                grand_mass, grand_packages = grand_mass + mass, grand_packages + packages
            self.fill_totals(totals, (round(grand_mass, 3), grand_packages))
        elif kind.level == PARTIAL_MASTER:
            self.doc(c, "TransportDocument", master_type, "MB", self.link.master if self.link else None)
            self.route(c)
            self.fill_totals(self.totals_placeholder(c),
                             (round(self.rng.uniform(100, 20000), 1), self.rng.randint(1, 900)))
            self.equipment(c, [])
            for number, filer in (self.link.listed if self.link else ()):
                listed = self.doc(c, "HouseTransportDocument", house_type, "HB", number)
                if filer:
                    self.el(listed, "Filer", filer)
        elif kind.level == HOUSE:
            self.doc(c, "MasterTransportDocument", master_type, "MB", self.link.master if self.link else None)
            self.doc(c, "TransportDocument", house_type, "HB", self.link.house if self.link else None)
            self.route(c)
            self.consignor_consignee(c)
            totals = self.totals_placeholder(c)
            goods = self.commodities(n)
            containers = self.equipment(c, goods)
            self.fill_totals(totals, self.goods(c, goods, containers))
        elif kind.level == PRE_LOADING:
            self.doc(c, "TransportDocument", house_type, "HB")
            if self.rng.random() < 0.7:
                self.doc(c, "MasterTransportDocument", master_type, "MB")
            self.origin = self.model.place(self.rng, "origin", kind.mode, exclude_countries=SANCTIONED | EU)[:2]
            self.consignor_consignee(c, notify=False)
            totals = self.totals_placeholder(c)
            self.fill_totals(totals, self.goods(c, self.commodities(min(n, 20)), [], pre_loading=True))
        elif kind.level == POSTAL_MASTER:
            self.doc(c, "TransportDocument", master_type, "PM", self.link.master if self.link else None)
            self.route(c)
            totals = self.totals_placeholder(c)
            mass, items = 0.0, 0
            for _ in range(self.rng.randint(1, 30)):
                r = self.el(c, "Receptacle")
                self.el(r, "ReceptacleId", "".join(self.rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(29)))
                m = round(self.rng.uniform(2, 30), 1)
                k = self.rng.randint(1, 60)
                self.el(r, "GrossMass", _mass(m))
                self.el(r, "ItemCount", k)
                mass, items = mass + m, items + k
            self.fill_totals(totals, (round(mass, 3), items))
        self._fill_means(root, means, eta, optional_means)
        entry_country = self.entry or self.model.place(self.rng, "entry", "air")[:2]
        office.text = self.model.office_of_entry(self.rng, entry_country)
        return root

    def _fill_means(self, root, placeholder, eta, optional) -> None:
        holder = etree.Element("holder")
        self.transport_means(holder, eta, optional)
        for means in holder:
            placeholder.addprevious(means)
        root.remove(placeholder)

    def consignor_consignee(self, parent, notify=True):
        """The consignor where the goods are loaded (sometimes a trader elsewhere, as in triangular
        trade); the consignee in the EU, a private person for much of express and postal traffic."""
        origin = self.origin or self.model.place(self.rng, "origin", self.kind.mode,
                                                 exclude_countries=SANCTIONED | EU)[:2]
        self.origin = origin
        consignor = origin if self.rng.random() < 0.9 else self.rng.choice(("HK", "SG", "AE", "CH", "US", "GB"))
        self.party(parent, "Consignor", consignor)
        entry = self.entry or self.rng.choice(sorted(EU))
        consignee = entry if self.rng.random() < 0.8 else self.rng.choice(sorted(EU))
        private = self.kind.mode in EXPRESS_LIKE and self.rng.random() < 0.7
        self.party(parent, "Consignee", consignee, person=private)
        if notify and self.rng.random() < 0.2:
            self.party(parent, "NotifyParty", consignee)

    def totals_placeholder(self, parent):
        return self.el(parent, "TotalGrossMass", "0"), self.el(parent, "TotalPackages", "0")

    @staticmethod
    def fill_totals(elements, values):
        elements[0].text, elements[1].text = _mass(values[0]) if values[0] else "0.1", str(values[1])


def _q(tag: str) -> str:
    return f"{{{ENS_NS}}}{tag}"


def _plant(defect: str, root: etree._Element, rng: random.Random, ref: ReferenceData) -> bool:
    """Plants one content defect in the tree; False when this filing has no place for it."""
    def pick(tag):
        found = list(root.iter(_q(tag)))
        return rng.choice(found) if found else None

    if defect in ("container-format", "container-check-digit"):
        el = pick("ContainerId")
        if el is None:
            return False
        if defect == "container-format":
            el.text = el.text[:3] + el.text[4:]  # category letter dropped: 10 characters
        else:
            el.text = el.text[:10] + str((int(el.text[10]) + 1) % 10)
        for ref_el in root.iter(_q("ContainerRef")):
            ref_el.getparent().remove(ref_el)
        return True
    if defect == "missing-element":
        el = root.find(_q("Consignment"))
        root.remove(el)
        return True
    if defect == "description-too-long":
        el = pick("Description")
        if el is None:
            return False
        el.text = LONG_DESCRIPTION
        return True
    if defect == "datetime-not-utc":
        el = root.find(f"{_q('Header')}/{_q('IssueDateTime')}")
        el.text = el.text[:-1] + "+01:00"
        return True
    if defect in ("hs-format", "hs-unknown-subheading"):
        el = pick("HSCode")
        if el is None:
            return False
        if defect == "hs-format":
            el.text = el.text[:4] + "." + el.text[4:6]
        else:  # a chapter that does not exist, or a subheading HS 2022 replaced
            el.text = rng.choice(("77" + el.text[2:], "970110", "360300", "852990"[:4] + "99"))
        return True
    if defect == "unexpected-element":
        # At the end of the header: a validator cannot judge what follows an element out of place.
        etree.SubElement(root.find(_q("Header")), _q("Remarks")).text = "urgent"
        return True
    if defect == "imo-check-digit":
        el = pick("VesselIMO")
        if el is None:
            return False
        el.text = el.text[:6] + str((int(el.text[6]) + 1) % 10)
        return True
    if defect == "unknown-country":
        el = pick("Country")
        el.text = "QZ"
        return True
    if defect == "locode-country":  # a country that does not exist cannot be a location
        el = pick("UNLocode")
        if el is None:
            return False
        el.text = "QZ" + el.text[2:]
        return True
    if defect == "eori-shape":
        el = pick("IdentificationNumber")
        el.text = "QQ" + el.text[2:]
        return True
    if defect == "vague-description":
        el = pick("Description")
        if el is None:
            return False
        el.text = rng.choice(("General cargo", "FAK", "Said to contain consolidated cargo", "Various goods", "Parts"))
        return True
    if defect in ("mass-total", "package-total"):
        tag = "TotalGrossMass" if defect == "mass-total" else "TotalPackages"
        part = "GrossMass" if tag == "TotalGrossMass" else "Packaging"
        candidates = [t for t in root.iter(_q(tag)) if t.getparent().find(f"{_q('GoodsItem')}/{_q(part)}") is not None]
        if not candidates:
            return False
        el = rng.choice(candidates)
        el.text = str(int(float(el.text)) + rng.randint(3, 50))
        return True
    if defect == "duplicate-house-document":
        houses = root.findall(f"{_q('Consignment')}/{_q('HouseConsignment')}") or \
            root.findall(f"{_q('Consignment')}/{_q('HouseTransportDocument')}")
        if len(houses) < 2:
            return False
        a, b = houses[0], houses[1]
        number = lambda h: h.find(f"{_q('TransportDocument')}/{_q('Number')}") if h.tag == _q("HouseConsignment") \
            else h.find(_q("Number"))
        number(b).text = number(a).text
        return True
    if defect == "routing":
        it = pick("Itinerary")
        if it is None:
            return False
        loading = it.getparent().find(_q("PlaceOfLoading"))
        country = loading.findtext(_q("UNLocode"), "")[:2] or loading.findtext(_q("Country"))
        keep = [c for c in it if c.text != country]
        for c in list(it):
            it.remove(c)
        for c in keep:
            it.append(c)
        while len(it) < 2:
            etree.SubElement(it, _q("Country")).text = rng.choice([c for c in ("SG", "AE", "EG") if c != country])
        return True
    if defect == "package-type-unknown":
        el = pick("Type")
        el = el if el is not None and el.getparent().tag == _q("Packaging") else None
        if el is None:
            return False
        el.text = rng.choice(("XQ", "KK", "C1"))
        return True
    if defect == "unpacked-without-count":  # the totals follow, so only the missing count is wrong
        pk = next((p for p in root.iter(_q("Packaging")) if p.find(_q("Count")) is not None), None)
        if pk is None:
            return False
        pk.find(_q("Type")).text = rng.choice(("NE", "NF", "NG"))
        count = pk.find(_q("Count"))
        pk.remove(count)
        owner = pk.getparent().getparent()
        for holder in (owner, owner.getparent()) if owner.tag == _q("HouseConsignment") else (owner,):
            total = holder.find(_q("TotalPackages"))
            if total is not None:
                total.text = str(int(total.text) - int(count.text))
        return True
    if defect == "bulk-with-count":
        pk = pick("Packaging")
        if pk is None:
            return False
        pk.find(_q("Type")).text = "VR"
        if pk.find(_q("Count")) is None:
            pk.insert(1, etree.Element(_q("Count")))
        pk.find(_q("Count")).text = "12"
        return True
    raise ValueError(f"unknown defect {defect!r}")


@lru_cache(maxsize=1)
def _watch_list() -> tuple[dict, ...]:
    path = resources.rules_dir() / "risk" / "ics2-starter" / "reference" / "watch-parties.csv"
    with path.open(encoding="utf-8") as f:
        return tuple(csv.DictReader(f))


def _set_child(parent, tag: str, text: str, after: tuple[str, ...] = ()) -> None:
    """Sets a child's text, creating it after the last of `after` present (the schema's order)."""
    el = parent.find(_q(tag))
    if el is None:
        el = etree.Element(_q(tag))
        anchors = [parent.find(_q(a)) for a in after]
        anchors = [a for a in anchors if a is not None]
        if anchors:
            anchors[-1].addnext(el)
        else:
            parent.insert(0, el)
    el.text = text


def _set_goods(item, description: str, hs: str, rng: random.Random, ref: ReferenceData) -> None:
    """Makes a goods item other goods; a declared value follows (the usual value of known goods, else none)."""
    item.find(_q("Description")).text = description
    _set_child(item, "HSCode", hs, after=("ItemNumber", "Description"))
    for tag in ("UNDGNumber",):
        if item.find(_q(tag)) is not None:
            item.remove(item.find(_q(tag)))
    value = item.find(_q("DeclaredValue"))
    if value is not None:
        known = next((c for c in ref.commodities if c.hs6 == hs[:6]), None)
        if known is None:
            item.remove(value)
        else:
            value.text = f"{float(item.find(_q('GrossMass')).text) * known.eur_per_kg * rng.uniform(0.8, 1.2):.2f}"


def _file_as(root: etree._Element, filer: str) -> None:
    """The filing filed under `filer`: its representative's identification number, else its declarant's."""
    header = root.find(_q("Header"))
    party = header.find(_q("Representative"))
    (party if party is not None else header.find(_q("Declarant"))).find(_q("IdentificationNumber")).text = filer


def _set_party(party, name: str | None = None, pid: str | None = None, country: str | None = None,
               drop_id: bool = False) -> None:
    if name:
        party.find(_q("Name")).text = name
    if pid:
        _set_child(party, "IdentificationNumber", pid, after=("Name",))
    if drop_id and party.find(_q("IdentificationNumber")) is not None:
        party.remove(party.find(_q("IdentificationNumber")))
    address = party.find(_q("Address"))
    if country and address is not None:
        address.find(_q("Country")).text = country


def _plant_risk(pattern: str, root: etree._Element, kind: FilingKind, rng: random.Random,
                ref: ReferenceData) -> bool:
    """Plants one risk pattern; False when this filing has no place for it."""
    goods = list(root.iter(_q("GoodsItem")))
    consignors = list(root.iter(_q("Consignor")))
    pre_loading = kind.level == PRE_LOADING
    watch = [r for r in _watch_list() if r["list"] == "watch" and not r["valid_until"]]
    if pattern == "container-deception":  # the status generator plants it in the first container's history
        return kind.mode == "sea" and root.find(f".//{_q('VesselIMO')}") is not None and \
            root.find(f".//{_q('ContainerId')}") is not None
    if pattern in ("watch-listed-party", "watch-listed-name", "imminent-threat") and not consignors:
        return False
    if pattern == "watch-listed-party":
        row = rng.choice(watch)
        parties = consignors + list(root.iter(_q("Consignee")))
        _set_party(rng.choice(parties), row["name"], row["id"], row["country"])
        return True
    if pattern == "watch-listed-name":  # the name only, spelled another way, no identification number
        row = rng.choice(watch)
        name = row["name"].upper().replace(" CO. LTD", ", CO., LTD.").replace(" LTD", " LIMITED")
        _set_party(rng.choice(consignors), name, country=row["country"], drop_id=True)
        return True
    if not goods:
        return False
    item = rng.choice(goods)
    if pattern == "imminent-threat":
        if not pre_loading:
            return False
        row = next(r for r in _watch_list() if r["list"] == "threat")
        _set_party(rng.choice(consignors), row["name"], row["id"], row["country"])
        _set_goods(item, *RISKY_GOODS[pattern], rng, ref)
        return True
    if pattern == "precursor":
        _set_goods(item, *rng.choice(PRECURSORS), rng, ref)
        return True
    if pattern == "dual-use-sanctioned":
        if not consignors:
            return False
        _set_goods(item, *RISKY_GOODS[pattern], rng, ref)
        _set_party(rng.choice(consignors), country="RU")
        return True
    if pattern in ("weapons-misdeclared", "protected-species", "counterfeit-wording", "explosives"):
        _set_goods(item, *RISKY_GOODS[pattern], rng, ref)
        return True
    if pre_loading:  # the remaining patterns need values, masses or packages the minimum dataset lacks
        return False
    if pattern == "lithium-undeclared":
        if kind.mode not in ("air", "express", "postal"):
            return False
        _set_goods(item, *RISKY_GOODS[pattern], rng, ref)
        return True
    if pattern == "undervalued-brands":
        if not consignors:
            return False
        brand = rng.choice(BRANDS)
        c = next(c for c in ref.commodities if c.hs6 == brand)
        _set_goods(item, c.description, c.hs6, rng, ref)
        mass = float(item.find(_q("GrossMass")).text)
        _set_child(item, "DeclaredValue", f"{mass * c.eur_per_kg * rng.uniform(0.03, 0.08):.2f}",
                   after=("Packaging",))
        item.find(_q("DeclaredValue")).set("currency", "EUR")
        _set_party(rng.choice(consignors), country=rng.choice(("CN", "HK", "TR")))
        return True
    if pattern == "heavy-packages":  # heavy goods declared in cartons: kilograms per package a carton cannot hold
        heavy = [g for g in goods for pk in g.iter(_q("Packaging")) if pk.find(_q("Count")) is not None
                 and float(g.find(_q("GrossMass")).text) / max(1, int(pk.find(_q("Count")).text)) >= 200]
        if not heavy:
            return False
        for pk in rng.choice(heavy).iter(_q("Packaging")):
            pk.find(_q("Type")).text = "CT"
        return True
    raise ValueError(f"unknown risk pattern {pattern!r}")


def _plant_decoy(decoy: str, root: etree._Element, kind: FilingKind, rng: random.Random,
                 ref: ReferenceData) -> bool:
    goods = list(root.iter(_q("GoodsItem")))
    consignors = list(root.iter(_q("Consignor")))
    if decoy == "similar-name":
        if not consignors:
            return False
        row = rng.choice([r for r in _watch_list() if r["list"] == "watch"])
        words = row["name"].split()
        other = rng.choice([b for b in TRADE_WORDS if b not in words])  # shares two words with the listed name, not all
        _set_party(rng.choice(consignors), f"{words[0]} {words[1]} {other} {rng.choice(LEGAL_FORMS['CN'])}")
        return True
    if not goods:
        return False
    item = rng.choice(goods)
    if decoy == "legal-ammunition":
        _set_goods(item, "Cartridges for sporting rifles", "930630", rng, ref)
        return True
    if decoy == "fireworks":
        _set_goods(item, "Consumer fireworks category F2", "360410", rng, ref)
        return True
    if kind.level == PRE_LOADING:
        return False
    if decoy == "bananas-from-source":
        loading = root.find(f".//{_q('PlaceOfLoading')}/{_q('UNLocode')}")
        if loading is None or loading.text[:2] not in ("EC", "CO", "PE", "BR"):
            return False
        _set_goods(item, "Fresh bananas", "080390", rng, ref)
        return True
    if decoy == "cheap-but-plausible":
        hs = item.findtext(_q("HSCode"))
        c = next((c for c in ref.commodities if hs and hs.startswith(c.hs6)), None)
        if c is None:
            return False
        mass = float(item.find(_q("GrossMass")).text)
        _set_child(item, "DeclaredValue", f"{mass * c.eur_per_kg * rng.uniform(0.4, 0.6):.2f}", after=("Packaging",))
        item.find(_q("DeclaredValue")).set("currency", "EUR")
        return True
    raise ValueError(f"unknown decoy {decoy!r}")


def _envelope(defect: str, data: bytes) -> bytes:
    if defect == "not-well-formed":
        return data[: len(data) * 2 // 3]
    if defect == "dtd-entities":
        lol = b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        return data.replace(b"?>", b"?>" + lol, 1)
    if defect == "wrong-encoding":
        return data.replace(b"<ens:LRN>", "<ens:LRN>\u00e9".encode("latin-1"), 1)
    if defect == "unknown-message":
        return b'<?xml version="1.0" encoding="UTF-8"?><Invoice xmlns="urn:example:invoice"><Number>1</Number></Invoice>'
    raise ValueError(defect)


# Multiple filing: a partial master may only stand at an index that is a multiple of
# LINK_SLOTS; the houses it expects take the indices right after it. Everything about the
# link follows from (seed, master index), so each filing still depends on (seed, its index).
LINK_SLOTS = 5
_HOUSES_OF = {"F12": ("F15", "F16", "F17"), "F13": ("F14",), "F23": ("F24",), "F42": ("F43",)}
_PARTIAL_MASTERS = {"sea": ("F12", "F12", "F13"), "air": ("F23",), "postal": ("F42",)}


@dataclass(frozen=True)
class _Link:
    master: str  # the master transport document number
    house: str | None  # this house's own document (None for the master)
    listed: tuple[tuple[str, str], ...]  # the house documents the master lists, each with its filer (F13 lists none)
    houses: int  # how many house filings follow the master
    filer: str  # the EORI this filing is filed under: the master lists its houses' (linking.py, who may file what)


def _natural_kind(spec: GeneratorSpec, i: int, kinds, weights) -> FilingKind:
    return random.Random(f"{spec.seed}:{i}:kind").choices(kinds, weights)[0]


def _link_of(spec: GeneratorSpec, i: int, kinds, weights, model: TradeModel) -> tuple[FilingKind, _Link | None]:
    """The kind of filing i, and its place in a consignment of partial filings, if any."""
    m = i - i % LINK_SLOTS
    master_kind = _natural_kind(spec, m, kinds, weights)
    r = random.Random(f"{spec.seed}:{m}:link")
    # About half of sea, air and postal traffic is filed in parts; a postal dispatch always has its items.
    if master_kind.mode in _PARTIAL_MASTERS and (r.random() < 0.5 or master_kind.code in _HOUSES_OF):
        if master_kind.code not in _HOUSES_OF:
            master_kind = BY_CODE[r.choice(_PARTIAL_MASTERS[master_kind.mode])]
    if master_kind.code in _HOUSES_OF:
        houses = 1 if master_kind.code == "F13" else r.randint(1, LINK_SLOTS - 1)
        prefix = "IT" if master_kind.code == "F42" else "HB"
        docs = tuple(f"{prefix}{m:07d}{n}" for n in range(1, houses + 1))
        # Who files: the carrier files the master, one forwarder its houses, listed for it. F13 lists no
        # houses and a postal dispatch cannot list its items (they quote it): the master's filer files them.
        draw = random.Random(f"{spec.seed}:{m}:filers")
        carrier, forwarder = (draw.choice(spec.filers) if spec.filers else
                              model.identification(draw, draw.choice(sorted(EU))) for _ in range(2))
        own = master_kind.code in ("F13", "F42")
        listed = () if own else tuple((d, forwarder) for d in docs)
        link = _Link(f"{'PD' if master_kind.code == 'F42' else 'MB'}{m:07d}{r.randint(100, 999)}", None, listed,
                     houses, carrier)
        if i == m:
            return master_kind, link
        if i - m <= houses:
            house_kind = BY_CODE[r.choice(_HOUSES_OF[master_kind.code])]
            return house_kind, _Link(link.master, docs[i - m - 1], link.listed, houses, carrier if own else forwarder)
    kind = _natural_kind(spec, i, kinds, weights)
    # Sea, air and postal partial filings come in consignments; express houses (F31) quote
    # masters filed elsewhere: they stay pending until their deadline, as they would.
    if kind.level == PARTIAL_MASTER or kind.code in _HOUSES_OF or (kind.level == HOUSE and kind.mode in _PARTIAL_MASTERS):
        plain = [k for k in kinds if k.level not in (PARTIAL_MASTER, HOUSE)]
        kind = random.Random(f"{spec.seed}:{i}:plain").choice(plain) if plain else kind
    return kind, None


def generate(spec: GeneratorSpec, reference: ReferenceData | None = None) -> Iterator[GeneratedFiling]:
    """Yields spec.count filings; filing i depends only on (spec.seed, i)."""
    ref = reference or bundled_reference()
    model = TradeModel(ref)
    kinds = [k for k in FILING_KINDS if k.mode in spec.modes]
    weights = [MODE_WEIGHTS[k.mode] / sum(1 for x in kinds if x.mode == k.mode) for k in kinds]
    filers = [random.Random(spec.seed * 7919 + n).choice(sorted(EU)) for n in range(40)]
    sent: list[GeneratedFiling] = []
    for i in range(spec.count):
        rng = random.Random(f"{spec.seed}:{i}")
        name = f"ens-{spec.seed}-{i:07d}.xml"
        kind, link = _link_of(spec, i, kinds, weights, model)
        if sent and link is None and rng.random() < spec.resubmission_rate:
            original = rng.choice(sent)
            label = {**original.label, "file": name, "resubmission_of": original.name}
            yield GeneratedFiling(name, original.data, label)
            continue
        filer_index = rng.randrange(len(filers))
        lrn = f"LRN{spec.seed % 1000:03d}{i:08d}"
        builder = _Builder(rng, ref, model, kind, i, spec, link)
        root = builder.build(lrn, filers[filer_index], BASE_TIME + timedelta(seconds=rng.randint(0, 3 * 86400)))
        if link and not spec.filers:
            _file_as(root, link.filer)
        planted: list[str] = []
        risk = decoy = None
        roll = rng.random()
        envelope = None
        if roll < spec.envelope_rate:
            envelope = rng.choice(ENVELOPE_DEFECTS)
        elif roll < spec.envelope_rate + spec.defect_rate + spec.risk_rate and \
                roll >= spec.envelope_rate + spec.defect_rate and spec.risks:
            for pattern in rng.sample(spec.risks, k=len(spec.risks)):  # the first that fits this filing
                if _plant_risk(pattern, root, kind, rng, ref):
                    risk = pattern
                    break
        elif roll < spec.envelope_rate + spec.defect_rate + spec.risk_rate + spec.decoy_rate and \
                roll >= spec.envelope_rate + spec.defect_rate + spec.risk_rate:
            for candidate in rng.sample(DECOYS, k=len(DECOYS)):
                if _plant_decoy(candidate, root, kind, rng, ref):
                    decoy = candidate
                    break
        elif roll < spec.envelope_rate + spec.defect_rate and spec.defects:
            wanted = rng.choice((1, 1, 1, 2, 3))
            for defect in rng.sample(spec.defects, k=len(spec.defects)):  # until `wanted` found a place
                if len(planted) == wanted:
                    break
                if defect == "missing-element" and planted:
                    continue  # removing the consignment would hide the others
                if any(DEFECTS[d][2] == DEFECTS[defect][2] for d in planted):
                    continue  # two defects on one element: only the first would show
                if _plant(defect, root, rng, ref):
                    planted.append(defect)
                    if defect == "missing-element":
                        break
        data = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
        if envelope:
            data = _envelope(envelope, data)
            planted = [envelope]
        label = {
            "file": name,
            "filing_code": kind.code,
            "mode": kind.mode,
            "lrn": lrn,
            "expected": "rejected" if planted else "registered",
            "defects": [{"kind": d, "layer": DEFECTS[d][0], "code": DEFECTS[d][1], "element": DEFECTS[d][2]}
                        for d in planted],
            "risk": risk,  # a planted risk pattern: a referral is expected
            # an innocent look-alike, planted or honest-but-unusual goods: clean traffic
            "decoy": decoy or (builder.unusual if not risk else None),
            # accepted with these data-quality warnings (a place newer than the code list)
            "warnings": ["DQ_LOCODE_NOT_IN_EDITION"] if builder.new_place and not planted else [],
            **({"consignment": link.master, "houses": link.houses, "filer": link.filer} if link else {}),
        }
        filing = GeneratedFiling(name, data, label)
        if not planted:
            sent.append(filing)
        yield filing
