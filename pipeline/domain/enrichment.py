"""Facts about a filing from what its containers actually did (container status events).

Pure functions: the filing's screening record (what it declares) and each container's history
in; facts out, each pointing at the events behind it, for the rules to use. The history is the
ACT events of a container, oldest first (see container_store.py), as known at assessment:
events after the filing count too (deep-sea boxes are often filed before they are stuffed).
A container's store keeps every journey it made; the facts judge the journey of this filing.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .container_events import ContainerEvent
from .offices import PLACE_COUNTRY, not_of_entry, outside_eu
from .reference import EU_MEMBER_STATES, ReferenceData
from .screening import Equipment, ScreeningRecord

DATA_QUALITY_WARNING = "data-quality-warning"  # a filing accepted with a warning (validation's, not a container's)
CLAIM_REFUSED = "consignment-claim-refused"  # a filing refused from another filer's consignment (linking's)
# What a goods description says against its declared code (goods_facts.py): about a goods item.
DESCRIPTION_CODE_MISMATCH = "description-code-mismatch"
DESCRIPTION_NAMES_CONTROLLED = "description-names-controlled-goods"
GOODS_FACTS = frozenset({DESCRIPTION_CODE_MISMATCH, DESCRIPTION_NAMES_CONTROLLED})
# Why a referral went to the default risk centre rather than the office's (see offices.py): about
# the filing's office of first entry, not a container.
OFFICE_UNKNOWN, OFFICE_OFF_ROUTE = "office-unknown", "office-off-route"
OFFICE_FACTS = frozenset({OFFICE_UNKNOWN, OFFICE_OFF_ROUTE})
# A tracked party's history before this filing, or that the history store could not say (parties.py):
# what the rules read a party's first_seen_days and filings from.
PARTY_HISTORY, PARTY_HISTORY_UNAVAILABLE = "party-history", "party-history-unavailable"
# What a description says by its words alone (descriptions.py): a brand's goods below a genuine article's
# price; several articles of a brand with no value declared (a pre-loading dataset; the rules weigh it
# with where they come from); a description naming no goods (informational: weighed with the value).
BRANDED_UNDERPRICED, BRANDED_UNVALUED = "branded-goods-underpriced", "branded-goods-unvalued"
SAYS_NOTHING = "goods-description-says-nothing"
# ... prepaid cards said to carry value (cash-like, Regulation (EU) 2018/1672); objects the description
# dates to antiquity or an excavation (an import licence whatever their value, Regulation (EU) 2019/880).
STORED_VALUE_CARDS, ARCHAEOLOGICAL_OBJECT = "stored-value-cards", "archaeological-object"
# ... kilograms per package the described goods cannot have (below the net the description states, above
# what a package of goods this light can weigh).
PACKAGE_MASS_CONTRADICTS = "package-mass-contradicts-description"
# A private person receiving controlled or valuable goods (parties.py): ordinary on its own (people buy
# abroad), so it describes; the rules weigh it with who sent what.
NATURAL_PERSON_CONSIGNEE = "natural-person-consignee"
# ... receiving, by the description's count, a commercial quantity of goods a person does not buy by the ten
# (phones, laptops, knives: rules/reference/private-commercial-goods.csv). Informational too: the rules weigh
# it with the shipper's history.
PRIVATE_COMMERCIAL_QUANTITY = "commercial-quantity-to-private-person"
# Facts that describe rather than warn of a risk: every container with a history has the first three.
INFORMATIONAL_FACTS = frozenset({"last-event", "route-sailed", "transhipment", "not-yet-loaded",
                                 "on-another-vessel-so-far", "movement-unchecked", "not-in-feed",
                                 DATA_QUALITY_WARNING, *OFFICE_FACTS, PARTY_HISTORY, PARTY_HISTORY_UNAVAILABLE,
                                 NATURAL_PERSON_CONSIGNEE, PRIVATE_COMMERCIAL_QUANTITY, SAYS_NOTHING})
# Faster than any ship or truck: two events this far apart are one box in two places. A floor for
# reporting: the fact carries its speed (kmh), so a rule pack can demand more.
MAX_PLAUSIBLE_KMH = 60.0
LOAD, DISCHARGE, STUFFING, STRIPPING, GATE_OUT = "LOAD", "DISC", "STUF", "STRP", "GTOT"
# Handled on land: a box aboard a ship cannot be gated, packed or picked up in another place before
# it comes off (a second box under its number: a cloned or misused id).
ASHORE = frozenset({"GTIN", GATE_OUT, STUFFING, STRIPPING, "PICK", "DROP"})
EMPTY, LADEN = "EMPTY", "LADEN"


@dataclass(frozen=True)
class Fact:
    kind: str
    container: str
    detail: str
    events: tuple[str, ...] = ()  # eventIDs behind the fact
    values: dict = field(default_factory=dict, compare=False)


def journey(history: list[ContainerEvent], issued: float) -> list[ContainerEvent]:
    """The events of the journey a filing covers. A box's journey ends when it came off a ship or
    was stripped and is then seen empty (returned, picked up again); the store keeps earlier
    journeys. Before that, an empty event after laden ones is this journey's own (a box that
    leaves empty though declared laden), not a new one. The filing's journey is the last that
    began by the filing."""
    starts, ended = [0], False
    for i in range(1, len(history)):
        e = history[i]
        if e.code in (DISCHARGE, STRIPPING):
            ended = True
        elif ended and e.empty == EMPTY and history[i - 1].empty == LADEN:
            starts.append(i)
            ended = False
    chosen = 0
    for n, start in enumerate(starts):
        if history[start].event_time <= issued:
            chosen = n
    begin = starts[chosen]
    end = starts[chosen + 1] if chosen + 1 < len(starts) else len(history)
    return history[begin:end]


def container_facts(declared: ScreeningRecord, container: Equipment, history: list[ContainerEvent],
                    ref: ReferenceData) -> list[Fact]:
    """The facts about one declared container, from the journey in its history (actual events; the
    carrier's estimated and planned ones, if given, only say what is announced next)."""
    cid = container.container_id
    announced = [e for e in history if e.classifier != "ACT"]  # estimated and planned: what comes next
    history = [e for e in history if e.classifier == "ACT"]
    if not history:  # sea carriers must report container status; road and rail boxes are often not in the feed
        if announced:
            return [Fact("not-yet-loaded", cid, f"only announced so far: {announced[-1].code} at "
                         f"{announced[-1].location}", (announced[-1].event_id,))]
        if declared.mode == "sea":
            return [Fact("container-unknown", cid, "no status event for this container")]
        return [Fact("not-in-feed", cid, f"no status event for this container (not required of {declared.mode} "
                     f"carriers)")]
    history = journey(history, declared.issued_at)
    issued = declared.issued_at
    route, loads, stuffing, sealed, departures = [], [], [], [], []
    previous, unchecked, first_load = None, None, None
    seen_seals: set[str] = set()
    moves, unplaced = [], set()
    aboard = None  # the load that put the box on a ship it has not come off yet
    for e in history:
        if aboard is not None and e.code in ASHORE and e.location and e.location != aboard.location:
            moves.append(Fact("ashore-while-aboard", cid, f"{e.code} at {e.location} while aboard since its load at "
                              f"{aboard.location}, with no discharge between", (aboard.event_id, e.event_id),
                              {"location": e.location, "before": aboard.location}))
        if e.code == LOAD:
            aboard = e
        elif e.code == DISCHARGE:
            aboard = None
        if e.code == LOAD or e.code == DISCHARGE:
            if e.location:
                route.append((e.code, e.location, e.event_id))
            if e.code == LOAD:
                loads.append(e)
                first_load = first_load or e
        elif e.code == STUFFING:
            stuffing.append(e)
        elif e.code == GATE_OUT and first_load is None and (stuffing or e.empty == LADEN):
            departures.append(e)  # a box leaving by road or rail once packed (an empty release is not one)
        if e.seals:
            seen_seals.update(e.seals)
            sealed.append(e.event_id)
        if unchecked is None and e.equipment_check_digit_ok is False:
            unchecked = e
        if e.location:
            if previous is not None and previous.location != e.location:
                km = ref.km_between(previous.location, e.location)
                hours = max((e.event_time - previous.event_time) / 3600, 1 / 60)
                if km is None:
                    unplaced.update(p for p in (previous.location, e.location) if ref.position(p) is None)
                elif km / hours > MAX_PLAUSIBLE_KMH:
                    moves.append(Fact("impossible-movement", cid, f"{previous.location} to {e.location}: {km:.0f} km "
                                      f"in {hours:.1f} h", (previous.event_id, e.event_id),
                                      {"km": round(km), "hours": round(hours, 1), "kmh": round(km / hours)}))
            previous = e
    last = history[-1]
    age = (issued - last.event_time) / 3600
    when = f"{age:.0f} h before the filing" if age >= 0 else f"{-age:.0f} h after the filing"
    facts = [Fact("last-event", cid, f"{last.code} at {last.location} {when}", (last.event_id,),
                  {"code": last.code, "location": last.location, "age_hours": round(age, 1)})]
    facts += _route_facts(declared, cid, route, history)
    facts += _packed_status_facts(declared, container, loads, departures, history)
    facts += [Fact("stuffed-after-loading", cid, f"stuffed at {e.location} after it was loaded at "
                   f"{first_load.location}", (first_load.event_id, e.event_id))
              for e in stuffing if first_load is not None and e.event_time > first_load.event_time]
    if unchecked is not None:
        facts.append(Fact("feed-container-id-unchecked", cid, f"the feed's id {unchecked.equipment} fails ISO 6346",
                          (unchecked.event_id,)))
    if container.seals and seen_seals and not seen_seals.intersection(container.seals):
        facts.append(Fact("seal-mismatch", cid, f"declared seals {', '.join(container.seals)} never seen; "
                          f"seen {', '.join(sorted(seen_seals))}", tuple(sealed)))
    # The vessel and voyage are judged on the box's loads from the declared place of loading on:
    # a feeder before it sails on another ship, and a box not loaded there yet is not judged.
    vessel_loads = [e for e in _voyage_loads(declared, loads) if e.vessel_imo]
    if declared.vessel_imo and vessel_loads and all(e.vessel_imo != declared.vessel_imo for e in vessel_loads):
        # A first vessel may be a feeder to a hub where the declared one takes the box on (filers often
        # name the through bill's port of loading, and carriers announce the onward load): a mismatch
        # once the box reached the EU on another ship or went on a second ship that is not the declared
        # one either; or, with no onward load announced, once it came off at a hub, or at once when the
        # declared route has no transhipment country outside the Union.
        others = ", ".join(sorted({e.vessel_imo for e in vessel_loads}))
        after = [e for e in history if e.event_time > vessel_loads[0].event_time and e.code == DISCHARGE]
        arrived = any(e.location and e.location[:2] in EU_MEMBER_STATES for e in after)
        onward = any(e.code == LOAD and e.vessel_imo == declared.vessel_imo for e in announced)
        # a hub that could put the box on the declared vessel lies on the way, outside the Union: the
        # countries after the first EU one are where the goods go on (onward_countries), not hubs
        direct = not set(declared.routing_countries) - {declared.loading_country} - EU_MEMBER_STATES \
            - {declared.unloading_country}
        if arrived or len(vessel_loads) > 1 or (not onward and (after or direct)):
            facts.append(Fact("vessel-mismatch", cid, f"declared vessel IMO {declared.vessel_imo}, loaded on {others}",
                              tuple(e.event_id for e in vessel_loads)))
        else:
            facts.append(Fact("on-another-vessel-so-far", cid, f"loaded on {others}; the declared vessel "
                              f"{declared.vessel_imo} may take it on at a transhipment port"
                              + (" (announced)" if onward else ""), tuple(e.event_id for e in vessel_loads)))
    on_vessel = [e for e in vessel_loads if e.vessel_imo == declared.vessel_imo and e.voyages]
    if declared.voyage and on_vessel and all(declared.voyage not in e.voyages for e in on_vessel):
        facts.append(Fact("voyage-mismatch", cid, f"declared voyage {declared.voyage}, loaded for voyage "
                          f"{', '.join(sorted({v for e in on_vessel for v in e.voyages}))}",
                          tuple(e.event_id for e in on_vessel)))
    facts += _stuffed_elsewhere(declared, cid, stuffing, loads)
    facts += _origin_undeclared(declared, cid, loads)
    if unplaced:
        facts.append(Fact("movement-unchecked", cid, f"no position for {', '.join(sorted(unplaced))} in the "
                          f"code list: movements to and from it not checked for speed", (),
                          {"places": sorted(unplaced)}))
    return facts + moves


def _at_declared_place(declared: ScreeningRecord, location: str | None) -> bool:
    if not location:
        return False
    return location == declared.place_of_loading if declared.place_of_loading else \
        location[:2] == declared.loading_country


def _first_load_there(declared: ScreeningRecord, loads: list[ContainerEvent]) -> int | None:
    """The index of the first load at the declared place of loading, or None."""
    return next((i for i, e in enumerate(loads) if _at_declared_place(declared, e.location)), None)


def _declared_countries(declared: ScreeningRecord) -> set[str]:
    """The countries the filing names for where the goods come from and pass: loading, routing, consignors'."""
    return {declared.loading_country, *declared.routing_countries,
            *(p.country for p in declared.parties if p.role == "consignor" and p.country)} - {None}


def _voyage_loads(declared: ScreeningRecord, loads: list[ContainerEvent]) -> list[ContainerEvent]:
    """The loads from the first one at the declared place of loading on."""
    first = _first_load_there(declared, loads)
    return loads[first:] if first is not None else []


def _packed_status_facts(declared: ScreeningRecord, container: Equipment, loads, departures,
                         history) -> list[Fact]:
    """Laden or empty is judged where the box leaves on its journey: loaded on a ship, or gated out
    by road or rail. Before that an empty box is the normal history (picked up empty, then
    stuffed); a box not yet loaded is reported as such and judged when its load is known."""
    cid, declared_status = container.container_id, container.packed_status
    decisive = [e for e in (_voyage_loads(declared, loads) or loads) if e.empty] or \
        [e for e in departures if e.empty]
    if not decisive:
        return [Fact("not-yet-loaded", cid, "not loaded or gated out yet: packed status and route judged "
                     "when it is", (history[-1].event_id,))] if not loads else []
    leaving = decisive[-1] if not declared.vessel_imo else next(
        (e for e in reversed(decisive) if e.vessel_imo == declared.vessel_imo), decisive[-1])
    if declared_status and leaving.empty != declared_status:
        return [Fact("packed-status-mismatch", cid, f"declared {declared_status}, "
                     f"{'loaded' if leaving.code == LOAD else 'left'} {leaving.empty} at {leaving.location}",
                     (leaving.event_id,))]
    return []


def _stuffed_elsewhere(declared: ScreeningRecord, cid: str, stuffing, loads) -> list[Fact]:
    """Goods packed into the box in a country neither the declared route, the consignor nor the
    box's own way to the place of loading (a feeder port, say) explains."""
    expected = _declared_countries(declared) | {e.location[:2] for e in loads if e.location}
    return [Fact("stuffed-elsewhere", cid, f"stuffed at {e.location}, not in the loading or routing countries "
                 f"({' '.join(sorted(expected))})", (e.event_id,),
                 {"location": e.location, "countries": [e.location[:2]]})
            for e in stuffing if e.location and expected and e.location[:2] not in expected]


def _origin_undeclared(declared: ScreeningRecord, cid: str, loads) -> list[Fact]:
    """The box sailed laden to the declared place of loading from a country that neither the declared
    route nor a consignor names: where the goods really come from is not declared (fruit from Ecuador
    declared Moroccan at Tanger Med, Chinese bolts declared Malaysian at Port Klang). A feeder leg
    within the declared countries, or from the consignor's, is the normal way there."""
    first = _first_load_there(declared, loads)
    if not first or not declared.routing_countries:
        return []
    expected = _declared_countries(declared)
    upstream = [e for e in loads[:first] if e.location and e.empty == LADEN and e.location[:2] not in expected]
    if not upstream:
        return []
    countries = sorted({e.location[:2] for e in upstream})
    return [Fact("origin-undeclared", cid, f"loaded laden at {', '.join(dict.fromkeys(e.location for e in upstream))} "
                 f"before the declared place of loading {declared.place_of_loading or declared.loading_country}; "
                 f"declared {' '.join(declared.routing_countries)}", tuple(e.event_id for e in upstream),
                 {"countries": countries, "location": upstream[0].location})]


def _gated_out_elsewhere(declared: ScreeningRecord, cid: str, route: list[tuple[str, str, str]],
                         history: list[ContainerEvent], eu: set[str]) -> list[Fact]:
    """`gated-out-elsewhere`: after its last discharge, at an EU port other than the declared place of
    unloading, the box left that terminal laden (a gate-out with no load after it): the goods entered
    the Union where the filing does not say, not a transhipment on the way to the declared place."""
    last_code, place, discharge_id = route[-1]
    if last_code != DISCHARGE or place[:2] not in eu:
        return []
    after = False
    for e in history:
        if e.event_id == discharge_id:
            after = True
        elif after and e.code == GATE_OUT and e.location == place and e.empty != EMPTY:
            return [Fact("gated-out-elsewhere", cid, f"discharged at {place} and gated out there, laden; declared "
                         f"place of unloading {declared.place_of_unloading or declared.unloading_country}",
                         (discharge_id, e.event_id), {"location": place})]
    return []


def _route_facts(declared: ScreeningRecord, cid: str, route: list[tuple[str, str, str]],
                 history: list[ContainerEvent]) -> list[Fact]:
    if not route:
        return []
    facts = []
    loads = [(loc, eid) for code, loc, eid in route if code == LOAD]
    ports = [loc for _, loc, _ in route]
    facts.append(Fact("route-sailed", cid, " > ".join(dict.fromkeys(ports)), tuple(eid for _, _, eid in route),
                      {"ports": list(dict.fromkeys(ports))}))
    # Loaded at the declared place at some point: a feeder leg before it is the normal way there, and
    # a box not there yet is not judged. Joining the declared vessel elsewhere is the mismatch.
    loaded_there = [i for i, (code, loc, _) in enumerate(route) if code == LOAD and _at_declared_place(declared, loc)]
    on_vessel = [e for e in history if e.code == LOAD and e.vessel_imo and e.vessel_imo == declared.vessel_imo]
    if loads and not loaded_there and (on_vessel or _arrived(declared, route)):
        facts.append(Fact("loading-place-mismatch", cid, f"declared {declared.place_of_loading or declared.loading_country}, "
                          f"loaded at {', '.join(dict.fromkeys(loc for loc, _ in loads))}",
                          tuple(eid for _, eid in loads)))
    # A discharge followed by a load is a transhipment; a last discharge is where the box came off for good.
    # Where the box came off in the EU: at the declared place at some point (an EU feeder onward from
    # there is the normal way on), or only elsewhere, which is the mismatch.
    eu = EU_MEMBER_STATES | {declared.unloading_country}
    arrivals = [(loc, eid) for code, loc, eid in route if code == DISCHARGE and loc[:2] in eu]
    at_declared = [loc for loc, _ in arrivals if (loc == declared.place_of_unloading if declared.place_of_unloading
                                                  else loc[:2] == declared.unloading_country)]
    if arrivals and not at_declared:
        facts.append(Fact("unloading-place-mismatch", cid, f"declared "
                          f"{declared.place_of_unloading or declared.unloading_country}, discharged at "
                          f"{', '.join(dict.fromkeys(loc for loc, _ in arrivals))}",
                          tuple(eid for _, eid in arrivals)))
        facts += _gated_out_elsewhere(declared, cid, route, history, eu)
    tranship = [(loc, eid, i) for i, (code, loc, eid) in enumerate(route)
                if code == DISCHARGE and any(c == LOAD for c, _, _ in route[i + 1:])]
    if tranship:
        times = {e.event_id: e.event_time for e in history}
        dwell = {}
        for loc, _, i in tranship:  # hours from coming off one ship to going on the next, there
            reload = next((r for r in route[i + 1:] if r[0] == LOAD and r[1] == loc), None)
            if reload is not None:
                dwell[loc] = round((times[reload[2]] - times[route[i][2]]) / 3600, 1)
        facts.append(Fact("transhipment", cid, ", ".join(f"{loc} ({dwell[loc]:.0f} h)" if loc in dwell else loc
                                                         for loc in dict.fromkeys(loc for loc, _, _ in tranship)),
                          tuple(eid for _, eid, _ in tranship), {"dwell_hours": dwell}))
    # The declared voyage runs from the load at the declared place on; ports before it are the way there.
    voyage = route[loaded_there[0]:] if loaded_there else []
    undeclared = sorted({loc[:2] for _, loc, _ in voyage} - set(declared.routing_countries))
    if declared.routing_countries and undeclared:
        facts.append(Fact("routing-country-undeclared", cid, f"sailed through {', '.join(undeclared)}, "
                          f"declared {' '.join(declared.routing_countries)}",
                          tuple(eid for _, loc, eid in voyage if loc[:2] in undeclared), {"countries": undeclared}))
    return facts


def _arrived(declared: ScreeningRecord, route) -> bool:
    """Discharged in the EU: the voyage is over, so where the box was loaded is known for good."""
    return any(code == DISCHARGE and loc[:2] in EU_MEMBER_STATES | {declared.unloading_country}
               for code, loc, _ in route)


def shipment_facts(declared: ScreeningRecord, histories: dict[str, list[ContainerEvent]],
                   ref: ReferenceData) -> list[Fact]:
    """All facts of a filing: for each declared container, from its history."""
    return [f for c in declared.containers for f in container_facts(declared, c, histories.get(c.container_id, []), ref)]


def office_facts(record: ScreeningRecord, ref: ReferenceData) -> tuple[Fact, ...]:
    """Why the office cannot route the referral (a fact the analyst reads), or nothing when it can."""
    code = record.office_of_first_entry
    if not code:
        return ()
    values = {"office": code, "country": code[:2]}
    why = outside_eu(code, ref) or not_of_entry(code, ref)
    if why:
        return (Fact(OFFICE_UNKNOWN, "", f"Customs office of first entry {code}: {why}; referred to the "
                                         f"default risk centre.", (), values),)
    country = PLACE_COUNTRY.get(code[:2], code[:2])
    unloading, route = record.unloading_country, record.routing_countries
    if (unloading is None and not route) or country == unloading or country in route:
        return ()  # consistent, or nothing declared to judge it by (an air pre-loading filing)
    name = ref.customs_offices[code].name
    return (Fact(OFFICE_OFF_ROUTE, "", f"Customs office of first entry {code} ({name}) is in {code[:2]}, but the "
                                       f"goods are unloaded in {unloading or 'an undeclared country'} and routed "
                                       f"through {', '.join(route) or 'no declared country'}; referred to the "
                                       f"default risk centre.", (),
                 {**values, "unloading_country": unloading, "routing_countries": list(route)}),)
