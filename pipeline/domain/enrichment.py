"""Facts about a filing from what its containers actually did (container status events).

Pure functions: the filing's screening record (what it declares) and each container's history
in; facts out, each pointing at the events behind it, for the rules to use. The history is
the ACT events of a container, oldest first (see container_store.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .container_events import ContainerEvent
from .reference import ReferenceData
from .screening import Equipment, ScreeningRecord

# Facts that describe rather than warn: every container with a history has them.
INFORMATIONAL_FACTS = frozenset({"last-event", "route-sailed", "transhipment"})
# Faster than any ship or truck: two events this far apart are one box in two places. A floor for
# reporting: the fact carries its speed (kmh), so a rule pack can demand more.
MAX_PLAUSIBLE_KMH = 60.0
LOAD, DISCHARGE, STUFFING = "LOAD", "DISC", "STUF"


@dataclass(frozen=True)
class Fact:
    kind: str
    container: str
    detail: str
    events: tuple[str, ...] = ()  # eventIDs behind the fact
    values: dict = field(default_factory=dict, compare=False)


def container_facts(declared: ScreeningRecord, container: Equipment, history: list[ContainerEvent],
                    ref: ReferenceData) -> list[Fact]:
    """The facts about one declared container, from its history, in one pass over the events."""
    cid = container.container_id
    if not history:
        return [Fact("container-unknown", cid, "no status event for this container")]
    issued = declared.issued_at
    last, previous, unchecked = None, None, None
    route, loads, stuffing, late_stuffing, sealed, moves = [], [], [], [], [], []
    seen_seals: set[str] = set()
    for e in history:
        if e.event_time <= issued:
            last = e
        if e.code == LOAD or e.code == DISCHARGE:
            if e.location:
                route.append((e.code, e.location, e.event_id))
            if e.code == LOAD and e.vessel_imo:
                loads.append(e)
        elif e.code == STUFFING:
            stuffing.append(e)
            if e.event_time > issued:
                late_stuffing.append(e)
        if e.seals:
            seen_seals.update(e.seals)
            sealed.append(e.event_id)
        if unchecked is None and e.equipment_check_digit_ok is False:
            unchecked = e
        if e.location:
            if previous is not None and previous.location != e.location:
                km = ref.km_between(previous.location, e.location)
                hours = max((e.event_time - previous.event_time) / 3600, 1 / 60)
                if km is not None and km / hours > MAX_PLAUSIBLE_KMH:
                    moves.append(Fact("impossible-movement", cid, f"{previous.location} to {e.location}: {km:.0f} km "
                                      f"in {hours:.1f} h", (previous.event_id, e.event_id),
                                      {"km": round(km), "hours": round(hours, 1), "kmh": round(km / hours)}))
            previous = e
    last = last or history[-1]
    age = (issued - last.event_time) / 3600
    facts = [Fact("last-event", cid, f"{last.code} at {last.location} {age:.0f} h before filing", (last.event_id,),
                  {"code": last.code, "location": last.location, "age_hours": round(age, 1)})]
    facts += _route_facts(declared, cid, route, history)
    if container.packed_status and last.empty and last.empty != container.packed_status:
        facts.append(Fact("packed-status-mismatch", cid,
                          f"declared {container.packed_status}, last seen {last.empty}", (last.event_id,)))
    facts += [Fact("stuffed-after-filing", cid, f"stuffed at {e.location} after the filing", (e.event_id,))
              for e in late_stuffing]
    if unchecked is not None:
        facts.append(Fact("feed-container-id-unchecked", cid, f"the feed's id {unchecked.equipment} fails ISO 6346",
                          (unchecked.event_id,)))
    if container.seals and seen_seals and not seen_seals.intersection(container.seals):
        facts.append(Fact("seal-mismatch", cid, f"declared seals {', '.join(container.seals)} never seen; "
                          f"seen {', '.join(sorted(seen_seals))}", tuple(sealed)))
    if declared.vessel_imo and loads and all(e.vessel_imo != declared.vessel_imo for e in loads):
        facts.append(Fact("vessel-mismatch", cid, f"declared vessel IMO {declared.vessel_imo}, loaded on "
                          f"{', '.join(sorted({e.vessel_imo for e in loads}))}", tuple(e.event_id for e in loads)))
    on_vessel = [e for e in loads if e.vessel_imo == declared.vessel_imo and e.voyages]
    if declared.voyage and on_vessel and all(declared.voyage not in e.voyages for e in on_vessel):
        facts.append(Fact("voyage-mismatch", cid, f"declared voyage {declared.voyage}, loaded for voyage "
                          f"{', '.join(sorted({v for e in on_vessel for v in e.voyages}))}",
                          tuple(e.event_id for e in on_vessel)))
    expected = {declared.loading_country, *declared.routing_countries} - {None}
    for e in stuffing:  # goods packed into the box in a country the route never touches
        if e.location and expected and e.location[:2] not in expected:
            facts.append(Fact("stuffed-elsewhere", cid, f"stuffed at {e.location}, not in the loading or routing "
                              f"countries ({' '.join(sorted(expected))})", (e.event_id,),
                              {"location": e.location, "countries": [e.location[:2]]}))
    return facts + moves


def _route_facts(declared: ScreeningRecord, cid: str, route: list[tuple[str, str, str]],
                 history: list[ContainerEvent]) -> list[Fact]:
    if not route:
        return []
    facts = []
    loads = [(loc, eid) for code, loc, eid in route if code == LOAD]
    ports = [loc for _, loc, _ in route]
    facts.append(Fact("route-sailed", cid, " > ".join(dict.fromkeys(ports)), tuple(eid for _, _, eid in route),
                      {"ports": list(dict.fromkeys(ports))}))
    if loads and (loads[0][0] != declared.place_of_loading if declared.place_of_loading
                  else declared.loading_country and loads[0][0][:2] != declared.loading_country):
        facts.append(Fact("loading-place-mismatch", cid, f"declared "
                          f"{declared.place_of_loading or declared.loading_country}, first loaded at {loads[0][0]}",
                          (loads[0][1],)))
    # A discharge followed by a load is a transhipment; a last discharge is where the box came off for good.
    final_code, final_place, final_event = route[-1]
    if final_code == DISCHARGE and (final_place != declared.place_of_unloading if declared.place_of_unloading
                                    else final_place[:2] != declared.unloading_country):
        facts.append(Fact("unloading-place-mismatch", cid, f"declared "
                          f"{declared.place_of_unloading or declared.unloading_country}, discharged at {final_place}",
                          (final_event,)))
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
    undeclared = sorted({loc[:2] for loc in ports} - set(declared.routing_countries))
    if declared.routing_countries and undeclared:
        facts.append(Fact("routing-country-undeclared", cid, f"sailed through {', '.join(undeclared)}, "
                          f"declared {' '.join(declared.routing_countries)}",
                          tuple(eid for _, loc, eid in route if loc[:2] in undeclared), {"countries": undeclared}))
    return facts


def shipment_facts(declared: ScreeningRecord, histories: dict[str, list[ContainerEvent]],
                   ref: ReferenceData) -> list[Fact]:
    """All facts of a filing: for each declared container, from its history."""
    return [f for c in declared.containers for f in container_facts(declared, c, histories.get(c.container_id, []), ref)]
