"""A rule pack compiled into generated Python (compiled_scoring.py) scores exactly as the closure
trees and the interpreted index do: the same candidates, the same yes or no per rule, the same
budget spent and overruns, the same hits, scores, decisions and evidence, on every rule example of
the starter pack and of the benchmark's 200-rule pack, and on generated traffic with planted risk;
and what it remembers between filings (keys per code, text and name; decisions per rules fired;
a goods item's statistics in one call) gives what computing them afresh gives."""
from __future__ import annotations

import importlib.util
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

from cargoscreen import resources
from cargoscreen.config import Settings
from cargoscreen.domain.compiled_scoring import compile_index, compile_test
from cargoscreen.domain.conditions import OverBudget
from cargoscreen.domain.rulepack import RulePack
from cargoscreen.domain.scoring import Scorer, Subject, example_subject
from cargoscreen.generator import GeneratorSpec, generate
from cargoscreen.validation import FilingValidator, Submission

NOW = datetime(2026, 11, 23, tzinfo=timezone.utc).timestamp()
BENCH = Path(__file__).resolve().parent.parent / "bench" / "scoring.py"


def _bench_pack(size: int) -> RulePack:
    """The 200-rule pack bench/scoring.py measures (the starter pack and generated rules)."""
    spec = importlib.util.spec_from_file_location("bench_scoring", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.pack_of(size)


@pytest.fixture(scope="module")
def packs():
    return {"starter": RulePack.load(resources.rules_dir() / "risk" / "ics2-starter"), "200 rules": _bench_pack(200)}


@pytest.fixture(scope="module")
def traffic():
    validator = FilingValidator(Settings())
    spec = GeneratorSpec(count=600, seed=21, defect_rate=0.0, envelope_rate=0.0, risk_rate=0.15, decoy_rate=0.15)
    records = [o.record for o in (validator.validate(Submission(f.name, f.data)) for f in generate(spec)) if o.record]
    return [Subject(r, (), "no-containers", NOW) for r in records]


def _subjects(pack: RulePack, traffic) -> list[Subject]:
    return [example_subject(e.data) for r in pack.rules for e in r.examples] + list(traffic)


def _outcome(test, subject: Subject):
    """(value or the exception's type and text, budget spent after it)."""
    try:
        value = test(subject)
    except Exception as exc:  # a rule's error is part of what must agree
        value = (type(exc).__name__, str(exc))
    return value, subject.spent


@pytest.mark.parametrize("name", ["starter", "200 rules"])
def test_each_compiled_condition_answers_as_its_closures(packs, traffic, name):
    pack = packs[name]
    compiled = [(rule, compile_test(rule.condition)) for rule in pack.rules]
    fired = 0
    for subject in _subjects(pack, traffic):
        for rule, test in compiled:
            subject.spent, subject.limit = 0, float("inf")
            expected = _outcome(rule.condition.test, subject)
            subject.spent = 0
            assert _outcome(test, subject) == expected, (rule.id, test.source)
            fired += expected[0] is True
    assert fired > 500  # the comparison saw rules fire, not only pass


@pytest.mark.parametrize("name", ["starter", "200 rules"])
def test_compiled_scorer_gives_the_same_candidates_and_assessments(packs, traffic, name):
    pack = packs[name]
    compiled, reference = Scorer(pack), Scorer(pack, compiled=False)
    referrals = 0
    for subject in _subjects(pack, traffic):
        assert [r.id for r in compiled.candidates(subject)] == [r.id for r in reference.candidates(subject)]
        args = (subject.record, subject.facts, subject.container_status, subject.now)
        assessment = compiled.assess(*args)
        assert assessment == reference.assess(*args)
        referrals += assessment.referral
    assert referrals > 50


def test_a_compiled_quantifier_charges_the_budget_and_overruns_as_the_closures_do(packs, traffic):
    """Budgets are counted in node evaluations, so a generated rule stops where its closures would."""
    rule = next(r for r in packs["starter"].rules if "any(goods" in " ".join(r.condition.text.split()))
    test = compile_test(rule.condition)
    big = max(traffic, key=lambda s: len(s.record.goods))
    for limit in (0, 1, len(big.record.goods), 10 * len(big.record.goods)):
        outcomes = []
        for fn in (rule.condition.test, test):
            big.spent, big.limit = 0, limit
            try:
                outcomes.append((fn(big), big.spent))
            except OverBudget as exc:
                outcomes.append((str(exc), big.spent))
        assert outcomes[0] == outcomes[1], (limit, outcomes)


def test_the_generated_index_and_conditions_are_readable_python(packs):
    """What runs can be read: the source kept with each function."""
    scorer = Scorer(packs["starter"])
    index_source = scorer._by_code["F10"][0].source
    assert index_source.startswith("def candidates(s, chosen):") and "for x in r.goods:" in index_source
    condition = next(r.condition for r in packs["starter"].rules if "hs_code" in r.condition.text)
    assert ".hs_code" in compile_test(condition).source
    assert compile_index  # the index compiler is the one Scorer uses (its source is above)


@pytest.mark.parametrize("name", ["starter", "200 rules"])
def test_goods_measures_give_each_statistic_as_its_own_method(packs, traffic, name):
    """The index reads a goods item's statistics in one call; each must be what conditions read."""
    statistics = packs[name].environment.statistics
    goods = [(g, s.record.loading_country) for s in traffic for g in s.record.goods]
    g0 = goods[0][0]
    # Edges of each statistic's guard: nothing declared, zero, negative, several or no package types.
    goods += [(g0._replace(**change), country) for country in ("CN", None) for change in (
        {"value": None, "converted_value": None}, {"value": 0.0, "currency": "EUR"}, {"value": -5.0, "currency": "EUR"},
        {"gross_mass": 0.0}, {"gross_mass": -1.0}, {"gross_mass": None}, {"packages": 0}, {"packages": None},
        {"package_types": ()}, {"package_types": ("CT", "PK")}, {"hs_code": None}, {"hs_code": ""})]
    measured = 0
    for item, country in goods + goods:  # the second time with each code's references remembered
        try:
            expected = tuple(statistics.route_share(item, country) if m == "route_share" else
                             getattr(statistics, m)(item) for m in statistics.MEASURED)
        except ValueError as exc:  # a negative mass: the log of a negative unit value fails in both
            with pytest.raises(type(exc)):
                statistics.goods_measures(item, country)
            continue
        assert statistics.goods_measures(item, country) == expected, item
        measured += sum(v is not None for v in expected)
    assert measured > 1000  # the comparison saw numbers, not only Nones


def test_the_properties_the_index_remembers_follow_from_the_attributes_it_names(traffic):
    """The index looks a property's keys up once per distinct values of the attributes MADE_OF names:
    changing any other attribute must leave the property as it is."""
    from cargoscreen.domain.screening import MADE_OF
    parties = [p for s in traffic for p in s.record.parties][:300]
    goods = [g for s in traffic for g in s.record.goods][:300]
    checked = 0
    for items in (parties, goods):
        for prop in (p for p in MADE_OF if hasattr(items[0], p)):
            for item in items:
                for other in set(item._fields) - set(MADE_OF[prop]):
                    changed = item._replace(**{other: None if getattr(item, other) is not None else "X"})
                    assert getattr(changed, prop) == getattr(item, prop), (prop, other, item)
                    checked += 1
    assert checked > 1000


@pytest.mark.parametrize("name", ["starter", "200 rules"])
def test_remembered_keys_and_decisions_give_what_a_fresh_decision_gives(packs, traffic, name):
    """One scorer over the whole traffic, twice (its memos of codes, texts, names and decisions warm),
    decides each filing as the reference's own decide() does on the rules that fire."""
    from cargoscreen.domain.scoring import Hit
    pack = packs[name]
    warm, reference = Scorer(pack), Scorer(pack, compiled=False)
    subjects = _subjects(pack, traffic)
    for subject in subjects:
        warm.assess(subject.record, subject.facts, subject.container_status, subject.now)
    hits = 0
    for subject in subjects:
        got = warm.assess(subject.record, subject.facts, subject.container_status, subject.now)
        fired, errors = reference.fired(subject)
        expected = reference.decide(subject.record.filing_code,
                                    [Hit(r.id, r.title, r.area, r.weight, r.decision, (), r.ask, r.screening_methods)
                                     for r in fired], fired, tuple(errors))
        assert (got.score, got.level, got.decision, got.table, got.strong, [h.rule for h in got.hits]) == \
            (expected.score, expected.level, expected.decision, expected.table, expected.strong,
             [h.rule for h in expected.hits])
        hits += bool(got.hits)
    assert warm._decided and hits > 100


def test_a_term_lists_remembered_answers_are_what_find_gives(packs, traffic):
    """Generated conditions read matches() from the matcher's memo of answers per text (found):
    the first time and remembered, each text's answer is find's."""
    from cargoscreen.domain.conditions import TermMatcher
    matchers = [m for m in packs["starter"].environment.references.values() if isinstance(m, TermMatcher)]
    texts = [g.description for s in traffic for g in s.record.goods] + [None, "", "Lithium-ion BATTERIES"]
    found = 0
    for matcher in matchers:
        for text in texts + texts:
            assert matcher.found[text] == matcher.find(text), (matcher.names, text)
            found += matcher.found[text] is not None
    assert matchers and found > 100


@pytest.mark.parametrize("name", ["starter", "200 rules"])
def test_one_memo_per_collection_tells_items_apart_by_each_attribute(packs, traffic, name):
    """The index looks up a goods item's and a party's keys in one memo keyed by every attribute they
    follow from: an item that differs from one already seen in a single attribute (a listed UN
    number, a listed party id) gets its own rules, as the reference finds them."""
    pack = packs[name]
    compiled, reference = Scorer(pack), Scorer(pack, compiled=False)
    source = compiled._by_code["F10"][0].source
    assert "(x.undg, x.hs_code, x.description)" in source and "(x.id, x.name, x.street, x.city, x.country)" in source
    listed = {}
    for rule in pack.rules:
        for key in rule.condition.guard or ():
            if key[0] == "eq" and key[1:3] in (("goods", "undg"), ("parties", "id")):
                listed.setdefault(key[2], []).append(key[3])
    assert listed.keys() == {"undg", "id"}
    subjects = [s for s in traffic if s.record.goods and s.record.parties][:200]
    variants = [Subject(replace(s.record, goods=(s.record.goods[0]._replace(undg=listed["undg"][n % len(listed["undg"])]),
                                                  *s.record.goods[1:]),
                                parties=(s.record.parties[0]._replace(id=listed["id"][n % len(listed["id"])]),
                                         *s.record.parties[1:])), (), "no-containers", NOW)
                for n, s in enumerate(subjects)]
    differ = 0
    for subject in subjects + variants:  # the variants after their originals: the memo has seen those
        got = [r.id for r in compiled.candidates(subject)]
        assert got == [r.id for r in reference.candidates(subject)]
    for s, v in zip(subjects, variants):
        differ += compiled.candidates(s) != compiled.candidates(v)
    assert differ > 100
