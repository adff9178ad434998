#!/usr/bin/env python3
"""Builds a labelled scenario set: risky consignments of 15 patterns, honest-but-unusual decoys and
ordinary clean traffic, as ENS filings with their containers' DCSA Track & Trace 2.2 histories.

    python tests/scenarios/build.py --out DIR [--seed 2026] [--now 2026-10-20T00:00:00Z] [--clean 1000] [--scale 1]

writes
  DIR/filings/<kind>/<lrn>.xml       ENS filings, valid against xsd/ics2-v1
  DIR/container-events.jsonl         DCSA T&T 2.2 events (JSON lines), for `cargoscreen csm load`
  DIR/labels.jsonl                   one line per filing, the label format `cargoscreen rules backtest --labels` reads
  DIR/manifest.json                  what was written: each filing with its scenario and consignment, counts

What goes in, and where it comes from:
  - ordinary clean traffic (about --clean filings): built by tests/independent/build.py (an earlier
    independent set), imported, not copied; its honest-but-unusual lines (licensed ammunition, declared
    fireworks, lithium batteries with UN numbers, gold, antiques, chemicals with UN numbers, produce from
    drug-source countries) are labelled as decoys;
  - 150 risky consignments, ten per pattern (data/risky.csv): each row is one consignment, written from
    public typologies (data/README.md cites each), with its own wording, HS code, route, mode and filing kind;
  - honest-but-unusual consignments (data/decoys.csv): each row is repeated `n` times (times --scale) with
    quantities, parties and filing kinds drawn from the row's ranges and lists.
Parties, places and airlines of the scenarios are in data/ (parties.csv, places.csv, airlines.csv); the
rest (ports, liner services, vessels, feeder hubs, road and rail lanes, customs offices, the honest
co-loaders of a consolidation) is the independent set's data.

The same seed gives the same files. Nothing here reads the product's generator, rule packs or scorer.
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import random
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from lxml import etree

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
INDEPENDENT = HERE.parent / "independent"


def _load_independent():
    """tests/independent/build.py under the name the test suite gives it (a bare `import build` could
    find another package)."""
    name = "cargoscreen_independent_build"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, INDEPENDENT / "build.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


ind = _load_independent()
ids = ind.ids  # tests/independent/idnumbers.py
E, utc, ordered, party_el, doc_el, goods_el, totals_el, route_el = (
    ind.E, ind.utc, ind.ordered, ind.party_el, ind.doc_el, ind.goods_el, ind.totals_el, ind.route_el)
KG = ind.KG

MODE = {**{f"F1{i}": "sea" for i in range(8)}, **{f"F2{i}": "air" for i in range(5)},
        **{f"F3{i}": "express" for i in range(3)}, "F42": "postal", "F43": "postal", "F45": "postal",
        "F50": "road", "F51": "rail"}
PATTERNS = ("drug-precursor", "firearms-misdescribed", "explosives-undeclared", "dual-use-sanctioned",
            "cultural-goods-conflict", "counterfeit-low-value", "cash-bearer", "container-route-deception",
            "vessel-voyage-mismatch", "empty-laden-mismatch", "impossible-movement", "implausible-mass-per-package",
            "vague-high-value", "lithium-air-undeclared", "new-shipper-private-consignee")
# Patterns that concern the container rather than one house's goods: every filing of the consignment
# carries the label (a consolidation's box is deceptive for all its houses).
CONTAINER_TWISTS = ("hidden-origin", "tranship-undeclared", "discharged-elsewhere", "restuffed", "vessel-swap",
                    "voyage-swap", "empty-declared", "laden-declared-empty", "clone-eu", "clone-far")
HUBS = ("AEDXB", "QADOH", "TRIST", "HKHKG")  # where mail and cargo of countries without own flights change planes
DRUG_SOURCE = frozenset("CO EC PE BO BR VE CR PA DO MX GT HN".split())
LITHIUM_UN = frozenset(("3090", "3091", "3480", "3481"))


class NoRoute(ValueError):
    """The scenario's mode has no service, flight or lane from its origin (checked before anything is written)."""


def _rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------------------------------
# Identification numbers the independent set has no format for
# --------------------------------------------------------------------------------------------------
def _until_valid(rng: random.Random, digits: int, valid) -> str:
    for _ in range(100_000):
        value = str(rng.randint(10 ** (digits - 1), 10 ** digits - 1))
        if valid(value):
            return value
    raise RuntimeError("no valid number found")


def russian_inn(rng: random.Random) -> str:
    from stdnum.ru import inn
    return "RU" + _until_valid(rng, 10, inn.is_valid)  # a legal entity's INN: 10 digits, check digit


def belarus_unp(rng: random.Random) -> str:
    from stdnum.by import unp
    return "BY" + _until_valid(rng, 9, unp.is_valid)


# --------------------------------------------------------------------------------------------------
# A scenario: one consignment to build
# --------------------------------------------------------------------------------------------------
@dataclass
class Spec:
    id: str
    risk: str | None
    decoy: str | None
    kind: str  # F10, F11, F12/F15, F13, F21, F22, F23/F24, F30, F31, F43, F50, F51
    origin: str
    pol: str | None
    pou: str | None
    shipper: object
    consignee: object
    notify: object | None
    goods: object | None  # independent Goods, or None: honest goods of the origin (decoys only)
    twist: str
    arg: str | None
    kinds: list[str] = field(default_factory=list)  # the row's kinds: a decoy falls back to another one
    via: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    why: str = ""
    sources: str = ""

    @property
    def label(self) -> dict:
        return {"risk": self.risk, "decoy": self.decoy, "why": self.why, "scenario": self.id}

    @property
    def container_level(self) -> bool:
        return self.twist in CONTAINER_TWISTS


def _range(text: str, rng: random.Random, integer: bool = False):
    lo, _, hi = text.partition("-")
    lo, hi = float(lo), float(hi or lo)
    return rng.randint(int(lo), int(hi)) if integer else rng.uniform(lo, hi)


class ScenarioBuilder(ind.Builder):
    """The independent builder's traffic, then the scenarios on the same sailings, flights and lanes."""

    def __init__(self, out: Path, clean: int, seed: int, scale: float = 1.0):
        super().__init__(out, clean, seed)
        self.seed, self.scale = seed, scale
        self.srng = random.Random(f"scenarios:{seed}")  # the scenarios' own draws
        self.scenarios: list[Spec] = []

    # -- data -------------------------------------------------------------------------------------
    def extend_reference(self) -> None:
        """Our places, parties and airlines beside the independent set's (after its traffic is built,
        so that traffic is the independent set's own)."""
        ref = self.ref
        for r in _rows(DATA / "places.csv"):
            sign = -1 if r["utc_offset"].startswith("-") else 1
            h, m = r["utc_offset"][1:].split(":")
            ref.locs.setdefault(r["locode"], ind.Loc(r["locode"], r["name"], r["country"], r["kinds"],
                                                     float(r["lat"]), float(r["lon"]),
                                                     sign * timedelta(hours=int(h), minutes=int(m)),
                                                     float(r["weight"]), r["side"] == "eu"))
        self.parties: dict[str, object] = {}
        for r in _rows(DATA / "parties.csv"):
            kind = r.pop("id_kind")
            p = ind.Party(**r)
            rng = random.Random(f"{self.seed}:scenario-party:{p.key}")
            p.id = {"eori": lambda: ids.eori(p.country, rng), "tin": lambda: ids.tin(p.country, rng),
                    "inn": lambda: russian_inn(rng), "unp": lambda: belarus_unp(rng), "none": lambda: None}[kind]()
            assert p.key not in ref.parties, f"party key {p.key} is the independent set's"
            self.parties[p.key] = p
            if p.role == "airline":
                ref.parties[p.key] = p
        for r in _rows(DATA / "airlines.csv"):
            for code in r["origin_airports"].split() + r["eu_airports"].split():
                assert "a" in ref.locs[code].kinds, code
            assert all(c in ref.offices for c in r["eu_airports"].split()), r
            ref.airlines[r["key"]] = r
        for r in _rows(DATA / "services.csv"):
            for code in r["origin_rotation"].split() + r["eu_rotation"].split():
                assert "s" in ref.locs[code].kinds, f"service {r['code']}: {code}"
            assert r["eu_rotation"].split()[0] in ref.offices, r
            ref.services.append(r)

    def party(self, key: str):
        return self.parties.get(key) or self.ref.parties[key]

    # -- scenarios from the CSV rows --------------------------------------------------------------
    def goods_of(self, row: dict, rng: random.Random):
        if not row["description"]:
            return None
        count = _range(row["count"], rng, integer=True) if row["count"] else None
        if row["kg"].startswith("per:"):
            kg = (count or 1) * _range(row["kg"][4:], rng)
        else:
            kg = _range(row["kg"], rng)
        kg = round(kg, 1) if kg < 100 else round(kg)
        value = None
        if row["value"].startswith("perkg:"):
            value = round(kg * _range(row["value"][6:], rng), 2)
        elif row["value"]:
            value = round(_range(row["value"], rng), 2)
        hs = row["hs"]
        per = kg / count if count else kg
        c = ind.Commodity(hs[:6], hs if len(hs) == 8 else "", row["undg"], row["package"], per, per, count or 0,
                          count or 0, (value or 0) / kg, (value or 0) / kg, "", (), frozenset(row["tags"].split()),
                          1.0, row["description"])
        return ind.Goods(c, int(round(kg * KG)), count, value, "EUR", hs=hs)

    def spec_of(self, row: dict, rng: random.Random, risk: str | None, decoy: str | None, sid: str) -> Spec:
        shipper = self.party(rng.choice(row["shipper"].split()))
        origins = row["origin"].split()
        carrier_owned = getattr(shipper, "role", "") == "carrier_sea"
        origin = rng.choice(origins) if carrier_owned or len(origins) == 1 or shipper.country not in origins \
            else shipper.country
        twist, _, arg = row["twist"].partition(":")
        via = arg.split() if twist == "via" else []
        after = arg.split() if twist == "route+" else []
        if twist in ("via", "route+"):
            twist, arg = "", None
        notify = self.party(row["notify"]) if row["notify"] else None
        return Spec(sid, risk, decoy, rng.choice(row["kind"].split()), origin, row["pol"] or None, row["pou"] or None,
                    shipper, self.party(rng.choice(row["consignee"].split())), notify, self.goods_of(row, rng),
                    twist, arg or None, row["kind"].split(), via, after, row["why"], row["sources"])

    def build_scenarios(self) -> None:
        for row in _rows(DATA / "risky.csv"):
            assert row["pattern"] in PATTERNS, row["id"]
            rng = random.Random(f"{self.seed}:{row['id']}")
            self.scenarios.append(self.spec_of(row, rng, row["pattern"], None, row["id"]))
        for row in _rows(DATA / "decoys.csv"):
            for i in range(max(1, round(int(row["n"]) * self.scale))):
                rng = random.Random(f"{self.seed}:{row['id']}:{i}")
                self.scenarios.append(self.spec_of(row, rng, None, row["decoy"], f"{row['id']}-{i + 1}"))
        order = list(self.scenarios)
        self.srng.shuffle(order)  # risky and decoy consignments interleaved in time
        channels = {"F10": self.ship_sea, "F11": self.ship_sea, "F12": self.ship_sea, "F13": self.ship_sea,
                    "F21": self.ship_air, "F22": self.ship_air, "F23": self.ship_air, "F30": self.ship_express,
                    "F31": self.ship_express, "F43": self.ship_postal, "F50": self.ship_road, "F51": self.ship_rail}
        for spec in order:
            # a decoy row may list kinds its drawn shipper cannot use (no road lane from China): the next one
            tries = [spec.kind] + ([k for k in spec.kinds if k != spec.kind] if spec.decoy else [])
            for i, kind in enumerate(tries):
                spec.kind = kind
                self.rng = random.Random(f"{self.seed}:build:{spec.id}:{kind}")
                try:
                    channels[kind.split("/")[0]](spec)
                    break
                except NoRoute:
                    if i == len(tries) - 1:
                        raise

    # -- writing ----------------------------------------------------------------------------------
    def write(self, kind, consignment, root, issued, declarant, office, representative=None, label=None,
              scenario=None):
        super().write(kind, consignment, root, issued, declarant, office, representative)
        entry = self.files[-1]
        entry["consignment"] = scenario or consignment
        if label is None and scenario:  # a master, a dispatch or a co-loaded house of a scenario: itself clean
            label = {"risk": None, "decoy": None, "scenario": scenario,
                     "why": f"filed with scenario {scenario} (its master, dispatch or an honest co-loaded house)"}
        elif label is None:  # honest traffic: is it unusual?
            label = {"risk": None, "decoy": self.unusual(root, kind), "scenario": None}
            label["why"] = "clean traffic of the independent set" + (f" ({label['decoy']})" if label["decoy"] else "")
        entry.update(label)

    def unusual(self, root, kind: str) -> str | None:
        """Honest lines a naive rule would refer, by what they are (the same kinds as data/decoys.csv)."""
        ns = f"{{{ind.ENS}}}"
        consignors = [c.findtext(f"{ns}Address/{ns}Country") for c in root.iter(f"{ns}Consignor")]
        for g in root.iter(f"{ns}GoodsItem"):
            hs, un = g.findtext(f"{ns}HSCode") or "", g.findtext(f"{ns}UNDGNumber") or ""
            if hs[:4] in ("9303", "9306"):
                return "licensed-firearms"
            if hs[:4] == "3604":
                return "declared-fireworks"
            if un in LITHIUM_UN and MODE[kind] in ("air", "express", "postal"):
                return "lithium-declared"
            if hs[:4] in ("7102", "7108", "7113", "9101", "9102"):
                return "gold-luxury-true-value"
            if hs[:2] == "97":
                return "antiques-provenance"
            if un and hs[:2] in ("28", "29"):
                return "chemical-with-un"
            if hs[:2] in ("06", "08", "09") and DRUG_SOURCE & set(consignors):
                return "produce-drug-source"
        return None

    def route(self, spec: Spec, *groups, onward: bool = True) -> list[str]:
        """Routing countries: where the goods come from (and pass before), the legs (the consignee's
        country among them) and, last, where they go on to after the EU (when `onward`)."""
        return ordered(spec.via, spec.origin, *groups, spec.after if onward else [])

    def honest_goods(self, spec: Spec, mode: str):
        skip = ("bulk", "breakbulk", "ro-ro") if mode == "s" else ()
        c = self.ref.goods_for(mode, spec.shipper.country, self.rng, skip) or \
            self.ref.goods_for(mode, spec.origin, self.rng, skip)
        if c is None:
            raise NoRoute(f"{spec.id}: no honest goods of {spec.origin} for {mode}")
        return ind.make_goods(c, self.rng)

    # -- sea --------------------------------------------------------------------------------------
    def sea_choices(self, spec: Spec):
        ref, tw, arg = self.ref, spec.twist, spec.arg
        choices = []
        for s in ref.services:
            rot, eu = s["origin_rotation"].split(), s["eu_rotation"].split()
            if tw == "tranship-undeclared":  # the declared vessel loads at the hub; the box came from spec.pol
                if arg in rot and all(ref.locs[p].country != ref.locs[arg].country for p in rot[rot.index(arg) + 1:]):
                    choices.append((s, arg, spec.pol))
                continue
            if tw == "hidden-origin":
                if spec.pol in rot:
                    choices.append((s, spec.pol, arg))
                continue
            for p in rot:
                if (p == spec.pol) if spec.pol else ref.locs[p].country == spec.origin:
                    choices.append((s, p, None))
                if not spec.pol:
                    choices += [(s, p, f) for f in ref.feeders.get(p, []) if ref.locs[f].country == spec.origin]
        if tw == "feeder":
            choices = [c for c in choices if c[2]]
        elif tw not in ("hidden-origin", "tranship-undeclared") and any(c[2] is None for c in choices):
            choices = [c for c in choices if c[2] is None]
        if spec.pou:
            choices = [c for c in choices if spec.pou in c[0]["eu_rotation"].split()]
        if tw == "discharged-elsewhere":
            choices = [c for c in choices if arg in c[0]["eu_rotation"].split() and arg != spec.pou]
        if tw == "restuffed":
            choices = [c for c in choices if arg in c[0]["origin_rotation"].split()
                       and c[0]["origin_rotation"].split().index(arg) > c[0]["origin_rotation"].split().index(c[1])]
        if not choices:
            raise NoRoute(f"{spec.id}: no sea route from {spec.origin} {spec.pol or ''} for {tw or 'a direct call'}")
        return choices

    def ship_sea(self, spec: Spec) -> None:
        rng, ref = self.rng, self.ref
        s, load_port, feeder = self.pick(self.sea_choices(spec))
        voy = self.voyage(s, self.when() - timedelta(days=rng.uniform(2, 12)))
        eu = s["eu_rotation"].split()
        pou = spec.pou or self.pick(eu, [ref.locs[p].weight for p in eu])
        if spec.twist == "discharged-elsewhere" and not spec.pou:
            pou = self.pick([p for p in eu if p != spec.arg])
        landed = spec.arg if spec.twist == "discharged-elsewhere" else pou  # where the box really is discharged
        declared_pol = spec.pol if spec.twist == "tranship-undeclared" else load_port
        stuffing = feeder or load_port
        if not feeder and spec.twist == "" and rng.random() < 0.3:
            inland = [c for c, l in ref.locs.items() if l.country == ref.locs[load_port].country and "d" in l.kinds
                      and c != load_port and ref.km(c, load_port) < 800]
            stuffing = self.pick(inland) if inland else stuffing
        # the goods: the scenario's, or honest ones of its origin; a consolidation adds honest co-loaders
        planted = [spec.goods] if spec.goods is not None else [self.honest_goods(spec, "s")]
        level, _, house_kind = spec.kind.partition("/")
        houses = [(spec.shipper, spec.consignee, planted, spec.notify, True)]
        if level in ("F11", "F12"):
            for shipper, consignee, gs in self.lcl_houses(spec.origin, rng.randint(1, 4), pou):
                houses.append((shipper, consignee, gs, None, False))
            rng.shuffle(houses)
        all_goods = [g for h in houses for g in h[2]]
        carrier = ref.parties[s["operator"]]
        size = self.size_for(planted[0].c) if level not in ("F11", "F12") else self.pick(["45G1", "42G1"])
        if "reefer" in planted[0].c.tags or "reefer" in planted[0].c.description:
            size = "45R1"
        if "20 ft" in planted[0].c.description:
            size = "22G1"
        elif "40 ft" in planted[0].c.description and size[2] != "R":
            size = "45G1"
        if level in ("F11", "F12"):
            boxes, n = [], 1 if sum(g.grams for g in all_goods) < 20000 * KG else 2
            own = ref.carriers[s["operator"]]["own_container_prefixes"].split()
            pool = ref.reefer_prefixes if size[2] == "R" else ref.prefixes
            for _ in range(n):
                cid = ids.container_id(self.pick(own + pool), rng, self.containers)
                boxes.append((cid, size, [f"{ref.carriers[s['operator']]['scac'][:2]}{rng.randint(1000000, 9999999)}"]))
            for i, g in enumerate(all_goods):
                g.containers = [boxes[i % n][0]]
        else:
            boxes = self.boxes_for(all_goods, size, s["operator"])
        doc = self.docno(ref.carriers[s["operator"]]["bl_prefix"], 10)
        documents = [{"documentReferenceType": "BKG", "documentReferenceValue": self.docno("", 9)},
                     {"documentReferenceType": "TRD", "documentReferenceValue": doc}]
        times = self.container_history(boxes, voy, load_port, landed, stuffing, documents, feeder, None, s["operator"])
        self.twist_events(spec, boxes, voy, load_port, landed, times)
        # the filing: what the filer declares (the route as declared, not necessarily as sailed)
        issued = self.sea_issue(times, self.short_sea(load_port))
        if spec.twist == "tranship-undeclared":
            ports = [p for p, _, _ in voy.calls]
            base = self.route(spec, ref.locs[declared_pol].country,
                              [ref.locs[p].country for p in ports[ports.index(load_port) + 1: ports.index(pou) + 1]],
                              onward=False)
        elif spec.twist == "hidden-origin":
            base = self.route(spec, self.sea_itinerary(voy, spec.origin, load_port, None, load_port, pou, None, None),
                              onward=False)
        else:
            base = self.route(spec, self.sea_itinerary(voy, spec.origin, stuffing, feeder, load_port, pou, None, None),
                              onward=False)
        itinerary = ordered(base, spec.consignee.country, spec.after)
        sealed = issued >= times["stuffed"] or rng.random() < 0.5
        means = lambda r: self.sea_means(r, voy, times["arr_first"])  # noqa: E731
        office = self.office(voy.first_eu(ref))
        label = spec.label
        all_label = label if spec.container_level else None
        self.packed = "EMPTY" if spec.twist in ("empty-declared", "all-empty") else "LADEN"
        try:
            if level == "F10":
                root = self.straight("F10", means, carrier, "N705", doc, declared_pol, pou, itinerary, spec.shipper,
                                     spec.consignee, planted, boxes, sealed, spec.notify)
                self.write("F10", doc, root, issued, carrier, office, self.maybe_rep(), label, spec.id)
            elif level == "F11":
                numbers = [f"HB{declared_pol[2:]}{self.docno('', 8)}" for _ in houses]
                root = self.master_with_houses("F11", means, carrier, ("N704", doc), declared_pol, pou,
                                          ordered(base, [h[1].country for h in houses], spec.after),
                                          [(h[0], h[1], h[2], num, h[3]) for h, num in zip(houses, numbers)], "N703",
                                          boxes, sealed)
                self.write("F11", doc, root, issued, carrier, office, self.maybe_rep(0.3), label, spec.id)
            elif level == "F12":
                nvocc = self.pick(ref.by_role["forwarder"])
                numbers = [f"{nvocc.key.upper()}{declared_pol[2:]}{self.docno('', 8)}" for _ in houses]
                root = self.partial_master("F12", means, carrier, ("N704", doc), declared_pol, pou,
                                           ordered(base, [h[1].country for h in houses], spec.after), all_goods,
                                           ("N703", numbers), nvocc, boxes, sealed)
                self.write("F12", doc, root, issued, carrier, office, None, all_label, spec.id)
                for (shipper, consignee, gs, notify, mine), number in zip(houses, numbers):
                    cids = {cid for g in gs for cid in g.containers}
                    root = self.house_level(house_kind or "F15", means, ("N704", doc), ("N703", number), declared_pol,
                                            pou, ordered(base, consignee.country, spec.after if mine else []),
                                            shipper, consignee, gs,
                                            [b for b in boxes if b[0] in cids], sealed, notify)
                    when = min(issued + timedelta(hours=rng.uniform(0, 20)),
                               times["load"] - timedelta(hours=24) if not self.short_sea(load_port)
                               else times["arr_first"] - timedelta(hours=2))
                    self.write(house_kind or "F15", doc, root, max(when, issued).replace(microsecond=0), nvocc, office,
                               None, label if mine else all_label, spec.id)
            else:  # F13 with its F14
                filer = self.pick(ref.by_role["forwarder"])  # who files the bill's goods data, as the carrier says
                root = self.partial_master("F13", means, carrier, ("N705", doc), declared_pol, pou, itinerary,
                                           planted, ("N705", [doc]), filer, boxes, sealed)
                self.write("F13", doc, root, issued, carrier, office, None, all_label, spec.id)
                root = self.house_level("F14", means, ("N705", doc), ("N705", doc), declared_pol, pou, itinerary,
                                        spec.shipper, spec.consignee, planted, boxes, sealed, spec.notify)
                self.write("F14", doc, root, issued + timedelta(hours=rng.uniform(0.5, 12)), filer, office, None,
                           label, spec.id)
        finally:
            self.packed = "LADEN"

    # -- what the containers really did -----------------------------------------------------------
    def box_events(self, cid: str) -> list[dict]:
        return [e for e in self.events if e.get("equipmentReference") == cid]

    def twist_events(self, spec: Spec, boxes, voy, load_port: str, landed: str, times: dict) -> None:
        tw, rng, ref = spec.twist, self.rng, self.ref
        cids = [b[0] for b in boxes]
        if tw in ("laden-declared-empty", "all-empty"):  # the box never held goods
            stuffed = {id(e) for c in cids for e in self.box_events(c) if e["equipmentEventTypeCode"] == "STUF"}
            self.events[:] = [e for e in self.events if id(e) not in stuffed]
            for c in cids:
                for e in self.box_events(c):
                    e["emptyIndicatorCode"] = "EMPTY"
        elif tw in ("vessel-swap", "voyage-swap"):
            if tw == "vessel-swap":
                others = [v for v in ref.vessels if v["type"] == "container" and v["operator"] != voy.vessel["operator"]]
                vessel = self.pick(others)
                number = f"{rng.randint(100, 899)}{self.pick(['W', 'E', 'N'])}"
                shift = timedelta(0)  # loaded at the same time, at another berth
            else:  # the same ship a week later, on its next voyage
                vessel = voy.vessel
                digits = re.search(r"\d+", voy.number)
                number = voy.number[:digits.start()] + str(int(digits.group()) + 1) + voy.number[digits.end():]
                shift = timedelta(days=7)
            seq = {p: i + 1 for i, (p, _, _) in enumerate(voy.calls)}
            for c in cids:
                for e in self.box_events(c):
                    call = e.get("transportCall")
                    if call and call["vessel"]["vesselIMONumber"] == voy.vessel["imo"] and call["exportVoyageNumber"] == voy.number:
                        port = call["UNLocationCode"]
                        e["transportCall"] = self.call(vessel, number, port, "SWP", seq.get(port, 1))
                        if e["equipmentEventTypeCode"] != "GTIN":
                            self.move(e, port, shift)
                    elif tw == "voyage-swap" and e["equipmentEventTypeCode"] == "GTOT":
                        self.move(e, e["eventLocation"]["UNLocationCode"], shift)
            dep = voy.at(load_port)[1] + shift
            self.transport_event("DEPA", dep, self.call(vessel, number, load_port, "SWP", seq[load_port]), load_port)
            self.transport_event("ARRI", voy.at(landed)[0] + shift, self.call(vessel, number, landed, "SWP", seq[landed]),
                                 landed)
        elif tw == "restuffed":  # discharged at a later call, opened and stuffed, loaded again (rip-on)
            port = spec.arg
            arrive, depart = voy.at(port)
            seq = [p for p, _, _ in voy.calls].index(port) + 1
            call = self.call(voy.vessel, voy.number, port, voy.service, seq)
            documents = self.box_events(cids[0])[0].get("documentReferences", [])
            for cid, size, seals in boxes:
                self.equipment_event("DISC", arrive + timedelta(hours=rng.uniform(1, 3)), cid, size, "LADEN", port,
                                     documents, seals, call)
                self.equipment_event("STUF", arrive + timedelta(hours=rng.uniform(4, 7)), cid, size, "LADEN", port,
                                     documents, facility=f"{ref.locs[port].name} container freight station")
                self.equipment_event("LOAD", depart - timedelta(hours=rng.uniform(1, 3)), cid, size, "LADEN", port,
                                     documents, [f"{seals[0][:2]}{rng.randint(1000000, 9999999)}"], call)
        elif tw == "clone-eu":  # a box with the same number in an EU port while the declared one is at sea
            at_sea = times["load"] + (times["disc"] - times["load"]) * rng.uniform(0.1, 0.25)
            port = self.pick([p for p, _, _ in voy.calls if ref.locs[p].eu])
            for cid, size, _ in boxes:
                self.equipment_event("GTIN", at_sea, cid, size, "LADEN", port, [],
                                     facility=f"{ref.locs[port].name} container terminal")
                self.equipment_event("GTOT", at_sea + timedelta(hours=rng.uniform(8, 30)), cid, size, "LADEN", port, [],
                                     facility=f"{ref.locs[port].name} container terminal")
        elif tw == "clone-far":  # the same number loaded on another continent within hours of the real loading
            far = [p for p, l in ref.locs.items() if "s" in l.kinds and not l.eu and ref.km(p, load_port) > 6000
                   and any(p in s["origin_rotation"].split() for s in ref.services)]
            port = self.pick(sorted(far))
            vessel = self.pick([v for v in ref.vessels if v["type"] == "container"])
            call = self.call(vessel, f"{rng.randint(100, 899)}E", port, "XCL", 1)
            when = times["load"] + timedelta(hours=rng.uniform(3, 10))
            for cid, size, seals in boxes:
                self.equipment_event("GTIN", when, cid, size, "LADEN", port, [], call=call)
                self.equipment_event("LOAD", when + timedelta(hours=rng.uniform(4, 9)), cid, size, "LADEN", port, [],
                                     call=call)

    def move(self, event: dict, place: str, shift: timedelta) -> None:
        t = datetime.fromisoformat(event["eventDateTime"]) + shift
        event["eventDateTime"] = self.local(t.astimezone(timezone.utc), place)
        created = datetime.fromisoformat(event["eventCreatedDateTime"].replace("Z", "+00:00")) + shift
        event["eventCreatedDateTime"] = utc(created)

    # -- air and express --------------------------------------------------------------------------
    def flight_for(self, spec: Spec, kind: str):
        """(airline, origin airport) serving the origin country, or a hub it is flown through."""
        airlines = [a for a in self.ref.airlines.values() if a["kind"] == kind]
        pairs = [(a, p) for a in airlines for p in a["origin_airports"].split()
                 if ((p == spec.pol) if spec.pol else self.ref.locs[p].country == spec.origin)]
        if not pairs:
            pairs = [(a, p) for a in airlines for p in a["origin_airports"].split() if p in HUBS]
        if spec.pou:
            pairs = [(a, p) for a, p in pairs if spec.pou in a["eu_airports"].split()]
        if not pairs:
            raise NoRoute(f"{spec.id}: no {kind} flight from {spec.origin}")
        return self.pick(pairs)

    def ship_air(self, spec: Spec) -> None:
        rng = self.rng
        a, origin_airport = self.flight_for(spec, "airline")
        pol, pou, number, depart, arrive = self.flight(a, origin_airport, spec.pou)
        airline = self.ref.parties[a["key"]]
        goods = [spec.goods] if spec.goods is not None else [self.honest_goods(spec, "a")]
        issued = (depart - timedelta(hours=rng.uniform(0.5, 18))).replace(microsecond=0)
        leg = [self.ref.locs[pol].country, self.ref.locs[pou].country]
        means = lambda r: self.air_means(r, number, arrive)  # noqa: E731
        awb = ids.awb_number(a["awb_prefix"], rng)
        level = spec.kind.split("/")[0]
        if level == "F22":
            root = self.straight("F22", means, airline, "N740", awb, pol, pou,
                                 self.route(spec, leg, spec.consignee.country), spec.shipper, spec.consignee, goods,
                                 notify=spec.notify)
            self.write("F22", awb, root, issued, airline, self.office(pou), self.maybe_rep(0.2), spec.label, spec.id)
            return
        fwd = self.pick(self.ref.by_role["forwarder"])
        houses = [(spec.shipper, spec.consignee, goods, f"{fwd.key.upper()}{pol[2:]}{self.docno('', 7)}", spec.notify)]
        for _ in range(rng.randint(1, 3)):
            got = self.shipper_in(self.air_origin(pol), "a")
            if got:
                houses.append((got[0], self.consignee_for(None, [got[1]]), [got[1]],
                               f"{fwd.key.upper()}{pol[2:]}{self.docno('', 7)}", None))
        rng.shuffle(houses)
        itinerary = self.route(spec, leg, [h[1].country for h in houses])
        if level == "F21":
            root = self.master_with_houses("F21", means, airline, ("N741", awb), pol, pou, itinerary, houses, "N714")
            self.write("F21", awb, root, issued, airline, self.office(pou), self.maybe_rep(0.2), spec.label, spec.id)
            return
        root = self.partial_master("F23", means, airline, ("N741", awb), pol, pou, itinerary,
                                   [g for h in houses for g in h[2]], ("N714", [h[3] for h in houses]), fwd)
        self.write("F23", awb, root, issued, airline, self.office(pou), None, None, spec.id)
        for shipper, consignee, gs, hawb, notify in houses:
            mine = shipper is spec.shipper and gs is goods
            m = means if rng.random() < 0.7 else None
            root = self.house_level("F24", m, ("N741", awb), ("N714", hawb), pol, pou,
                                    self.route(spec, leg, consignee.country) if mine
                                    else ordered(self.air_origin(pol), leg, consignee.country), shipper, consignee, gs,
                                    notify=notify)
            when = min(issued + timedelta(minutes=rng.randint(5, 600)), arrive - timedelta(hours=1))
            self.write("F24", awb, root, when.replace(microsecond=0), fwd, self.office(pou), None,
                       spec.label if mine else None, spec.id)

    def ship_express(self, spec: Spec) -> None:
        """F30: the express operator's flight with every house; F31: express houses on an airline's
        flight, the airline filing the master (F23)."""
        rng = self.rng
        level = spec.kind.split("/")[0]
        e, origin_airport = self.flight_for(spec, "express" if level == "F30" else "airline")
        pol, pou, number, depart, arrive = self.flight(e, origin_airport, spec.pou)
        goods = [spec.goods] if spec.goods is not None else [self.honest_goods(spec, "e")]
        waybill = f"{rng.randint(10 ** 9, 10 ** 10 - 1)}"
        waybill = waybill[:-1] + str(int(waybill[:-1]) % 7)
        houses = [(spec.shipper, spec.consignee, goods, waybill, spec.notify)]
        houses += [(h[0], h[1], h[2], h[3], None) for h in self.express_houses(pol, rng.randint(2, 8))]
        rng.shuffle(houses)
        leg = [self.ref.locs[pol].country, self.ref.locs[pou].country]
        itinerary = self.route(spec, leg, [h[1].country for h in houses])
        issued = (depart - timedelta(hours=rng.uniform(0.5, 8))).replace(microsecond=0)
        means = lambda r: self.air_means(r, number, arrive)  # noqa: E731
        if level == "F30":
            operator = self.ref.parties[e["key"]]
            mawb = ids.awb_number(e["awb_prefix"], rng)
            root = self.master_with_houses("F30", means, operator, ("N741", mawb), pol, pou, itinerary, houses, "N714")
            self.write("F30", mawb, root, issued, operator, self.office(pou), None, spec.label, spec.id)
            return
        airline = self.ref.parties[e["key"]]
        operator = self.ref.parties[self.pick([x for x in self.ref.airlines.values() if x["kind"] == "express"])["key"]]
        mawb = ids.awb_number(e["awb_prefix"], rng)
        root = self.partial_master("F23", means, airline, ("N741", mawb), pol, pou, itinerary,
                                   [g for h in houses for g in h[2]], ("N714", [h[3] for h in houses]), operator)
        self.write("F23", mawb, root, issued, airline, self.office(pou), None, None, spec.id)
        for shipper, consignee, gs, bill, notify in houses:
            mine = bill == waybill
            root = self.house_level("F31", means if rng.random() < 0.7 else None, ("N741", mawb), ("N714", bill), pol,
                                    pou, self.route(spec, leg, consignee.country) if mine else ordered(leg, consignee.country),
                                    shipper, consignee, gs, notify=notify)
            when = min(issued + timedelta(minutes=rng.randint(5, 300)), arrive - timedelta(hours=1))
            self.write("F31", mawb, root, when.replace(microsecond=0), operator, self.office(pou), None,
                       spec.label if mine else None, spec.id)

    # -- post -------------------------------------------------------------------------------------
    def ship_postal(self, spec: Spec) -> None:
        """F42 dispatch with the scenario's item among ordinary ones (F43 each)."""
        rng, ref = self.rng, self.ref
        posts = [p for p in ref.by_role["post"] if p.country == spec.consignee.country]
        if not posts:
            raise NoRoute(f"{spec.id}: no postal operator in {spec.consignee.country}")
        post = posts[0]
        flights = [(a, o, p) for a in ref.airlines.values() if a["kind"] == "airline"
                   for p in a["eu_airports"].split() if ref.locs[p].country == post.country
                   for o in a["origin_airports"].split()]
        direct = [f for f in flights if ref.locs[f[1]].country == spec.origin]
        flights = direct or [f for f in flights if f[1] in HUBS]
        if not flights:
            raise NoRoute(f"{spec.id}: no mail flight to {post.country}")
        a, origin_airport, eu_airport = self.pick(flights)
        pol, pou, number, depart, arrive = self.flight(a, origin_airport, eu_airport)
        origin = spec.origin
        planted = spec.goods
        planted.count = 1
        items = []
        registered = rng.random() < 0.3
        for r in range(2):
            room = 30 * KG - 600
            for _ in range(rng.randint(2, 5)):
                c = ref.goods_for("p", origin, rng) or ref.goods_for("p", "CN", rng)
                g = ind.make_goods(c, rng, scale=0.01, max_count=1)
                g.grams, g.count, g.package = int(rng.uniform(0.05, 1.95) * KG), 1, "PK"
                if g.value_eur is not None:
                    g.value_eur = round(g.grams / KG * rng.uniform(c.eur_kg_min, c.eur_kg_max), 2)
                if g.grams > room:
                    break
                room -= g.grams
                seller = self.pick(ref.shippers_in([origin], c) or ref.shippers_in(list(c.origins), c))
                person = self.pick([p for p in ref.by_role["person"] if p.country == post.country] or ref.by_role["person"])
                items.append((r, seller, person, [g], ids.s10_item(self.pick(["LX", "LY", "UA", "RB"]), origin, rng),
                              False))
        items.insert(rng.randint(0, len(items)), (rng.randint(0, 1), spec.shipper, spec.consignee, [planted],
                                                  ids.s10_item(self.pick(["LX", "CP", "RB"]), origin, rng), True))
        exchange = pol if ref.locs[pol].country == origin else next(
            (c for c, l in sorted(ref.locs.items()) if l.country == origin and "a" in l.kinds), pol)
        dispatch = f"{origin}{exchange[2:]}A{post.country}{pou[2:]}AAUN{ind.START.year % 10}{rng.randint(1, 9999):04d}"
        bags = [[it for it in items if it[0] == r] for r in range(2)]
        bags = [b for b in bags if b]
        receptacles = []
        for i, mine in enumerate(bags):
            hg = max(1, round((sum(g.grams for it in mine for g in it[3]) + rng.randint(250, 600)) / 100))
            last = 1 if i == len(bags) - 1 else 0
            receptacles.append((f"{dispatch}{i + 1:03d}{last}{1 if registered else 0}{hg:04d}", hg * 100, len(mine)))
        assert all(len(x[0]) == 29 for x in receptacles), receptacles
        carrier = ref.parties[a["key"]]
        issued = (depart - timedelta(hours=rng.uniform(0.5, 10))).replace(microsecond=0)
        itinerary = ordered(spec.via, origin, ref.locs[pol].country, post.country)
        root = self.root("F42")
        ind.postal_means(root, number, arrive)
        ind.registered_el(root, "Carrier", carrier)
        con = E(root, "Consignment")
        doc_el(con, "TransportDocument", "N750", dispatch)
        route_el(con, pol, pou, itinerary)
        E(con, "TotalGrossMass", ind.kg(sum(x[1] for x in receptacles)))
        E(con, "TotalPackages", sum(x[2] for x in receptacles))
        for rid, grams, count in receptacles:
            rec = E(con, "Receptacle")
            E(rec, "ReceptacleId", rid)
            E(rec, "GrossMass", ind.kg(grams))
            E(rec, "ItemCount", count)
        self.write("F42", dispatch, root, issued, post, self.office(pou), None, None, spec.id)
        for _, seller, person, gs, item_id, mine in items:
            means = (lambda r: ind.postal_means(r, number, arrive)) if rng.random() < 0.5 else None
            root = self.house_level("F43", means, ("N750", dispatch), ("N750", item_id), pol, pou, itinerary, seller,
                                    person, gs)
            self.write("F43", dispatch, root, issued + timedelta(minutes=rng.randint(1, 120)), post, self.office(pou),
                       None, spec.label if mine else None, spec.id)

    # -- road and rail ----------------------------------------------------------------------------
    def lane(self, spec: Spec, lanes: list[dict]) -> tuple[dict, str]:
        ref = self.ref
        mine = [x for x in lanes if any((p == spec.pol) if spec.pol else ref.locs[p].country == spec.origin
                                        for p in x["origin_places"].split())]
        if not mine:
            raise NoRoute(f"{spec.id}: no lane from {spec.origin}")
        near = [x for x in mine if ref.locs[x["destination"]].country == spec.consignee.country]
        lane = self.pick(near or mine)
        places = [p for p in lane["origin_places"].split() if (p == spec.pol) if spec.pol] or \
            [p for p in lane["origin_places"].split() if ref.locs[p].country == spec.origin]
        return lane, self.pick(places)

    def ship_road(self, spec: Spec) -> None:
        rng = self.rng
        lane, pol = self.lane(spec, self.ref.road_lanes)
        goods = [spec.goods] if spec.goods is not None else [self.honest_goods(spec, "d")]
        haulier = self.ref.parties[lane["carrier"]]
        arrive = (self.when() + timedelta(hours=rng.uniform(1, 48))).replace(microsecond=0)
        issued = (arrive - timedelta(hours=rng.uniform(1.2, 30))).replace(microsecond=0)
        cmr = f"{spec.origin}{self.docno('', 8)}"
        plate = self.plate(lane["plate"])
        means = lambda r: ind.road_means(r, plate, lane["plate"], arrive)  # noqa: E731
        root = self.straight("F50", means, haulier, "N730", cmr, pol, lane["destination"],
                             self.route(spec, lane["itinerary"].split(), spec.consignee.country), spec.shipper,
                             spec.consignee, goods, notify=spec.notify)
        rep = self.pick(self.ref.by_role["forwarder"]) if rng.random() < 0.4 else None
        self.write("F50", cmr, root, issued, haulier, lane["entry_office"], rep, spec.label, spec.id)

    def ship_rail(self, spec: Spec) -> None:
        rng = self.rng
        lane, pol = self.lane(spec, self.ref.rail_lanes)
        goods = [spec.goods] if spec.goods is not None else [self.honest_goods(spec, "r")]
        operator = self.ref.parties[lane["carrier"]]
        boxes = self.boxes_for(goods, self.size_for(goods[0].c), None) if spec.origin in ("CN", "UA", "TR") else []
        arrive = (self.when() + timedelta(hours=rng.uniform(1, 48))).replace(microsecond=0)
        issued = (arrive - timedelta(hours=rng.uniform(2.5, 72))).replace(microsecond=0)
        cim = f"CIM{self.docno('', 9)}"
        train = f"{lane['train_prefix']}{rng.randint(8000, 9999)}"
        means = lambda r: ind.rail_means(r, train, arrive)  # noqa: E731
        root = self.straight("F51", means, operator, "N720", cim, pol, lane["destination"],
                             self.route(spec, lane["itinerary"].split(), spec.consignee.country), spec.shipper,
                             spec.consignee, goods, boxes, True, spec.notify)
        self.write("F51", cim, root, issued, operator, lane["entry_office"], None, spec.label, spec.id)

    # -- the whole set ----------------------------------------------------------------------------
    def build(self) -> dict:
        super().build()  # the independent set's clean traffic (its events and manifest are rewritten below)
        clean_files = len(self.files)
        self.extend_reference()
        self.build_scenarios()
        self.events.sort(key=lambda e: e["eventCreatedDateTime"])
        with open(self.out / "container-events.jsonl", "w", encoding="utf-8") as f:
            for e in self.events:
                f.write(json.dumps(e, separators=(",", ":")) + "\n")
        with open(self.out / "labels.jsonl", "w", encoding="utf-8") as f:
            for x in self.files:
                f.write(json.dumps({"file": x["file"].removeprefix("filings/"), "filing_code": x["kind"],
                                    "mode": MODE[x["kind"]], "lrn": x["lrn"], "expected": "registered",
                                    "defects": [], "risk": x["risk"], "decoy": x["decoy"], "warnings": [],
                                    "scenario": x["scenario"], "consignment": x["consignment"],
                                    "why": x["why"]}) + "\n")
        by_pattern = {p: sorted({x["scenario"] for x in self.files if x["risk"] == p}) for p in PATTERNS}
        decoys: dict[str, set] = {}
        for x in self.files:
            if x["decoy"]:
                decoys.setdefault(x["decoy"], set()).add(x["consignment"])
        manifest = {
            "filings": len(self.files), "clean_traffic_filings": clean_files,
            "scenario_filings": len(self.files) - clean_files,
            "risky_consignments": {p: len(v) for p, v in by_pattern.items()},
            "decoy_consignments": {k: len(v) for k, v in sorted(decoys.items())},
            "kinds": dict(sorted(self.kinds.items())), "containers": len(self.containers), "events": len(self.events),
            "scenarios": {s.id: {"risk": s.risk, "decoy": s.decoy, "kind": s.kind, "sources": s.sources, "why": s.why}
                          for s in self.scenarios},
            "files": self.files,
        }
        (self.out / "manifest.json").write_text(json.dumps(manifest, indent=1))
        return manifest


def build(out: Path, seed: int = 2026, now: datetime | None = None, clean: int = 1000, scale: float = 1.0) -> dict:
    """Writes the set into `out` (which must not hold filings already) and returns its manifest."""
    out = Path(out)
    if (out / "filings").exists() and any((out / "filings").rglob("*.xml")):
        raise FileExistsError(f"{out}/filings already holds filings")
    out.mkdir(parents=True, exist_ok=True)
    start = ind.START
    if now is not None:  # traffic over the five weeks that end about two months before `now`
        ind.START = (now - timedelta(days=ind.SPAN_DAYS + 60)).replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        return ScenarioBuilder(out, max(1, round(clean * scale)), seed, scale).build()
    finally:
        ind.START = start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--now", default=None, help="UTC date-time the set is built for (default: fixed, the "
                        "independent set's calendar, August to October 2026)")
    parser.add_argument("--clean", type=int, default=1000, help="filings of ordinary clean traffic (at least)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the clean traffic and the decoys")
    args = parser.parse_args()
    now = datetime.fromisoformat(args.now.replace("Z", "+00:00")) if args.now else None
    m = build(args.out, args.seed, now, args.clean, args.scale)
    print(json.dumps({k: v for k, v in m.items() if k not in ("files", "scenarios")}, indent=1))


if __name__ == "__main__":
    main()
