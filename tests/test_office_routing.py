"""The filer does not choose the risk centre: the office of first entry is judged against the EU
Customs Office List and the declared route before it names a centre (pipeline/domain/offices.py).

An office code was only pattern-checked and its first two letters named the centre: filings
declaring ZZ123456 or US123456 sent their referrals to RC-ZZ and RC-US, queues no analyst works.
Now an office outside the EU is refused with a located error; a member state's office the list
does not know as an office of entry, or one off the declared route, is accepted and its referral
goes to the default centre with a fact that says why. Through the real service (real Redis), the
workbench's keeper and its queue listing (`cargoscreen workbench list`)."""
from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree

from cargoscreen.cli import main
from cargoscreen.config import DEFAULT_RISK_CENTRE, Settings
from cargoscreen.connectors.redis_streams import StreamKeys
from cargoscreen.decisions import risk_centre_for
from cargoscreen.domain.enrichment import OFFICE_OFF_ROUTE, OFFICE_UNKNOWN
from cargoscreen.domain.enrichment import office_facts
from cargoscreen.domain.offices import not_of_entry, outside_eu
from cargoscreen.domain.reference import EU_MEMBER_STATES, bundled_reference
from cargoscreen.domain.screening import record_from_dict
from cargoscreen.enrichment import EnrichedFiling
from cargoscreen.generator import GeneratorSpec, generate
from cargoscreen.service import run_service
from cargoscreen.workbench.keeper import Keeper

KEYS = StreamKeys()
ANSWERS = "{urn:cargoscreen:ics2:answers:v1}"
REF = bundled_reference()


# -- the judgement, as pure functions --------------------------------------------------------------
@pytest.mark.parametrize("office,why", [
    ("ZZ123456", "ZZ is not a country code"),
    ("US123456", "US (United States) is not a member state of the EU"),
    ("CH001251", "it is Zoll Nord - Basel Mitte EVO, an office in Switzerland, outside the EU"),
    ("GB000001", "an office in United Kingdom, outside the EU"),
])
def test_an_office_outside_the_eu_cannot_be_an_office_of_first_entry(office, why):
    assert why in outside_eu(office, REF)
    assert not_of_entry(office, REF) is None  # one reason, one rule


def test_member_states_offices_are_judged_against_the_list():
    assert outside_eu("NL999999", REF) is None and "not in the Customs Office List (COL snapshot" in \
        not_of_entry("NL999999", REF)
    assert "Wien is in the Customs Office List, but not as an office of entry" in not_of_entry("AT100000", REF)
    for office in ("NL000396", "BE101000", "DE004851", "GR004001", "XI000142"):
        assert outside_eu(office, REF) is None and not_of_entry(office, REF) is None, office


def test_an_office_fits_the_route_when_its_country_is_the_unloading_one_or_on_the_way():
    rotterdam = record_from_dict({})  # Shanghai to Rotterdam through CN, NL; office NL000396
    assert office_facts(rotterdam, REF) == ()
    first_port = record_from_dict({"office_of_first_entry": "ES001131", "routing_countries": ["CN", "ES", "NL"]})
    assert office_facts(first_port, REF) == ()  # Algeciras, the ship's first EU port, unloading in Rotterdam
    belfast = record_from_dict({"office_of_first_entry": "XI000142", "place_of_unloading": "GBBEL",
                                "routing_countries": ["CN", "GB"]})
    assert office_facts(belfast, REF) == ()  # Northern Ireland's offices are XI, its ports GB
    pre_loading = record_from_dict({"filing_code": "F20", "office_of_first_entry": "BE212000",
                                    "place_of_unloading": None, "routing_countries": []})
    assert office_facts(pre_loading, REF) == ()  # nothing declared to judge it by
    [fact] = office_facts(record_from_dict({"office_of_first_entry": "BE101000"}), REF)
    assert fact.kind == OFFICE_OFF_ROUTE and "BE101000 (ANTWERPEN DAE) is in BE, but the goods are unloaded in " \
        "NL and routed through CN, NL" in fact.detail and fact.values["unloading_country"] == "NL"
    [fact] = office_facts(record_from_dict({"office_of_first_entry": "NL999999"}), REF)
    assert fact.kind == OFFICE_UNKNOWN and fact.values == {"office": "NL999999", "country": "NL"}


def _filing(office: str, **record) -> EnrichedFiling:
    r = record_from_dict({"office_of_first_entry": office, **record})
    return EnrichedFiling("s", "26NL0000000000001X", "F10", "sea", "L", "NL1", (), "no-containers",
                          office_facts(r, REF), r)


def test_the_centre_follows_the_office_only_when_the_list_and_the_route_bear_it_out():
    assert risk_centre_for(_filing("NL000396")) == "RC-NL"
    assert risk_centre_for(_filing("ES001131", routing_countries=["CN", "ES", "NL"])) == "RC-ES"
    for office in ("ZZ123456", "US123456", "NL999999", "AT100000", "BE101000"):
        assert risk_centre_for(_filing(office)) == DEFAULT_RISK_CENTRE, office
    assert risk_centre_for(_filing("BE101000"), "RC-XX") == "RC-XX"
    unjudged = replace(_filing("US123456"), facts=())  # a filing the enrichment did not judge: not trusted
    assert risk_centre_for(unjudged) == DEFAULT_RISK_CENTRE


def test_the_default_centre_is_a_centre_the_workbench_can_serve():
    assert Settings().default_risk_centre == "RC-EU"
    with pytest.raises(ValueError, match="RC- and two capital letters"):
        Settings(default_risk_centre="EU")


def test_the_shipped_list_knows_an_office_of_entry_in_every_member_state_and_northern_ireland():
    countries = {o.country for o in REF.customs_offices.values() if o.of_entry}
    assert EU_MEMBER_STATES | {"XI"} <= countries
    assert sum(1 for o in REF.customs_offices.values() if o.of_entry) > 1000


def test_the_offices_of_the_independent_traffic_are_offices_of_entry_in_the_list():
    """Real offices at real places (tests/independent/data/README.md); one gap of the list is known."""
    data = Path(__file__).parent / "independent" / "data"
    offices = {r["office"] for r in csv.DictReader((data / "customs_offices.csv").open(encoding="utf-8"))}
    for lanes in ("road_lanes.csv", "rail_lanes.csv"):
        offices |= {r["entry_office"] for r in csv.DictReader((data / lanes).open(encoding="utf-8"))}
    not_entry = {o: not_of_entry(o, REF) or outside_eu(o, REF) for o in sorted(offices)}
    assert {o: why for o, why in not_entry.items() if why} == {
        "IT275105": "PONTE CHIASSO is in the Customs Office List, but not as an office of entry"}


# -- the attack, through the service and the workbench --------------------------------------------
def _referred_sea_filings(n: int) -> list[tuple[str, etree._Element]]:
    """Plain sea filings that get referred: smartphones declared under a plastics HS code (FI-003)."""
    spec = GeneratorSpec(count=80, seed=41, defect_rate=0, envelope_rate=0, resubmission_rate=0, modes=("sea",))
    out = []
    for f in generate(spec):
        if f.label["filing_code"] != "F10" or f.label["expected"] != "registered" or f.label["warnings"]:
            continue
        root = etree.fromstring(f.data)
        item = root.find(".//{*}GoodsItem")
        item.find(".//{*}Description").text = "Smartphones for cellular networks"
        item.find(".//{*}HSCode").text = "392410"
        out.append((f.name, root))
        if len(out) == n:
            return out
    raise AssertionError("the generator made too few plain sea filings")


def _unloading(root) -> tuple[str, list[str]]:
    place = root.find(".//{*}PlaceOfUnloading")
    country = place.findtext("{*}UNLocode", "")[:2] or place.findtext("{*}Country")
    return country, [c.text for c in root.iterfind(".//{*}Itinerary/{*}Country")]


def _answers(client) -> dict[str, list[etree._Element]]:
    """submission id -> its answers (parsed), from every filer's answer stream."""
    out: dict[str, list] = {}
    for key in client.scan_iter(f"{KEYS.prefix}:answers:*"):
        for _, fields in client.xrange(key):
            body = json.loads(fields[b"body"])
            out.setdefault(body["submission_id"], []).append(etree.fromstring(body["xml"].encode()))
    return out


def _registration(answers: list[etree._Element]) -> etree._Element:
    return next(a for a in answers if etree.QName(a).localname == "IE3R01")


def _listed(url: str, centre: str) -> list[dict]:
    result = CliRunner().invoke(main, ["workbench", "list", "--redis-url", url, "--centre", centre])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["referrals"]


@pytest.mark.slow
def test_a_filer_cannot_send_referrals_to_a_queue_no_analyst_works(redis_client, redis_server):
    (zz, a), (us, b), (unknown, c), (off_route, d), (honest, e) = _referred_sea_filings(5)
    entry = sorted(code for code, o in REF.customs_offices.items() if o.of_entry)
    offices = {}
    for name, root in ((zz, a), (us, b), (unknown, c), (off_route, d), (honest, e)):
        country, route = _unloading(root)
        elsewhere = next(o for o in entry if o[:2] in EU_MEMBER_STATES and o[:2] not in [*route, country])
        offices[name] = {zz: "ZZ123456", us: "US123456", unknown: f"{country}9Z9Z9Z", off_route: elsewhere,
                         honest: next(o for o in entry if o[:2] == country)}[name]
        root.find(".//{*}Header/{*}CustomsOfficeOfFirstEntry").text = offices[name]
        redis_client.xadd(KEYS.filings, {"filing": etree.tostring(root, xml_declaration=True, encoding="UTF-8"),
                                         "id": name})
    settings = Settings().with_redis_url(redis_server.url)
    run_service(replace(settings, streams=replace(settings.streams, once=True)), ["w0"])
    Keeper(redis_client, settings).once()
    answers = _answers(redis_client)

    # Outside the EU: refused at the door, the error located at the office; no referral anywhere.
    for name in (zz, us):
        [notification] = answers[name]
        assert etree.QName(notification).localname == "IE3N99"
        errors = {(x.findtext(f"{ANSWERS}Code"), x.findtext(f"{ANSWERS}Pointer"))
                  for x in notification.iter(f"{ANSWERS}Error")}
        assert ("DQ_OFFICE_NOT_EU", "/IE3F10/Header/CustomsOfficeOfFirstEntry") in errors
    assert not {k.decode() for k in redis_client.scan_iter(f"{KEYS.prefix}:referrals:*")} & \
        {KEYS.referrals("RC-ZZ"), KEYS.referrals("RC-US")}

    # Unknown to the list: accepted with the warning; the referral goes to the default centre with its fact.
    registration = _registration(answers[unknown])
    assert [w.findtext(f"{ANSWERS}Code") for w in registration.iter(f"{ANSWERS}Warning")] == ["DQ_OFFICE_NOT_IN_LIST"]
    default = {r["mrn"]: r for r in _listed(redis_server.url, DEFAULT_RISK_CENTRE)}
    assert len(default) == 2  # the unknown office's and the one off the route
    for name, kind in ((unknown, OFFICE_UNKNOWN), (off_route, OFFICE_OFF_ROUTE)):
        mrn = _registration(answers[name]).findtext(f"{ANSWERS}Header/{ANSWERS}MRN")
        assert mrn in default, name
        shown = json.loads(CliRunner().invoke(main, ["workbench", "show", "--redis-url", redis_server.url, "--centre",
                                                     DEFAULT_RISK_CENTRE, default[mrn]["referral_id"]]).output)
        facts = {f["kind"]: f["detail"] for f in shown["body"]["container_facts"]}
        assert offices[name] in facts[kind] and "default risk centre" in facts[kind]

    # A listed office of entry of the country of unloading: its own centre, no fact.
    centre = f"RC-{offices[honest][:2]}"
    [referral] = _listed(redis_server.url, centre)
    assert referral["mrn"] == _registration(answers[honest]).findtext(f"{ANSWERS}Header/{ANSWERS}MRN")
    shown = json.loads(CliRunner().invoke(main, ["workbench", "show", "--redis-url", redis_server.url, "--centre",
                                                 centre, referral["referral_id"]]).output)
    assert not {f["kind"] for f in shown["body"]["container_facts"]} & {OFFICE_UNKNOWN, OFFICE_OFF_ROUTE}
