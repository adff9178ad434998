"""Container status events (DCSA Track & Trace 2.2) as the store and the enrichment use them.

`normalize` turns one checked DCSA event (a dict) into a ContainerEvent: flat, small, with
times as UTC epoch seconds so histories order correctly whatever the events' own offsets.
Pure functions, no I/O.
"""
from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import NamedTuple


class ContainerEvent(NamedTuple):
    """A NamedTuple, not a dataclass: millions are built and read back; it stores as a JSON array."""

    event_id: str
    event_type: str  # EQUIPMENT, TRANSPORT or SHIPMENT
    classifier: str  # ACT, EST or PLN
    code: str  # LOAD, DISC, GTIN, ... / ARRI, DEPA / shipment event code
    event_time: float  # UTC epoch seconds
    created_time: float
    equipment: str | None = None  # ISO 6346 container id, as the feed gave it
    equipment_check_digit_ok: bool | None = None  # None when there is no container
    empty: str | None = None  # EMPTY or LADEN
    location: str | None = None  # UN/LOCODE where it happened
    vessel_imo: str | None = None
    voyages: tuple[str, ...] = ()  # carrier export/import voyage numbers of the transport call
    documents: tuple[str, ...] = ()  # "TRD:reference", "BKG:reference", ...
    seals: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps(self, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> "ContainerEvent":
        return cls.decoded(json.loads(text))

    @classmethod
    def decoded(cls, f: list) -> "ContainerEvent":
        """From the JSON array to_json wrote, already parsed."""
        return cls(*f[:11], tuple(f[11]), tuple(f[12]), tuple(f[13]))


def utc_epoch(text: str) -> float:
    """ISO 8601 date-time with an offset or Z, as UTC epoch seconds (before 3.11, fromisoformat
    does not read Z)."""
    return datetime.fromisoformat(text.upper().replace("Z", "+00:00")).timestamp()


@lru_cache(maxsize=200_000)
def _check_digit_ok(container: str) -> bool:
    """ISO 6346 (python-stdnum), remembered per id: a container's events all repeat it."""
    from stdnum import iso6346  # here: validation imports this module, and needs stdnum only on a bad digit

    return iso6346.is_valid(container)


def _code(event: dict) -> str:
    return (event.get("equipmentEventTypeCode") or event.get("transportEventTypeCode")
            or event.get("shipmentEventTypeCode") or "")


def normalize(event: dict) -> ContainerEvent:
    """One DCSA event, already checked against the definition, as a ContainerEvent."""
    call = event.get("transportCall") or {}
    vessel = call.get("vessel") or {}
    location = (event.get("eventLocation") or {}).get("UNLocationCode") or call.get("UNLocationCode")
    equipment = event.get("equipmentReference")
    documents = [f"{d['documentReferenceType']}:{d['documentReferenceValue']}"
                 for d in event.get("documentReferences") or ()]
    if event.get("documentTypeCode") and event.get("documentID"):  # shipment events name their document
        documents.append(f"{event['documentTypeCode']}:{event['documentID']}")
    return ContainerEvent(
        event_id=event["eventID"],
        event_type=event["eventType"],
        classifier=event["eventClassifierCode"],
        code=_code(event),
        event_time=utc_epoch(event["eventDateTime"]),
        created_time=utc_epoch(event["eventCreatedDateTime"]),
        equipment=equipment,
        equipment_check_digit_ok=_check_digit_ok(equipment) if equipment else None,
        empty=event.get("emptyIndicatorCode"),
        location=location,
        vessel_imo=vessel.get("vesselIMONumber"),
        voyages=tuple(v for v in (call.get("exportVoyageNumber"), call.get("importVoyageNumber")) if v),
        documents=tuple(documents),
        seals=tuple(s["sealNumber"] for s in event.get("seals") or () if s.get("sealNumber")),
    )
