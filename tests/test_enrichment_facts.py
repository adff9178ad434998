"""Facts from container histories: clean traffic gives no anomaly, each planted anomaly is found with its events."""
from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from lxml import etree

from cargoscreen.domain.container_events import ContainerEvent
from cargoscreen.domain.enrichment import INFORMATIONAL_FACTS, shipment_facts
from cargoscreen.domain.reference import bundled_reference
from cargoscreen.domain.screening import ScreeningRecord, screening_record
from cargoscreen.generator import GeneratorSpec, generate

HOUR = 3600.0
_ids = itertools.count()


@pytest.fixture(scope="module")
def declared() -> ScreeningRecord:
    filing = next(f for f in generate(GeneratorSpec(count=80, seed=21, defect_rate=0, envelope_rate=0,
                                                    resubmission_rate=0, modes=("sea",)))
                  if b"<ens:IE3F10" in f.data and b"<ens:UNLocode>" in f.data)
    d = screening_record(etree.fromstring(filing.data), "F10")
    assert d.containers and d.vessel_imo and d.voyage and d.place_of_loading
    # These tests want UN/LOCODEs at both ends, and an unloading place other than the planted BEANR.
    return replace(d, place_of_unloading="NLRTM", unloading_country="NL",
                   routing_countries=tuple(dict.fromkeys((*d.routing_countries, "SG", "NL"))))


def ev(container, code, location, hours_before_filing, declared, **kw) -> ContainerEvent:
    defaults = dict(equipment_check_digit_ok=True, empty="LADEN", vessel_imo=declared.vessel_imo,
                    voyages=(declared.voyage,), seals=())
    defaults.update(kw)
    return ContainerEvent(event_id=f"e{next(_ids)}", event_type="EQUIPMENT", classifier="ACT", code=code,
                          event_time=declared.issued_at - hours_before_filing * HOUR, created_time=declared.issued_at,
                          equipment=container.container_id, location=location, **defaults)


def clean_history(declared, container):
    """Stuffed and loaded at the declared place on the declared vessel, transhipped in Singapore."""
    seals = container.seals[:1]
    return [
        ev(container, "STUF", declared.place_of_loading, 300, declared, vessel_imo=None, voyages=()),
        ev(container, "GTIN", declared.place_of_loading, 290, declared, vessel_imo=None, voyages=(), seals=seals),
        ev(container, "LOAD", declared.place_of_loading, 280, declared, seals=seals),
        ev(container, "DISC", "SGSIN", 48, declared),
        ev(container, "LOAD", "SGSIN", 30, declared),
    ]


def kinds(facts):
    return {f.kind for f in facts} - INFORMATIONAL_FACTS


def test_clean_histories_give_no_anomaly(declared):
    histories = {c.container_id: clean_history(declared, c) for c in declared.containers}
    facts = shipment_facts(declared, histories, bundled_reference())
    assert kinds(facts) == set()
    route = next(f for f in facts if f.kind == "route-sailed")
    assert route.values["ports"][0] == declared.place_of_loading and "SGSIN" in route.values["ports"]
    transhipment = next(f for f in facts if f.kind == "transhipment")
    assert transhipment.detail == "SGSIN (18 h)" and transhipment.values["dwell_hours"] == {"SGSIN": 18.0}


def _with(declared, change):
    c = declared.containers[0]
    history = change(clean_history(declared, c), c)
    return shipment_facts(replace(declared, containers=(c,)), {c.container_id: history}, bundled_reference())


@pytest.mark.parametrize("kind,change", [
    ("container-unknown", lambda h, c: []),
    ("packed-status-mismatch", lambda h, c: h[:-1] + [h[-1]._replace(empty="EMPTY")]),
    ("stuffed-after-filing", lambda h, c: h + [h[0]._replace(event_id="late", event_time=h[-1].event_time + 40 * HOUR)]),
    ("feed-container-id-unchecked", lambda h, c: h[:-1] + [h[-1]._replace(equipment_check_digit_ok=False)]),
    ("seal-mismatch", lambda h, c: [e._replace(seals=("FOREIGN-SEAL",) if e.seals else ()) for e in h]),
    ("vessel-mismatch", lambda h, c: [e._replace(vessel_imo="9074729") if e.vessel_imo else e for e in h]),
    ("voyage-mismatch", lambda h, c: [e._replace(voyages=("999X",)) if e.vessel_imo else e for e in h]),
    ("stuffed-elsewhere", lambda h, c: [h[0]._replace(location="PKKHI",
                                                      event_time=h[0].event_time - 40 * 24 * HOUR)] + h[1:]),
    ("loading-place-mismatch", lambda h, c: [h[2]._replace(location="TRIST")] + h[3:]),
    ("unloading-place-mismatch", lambda h, c: h + [h[3]._replace(event_id="dx", location="BEANR",
                                                             event_time=h[-1].event_time + 1)]),
    ("routing-country-undeclared", lambda h, c: h[:3] + [h[3]._replace(location="EGPSD"),
                                                          h[4]._replace(location="EGPSD")]),
    ("impossible-movement", lambda h, c: h[:4] + [h[4]._replace(location="NLRTM",
                                                          event_time=h[3].event_time + 2 * HOUR)]),
])
def test_each_anomaly_is_found_with_its_events(declared, kind, change):
    facts = _with(declared, change)
    found = [f for f in facts if f.kind == kind]
    assert found, f"{kind} not found in {[f.kind for f in facts]}"
    if kind != "container-unknown":
        assert all(f.events for f in found)
    if kind == "impossible-movement":
        assert found[0].values["km"] > 10_000 and found[0].values["hours"] == 2.0
