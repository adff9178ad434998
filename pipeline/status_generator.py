"""Container histories (DCSA T&T 2.2 events) consistent with generated filings, with planted anomalies.

For each declared container of a sea, road or rail filing: stuffed, gated in and loaded at the
declared place of loading, on the declared vessel and voyage, sometimes transhipped in a
routing country; all before the filing. A chosen share of containers gets one anomaly, and the
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

from .domain.container_events import utc_epoch
from .domain.screening import Equipment, ScreeningRecord, record_from_dict, screening_record
from .domain.reference import ReferenceData, bundled_reference
from .generator import GeneratedFiling

ANOMALIES = ("container-unknown", "packed-status-mismatch", "stuffed-after-filing", "stuffed-elsewhere",
             "seal-mismatch", "vessel-mismatch", "voyage-mismatch", "loading-place-mismatch",
             "unloading-place-mismatch", "routing-country-undeclared", "impossible-movement")
SEA_ONLY = frozenset({"vessel-mismatch", "voyage-mismatch", "loading-place-mismatch", "unloading-place-mismatch",
                      "routing-country-undeclared"})  # need vessel loads and discharges
DECEPTION = ("stuffed-elsewhere", "seal-mismatch")  # planted together for the generator's container-deception risk
HOUR = 3600.0
FEEDER_IMO = "9074729"


@dataclass(frozen=True)
class StatusSpec:
    seed: int = 1
    anomaly_rate: float = 0.1  # share of containers with one planted anomaly
    orphan_events: int = 5  # events for containers with a wrong check digit (nobody declared them)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class _History:
    def __init__(self, rng: random.Random, declared: ScreeningRecord, container: Equipment, document: str):
        self.rng, self.declared, self.container, self.document = rng, declared, container, document
        self.events: list[dict] = []

    def add(self, code: str, place: str, hours_before: float, vessel: str | None = None, empty: str = "LADEN",
            seals=None, equipment: str | None = None):
        t = self.declared.issued_at - hours_before * HOUR
        e = {"eventID": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
             "eventCreatedDateTime": _iso(t + 600), "eventType": "EQUIPMENT", "eventClassifierCode": "ACT",
             "eventDateTime": _iso(t), "equipmentEventTypeCode": code,
             "equipmentReference": equipment or self.container.container_id, "emptyIndicatorCode": empty,
             "eventLocation": {"UNLocationCode": place},
             "documentReferences": [{"documentReferenceType": "TRD", "documentReferenceValue": self.document}]}
        if vessel:
            e["transportCall"] = {"transportCallID": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                                  "modeOfTransport": "VESSEL", "UNLocationCode": place,
                                  "exportVoyageNumber": self.declared.voyage or "001E",
                                  "vessel": {"vesselIMONumber": vessel}}
        seals = self.container.seals if seals is None else seals
        if seals:
            e["seals"] = [{"sealNumber": s, "sealType": "WIR"} for s in seals]
        self.events.append(e)
        return e


def _port(ref: ReferenceData, rng: random.Random, countries=None, exclude=()) -> str | None:
    options = sorted(l.locode for l in ref.locations.values() if l.serves("1")
                     and (countries is None or l.country in countries) and l.locode not in exclude)
    return rng.choice(options) if options else None


SAILING_KMH = 30.0  # about 16 knots, slow steaming


def _hours(ref: ReferenceData, a: str, b: str) -> float:
    km = ref.km_between(a, b)
    return (km or 1500.0) / SAILING_KMH + 12.0


def history(declared: ScreeningRecord, container: Equipment, document: str, rng: random.Random,
            ref: ReferenceData, anomalies: tuple[str, ...] = ()) -> list[dict]:
    """ACT equipment events of one container up to the filing, with the anomalies planted if asked.

    Built backwards from the filing: the box is at sea on the declared vessel when the filing is
    made, having left its last port 12-60 h earlier; each earlier leg takes its distance at
    sailing speed, plus a dwell in port.
    """
    if "container-unknown" in anomalies:
        return []
    vessel = declared.vessel_imo
    origin = declared.place_of_loading or _port(ref, rng, countries={declared.loading_country}) or rng.choice(
        sorted(l.locode for l in ref.locations.values() if l.country == declared.loading_country) or ["CNSHA"])
    if "loading-place-mismatch" in anomalies:
        # Another port nearby: in the same country when the filing names the port, else abroad.
        same_country = bool(declared.place_of_loading)
        near = [l.locode for l in ref.locations.values() if l.serves("1") and l.locode != origin
                and (l.country == origin[:2]) == same_country and (ref.km_between(origin, l.locode) or 1e9) < 3000] or \
            [l.locode for l in ref.locations.values() if l.serves("1") and l.locode != origin
             and (ref.km_between(origin, l.locode) or 1e9) < 1500]
        origin = rng.choice(sorted(near)) if near else _port(ref, rng, exclude={origin})
    if not vessel:  # road or rail: stuffed, gated in and out at the origin, on its way when filed
        h = _History(rng, declared, container, document)
        leaves = rng.uniform(6, 72)
        h.add("STUF", origin, leaves + 20)
        h.add("GTIN", origin, leaves + 10)
        h.add("GTOT", origin, leaves)
    else:
        transit = [c for c in declared.routing_countries
                   if c not in (declared.loading_country, declared.unloading_country)]
        calls = [origin]
        hub = _port(ref, rng, countries=set(transit)) if transit else None
        if hub:
            calls.append(hub)
        if "routing-country-undeclared" in anomalies:
            calls.append(_port(ref, rng, countries={"EG", "DJ", "OM", "LK"} - set(declared.routing_countries)))
        final = None
        if "unloading-place-mismatch" in anomalies:  # taken off for good short of the declared port
            final = _port(ref, rng, countries={declared.unloading_country}, exclude={declared.place_of_unloading or ""}) \
                or _port(ref, rng, countries={"BE", "DE", "FR", "IT", "ES"} - {declared.unloading_country})
        # Departure hours before the filing, from the last port back to the first.
        t = rng.uniform(12, 60)
        if final:
            arrival = rng.uniform(2, 20)
            t = arrival + _hours(ref, calls[-1], final)
        departures = []
        for i in range(len(calls) - 1, -1, -1):
            departures.append(t)
            if i:
                t += _hours(ref, calls[i - 1], calls[i]) + rng.uniform(12, 72)  # sailing, then dwell at calls[i]
        departures.reverse()
        h = _History(rng, declared, container, document)
        h.add("STUF", origin, departures[0] + 30)
        h.add("GTIN", origin, departures[0] + 20)
        for i, (port, leaves) in enumerate(zip(calls, departures)):
            ship = vessel if i == len(calls) - 1 or not hub else (FEEDER_IMO if vessel != FEEDER_IMO else vessel)
            if i:
                h.add("DISC", port, leaves + rng.uniform(12, 24), vessel=ship)
            h.add("LOAD", port, leaves, vessel=ship)
        if final:
            h.add("DISC", final, arrival, vessel=vessel)
    if "packed-status-mismatch" in anomalies:
        h.events[-1]["emptyIndicatorCode"] = "EMPTY" if container.packed_status == "LADEN" else "LADEN"
    if "stuffed-after-filing" in anomalies:  # where the box last was, after the filing
        h.add("STUF", h.events[-1]["eventLocation"]["UNLocationCode"], -5)
    if "seal-mismatch" in anomalies:
        for e in h.events:
            e["seals"] = [{"sealNumber": f"X{rng.randint(100000, 999999)}", "sealType": "WIR"}]
    if "voyage-mismatch" in anomalies:
        for e in h.events:
            if "transportCall" in e:
                e["transportCall"]["exportVoyageNumber"] = "999X"
    if "stuffed-elsewhere" in anomalies:  # packed, a month earlier, in a country the declared route never touches
        first = h.events[0]
        elsewhere = _port(ref, rng, countries={"PK", "IR", "LB", "NG"} - set(declared.routing_countries)
                          - {declared.loading_country})
        first["eventLocation"]["UNLocationCode"] = elsewhere
        t0 = utc_epoch(first["eventDateTime"]) - 30 * 24 * HOUR  # far enough back to travel
        first["eventDateTime"] = first["eventCreatedDateTime"] = _iso(t0)
    if "vessel-mismatch" in anomalies:
        for e in h.events:
            if "transportCall" in e:
                e["transportCall"]["vessel"]["vesselIMONumber"] = "9321483" if vessel != "9321483" else "9074729"
    if "impossible-movement" in anomalies:
        far = _port(ref, rng, countries={"US", "BR", "AU", "ZA"} - {origin[:2]})
        last = utc_epoch(h.events[-1]["eventDateTime"])
        h.add("GTOT", far, (declared.issued_at - last) / HOUR - 2)
    return h.events


@dataclass(frozen=True)
class StatusLabel:
    file: str
    container: str
    anomaly: str | None


def generate_status(filings: Iterable[GeneratedFiling], spec: StatusSpec,
                    reference: ReferenceData | None = None) -> Iterator[tuple[list[dict], StatusLabel | None]]:
    """For each accepted-to-be container filing: (events, label) per container; then orphan feed events."""
    ref = reference or bundled_reference()
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
            yield history(declared, container, document, rng, ref, planted), StatusLabel(
                filing.name, container.container_id, anomaly)
    for _ in range(spec.orphan_events):  # the feed's own data-quality problem: a container id failing ISO 6346
        bad = Equipment(f"ZZZU{rng.randint(0, 999999):06d}0", "LADEN")
        if bad.container_id[-1] == iso6346.calc_check_digit(bad.container_id[:10]):
            continue
        shipment = record_from_dict({"issued_at": 1795000000.0, "vessel_imo": "9321483", "voyage": "1E",
                                     "containers": [{"container_id": bad.container_id, "packed_status": "LADEN"}]})
        yield history(shipment, bad, "ORPHAN", rng, ref)[:1], None
