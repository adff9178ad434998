"""Facts from container histories: clean traffic gives no anomaly, each planted anomaly is found with its events."""
from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from lxml import etree

from cargoscreen.domain.container_events import ContainerEvent
from cargoscreen.domain.enrichment import INFORMATIONAL_FACTS, shipment_facts
from cargoscreen.domain.reference import bundled_reference
from cargoscreen.domain.screening import ScreeningRecord, record_from_dict

HOUR = 3600.0
_ids = itertools.count()


@pytest.fixture(scope="module")
def declared() -> ScreeningRecord:
    """A laden box from Shanghai to Rotterdam via Singapore on a declared vessel and voyage."""
    return record_from_dict({
        "place_of_loading": "CNSGH", "place_of_unloading": "NLRTM", "routing_countries": ["CN", "SG", "NL"],
        "vessel_imo": "9811000", "voyage": "512W",
        "parties": [{"role": "consignor", "name": "Shanghai Tools Co", "country": "CN"}],
        "containers": [{"container_id": "MSCU6639870", "packed_status": "LADEN", "seals": ["SL1234567"]}]})


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
    ("stuffed-after-loading", lambda h, c: h + [h[0]._replace(event_id="late", location="SGSIN",
                                                             event_time=h[-1].event_time + 40 * HOUR)]),
    ("feed-container-id-unchecked", lambda h, c: h[:-1] + [h[-1]._replace(equipment_check_digit_ok=False)]),
    ("seal-mismatch", lambda h, c: [e._replace(seals=("FOREIGN-SEAL",) if e.seals else ()) for e in h]),
    ("vessel-mismatch", lambda h, c: [e._replace(vessel_imo="9074729") if e.vessel_imo else e for e in h]
     + [h[3]._replace(event_id="arrived", location="NLRTM", vessel_imo="9074729",
                      event_time=h[-1].event_time + 400 * HOUR)]),
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
    # a second box under the number gates in at Rotterdam while the declared one sails from Shanghai
    ("ashore-while-aboard", lambda h, c: h[:3] + [h[1]._replace(event_id="clone", location="NLRTM",
                                                          event_time=h[2].event_time + 200 * HOUR)] + h[3:]),
])
def test_each_anomaly_is_found_with_its_events(declared, kind, change):
    facts = _with(declared, change)
    found = [f for f in facts if f.kind == kind]
    assert found, f"{kind} not found in {[f.kind for f in facts]}"
    if kind != "container-unknown":
        assert all(f.events for f in found)
    if kind == "impossible-movement":
        assert found[0].values["km"] > 10_000 and found[0].values["hours"] == 2.0


def test_a_box_discharged_and_gated_out_at_another_eu_port_left_the_terminal_elsewhere(declared):
    def arrive(where, then):
        def change(h, c):
            end = h[-1].event_time
            return h + [h[3]._replace(event_id=f"d-{where}-{then}", location=where, event_time=end + 400 * HOUR)] + [
                h[1]._replace(event_id=f"{then}-{where}", code=then, location=where, event_time=end + 410 * HOUR)]
        return {f.kind: f for f in _with(declared, change)}

    found = arrive("BEANR", "GTOT")
    assert "unloading-place-mismatch" in found and found["gated-out-elsewhere"].values["location"] == "BEANR"
    assert len(found["gated-out-elsewhere"].events) == 2
    assert "gated-out-elsewhere" not in arrive("NLRTM", "GTOT")  # the declared place
    assert "gated-out-elsewhere" not in arrive("BEANR", "LOAD")  # a transhipment on to the declared place

    def via_antwerp_to_tangier(h, c):  # discharged in Antwerp, loaded on, gated out in Tangier: no entry elsewhere
        end = h[-1].event_time
        return h + [h[3]._replace(event_id="d-anr", location="BEANR", event_time=end + 400 * HOUR),
                    h[4]._replace(event_id="l-anr", location="BEANR", event_time=end + 410 * HOUR),
                    h[3]._replace(event_id="d-ptm", location="MAPTM", event_time=end + 450 * HOUR),
                    h[1]._replace(event_id="g-ptm", code="GTOT", location="MAPTM", event_time=end + 460 * HOUR)]
    kinds_found = {f.kind for f in _with(declared, via_antwerp_to_tangier)}
    assert "unloading-place-mismatch" in kinds_found and "gated-out-elsewhere" not in kinds_found


# -- histories as carriers report them: what is normal must not look suspicious ------------------------
def test_a_box_filed_before_it_was_stuffed_is_judged_on_its_load(declared):
    """Deep-sea filings precede stuffing: empty pick-up, then (after the filing) stuffing, gate-in
    and the load on the declared vessel, laden. No anomaly; laden/empty is judged at the load."""
    c = declared.containers[0]
    seals = c.seals
    history = [
        ev(c, "PICK", "CNSGH", 20, declared, empty="EMPTY", vessel_imo=None, voyages=()),
        ev(c, "STUF", "CNSGH", -10, declared, vessel_imo=None, voyages=()),
        ev(c, "GTIN", "CNSGH", -20, declared, vessel_imo=None, voyages=(), seals=seals),
        ev(c, "LOAD", "CNSGH", -30, declared, seals=seals),
    ]
    facts = shipment_facts(declared, {c.container_id: history}, bundled_reference())
    assert kinds(facts) == set()
    last = next(f for f in facts if f.kind == "last-event")
    assert "after the filing" in last.detail


def test_a_box_not_loaded_yet_is_not_judged_laden_or_empty(declared):
    c = declared.containers[0]
    history = [ev(c, "PICK", "CNSGH", 5, declared, empty="EMPTY", vessel_imo=None, voyages=())]
    facts = shipment_facts(declared, {c.container_id: history}, bundled_reference())
    assert kinds(facts) == set()
    assert [f.kind for f in facts if f.kind == "not-yet-loaded"] == ["not-yet-loaded"]


def test_laden_declared_but_loaded_empty_on_the_declared_vessel_is_a_mismatch(declared):
    c = declared.containers[0]
    history = [ev(c, "PICK", "CNSGH", 50, declared, empty="EMPTY", vessel_imo=None, voyages=()),
               ev(c, "LOAD", "CNSGH", 30, declared, empty="EMPTY", seals=c.seals)]
    facts = shipment_facts(declared, {c.container_id: history}, bundled_reference())
    mismatch = [f for f in facts if f.kind == "packed-status-mismatch"]
    assert mismatch and "loaded EMPTY at CNSGH" in mismatch[0].detail and mismatch[0].events == (history[1].event_id,)


def test_a_feeder_leg_before_the_declared_place_of_loading_is_normal():
    """Stuffed in Vietnam, fed to Singapore, transhipped there onto the declared vessel: the
    filing names Singapore as place of loading and routes SG > NL."""
    declared = record_from_dict({
        "place_of_loading": "SGSIN", "place_of_unloading": "NLRTM", "routing_countries": ["SG", "NL"],
        "vessel_imo": "9811000", "voyage": "512W",
        "parties": [{"role": "consignor", "name": "Saigon Garments", "country": "VN"}],
        "containers": [{"container_id": "MSCU6639870", "packed_status": "LADEN"}]})
    c = declared.containers[0]
    feeder = dict(vessel_imo="9074729", voyages=("FE12",))
    history = [
        ev(c, "PICK", "VNHPH", 120, declared, empty="EMPTY", vessel_imo=None, voyages=()),
        ev(c, "STUF", "VNHPH", 110, declared, vessel_imo=None, voyages=()),
        ev(c, "LOAD", "VNHPH", 100, declared, **feeder),
        ev(c, "DISC", "SGSIN", 40, declared, **feeder),
        ev(c, "LOAD", "SGSIN", 20, declared),
    ]
    facts = shipment_facts(declared, {c.container_id: history}, bundled_reference())
    assert kinds(facts) == set(), [f.detail for f in facts if f.kind not in INFORMATIONAL_FACTS]
    assert next(f for f in facts if f.kind == "transhipment").values["dwell_hours"] == {"SGSIN": 20.0}


def test_a_box_handled_again_where_it_was_loaded_is_not_ashore_elsewhere(declared):
    """A box taken off again at its loading terminal (rolled to a later sailing) is still where it was."""
    c = declared.containers[0]
    history = clean_history(declared, c)
    rolled = history[:3] + [history[1]._replace(event_id="again", event_time=history[2].event_time + 5 * HOUR)] \
        + history[3:]
    facts = shipment_facts(replace(declared, containers=(c,)), {c.container_id: rolled}, bundled_reference())
    assert "ashore-while-aboard" not in kinds(facts)


def _fed_from_vietnam(consignor_country: str, feeder_status: str = "LADEN"):
    declared = record_from_dict({
        "place_of_loading": "SGSIN", "place_of_unloading": "NLRTM", "routing_countries": ["SG", "NL"],
        "vessel_imo": "9811000", "voyage": "512W",
        "parties": [{"role": "consignor", "name": "Lion City Trading", "country": consignor_country}],
        "containers": [{"container_id": "MSCU6639870", "packed_status": "LADEN"}]})
    c = declared.containers[0]
    feeder = dict(vessel_imo="9074729", voyages=("FE12",), empty=feeder_status)
    history = [
        ev(c, "LOAD", "VNHPH", 100, declared, **feeder),
        ev(c, "DISC", "SGSIN", 40, declared, **feeder),
        ev(c, "STUF", "SGSIN", 30, declared, vessel_imo=None, voyages=()),
        ev(c, "LOAD", "SGSIN", 20, declared),
    ]
    return shipment_facts(declared, {c.container_id: history}, bundled_reference()), history


def test_a_box_that_sailed_laden_from_a_country_nobody_declares_has_an_undeclared_origin():
    """Laden from Haiphong to Singapore, then declared as Singapore goods of a Singapore consignor,
    routed SG > NL: where the goods set out from is declared nowhere."""
    facts, history = _fed_from_vietnam("SG")
    (origin,) = [f for f in facts if f.kind == "origin-undeclared"]
    assert origin.values == {"countries": ["VN"], "location": "VNHPH"} and origin.events == (history[0].event_id,)
    # the consignor's own country explains the feeder; an empty repositioning leg carries no goods
    assert not [f for f in _fed_from_vietnam("VN")[0] if f.kind == "origin-undeclared"]
    assert not [f for f in _fed_from_vietnam("SG", "EMPTY")[0] if f.kind == "origin-undeclared"]


def test_never_loaded_at_the_declared_place_is_a_loading_place_mismatch():
    declared = record_from_dict({"place_of_loading": "SGSIN", "place_of_unloading": "NLRTM",
                                 "routing_countries": ["SG", "NL"], "vessel_imo": "9811000", "voyage": "512W",
                                 "containers": [{"container_id": "MSCU6639870", "packed_status": "LADEN"}]})
    c = declared.containers[0]
    history = [ev(c, "LOAD", "MYPKG", 50, declared), ev(c, "DISC", "LKCMB", 10, declared),
               ev(c, "LOAD", "LKCMB", 5, declared)]
    facts = shipment_facts(declared, {c.container_id: history}, bundled_reference())
    mismatch = next(f for f in facts if f.kind == "loading-place-mismatch")
    assert mismatch.detail == "declared SGSIN, loaded at MYPKG, LKCMB"


def test_earlier_journeys_of_the_box_are_not_this_filing_s(declared):
    """The store keeps a box's earlier journeys: laden from Karachi to Antwerp two months ago,
    stripped and returned empty. This filing's journey starts at the empty pick-up."""
    c = declared.containers[0]
    old = dict(vessel_imo="9321483", voyages=("OLD1",))
    history = [
        ev(c, "LOAD", "PKKHI", 60 * 24, declared, **old),
        ev(c, "DISC", "BEANR", 45 * 24, declared, **old),
        ev(c, "STRP", "BEANR", 44 * 24, declared, vessel_imo=None, voyages=()),
        ev(c, "GTIN", "BEANR", 43 * 24, declared, empty="EMPTY", vessel_imo=None, voyages=()),
        ev(c, "PICK", "CNSGH", 30, declared, empty="EMPTY", vessel_imo=None, voyages=()),
        ev(c, "STUF", "CNSGH", 25, declared, vessel_imo=None, voyages=()),
        ev(c, "LOAD", "CNSGH", 10, declared, seals=c.seals),
    ]
    facts = shipment_facts(declared, {c.container_id: history}, bundled_reference())
    assert kinds(facts) == set(), [f.detail for f in facts if f.kind not in INFORMATIONAL_FACTS]
    assert next(f for f in facts if f.kind == "route-sailed").values["ports"] == ["CNSGH"]


def test_a_place_without_a_position_is_said_to_be_unchecked(declared):
    c = declared.containers[0]
    placeless = next(code for code in bundled_reference().locations
                     if code.startswith("CN") and bundled_reference().position(code) is None)
    history = [ev(c, "GTIN", placeless, 40, declared, vessel_imo=None, voyages=(), seals=c.seals),
               ev(c, "LOAD", "CNSGH", 30, declared, seals=c.seals)]
    facts = shipment_facts(declared, {c.container_id: history}, bundled_reference())
    unchecked = next(f for f in facts if f.kind == "movement-unchecked")
    assert unchecked.values["places"] == [placeless] and "impossible-movement" not in kinds(facts)


def test_another_vessel_that_may_be_a_feeder_is_not_yet_a_mismatch(declared):
    """Filers often name the through bill's port of loading: a box on another ship so far may be on a
    feeder to the hub where the declared vessel takes it on (the carrier announces that load). It is
    watched, and judged a mismatch once it came off with no onward load announced, reached the EU on
    another ship, or was loaded onto a second ship that is not the declared one."""
    c = declared.containers[0]
    history = [ev(c, "GTIN", "CNSGH", 40, declared, vessel_imo=None, voyages=(), seals=c.seals),
               ev(c, "LOAD", "CNSGH", 30, declared, vessel_imo="9074729", seals=c.seals),
               ev(c, "DISC", "CNNBG", 20, declared, vessel_imo="9074729", seals=c.seals)]
    announced = [ev(c, "LOAD", "CNNBG", -30, declared, seals=c.seals)._replace(classifier="EST")]
    facts = shipment_facts(declared, {c.container_id: history + announced}, bundled_reference())
    assert kinds(facts) == set() and "on-another-vessel-so-far" in {f.kind for f in facts}
    unannounced = shipment_facts(declared, {c.container_id: history}, bundled_reference())  # off, nothing next
    assert "vessel-mismatch" in kinds(unannounced)
    onward = history + [ev(c, "LOAD", "CNNBG", 10, declared, vessel_imo="9321483", seals=c.seals)]
    assert "vessel-mismatch" in kinds(shipment_facts(declared, {c.container_id: onward}, bundled_reference()))
    on_board = history[:2]  # on the first ship, nothing more known, a transhipment country ahead: watched
    assert kinds(shipment_facts(declared, {c.container_id: on_board}, bundled_reference())) == set()
    direct = replace(declared, routing_countries=("CN", "NL"))  # no transhipment country: at once, unless announced
    assert "vessel-mismatch" in kinds(shipment_facts(direct, {c.container_id: on_board}, bundled_reference()))
    assert kinds(shipment_facts(direct, {c.container_id: on_board + announced}, bundled_reference())) == set()
    # member states after the place of unloading are where the goods go on, not hubs on the way
    onward_in_eu = replace(declared, routing_countries=("CN", "NL", "DE", "PL"))
    assert "vessel-mismatch" in kinds(shipment_facts(onward_in_eu, {c.container_id: on_board}, bundled_reference()))


def test_a_box_with_only_announced_events_is_not_unknown(declared):
    c = declared.containers[0]
    planned = [ev(c, "LOAD", "CNSGH", -40, declared, seals=c.seals)._replace(classifier="PLN")]
    facts = shipment_facts(declared, {c.container_id: planned}, bundled_reference())
    assert [f.kind for f in facts] == ["not-yet-loaded"] and "announced" in facts[0].detail
