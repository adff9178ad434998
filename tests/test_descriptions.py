"""What a goods description says by its words alone (pipeline/domain/descriptions.py): a brand below a
genuine article's price, or no goods named at all; and the starter pack's GD-008/GD-009 on them."""
import csv
from collections import Counter
from pathlib import Path

import pytest

from cargoscreen.domain.currency import bundled_euro_rates, in_euros
from cargoscreen.domain.descriptions import bundled_wording, described_count, description_facts, stated_net_kg
from cargoscreen.domain.enrichment import (ARCHAEOLOGICAL_OBJECT, BRANDED_UNDERPRICED, BRANDED_UNVALUED,
                                          PACKAGE_MASS_CONTRADICTS, SAYS_NOTHING, STORED_VALUE_CARDS)
from cargoscreen.domain.rulepack import RulePack
from cargoscreen.domain.scoring import Scorer, example_subject
from cargoscreen.domain.screening import record_from_dict
from cargoscreen.resources import rules_dir

TESTS = Path(__file__).resolve().parent
SCENARIO_DATA, LABELLED = TESTS / "scenarios" / "data", TESTS / "data" / "goods-descriptions.csv"


@pytest.mark.parametrize("description, count", [
    ("Ray-Ban Wayfarer sunglasses, 50 pcs", 50), ("Nike Air Max 90 sports shoes, 40 pairs", 40),
    ("Chanel No 5 eau de parfum 100 ml, 60 bottles", 60), ("LEGO Technic building sets, 2,000 boxes", 2000),
    ("Qty: 1 200 caps", 1200), ("Cotton socks, 3 dozen", 36), ("12 x bottles of wine", 12),
    ("Retro High sneakers x12", 12), ("Eau de Parfum 100ml x 3", 3), ("Monitor 1920x1080", None),
    ("Steel plate 2 x 50 x 100 mm", None), ("Bolts x 20 mm", None),
    ("Eau de parfum 100 ml", None), ("Smartphones 6.5 inch, 128 GB", None), ("Steel bolts M8", None)])
def test_the_count_of_articles_a_description_gives(description, count):
    assert described_count(description) == count


def facts_of(goods: list[dict], issued_at: float = 1795176000.0, parties: tuple = ()):
    record = in_euros(record_from_dict({"issued_at": issued_at, "goods": goods, "parties": list(parties)}),
                      bundled_euro_rates())
    return description_facts(record, bundled_wording())


def test_a_brand_below_a_genuine_articles_price_is_a_fact_with_its_evidence():
    (fact,) = facts_of([{"description": "Rolex Submariner wrist watches, 20 pcs", "hs_code": "910211",
                         "value": 100.0, "currency": "EUR"}])
    assert fact.kind == BRANDED_UNDERPRICED
    assert fact.values["brand"] == "Rolex" and fact.values["count"] == 20 and fact.values["article_eur"] == 5.0
    assert fact.values["ratio"] == pytest.approx(5.0 / 2000) and fact.values["pointer"].endswith("/Description")
    assert "EUR 5.00 each" in fact.detail


def test_a_brand_counts_only_for_goods_of_its_headings_and_only_below_a_genuine_price():
    assert not facts_of([{"description": "Omega-3 fish oil capsules, 100 pcs", "hs_code": "210690",
                          "value": 20.0, "currency": "EUR"}])
    assert not facts_of([{"description": "Fresh apples, Granny Smith", "hs_code": "080810", "value": 5.0,
                          "currency": "EUR"}])
    assert not facts_of([{"description": "Rolex Submariner wrist watches, 2 pcs", "hs_code": "910211",
                          "value": 16000.0, "currency": "EUR"}])


def test_without_a_count_a_line_worth_less_than_one_genuine_article_is_underpriced():
    (fact,) = facts_of([{"description": "Gucci leather belts", "hs_code": "420330", "value": 60.0, "currency": "EUR"}])
    assert fact.values["count"] is None and fact.values["ratio"] == pytest.approx(60.0 / 80)


def test_a_brand_declared_in_dollars_is_priced_in_euros():
    (fact,) = facts_of([{"description": "Apple AirPods Pro, 100 pcs", "hs_code": "851830", "value": 300.0,
                         "currency": "USD"}])
    assert 2.0 < fact.values["article_eur"] < 3.0  # 3 USD an article


def test_several_articles_of_a_brand_without_a_value_are_a_fact_naming_the_consignors_country():
    (fact,) = facts_of([{"description": "Chanel N5 Eau de Parfum 100ml x3", "hs_code": "330300"}],
                       parties=[{"role": "consignor", "country": "HK"}, {"role": "consignee", "country": "DE"}])
    assert fact.kind == BRANDED_UNVALUED and fact.values["brand"] == "Chanel" and fact.values["count"] == 3
    assert fact.values["countries"] == ["HK"] and "no value declared" in fact.detail
    # one article, a value declared (then GD-008 weighs its price), or a brand off its headings: nothing
    assert not facts_of([{"description": "Chanel N5 Eau de Parfum 100ml", "hs_code": "330300"}])
    assert not facts_of([{"description": "Chanel N5 Eau de Parfum 100ml x3", "hs_code": "330300", "value": 450.0,
                          "currency": "EUR"}])
    assert not facts_of([{"description": "Chanel N5 Eau de Parfum 100ml x3", "hs_code": "392690"}])


@pytest.mark.parametrize("description, cards", [
    ("Prepaid debit cards, activated, 500 pcs", True), ("Prepaid gift cards, loaded, 500 pcs", True),
    ("Gift cards with balance EUR 50, 200 pcs", True), ("Prepaid SIM cards, activated", False),
    ("Gift cards, blank, unprinted", False), ("Blank PVC payment cards with chip", False),
    ("Greeting cards with envelopes", False), ("Graphics cards, GDDR6, 12 GB, factory loaded firmware", False)])
def test_payment_cards_said_to_carry_value_are_a_fact(description, cards):
    kinds = [f.kind for f in facts_of([{"description": description, "hs_code": "852352"}])]
    assert (STORED_VALUE_CARDS in kinds) is cards


@pytest.mark.parametrize("description, hs_code, ancient", [
    ("Ancient terracotta figurines (collection)", "691390", True), ("ARCHAEOLOGICAL POTTERY, AMPHORAE", "970600", True),
    ("Byzantine mosaic fragment, stone tesserae", "970600", True), ("Bronze statuette, Roman period", "830629", True),
    ("Coins, excavated, mixed lot", "711890", True), ("Ancient silver coins (drachms), 120 pieces", "970600", True),
    ("Antique Louis XV commode, circa 1760", "970600", False), ("Roman style garden statue, resin", "442090", False),
    ("Ancient grains quinoa flakes", "110412", False), ("Roman blinds, polyester", "630399", False),
    ("Egyptian cotton towels", "630260", False), ("Greek olive oil in tins", "150920", False),
    ("Ancient Greek amphora, museum replica", "691390", False), ("Ancient Egypt jigsaw puzzle, 1000 pieces", "950300", False)])
def test_objects_the_description_dates_to_antiquity_or_an_excavation_are_a_fact(description, hs_code, ancient):
    kinds = [f.kind for f in facts_of([{"description": description, "hs_code": hs_code}])]
    assert (ARCHAEOLOGICAL_OBJECT in kinds) is ancient


@pytest.mark.parametrize("description, kg", [
    ("Fresh bananas Cavendish, 18.14 kg cartons", 18.14), ("Sodium hydroxide flakes 99%, in 25 kg bags", 25.0),
    ("Rice in bags of 5 kg", 5.0), ("Green coffee 60kg/bag", 60.0), ("Potatoes 25 kg net bags", 25.0),
    ("Bananas 40 lb boxes", 18.144), ("Empty FIBC bulk bags 1000 kg", None), ("Washing machines 8 kg capacity", None),
    ("Dumbbells 2 kg, 100 pairs", None), ("Baby scales up to 20 kg", None)])
def test_the_net_weight_a_description_gives_each_package(description, kg):
    found = stated_net_kg(description)
    assert (found if found is None else round(found, 3)) == kg


@pytest.mark.parametrize("description, hs_code, mass, packages, kind, contradicts", [
    # lighter than the net the description gives each package
    ("Fresh bananas Cavendish, 18.14 kg cartons", "080390", 4100.0, 1080, "CT", True),
    ("Dog food, dry, in bags of 15 kg", "230910", 900.0, 400, "BG", True),
    ("Fresh bananas Cavendish, 18.14 kg cartons", "080390", 20600.0, 1080, "CT", False),
    ("Spray-dried instant coffee, in 25 kg cartons with liner", "210111", 1220.9, 102, "CT", False),  # partly filled
    ("Empty FIBC bulk bags 1000 kg", "630532", 2500.0, 1000, "BG", False),  # what the bags hold
    # heavier than any package of goods this light
    ("Polystyrene foam cups 8 oz, in cartons", "392410", 31000.0, 2000, "CT", True),
    ("EPS foam food containers, 500 pcs/carton", "392410", 9000.0, 600, "CT", True),
    ("Plush toys teddy bears, in cartons", "950300", 22400.0, 1200, "CT", True),
    ("Stuffed animals assorted", "950300", 6000.0, 250, "BX", True),
    ("Polystyrene foam cups 8 oz, in cartons", "392410", 6000.0, 2000, "CT", False),
    ("Plush toys teddy bears, in cartons", "950300", 7200.0, 1200, "CT", False),
    ("Memory foam mattresses, roll-packed", "940421", 3000.0, 100, "CT", False),  # not polystyrene
    ("Plush toys, compressed bales", "950300", 6000.0, 100, "BA", False),  # a bale is no carton
    ("Polystyrene granules GPPS", "390319", 25000.0, 1000, "BG", False)])  # solid plastic, not foam
def test_a_package_mass_the_described_goods_cannot_have_is_a_fact(description, hs_code, mass, packages, kind,
                                                                  contradicts):
    facts = [f for f in facts_of([{"description": description, "hs_code": hs_code, "gross_mass": mass,
                                   "packages": packages, "package_types": [kind]}]) if f.kind == PACKAGE_MASS_CONTRADICTS]
    assert bool(facts) is contradicts
    if contradicts:
        assert facts[0].values["kg_per_package"] == round(mass / packages, 3) and "kg per package" in facts[0].detail
        assert ("stated_kg" in facts[0].values) is (mass / packages < 10) and facts[0].values["ratio"] > 0


@pytest.mark.parametrize("description, empty", [
    ("Industrial components assorted", True), ("Products for clinical use", True), ("Valuable items", True),
    ("Assorted items for retail, as per commercial invoice", True), ("Replacement parts for production line", True),
    ("Goods for sale in our shops", True), ("Mixed lot", True),
    ("Hydraulic excavator spare parts", False), ("Machines for packaging food", False),
    ("Cases for smartphones", False), ("Monoclonal antibody vials for infusion", False),
    ("Quartz wrist-watches with stainless steel cases", False)])
def test_a_description_that_names_no_goods(description, empty):
    assert bundled_wording().says_nothing(description) is empty
    facts = facts_of([{"description": description, "hs_code": "847989", "value": 5000.0, "currency": "EUR"}])
    assert [f.kind for f in facts] == ([SAYS_NOTHING] if empty else [])


def test_the_examples_of_the_description_rules_carry_the_facts_their_goods_give():
    pack = RulePack.load(rules_dir() / "risk" / "ics2-starter")
    checked = 0
    for rule in pack.rules:
        if rule.id not in ("GD-008", "GD-009", "IP-003", "CA-002", "CG-005", "HS-004"):
            continue
        for example in rule.examples:
            subject = example_subject(example.data)
            found = {(f.kind, tuple(f.values.get("countries", ()))) for f in description_facts(subject.record, bundled_wording())}
            assert found == {(f.kind, tuple(f.values.get("countries", ()))) for f in subject.facts}, (rule.id, example.data)
            checked += 1
    assert checked >= 25


def test_vague_goods_worth_a_fortune_are_referred_and_counterfeits_controlled():
    scorer = Scorer(RulePack.load(rules_dir() / "risk" / "ics2-starter"))
    from datetime import datetime, timezone
    now = datetime(2026, 11, 28, tzinfo=timezone.utc).timestamp()

    def decision(goods):
        record = in_euros(record_from_dict({"goods": goods}), bundled_euro_rates())
        return scorer.assess(record, description_facts(record, bundled_wording()), "no-containers", now).decision

    assert decision([{"description": "Valuable items", "hs_code": "711319", "value": 900000.0,
                      "currency": "EUR"}]) == "request-for-information"
    assert decision([{"description": "Valuable items", "hs_code": "711319", "value": 900.0,
                      "currency": "EUR"}]) == "assessment-complete"
    assert decision([{"description": "Nike Air Max 90 sports shoes, 40 pairs", "hs_code": "640411",
                      "value": 120.0, "currency": "EUR"}]) == "control"
    assert decision([{"description": "Nike Air Max 90 sports shoes, 40 pairs", "hs_code": "640411",
                      "value": 3200.0, "currency": "EUR"}]) == "assessment-complete"


def test_branded_goods_without_a_value_from_a_counterfeit_hub_are_asked_about_at_pre_loading():
    scorer = Scorer(RulePack.load(rules_dir() / "risk" / "ics2-starter"))
    now = 1795176000.0

    def decision(consignor_country, description="Gucci belt, genuine leather x5"):
        record = in_euros(record_from_dict({"filing_code": "F32", "parties": [
            {"role": "consignor", "country": consignor_country}, {"role": "consignee", "country": "ES"}],
            "goods": [{"description": description, "hs_code": "420330"}]}), bundled_euro_rates())
        assessment = scorer.assess(record, description_facts(record, bundled_wording()), "no-containers", now)
        return assessment.decision, [h.rule for h in assessment.hits]

    assert decision("HK") == ("request-for-information", ["IP-003"])
    assert decision("IT") == ("assessment-complete", [])
    assert decision("HK", "Gucci belt, genuine leather")[0] == "assessment-complete"  # one article


def _descriptions_to_read(corpus, validator) -> list[tuple[str, str | None, tuple[str, ...]]]:
    """(description, declared code, package types) of every goods item of the generated corpus, the
    scenario set's risky and decoy lines, the labelled descriptions, and each brand's names."""
    from cargoscreen.validation import Submission

    lines = []
    for f in corpus:
        outcome = validator.validate(Submission(f.name, f.data))
        if outcome.record is not None:
            lines += [(g.description, g.hs_code, g.package_types) for g in outcome.record.goods if g.description]
    for name in ("risky.csv", "decoys.csv"):
        with open(SCENARIO_DATA / name, encoding="utf-8", newline="") as f:
            lines += [(r["description"], r["hs"], (r["package"],)) for r in csv.DictReader(f)]
    with open(LABELLED, encoding="utf-8", newline="") as f:
        lines += [(r["description"], r["declared"] or None, ()) for r in csv.DictReader(f)]
    lines += [(f"{' '.join(name)} {entry.article}, 3 pcs", sorted(entry.headings)[0], ())
              for entry in bundled_wording().brands for name in entry.names]
    return lines


def test_a_descriptions_reading_answers_as_the_wordings_own_questions_on_every_description(corpus, validator):
    """The reading remembered per description (what description_facts asks) gives, for every code and
    package type, the answers of the questions it stands for, asked of the description afresh."""
    from cargoscreen.domain import descriptions as d

    wording = d.bundled_wording()
    lines = _descriptions_to_read(corpus, validator)
    package_types = sorted({t for g in wording.light_goods for t in g.package_types} | {"BX", "CT"})
    asked = Counter()
    for description, declared, packed in lines:
        reading = wording.reading(description)
        assert reading == wording.read(description)
        for code in {declared, None, "", "970600", "910211", *(h + "00" for e in reading.brands for h in e.headings)}:
            assert reading.brand(code) == wording.brand(description, code), (description, code)
            assert reading.archaeological(code) == d.is_archaeological(description, code), (description, code)
            asked["brand"] += reading.brand(code) is not None
            # a quiet reading (description_facts skips its item) is one no question finds anything in
            assert not reading.quiet or (reading.brand(code) is None and not reading.archaeological(code))
            asked["archaeological"] += reading.archaeological(code)
        for package in {*packed, *package_types}:
            assert reading.light_goods(package) == wording.light(description, package), (description, package)
            asked["light"] += reading.light_goods(package) is not None
            assert not reading.quiet or reading.light_goods(package) is None
        assert reading.stated_net == d.stated_net_kg(description)
        assert reading.says_nothing == wording.says_nothing(description)
        assert reading.cards == bool(d._CARDS.search(description) and d._CARRY_VALUE.search(description)
                                     and not d._SIM.search(description))
        if reading.brands:
            assert reading.count == d.described_count(description)
        assert not reading.quiet or not (reading.stated_net or reading.says_nothing or reading.cards)
        asked.update(stated_net=reading.stated_net is not None, says_nothing=reading.says_nothing, cards=reading.cards,
                     quiet=reading.quiet)
    assert len(lines) > 5_000 and all(asked[k] for k in ("brand", "archaeological", "light", "stated_net",
                                                           "says_nothing", "cards", "quiet")), asked
