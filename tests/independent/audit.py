"""Our own check that the independent set is honest, written from the specification, not the product.

    python tests/independent/audit.py SET_FOLDER      # prints the problems, exit 1 if any

Totals are the sums of their parts (goods items; houses for a master; receptacles for a postal
dispatch, whose packages are the postal items in them); routing countries include the countries
of loading and unloading; container ids, IMO numbers, air waybills and postal item ids carry
right check digits; bulk takes no package count and unpacked units have one; a filing is lodged
before the means of transport arrives; each container's events are in time order, never faster
than a ship or truck moves, and none lies in the future; no goods description is one of the
vague terms the regime refuses.
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from lxml import etree
from stdnum import imo, iso6346


def _load_build():
    """build.py under a name of its own (a bare `import build` could find another package)."""
    import importlib.util

    name = "cargoscreen_independent_build"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent / "build.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


Reference = _load_build().Reference

N = "{urn:cargoscreen:ics2:ens:v1}"
# Descriptions customs refuse on their own (public ICS2 guidance on acceptable goods descriptions).
VAGUE = {"accessories", "apparel", "appliances", "auto parts", "chemicals", "consolidated", "consolidated cargo",
         "electronics", "equipment", "fak", "freight of all kinds", "foodstuff", "foodstuffs", "general cargo", "gift",
         "gifts", "goods", "household goods", "machinery", "machine parts", "merchandise", "parts", "personal effects",
         "said to contain", "samples", "spare parts", "stc", "textiles", "tools", "toys", "various", "mixed goods"}
SEQUENCE = {"PICK": 0, "STUF": 1, "GTIN": 2, "LOAD": 3, "DISC": 4, "GTOT": 5}


def _d(el, path) -> Decimal:
    return Decimal(el.findtext(path, "0"))


def _adds_up(whole, parts, mass: str, count: str) -> bool:
    """The whole's total mass and packages are the sums of its parts' `mass` and `count`."""
    return (sum(_d(p, f"{N}{mass}") for p in parts) == _d(whole, f"{N}TotalGrossMass")
            and sum(int(p.findtext(f"{N}{count}")) for p in parts) == int(whole.findtext(f"{N}TotalPackages")))


def audit(folder: Path) -> list[str]:
    ref = Reference(0)
    problems: list[str] = []
    masters: dict[str, tuple] = {}
    houses: dict[str, list] = defaultdict(list)
    for path in sorted((folder / "filings").rglob("*.xml")):
        name = str(path.relative_to(folder))
        root = etree.parse(str(path)).getroot()
        kind = root.tag.rpartition("}")[2][3:]
        issued = root.findtext(f"{N}Header/{N}IssueDateTime")
        arrival = root.findtext(f"{N}ActiveBorderTransportMeans/{N}EstimatedArrival")
        if arrival and issued > arrival:
            problems.append(f"{name}: lodged {issued} after the estimated arrival {arrival}")
        vessel = root.findtext(f"{N}ActiveBorderTransportMeans/{N}VesselIMO")
        if vessel and not imo.is_valid(vessel):
            problems.append(f"{name}: IMO {vessel}")
        con = root.find(f"{N}Consignment")
        for scope in [con, *con.findall(f"{N}HouseConsignment")]:
            items = scope.findall(f"{N}GoodsItem")
            if items and items[0].find(f"{N}GrossMass") is not None:
                mass = sum(_d(g, f"{N}GrossMass") for g in items)
                count = sum(int(c.text) for g in items for c in g.iter(f"{N}Count"))
                if mass != _d(scope, f"{N}TotalGrossMass") or count != int(scope.findtext(f"{N}TotalPackages")):
                    problems.append(f"{name}: totals {scope.findtext(f'{N}TotalGrossMass')}/"
                                    f"{scope.findtext(f'{N}TotalPackages')} but items {mass}/{count}")
            for g in items:
                desc = " ".join(g.findtext(f"{N}Description", "").lower().split())
                if desc in VAGUE or desc.startswith(("said to contain", "stc ")):
                    problems.append(f"{name}: vague description {desc!r}")
                for p in g.findall(f"{N}Packaging"):
                    code, n = p.findtext(f"{N}Type"), p.find(f"{N}Count")
                    if code.startswith("V") and n is not None:
                        problems.append(f"{name}: bulk {code} with a count")
                    if code in ("NE", "NF", "NG") and n is None:
                        problems.append(f"{name}: unpacked {code} without a count")
        hc = con.findall(f"{N}HouseConsignment")
        if hc:
            if not _adds_up(con, hc, "TotalGrossMass", "TotalPackages"):
                problems.append(f"{name}: master totals are not the sum of its houses")
            docs = [h.findtext(f"{N}TransportDocument/{N}Number") for h in hc]
            if len(docs) != len(set(docs)):
                problems.append(f"{name}: house transport documents repeated")
        recs = con.findall(f"{N}Receptacle")
        if recs:
            if not _adds_up(con, recs, "GrossMass", "ItemCount"):
                problems.append(f"{name}: dispatch totals are not the sums over its receptacles")
        pol = con.findtext(f"{N}PlaceOfLoading/{N}UNLocode")
        pou = con.findtext(f"{N}PlaceOfUnloading/{N}UNLocode")
        route = [c.text for c in con.iter(f"{N}Country") if c.getparent().tag == f"{N}Itinerary"]
        for place in (pol, pou):
            if place and place[:2] not in route:
                problems.append(f"{name}: routing {route} lacks the country of {place}")
            if place and place not in ref.locs:
                problems.append(f"{name}: {place} is not in our location list")
        office = root.findtext(f"{N}Header/{N}CustomsOfficeOfFirstEntry")
        if office[:2] not in route and route:
            problems.append(f"{name}: office of first entry {office} outside the routing countries")
        for cid in con.iter(f"{N}ContainerId", f"{N}ContainerRef"):
            if not iso6346.is_valid(cid.text):
                problems.append(f"{name}: container {cid.text}")
        for td in con.iter(f"{N}TransportDocument", f"{N}MasterTransportDocument", f"{N}HouseTransportDocument"):
            kind_, number = td.findtext(f"{N}Type"), td.findtext(f"{N}Number")
            if kind_ in ("N740", "N741"):
                serial = number.split("-")[1]
                if int(serial[:7]) % 7 != int(serial[7]):
                    problems.append(f"{name}: air waybill {number} check digit")
            if kind_ == "N750" and len(number) == 13:
                digits = number[2:10]
                check = 11 - sum(int(d) * w for d, w in zip(digits, (8, 6, 4, 2, 3, 5, 9, 7))) % 11
                check = {10: 0, 11: 5}.get(check, check)
                if int(number[10]) != check:
                    problems.append(f"{name}: postal item {number} check digit")
        master_doc = con.findtext(f"{N}MasterTransportDocument/{N}Number")
        if kind in ("F12", "F13", "F23") or recs:
            masters[con.findtext(f"{N}TransportDocument/{N}Number")] = (name, con)
        elif master_doc and kind not in ("F20", "F32", "F45"):
            houses[master_doc].append(con)
    for doc, (name, con) in masters.items():
        mine = houses.get(doc, [])
        listed = [h.findtext(f"{N}Number") for h in con.findall(f"{N}HouseTransportDocument")]
        present = [h.findtext(f"{N}TransportDocument/{N}Number") for h in mine]
        if set(listed) - set(present) or not present:
            problems.append(f"{name}: houses missing from the set: {sorted(set(listed) - set(present))}")
        if con.find(f"{N}Receptacle") is not None:
            if sum(_d(h, f"{N}TotalGrossMass") for h in mine) > _d(con, f"{N}TotalGrossMass"):
                problems.append(f"{name}: items weigh more than the receptacles")
        elif not _adds_up(con, mine, "TotalGrossMass", "TotalPackages"):
            problems.append(f"{name}: master totals are not the sum of its house filings")
    problems += audit_events(folder / "container-events.jsonl", ref)
    return problems


def audit_events(path: Path, ref: Reference) -> list[str]:
    problems = []
    now = datetime.now(timezone.utc)
    boxes = defaultdict(list)
    for line in path.open(encoding="utf-8"):
        e = json.loads(line)
        t = datetime.fromisoformat(e["eventDateTime"])
        if t > now or datetime.fromisoformat(e["eventCreatedDateTime"].replace("Z", "+00:00")) < t:
            problems.append(f"event {e['eventID']}: time {e['eventDateTime']} in the future or created before it")
        if e["eventType"] == "EQUIPMENT":
            if not iso6346.is_valid(e["equipmentReference"]):
                problems.append(f"event {e['eventID']}: container {e['equipmentReference']}")
            boxes[e["equipmentReference"]].append((t, e))
    for cid, events in boxes.items():
        events.sort(key=lambda x: x[0])
        codes = [e["equipmentEventTypeCode"] for _, e in events]
        if codes[0] != "PICK" or events[0][1]["emptyIndicatorCode"] != "EMPTY" or any(
                e["emptyIndicatorCode"] != "LADEN" for _, e in events[1:]):
            problems.append(f"{cid}: history does not start with an empty pick-up, then laden: {codes}")
        order = [SEQUENCE[c] for c in codes]
        if order[:3] != [0, 1, 2]:
            problems.append(f"{cid}: pick-up, stuffing, gate-in out of order: {codes}")
        for (t1, a), (t2, b) in zip(events, events[1:]):
            p, q = a["eventLocation"]["UNLocationCode"], b["eventLocation"]["UNLocationCode"]
            if p != q:
                hours = max((t2 - t1).total_seconds() / 3600, 1 / 60)
                if ref.km(p, q) / hours > 60:
                    problems.append(f"{cid}: {p} to {q} at {ref.km(p, q) / hours:.0f} km/h")
    return problems


if __name__ == "__main__":
    found = audit(Path(sys.argv[1]))
    print("\n".join(found[:200]) or "no problem found")
    print(f"{len(found)} problems")
    sys.exit(1 if found else 0)
