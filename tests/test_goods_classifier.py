"""The goods-description classifier (pipeline/domain/goods_classifier.py) and its facts (goods_facts.py):
heading accuracy on labelled descriptions written from trade usage, controlled goods named under
innocent codes, honest look-alikes and vague descriptions left alone, the evidence a referral carries,
and the starter pack's rules on these facts."""
from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from cargoscreen import resources
from cargoscreen.decisions import decide, decision_record
from cargoscreen.domain.enrichment import DESCRIPTION_CODE_MISMATCH, DESCRIPTION_NAMES_CONTROLLED, GOODS_FACTS
from cargoscreen.domain.goods_classifier import bundled_goods_classifier, heading_accuracy, load_labelled
from cargoscreen.domain.goods_facts import goods_facts
from cargoscreen.domain.reference import bundled_reference
from cargoscreen.domain.rulepack import CONTROL, DNL, RulePack
from cargoscreen.domain.scoring import Scorer, example_subject
from cargoscreen.enrichment import EnrichedFiling

LABELLED = load_labelled(Path(__file__).parent / "data" / "goods-descriptions.csv")
STARTER = RulePack.load(resources.rules_dir() / "risk" / "ics2-starter")
NOW = datetime(2026, 11, 23, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def classifier():
    return bundled_goods_classifier()


def facts_of(description: str, hs_code: str | None, classifier) -> dict:
    record = example_subject({"goods": [{"description": description, "hs_code": hs_code}]}).record
    return {f.kind: f for f in goods_facts(record, classifier)}


# -- accuracy --------------------------------------------------------------------------------------------
# Floors under what bench/goods_classifier.py measured (all 661: top-1 92.9%, top-3 98.9%; the holdout
# split, never tuned on: 91.6% / 98.8%): a change that loses accuracy fails here.
@pytest.mark.parametrize("split, top1_floor, top3_floor", [(None, 0.91, 0.975), ("holdout", 0.895, 0.97)])
def test_heading_accuracy_on_descriptions_written_as_traders_write_them(classifier, split, top1_floor, top3_floor):
    rows = [r for r in LABELLED if split is None or r["split"] == split]
    assert len(rows) >= 300
    top1, top3 = heading_accuracy(classifier, rows)
    assert top1 >= top1_floor and top3 >= top3_floor, (top1, top3)


def test_the_fast_path_gives_scikit_learns_scores(classifier):
    """Scoring goes through posting lists read off the fitted TF-IDF matrix (shipped as arrays), not the
    vectorizer's transform: both give the same cosine similarity with every training document."""
    from cargoscreen.domain.goods_classifier import fit_tfidf, load_vocabulary, training_documents
    from cargoscreen.domain.legal_lists import bundled_legal_lists

    vocabulary = load_vocabulary(resources.rules_dir() / "reference" / "goods-vocabulary.csv")
    vectorizer, matrix = fit_tfidf(training_documents(bundled_reference(), bundled_legal_lists(), vocabulary))
    for text in ("ladies cotton knitted t-shirts", "detonating cord PETN core", "frozen chicken leg quarters",
                 "stainless steel hex bolts"):
        expected = (vectorizer.transform([text]) @ matrix.T).toarray().ravel()
        _, idx, weights = classifier.vectorise(text)
        np.testing.assert_allclose(classifier._doc_scores(idx, weights), expected, atol=1e-5)
        assert expected.max() > 0.3


# -- controlled goods ------------------------------------------------------------------------------------
@pytest.mark.parametrize("description, declared, kind, code", [
    ("detonating cable 5 g/m, 500 m reels", "854449", "explosive", "3603"),
    ("CABLE, DETONATING, FLEXIBLE UN0065", "854420", "explosive", "3603"),
    ("charcoal, saltpetre and sulphur mixture, granulated", "440290", "explosive", "3601"),
    ("machine parts: upper receiver, bolt carrier", "848790", "firearm-part", "9305"),
    ("machine parts - gun barrels 9mm", "848790", "firearm-part", "9305"),
    ("cleaning solvent (acetic anhydride)", "381400", "drug-precursor", "2915"),
    ("CAS 28578-16-7 white powder", "292429", "drug-precursor", "2932"),
    ("paper documents, USD 100 bank notes", "491199", "cash", "4907"),
    ("decorative coins ancient greek tetradrachm", "711890", "cultural", "9705"),
    ("FPGA chips", "847330", "chp", "8542"),
])
def test_controlled_goods_named_under_an_innocent_code_are_a_fact(classifier, description, declared, kind, code):
    fact = facts_of(description, declared, classifier)[DESCRIPTION_NAMES_CONTROLLED]
    v = fact.values
    assert v["controlled"] == kind and v["controlled_code"][:4] == code and v["declared"] == declared
    assert v["terms"] and all(t.startswith("CAS ") or all(w in description.lower() for w in t.split())
                              for t in v["terms"])  # as written
    assert v["pointer"] == "/example/GoodsLine[1]/Description" and kind in fact.detail


@pytest.mark.parametrize("description, declared, fireworks", [
    ("Christmas decorations: paper tubes with fuse, 600 cartons", "950510", True),
    ("New Year party decorations, paper tubes with fuses", "950590", True),
    ("Toy bangers, cardboard tubes with fuse, 200 cartons", "950300", True),
    ("Paper tubes with fuse", "482290", True),
    # electrical fuses of a light set, fused glass, fuse beads (a children's craft), or a fuse off those headings
    ("Christmas tree lights 100 LED with spare fuses", "950510", False),
    ("Fused glass Christmas ornaments", "950510", False), ("Fuse beads 5 mm for children, 1000 pcs", "950300", False),
    ("Christmas crackers with paper hats and jokes", "950510", False), ("Glass tube fuses 5x20 mm", "853610", False),
])
def test_a_fuse_on_festive_articles_toys_or_paper_tubes_is_a_firework(classifier, description, declared, fireworks):
    fact = facts_of(description, declared, classifier).get(DESCRIPTION_NAMES_CONTROLLED)
    assert (fact is not None and fact.values["controlled"] == "pyrotechnic"
            and fact.values["controlled_code"] == "360410") is fireworks
    if fireworks:
        assert any("fuse" in t for t in fact.values["terms"]) and f"declared {declared[:4]}" in fact.values["basis"]


def test_a_weapon_under_a_machine_code_is_a_mismatch_with_its_evidence(classifier):
    fact = facts_of("pistol slide and barrel", "846693", classifier)[DESCRIPTION_CODE_MISMATCH]
    v = fact.values
    assert v["proposed"][0] == "9305" and v["headings"][0]["heading"] == "9305"
    assert v["headings"][0]["score"] > 0.45 and v["declared_score"] < 0.12
    assert "pistol slide" in " ".join(v["headings"][0]["terms"]) and "Firearms" in v["headings"][0]["text"]
    assert v["pointer"] == "/example/GoodsLine[1]/HSCode" and "reads as 9305" in fact.detail


@pytest.mark.parametrize("description, declared", [
    ("Consumer fireworks category F2", "360410"), ("Cartridges for sporting rifles", "930630"),
    ("Integrated circuit processors and microcontrollers", "854231"), ("Gold bars 999.9 fine 1 kg", "710812"),
    ("Hydrochloric acid 33% in IBC", "280610"), ("Integrated circuit processors and microcontrollers", None),
])
def test_goods_declared_under_their_own_kind_of_code_are_no_fact(classifier, description, declared):
    """The code already says it (the rules on codes see them); dual-use items without a code are
    everyday electronics in express traffic."""
    assert facts_of(description, declared, classifier) == {}


def test_without_a_code_the_description_is_all_there_is(classifier):
    assert facts_of("Electric detonators, delay series", None, classifier)[DESCRIPTION_NAMES_CONTROLLED] \
        .values["controlled"] == "explosive"


def test_honest_look_alikes_are_left_alone(classifier):
    """The labelled descriptions that name no controlled goods, under their own codes: water pistols,
    USB cables, barbecue charcoal, nail guns, bath bombs, flare jeans, ..."""
    plain = [r for r in LABELLED if not r["controlled"]]
    flagged = [r["description"] for r in plain if facts_of(r["description"], r["declared"], classifier)]
    assert len(plain) >= 550 and len(flagged) <= 0.01 * len(plain), flagged
    for text, code in (("water pistols for children", "950300"), ("USB charging cable 1m type C", "854442"),
                       ("barbecue charcoal lumpwood 10 kg bags", "440290"), ("pneumatic nail gun 18 gauge", "846719")):
        assert facts_of(text, code, classifier) == {}


def test_the_labelled_controlled_goods_under_other_codes_are_found(classifier):
    hidden = [r for r in LABELLED if r["controlled"] and r["declared"][:4] != r["heading"]]
    found = [r for r in hidden if facts_of(r["description"], r["declared"], classifier)]
    assert len(hidden) >= 70 and len(found) >= 0.93 * len(hidden), [r["description"] for r in hidden if r not in found]


# -- vague descriptions ----------------------------------------------------------------------------------
VAGUE = [*bundled_reference().vague_terms, "parts", "goods", "samples", "machine parts", "spare parts", "plastic parts",
         "metal parts", "tools", "equipment", "electronics", "accessories", "hardware", "materials", "merchandise"]


@pytest.mark.parametrize("declared", ["010121", "271012", "300490", "610910", "847130", "851713", "930190", "360300"])
def test_vague_descriptions_never_contradict_a_code(classifier, declared):
    mismatched = [t for t in VAGUE if classifier.consistency(t, declared).disagrees]
    assert mismatched == []
    assert [t for t in VAGUE if facts_of(t, declared, classifier)] == []


def test_a_specific_description_does_contradict_a_code_a_vague_one_would_not(classifier):
    """The check above is not vacuous: the same codes against specific goods disagree."""
    assert classifier.consistency("frozen chicken leg quarters", "847130").disagrees
    assert not classifier.consistency("spare parts", "847130").disagrees


def test_what_goods_contain_or_serve_does_not_contradict_what_they_are(classifier):
    """Only words of the description's head can contradict the code: after "with", "for" come
    contents and purposes."""
    assert classifier.consistency("pistachios", "170490").disagrees
    assert not classifier.consistency("Turkish delight with pistachios, retail boxes 500 g", "170490").disagrees
    assert not classifier.consistency("protective cases for smartphones", "420232").disagrees


# -- rules and referrals ---------------------------------------------------------------------------------
GOODS_RULE_EXAMPLES = [pytest.param(rule.id, example.data, id=f"{rule.id}-{example.line}")
                       for rule in STARTER.rules if rule.id.startswith("GD-") for example in rule.examples
                       if example.data.get("facts") and example.data.get("goods")
                       and all(f["kind"] in GOODS_FACTS for f in example.data["facts"])]  # descriptions.py: test_descriptions


@pytest.mark.parametrize("rule, data", GOODS_RULE_EXAMPLES)
def test_the_goods_rules_examples_carry_the_facts_the_classifier_finds(classifier, rule, data):
    """Each example that writes a goods fact by hand writes what the classifier really yields for its goods."""
    record = example_subject({k: v for k, v in data.items() if k != "facts"}).record
    found = {(f.kind, f.values.get("controlled", "")): f for f in goods_facts(record, classifier)}
    for fact in data["facts"]:
        values = fact.get("values", {})
        real = found.get((fact["kind"], values.get("controlled", "")))
        assert real is not None, (rule, fact, list(found))
        assert real.values["proposed"][:1] == values["proposed"][:1]
        if "controlled_code" in values:
            assert real.values["controlled_code"] == values["controlled_code"]


@pytest.mark.parametrize("description, declared, decision, rule", [
    ("detonating cable 5 g/m, 500 m reels", "854449", DNL, "GD-001"),
    ("machine parts: upper receiver, bolt carrier", "848790", CONTROL, "GD-002"),
    ("cleaning solvent (acetic anhydride)", "381400", CONTROL, "GD-003"),
])
def test_one_fact_of_controlled_goods_refers_on_its_own_with_its_evidence(classifier, description, declared,
                                                                          decision, rule):
    s = example_subject({"goods": [{"description": description, "hs_code": declared}]})
    facts = goods_facts(s.record, classifier)
    d = decide(EnrichedFiling("sub-1", "26NL0000000000001X", "F10", "sea", "LRN1", "NL1", (), "no-containers",
                              facts, s.record), Scorer(STARTER), NOW)
    record = decision_record(d)
    assert record["referral_id"] and record["decision"] in (decision, CONTROL)
    hit = next(h for h in record["hits"] if h["rule"] == rule)
    assert hit["evidence"][0]["pointer"] == "/example/GoodsLine[1]/Description"
    assert "names" in hit["evidence"][0]["value"]
    goods = record["goods_facts"]
    assert [g["kind"] for g in goods if g["kind"] == DESCRIPTION_NAMES_CONTROLLED]
    shown = goods[0]
    assert shown["declared"] == declared and shown["headings"] and all(
        {"heading", "score", "text", "terms"} <= set(h) for h in shown["headings"])
    assert not any(c["kind"] in (DESCRIPTION_NAMES_CONTROLLED, DESCRIPTION_CODE_MISMATCH)
                   for c in record["container_facts"])


def test_the_vocabulary_says_where_it_comes_from(classifier):
    with (resources.rules_dir() / "reference" / "SOURCES.csv").open(encoding="utf-8") as f:
        row = next(r for r in csv.DictReader(f) if r["file"] == "goods-vocabulary.csv")
    assert row["source"] and row["licence"] and int(row["rows"]) == len(classifier.vocabulary)
    assert {t.controlled for t in classifier.vocabulary} >= {"explosive", "firearm-part", "cash", "chp", ""}


def test_a_corrected_code_is_read_again_against_its_description(classifier):
    """An answer to a request for information that corrects the HS code: the re-assessment reads the
    description against the new code (the referral's goods facts were about the old one), so a
    correction that takes the controlled-goods fact away is itself a risk change for the analyst."""
    from cargoscreen.reassessment import AnswerItem, RfiAnswer, reassess, reassessment_payload

    s = example_subject({"goods": [{"description": "pistol slide and barrel", "hs_code": "846693"}]})
    d = decide(EnrichedFiling("sub-1", "26NL0000000000001X", "F10", "sea", "LRN1", "NL1", (), "no-containers",
                              goods_facts(s.record, classifier), s.record), Scorer(STARTER), NOW)
    body = {**decision_record(d), "reassessment": reassessment_payload(d)}
    assert {"GD-002", "GD-007"} <= {h["rule"] for h in body["hits"]}
    pointer = "/example/GoodsLine[1]/HSCode"
    answer = RfiAnswer("sub-2", "NL1", body["mrn"], "2026-11-23T01:00:00Z", (AnswerItem(pointer, "", "930510"),))
    decision, applied, changes = reassess(body, answer, Scorer(STARTER), NOW)
    assert [c.after for c in applied] == ["930510"]
    again = decision_record(decision)
    assert not any(g["declared"] == "846693" for g in again["goods_facts"])
    assert "GD-002" not in {h["rule"] for h in again["hits"]}
    assert changes and "GD-002" in changes[0].values["rules"] and again["decision"] == CONTROL
