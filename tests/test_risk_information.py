"""Risk information forms: checked, turned into rules, picked up by running scorers, expiring on time."""
import time

import pytest

from cargoscreen import audit, resources
from cargoscreen.domain.rulepack import RulePack
from cargoscreen.domain.scoring import example_subject
from cargoscreen.risk_information import FormError, RiskInformationStore, checked_form, with_forms
from cargoscreen.rule_store import RulePackSource, RulePackStore

STARTER = resources.rules_dir() / "risk" / "ics2-starter"
PACK = RulePack.load(STARTER)
FUTURE = "2099-01-01T00:00:00Z"
ORDINARY = {"parties": [{"role": "consignee", "id": "NL000000001", "name": "Plain Imports BV"}],
            "goods": [{"description": "ceramic floor tiles", "hs_code": "690721", "gross_mass": 1000}],
            "containers": [{"container_id": "CSQU3054383"}]}


def form(kind, watch, **kw):
    return checked_form(PACK, centre="RC-NL", kind=kind, watch=watch, title=kw.pop("title", "watch this"),
                        area=kw.pop("area", "drug-precursors"), action=kw.pop("action", "control"),
                        valid_until=kw.pop("valid_until", FUTURE), published_by="alice", **kw)


@pytest.mark.parametrize("kind, watch, filing", [
    ("party", {"name": "Plain Imports B.V."}, {}),
    ("party", {"id": "nl000000001"}, {}),
    ("address", {"street": "Kade 1", "city": "Rotterdam", "country": "nl"},
     {"parties": [{"role": "consignor", "name": "X", "street": "KADE 1", "city": "Rotterdam", "country": "NL"}]}),
    ("route", {"from": "CN", "to": "NLRTM"}, {"place_of_loading": "CNSHA", "place_of_unloading": "NLRTM"}),
    ("route", {"via": "ec"}, {"routing_countries": ["EC", "NL"]}),
    ("container", {"container": "csqu3054383"}, {}),
    ("commodity", {"hs": "6907"}, {}),
    ("commodity", {"description": "floor tiles"}, {}),
    ("pattern", {"condition": "any(goods, gross_mass > 900) and loading_country == 'CN'"}, {}),
])
def test_each_kind_of_form_fires_on_what_it_watches_and_only_that(kind, watch, filing):
    rule = form(kind, watch).rule(PACK)
    assert rule.condition.test(example_subject({**ORDINARY, **filing, "now": time.time()}))
    other = {"parties": [{"role": "consignee", "id": "DE111", "name": "Other GmbH", "street": "Weg 2",
                          "city": "Bonn", "country": "DE"}],
             "goods": [{"description": "bicycles", "hs_code": "871200", "gross_mass": 10}],
             "containers": [{"container_id": "MSKU1234565"}], "place_of_loading": "USNYC",
             "place_of_unloading": "BEANR", "routing_countries": ["US", "BE"]}
    assert not rule.condition.test(example_subject({**other, "now": time.time()}))


@pytest.mark.parametrize("kind, watch, kw, message", [
    ("party", {}, {}, "identification number, its name"),
    ("container", {"container": "ABC"}, {}, "ISO 6346"),
    ("route", {"from": "Rotterdam"}, {}, "neither a country"),
    ("commodity", {"hs": "69x"}, {}, "2 to 8 digits"),
    ("pattern", {"condition": "__import__('os')"}, {}, "condition"),
    ("pattern", {"condition": "any(goods, weight > 1)"}, {}, "condition"),
    ("party", {"id": "X"}, {"area": "astrology"}, "unknown risk area"),
    ("party", {"id": "X"}, {"action": "request-for-information"}, "what to ask"),
    ("party", {"id": "X"}, {"valid_until": "2020-01-01T00:00:00Z"}, "ends before it starts"),
    ("party", {"id": "X"}, {"valid_until": "next week"}, "not a date-time"),
    ("party", {"id": "X"}, {"modes": ["boat"]}, "modes"),
    ("shoe", {"id": "X"}, {}, "unknown kind"),
])
def test_bad_forms_are_refused_with_the_reason(kind, watch, kw, message):
    with pytest.raises(FormError, match=message):
        form(kind, watch, **kw)


def test_published_form_reaches_a_running_scorer_explains_its_hits_and_expires(redis_client):
    store = RiskInformationStore(redis_client)
    source = RulePackSource(STARTER, RulePackStore(redis_client), poll_seconds=0, risk_information=store)
    subject = {**ORDINARY, "containers": [{"container_id": "MSKU1234565"}]}
    assert source.current().assess(example_subject(subject).record, now=time.time()).decision == \
        "assessment-complete"

    expires = time.time() + 3
    published = store.publish(form("container", {"container": "MSKU1234565"}, title="box seen at a cocaine port",
                                   valid_until=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))))
    assert published.id == "RIF-RC-NL-1"
    scorer = source.current()
    assessment = scorer.assess(example_subject(subject).record, now=time.time())
    assert assessment.decision == "control"
    hit = assessment.hits[0]
    assert hit.rule == "RIF-RC-NL-1" and hit.area == "drug-precursors"
    assert hit.explanation().startswith("Risk information RIF-RC-NL-1 (RC-NL): box seen at a cocaine port")
    assert "MSKU1234565" in hit.explanation()
    assert scorer.pack.id == PACK.id  # the pack that decided is still the pack; the form names itself
    # On time: past its validity the same scorer no longer fires it.
    assert source.current().assess(example_subject(subject).record, now=expires + 1).decision == \
        "assessment-complete"
    # Revoked: gone at the next poll.
    store.revoke("RIF-RC-NL-1", "bob", "RC-NL")
    assert source.current().assess(example_subject(subject).record, now=time.time()).decision == \
        "assessment-complete"
    assert [e["action"] for e in audit.entries(redis_client, store.audit_key)] == \
        ["publish-risk-information", "revoke-risk-information"]


def test_only_the_publishing_centre_revokes(redis_client):
    store = RiskInformationStore(redis_client)
    store.publish(form("party", {"id": "X1"}))
    with pytest.raises(FormError, match="belongs to RC-NL"):
        store.revoke("RIF-RC-NL-1", "eve", "RC-BE")


def test_forms_are_added_to_whatever_pack_is_active():
    rules = with_forms(PACK, [form("party", {"id": "X1"}), form("commodity", {"hs": "0101"})]).rules
    assert len(rules) == len(PACK.rules) + 2 and rules[-1].file == "risk-information"
