"""Container histories (DCSA T&T 2.2 events) as carriers report them, for generated filings,
with planted anomalies.

A box's journey: picked up empty at a depot, stuffed, gated in laden, loaded; for a share of
deep-sea traffic first on a feeder to the hub the filing names as place of loading, and
transhipped there onto the ocean vessel, on which it stays (calling in the routing countries)
until it is discharged in the EU. Deep-sea filings are lodged before loading (the 24-hour
rule), often before stuffing: the events known when a filing is assessed (up to a day and a
half after it) may still be the empty pick-up only. A third of the boxes also carry an earlier
journey in the store (elsewhere, weeks ago, returned empty). Road and rail boxes are stuffed,
gated in and leave by truck or train. A chosen share of containers gets one anomaly, and the
labels say which, so tests can check that each is found and clean traffic gives none.
"""
from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Iterator

from lxml import etree
from stdnum import iso6346

from .domain.reference import ReferenceData, bundled_reference
from .domain.screening import Equipment, ScreeningRecord, record_from_dict, screening_record
from .generator import GeneratedFiling
from .traffic import EU, TradeModel

ANOMALIES = ("container-unknown", "packed-status-mismatch", "stuffed-after-loading", "stuffed-elsewhere",
             "seal-mismatch", "vessel-mismatch", "voyage-mismatch", "loading-place-mismatch",
             "unloading-place-mismatch", "routing-country-undeclared", "impossible-movement")
# Need vessel loads and discharges; and only sea carriers must report container status, so a box
# the feed never saw is an anomaly at sea only.
SEA_ONLY = frozenset({"vessel-mismatch", "voyage-mismatch", "loading-place-mismatch", "unloading-place-mismatch",
                      "routing-country-undeclared", "stuffed-after-loading", "container-unknown"})
DECEPTION = ("stuffed-elsewhere", "seal-mismatch")  # planted together for the generator's container-deception risk
HOUR = 3600.0
FEEDER_IMO, OTHER_IMO = "9074729", "9321483"
SAILING_KMH = 30.0  # about 16 knots, slow steaming
KNOWN_AFTER_FILING = 36.0  # hours of events after a filing that its assessment already knows
# Anomalies that only show once the box is loaded (and, for the last two, well on its way): their
# boxes are loaded before the filing.
NEEDS_LOAD = frozenset({"packed-status-mismatch", "stuffed-after-loading", "vessel-mismatch", "voyage-mismatch",
                        "loading-place-mismatch", "seal-mismatch"})
NEEDS_VOYAGE = frozenset({"routing-country-undeclared", "unloading-place-mismatch"})
ARRIVED = frozenset({"unloading-place-mismatch", "vessel-mismatch"})  # shown once the box is discharged in the EU
# Where a hub's boxes are fed from: a feeder leg before the place of loading is the normal way there.
FEEDERS = {"SG": ("MY", "ID", "TH", "VN", "BD", "MM", "PH"), "MY": ("ID", "TH", "VN"), "LK": ("IN", "BD"),
           "AE": ("OM", "QA", "KW", "BH", "IN", "PK"), "MA": ("MA", "SN"), "PA": ("CO", "EC", "CR"),
           "CN": ("CN",), "KR": ("JP", "CN"), "TR": ("TR", "GE"), "EG": ("EG", "SA")}
# Transhipment ports by routing country (a box only calls where the route says).
UNDECLARED_HUBS = ("EGPSD", "OMSLL", "DJJIB", "AEJEA", "LKCMB")
FAR_PORTS = ("USNYC", "BRSSZ", "AUSYD", "ZADUR")
ELSEWHERE = ("PKKHI", "IRBND", "LBBEY", "NGLOS")


@dataclass(frozen=True)
class StatusSpec:
    seed: int = 1
    anomaly_rate: float = 0.1  # share of containers with one planted anomaly
    orphan_events: int = 5  # events for containers with a wrong check digit (nobody declared them)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class _History:
    """One container's events, each placed in hours after the filing (negative: before it)."""

    def __init__(self, rng: random.Random, declared: ScreeningRecord, container: Equipment, document: str,
                 ref: ReferenceData | None = None):
        self.rng, self.declared, self.container, self.document = rng, declared, container, document
        self.ref = ref
        self.events: list[dict] = []

    def model_position(self, locode: str) -> bool:
        return self.ref is not None and self.ref.position(locode) is not None

    def add(self, code: str, place: str, hours: float, vessel: str | None = None, empty: str = "LADEN",
            sealed: bool = True, voyage: str | None = None, equipment: str | None = None) -> dict:
        t = self.declared.issued_at + hours * HOUR
        e = {"eventID": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
             "eventCreatedDateTime": _iso(t + 600), "eventType": "EQUIPMENT", "eventClassifierCode": "ACT",
             "eventDateTime": _iso(t), "equipmentEventTypeCode": code,
             "equipmentReference": equipment or self.container.container_id, "emptyIndicatorCode": empty,
             "eventLocation": {"UNLocationCode": place},
             "documentReferences": [{"documentReferenceType": "TRD", "documentReferenceValue": self.document}]}
        if vessel:
            e["transportCall"] = {"transportCallID": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                                  "modeOfTransport": "VESSEL", "UNLocationCode": place,
                                  "exportVoyageNumber": voyage or self.declared.voyage or "001E",
                                  "vessel": {"vesselIMONumber": vessel}}
        if sealed and empty == "LADEN" and self.container.seals:
            e["seals"] = [{"sealNumber": s, "sealType": "WIR"} for s in self.container.seals]
        self.events.append(e)
        return e

    def at(self, e: dict) -> float:
        """An event's hours after the filing."""
        t = datetime.fromisoformat(e["eventDateTime"].replace("Z", "+00:00")).timestamp()
        return (t - self.declared.issued_at) / HOUR


def _named_place(model: TradeModel, rng: random.Random, country: str, mode: str) -> str:
    """A filing that names its place of loading by name and country: one of the country's places."""
    try:
        return model.place(rng, "origin", mode, countries={country})
    except ValueError:
        return next(iter(model.places_in(country, "1") or model.places_in(country, "3")), "CNSGH")


def _sail(ref: ReferenceData, a: str, b: str) -> float:
    """Hours at sea between two ports, plus time in port."""
    return (ref.km_between(a, b) or 3000.0) / SAILING_KMH + 12.0


def _earlier_journey(h: _History, model: TradeModel, rng: random.Random, start: float) -> None:
    """A journey the box made weeks before (elsewhere, laden into Europe), ended by an empty return."""
    there = rng.choice(model.places_in(rng.choice(("CN", "IN", "TR", "BR")), "1") or ["CNSGH"])
    eu_port = rng.choice(model.places_in(rng.choice(("NL", "BE", "DE")), "1") or ["NLRTM"])
    h.add("LOAD", there, start - 70 * 24, vessel=OTHER_IMO, sealed=False, voyage="OLD1W")
    h.add("DISC", eu_port, start - 40 * 24, vessel=OTHER_IMO, sealed=False, voyage="OLD1W")
    h.add("STRP", eu_port, start - 39 * 24, sealed=False)
    h.add("GTIN", eu_port, start - 38 * 24, empty="EMPTY")


def history(declared: ScreeningRecord, container: Equipment, document: str, rng: random.Random,
            model: TradeModel, anomalies: tuple[str, ...] = ()) -> list[dict]:
    """The ACT equipment events of one declared container known when its filing is assessed, with
    the anomalies planted if asked."""
    if "container-unknown" in anomalies:
        return []
    ref = model.ref
    country = declared.loading_country
    vessel = declared.vessel_imo
    place = declared.place_of_loading or _named_place(model, rng, country, "sea" if vessel else "road")
    h = _History(rng, declared, container, document, ref)
    if not vessel:  # road or rail: stuffed, gated in and out at the origin, on its way when filed
        leaves = rng.uniform(-24, 12)
        h.add("PICK", place, leaves - 60, empty="EMPTY")
        h.add("STUF", place, leaves - 30, sealed=False)
        h.add("GTIN", place, leaves - 10)
        departure = h.add("GTOT", place, leaves)
        leaving = [departure]
        first_port = place
    else:
        # The ocean leg starts at the declared place; 55% of filings are lodged before it.
        if NEEDS_VOYAGE & set(anomalies):
            load_there = -rng.uniform(500, 700)
        elif NEEDS_LOAD & set(anomalies):
            load_there = -rng.uniform(24, 120)
        else:
            load_there = rng.uniform(4, 96) if rng.random() < 0.55 else -rng.uniform(2, 72)
        first_port, feeder_load, dwell = place, None, rng.uniform(24, 96)
        # A feeder leg is only told apart from the declared place when the filing names it by code.
        feeders = [c for c in FEEDERS.get(place[:2], ()) if model.places_in(c, "1")] if declared.place_of_loading else []
        if "loading-place-mismatch" in anomalies:  # never at the declared place: loaded elsewhere instead
            elsewhere = [p for p in model.places_in(place[:2], "1") if p != place] if declared.place_of_loading \
                else [p for c in FEEDERS.get(place[:2], ("TR",)) if c != place[:2] for p in model.places_in(c, "1")]
            first_port = place = rng.choice(elsewhere or ["TRAMR"])
        elif feeders and rng.random() < 0.35:
            first_port = rng.choice(model.places_in(rng.choice(feeders), "1"))
            feeder_load = load_there - dwell - _sail(ref, first_port, place)
        first_load = feeder_load if feeder_load is not None else load_there
        gate_in = first_load - rng.uniform(12, 72)
        stuffed = gate_in - rng.uniform(6, 48)
        picked = min(stuffed - rng.uniform(12, 72), KNOWN_AFTER_FILING - 1)  # the empty pick-up is known
        if rng.random() < 0.33:
            _earlier_journey(h, model, rng, picked)
        h.add("PICK", first_port, picked, empty="EMPTY")
        h.add("STUF", first_port, stuffed, sealed=False)
        h.add("GTIN", first_port, gate_in)
        if feeder_load is not None:
            h.add("LOAD", first_port, feeder_load, vessel=FEEDER_IMO, voyage="FD12")
            h.add("DISC", place, load_there - dwell, vessel=FEEDER_IMO, voyage="FD12")
        # From the place of loading the box stays on the declared vessel (ICS2's place of loading is
        # where goods join the means of transport that enters the EU); it calls in the routing countries.
        leaving = [h.add("LOAD", place, load_there, vessel=vessel)]
        t, last = load_there, place
        if "routing-country-undeclared" in anomalies:  # taken off and on again where the route does not say
            call = rng.choice([p for p in UNDECLARED_HUBS if p[:2] not in declared.routing_countries])
            t += _sail(ref, last, call)
            h.add("DISC", call, t, vessel=vessel)
            t += rng.uniform(12, 72)
            leaving.append(h.add("LOAD", call, t, vessel=vessel))
            last = call
        unloading = declared.place_of_unloading or next(iter(model.places_in(declared.unloading_country, "1")),
                                                        "NLRTM")
        if "unloading-place-mismatch" in anomalies:  # taken off for good short of the declared port
            unloading = rng.choice([p for p in ("BEANR", "DEHAM", "FRLEH", "ESVLC", "ITGOA") if p != unloading])
        h.add("DISC", unloading, t + _sail(ref, last, unloading), vessel=vessel)
    _plant(h, declared, container, anomalies, leaving, first_port, rng)
    known = [e for e in h.events if h.at(e) <= KNOWN_AFTER_FILING or ARRIVED & set(anomalies)]
    return sorted(known, key=h.at)


def _plant(h: _History, declared: ScreeningRecord, container: Equipment, anomalies, leaving, first_port,
           rng: random.Random) -> None:
    def move(e: dict, hours: float) -> None:
        e["eventDateTime"] = e["eventCreatedDateTime"] = _iso(declared.issued_at + hours * HOUR)

    if "packed-status-mismatch" in anomalies:  # where it leaves on its journey, the other packed status
        for e in leaving:
            e["emptyIndicatorCode"] = "EMPTY" if container.packed_status == "LADEN" else "LADEN"
            e.pop("seals", None)
    if "stuffed-after-loading" in anomalies:  # goods added after it went on its voyage
        load = leaving[0]
        h.add("STUF", load["eventLocation"]["UNLocationCode"], h.at(load) + 6)
    if "seal-mismatch" in anomalies:
        foreign = [{"sealNumber": f"X{rng.randint(100000, 999999)}", "sealType": "WIR"}]
        for e in h.events:
            if e.get("seals"):
                e["seals"] = foreign
    if "voyage-mismatch" in anomalies:
        for e in h.events:
            if e.get("transportCall", {}).get("vessel", {}).get("vesselIMONumber") == declared.vessel_imo:
                e["transportCall"]["exportVoyageNumber"] = "999X"
    if "vessel-mismatch" in anomalies:
        for e in h.events:
            if "transportCall" in e:
                e["transportCall"]["vessel"]["vesselIMONumber"] = OTHER_IMO if declared.vessel_imo != OTHER_IMO \
                    else FEEDER_IMO
    if "stuffed-elsewhere" in anomalies:  # picked up and packed, a month earlier, in a country the route never touches
        elsewhere = rng.choice([p for p in ELSEWHERE if p[:2] not in {*declared.routing_countries,
                                                                         declared.loading_country}])
        stuffing = next(e for e in h.events if e["equipmentEventTypeCode"] == "STUF")
        pick = next(e for e in h.events if e["equipmentEventTypeCode"] == "PICK")
        stuffed = h.at(stuffing) - 30 * 24  # far enough back to travel
        for e, hours in ((pick, stuffed - 12), (stuffing, stuffed)):
            e["eventLocation"]["UNLocationCode"] = elsewhere
            move(e, hours)
    if "impossible-movement" in anomalies:  # seen across the world two hours after a known, placed event
        began = max((h.at(e) for e in h.events if e["equipmentEventTypeCode"] == "PICK"), default=-1e9)
        placed = [e for e in h.events if began <= h.at(e) <= KNOWN_AFTER_FILING - 2
                  and h.model_position(e["eventLocation"]["UNLocationCode"])]
        if placed:
            last = max(placed, key=h.at)
        else:
            last = h.add("GTIN", "NLRTM", min(KNOWN_AFTER_FILING - 4, max(h.at(e) for e in h.events) + 1))
        far = rng.choice([p for p in FAR_PORTS if p[:2] != last["eventLocation"]["UNLocationCode"][:2]])
        h.add("GTOT", far, h.at(last) + 2)


@dataclass(frozen=True)
class StatusLabel:
    file: str
    container: str
    anomaly: str | None


def generate_status(filings: Iterable[GeneratedFiling], spec: StatusSpec,
                    reference: ReferenceData | None = None) -> Iterator[tuple[list[dict], StatusLabel | None]]:
    """For each accepted-to-be container filing: (events, label) per container; then orphan feed events."""
    model = TradeModel(reference or bundled_reference())
    rng = random.Random(f"status:{spec.seed}")
    for filing in filings:
        if filing.label.get("expected") != "registered" or filing.label.get("resubmission_of"):
            continue
        root = etree.fromstring(filing.data)
        declared = screening_record(root, filing.label["filing_code"])
        if not declared.containers:
            continue
        kinds = ANOMALIES if declared.vessel_imo else tuple(a for a in ANOMALIES if a not in SEA_ONLY)
        document = root.findtext(".//{*}Consignment/{*}TransportDocument/{*}Number") or filing.label["lrn"]
        for container in declared.containers:
            anomaly = rng.choice(kinds) if rng.random() < spec.anomaly_rate else None
            planted = (anomaly,) if anomaly else ()
            if filing.label.get("risk") == "container-deception" and container == declared.containers[0]:
                planted = DECEPTION  # the risk pattern the generator labelled: two anomalies on one box
                anomaly = planted[0]
            yield history(declared, container, document, rng, model, planted), StatusLabel(
                filing.name, container.container_id, anomaly)
    for _ in range(spec.orphan_events):  # the feed's own data-quality problem: a container id failing ISO 6346
        bad = Equipment(f"ZZZU{rng.randint(0, 999999):06d}0", "LADEN")
        if bad.container_id[-1] == iso6346.calc_check_digit(bad.container_id[:10]):
            continue
        shipment = record_from_dict({"issued_at": 1795000000.0, "vessel_imo": "9321483", "voyage": "1E",
                                     "containers": [{"container_id": bad.container_id, "packed_status": "LADEN"}]})
        yield history(shipment, bad, "ORPHAN", rng, model)[:1], None
