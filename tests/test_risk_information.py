"""Risk information forms: checked, turned into rules, picked up by running scorers, expiring on time;
and bounded, so that one analyst's form cannot stall or disable screening everywhere."""
import json
import time
from dataclasses import replace

import pytest
from click.testing import CliRunner
from lxml import etree

from cargoscreen import audit, metrics, resources
from cargoscreen.cli import main
from cargoscreen.config import Settings
from cargoscreen.connectors.redis_streams import StreamKeys
from cargoscreen.domain.rulepack import RulePack
from cargoscreen.domain.scoring import example_subject
from cargoscreen.generator import GeneratorSpec, generate
from cargoscreen.risk_information import FormError, RiskInformationStore, checked_form, with_forms
from cargoscreen.rule_store import RulePackSource, RulePackStore
from cargoscreen.service import run_service

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

    expires = time.time() + 600  # judged at explicit times below: no waiting, no race with a loaded machine
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


# -- one analyst must not be able to stall or disable screening everywhere -----------------------
def publish(url, *args, ok=True):
    """`cargoscreen riskinfo publish` as an analyst runs it; its output (refusals on stderr)."""
    result = CliRunner().invoke(main, ["riskinfo", "publish", "--redis-url", url, "--centre", "RC-NL", "--analyst",
                                       "mallory", "--area", "security-safety", "--until", FUTURE,
                                       *[str(a) for a in args]])
    assert (result.exit_code == 0) == ok, result.output
    return result.output


def pattern(url, condition, ok=False):
    return publish(url, "--kind", "pattern", "--watch", f"condition={condition}", "--title", "pattern", ok=ok)


DEEP = "count(goods, count(goods, count(goods, count(goods, gross_mass > 0) > 0) > 0) > 0) > 3"


def test_nested_quantifiers_and_costly_conditions_are_refused_at_publication_with_their_place(redis_server,
                                                                                              redis_client):
    """A depth-4 form made one 96-item filing cost 96^4 evaluations (11 s, every filing behind it waiting)."""
    out = pattern(redis_server.url, DEEP)
    assert "refused: condition: column 27: count(...) inside 2 other quantifiers" in out and "at most 2 deep" in out
    out = pattern(redis_server.url, "count(goods, count(goods, gross_mass > 0) > 0) > 3")  # two: 9,999 x 9,999
    assert "column 1: count(goods, ...) may evaluate 399,980,000 nodes on a filing of 9,999 goods" in out
    assert "over the bound of 1,000,000" in out
    side_by_side = " or ".join(f"any(goods, matches(description, 'word{n}'))" for n in range(60))
    assert "over the bound of 1,000,000: split it into rules" in pattern(redis_server.url, side_by_side)
    assert RiskInformationStore(redis_client).forms() == []
    # A form stored past these checks (by an older version) is left out of every scorer, not run.
    store = RiskInformationStore(redis_client)
    store.publish(replace(form("pattern", {"condition": "loading_country == 'CN'"}), condition=DEEP))
    source = RulePackSource(STARTER, RulePackStore(redis_client), poll_seconds=0, risk_information=store)
    assert [r.id for r in source.current().pack.rules] == [r.id for r in PACK.rules]


@pytest.mark.parametrize("condition, message", [
    ("True", "always true"),
    ("1 == 1", "always true"),
    ("loading_country == 'CN' or not False", "always true"),
    ("not missing(lrn)", "fires on 300 of 300 generated ordinary filings"),
    ("count(goods) >= 0 and lrn != 'x'", "fires on 300 of 300"),
    ("mode != 'sea'", "risk information singles out what to watch"),
])
def test_forms_that_fire_on_everything_are_refused(redis_server, redis_client, condition, message):
    assert message in pattern(redis_server.url, condition)
    assert RiskInformationStore(redis_client).forms() == []


def test_a_form_that_fires_on_everything_of_its_modes_is_refused_but_a_targeted_one_is_published(redis_server,
                                                                                                 redis_client):
    assert "generated ordinary filings of its modes" in \
        publish(redis_server.url, "--kind", "pattern", "--watch", "condition=mode == 'rail'", "--title", "rail",
                "--mode", "rail", ok=False)
    assert publish(redis_server.url, "--kind", "route", "--watch", "from=CN", "--title", "from China",
                   "--mode", "sea").startswith("RIF-RC-NL-1 published")


def test_a_question_with_a_control_character_is_refused_at_publication(redis_server, redis_client):
    out = publish(redis_server.url, "--kind", "party", "--watch", "id=NL123", "--title", "x", "--action",
                  "request-for-information", "--ask", "Name the consignee\x07", ok=False)
    assert "refused: the question holds a control character (U+0007) at character 19" in out
    out = publish(redis_server.url, "--kind", "party", "--watch", "id=NL123", "--title", "watch\x1b[2J",
                  ok=False)
    assert "the title holds a control character (U+001B)" in out
    assert RiskInformationStore(redis_client).forms() == []


def sea_filing(size="mixed"):
    """A generated plain sea filing (F10) with containers: its bytes, container and first HS code."""
    spec = GeneratorSpec(count=80, seed=31, defect_rate=0, envelope_rate=0, resubmission_rate=0, modes=("sea",),
                         size=size)
    filing = next(f for f in generate(spec) if f.label["filing_code"] == "F10" and b"ContainerId" in f.data)
    root = etree.fromstring(filing.data)
    return filing.data, root.findtext(".//{*}ContainerId"), root.findtext(".//{*}GoodsItem/{*}HSCode")


def screen(redis_server, redis_client, data, **rules):
    """One real scoring run of the service over `data`; its decision record."""
    redis_client.xadd(StreamKeys().filings, {"filing": data, "id": "the-filing"})
    s = Settings().with_redis_url(redis_server.url)
    run_service(replace(s, streams=replace(s.streams, once=True), rules=replace(s.rules, **rules)), ["w0"])
    assert redis_client.xlen(StreamKeys().dead_letters) == 0
    return next(json.loads(f[b"body"]) for _, f in redis_client.xrange(StreamKeys().decisions))


def test_a_question_an_answer_cannot_carry_never_costs_the_filer_its_answer(redis_server, redis_client):
    """A form stored past the publication check (by an older version): its question held a control
    character, and every filing it fired on was dead-lettered (lxml refuses the text). Now the
    answer carries U+FFFD in its place, and passes the answers schema."""
    data, container, _ = sea_filing()
    rfi = form("container", {"container": container}, action="request-for-information", ask="Who stuffed it?")
    RiskInformationStore(redis_client).publish(replace(rfi, ask="Who stuffed\x07 it?"))
    decision = screen(redis_server, redis_client, data)
    assert decision["decision"] == "request-for-information"
    filer = decision["filer"]
    [answer] = [json.loads(f[b"body"]) for _, f in redis_client.xrange(StreamKeys().answers(filer))
                if json.loads(f[b"body"])["message_type"] == "IE3Q02"]
    assert "<Text>Who stuffed\ufffd it?</Text>" in answer["xml"]


def test_a_rule_over_the_filings_budget_is_a_counted_rule_error_the_filing_is_decided_and_health_says_so(
        redis_server, redis_client):
    """The budget, lowered so that a large filing's goods quantifiers overrun it: each is a rule error
    (in the decision and cargoscreen_rule_errors_total), the filing is still decided and answered,
    and health reports the scorer as falling behind."""
    data, _, hs = sea_filing(size="large")
    publish(redis_server.url, "--kind", "commodity", "--watch", f"hs={hs[:6]}", "--title", "this heading")
    before = metrics.REGISTRY.get_sample_value("cargoscreen_rule_errors_total") or 0
    decision = screen(redis_server, redis_client, data, budget_base=200, budget_per_item=0)
    assert "RIF-RC-NL-1: over its evaluation budget (200 node evaluations for this filing)" in decision["rule_errors"]
    assert metrics.REGISTRY.get_sample_value("cargoscreen_rule_errors_total") - before == \
        len(decision["rule_errors"])
    assert decision["decision"] and any(json.loads(f[b"body"])["message_type"] in ("IE3N03", "IE3N08", "IE3Q02")
                                        for _, f in redis_client.xrange(StreamKeys().answers(decision["filer"])))
    health = CliRunner().invoke(main, ["health", "--redis-url", redis_server.url, "--consumer", "w0"])
    report = json.loads(health.output)
    assert health.exit_code == 1 and not report["scorers_keeping_up"] and not report["healthy"]
    [scorer] = report["scorers"].values()
    assert scorer["budget_overruns"] == sum("over its evaluation budget" in e for e in decision["rule_errors"])
    # The same filing with the default budget: no rule error, the form fires.
    redis_client.flushall()
    publish(redis_server.url, "--kind", "commodity", "--watch", f"hs={hs[:6]}", "--title", "this heading")
    decision = screen(redis_server, redis_client, data)
    assert decision["rule_errors"] == [] and "RIF-RC-NL-1" in [h["rule"] for h in decision["hits"]]
