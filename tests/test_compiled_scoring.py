"""A rule pack compiled into generated Python (compiled_scoring.py) scores exactly as the closure
trees and the interpreted index do: the same candidates, the same yes or no per rule, the same
budget spent and overruns, the same hits, scores and decisions, on every rule example of the
starter pack and of the benchmark's 200-rule pack, and on generated traffic with planted risk."""
from __future__ import annotations

import importlib.util
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
