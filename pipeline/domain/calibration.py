"""Calibrating the weights of a pack's weak indicators on labelled traffic. Pure: no Beam, no Redis.

    cases = [Case(filing_code, fired_rule_ids, risky, pattern), ...]   # each filing scored once
    result = calibrate(scorer, cases, target_clean_rate=0.03, seed=0)

Each labelled consignment is scored once (which rules fire does not depend on weights); a
weighting is then judged by deciding every case again with the scorer's own `decide`, so the
decision policy (thresholds, rules that can lead to a decision, strong indicators) is the
production one. The search is coordinate ascent over a grid: each weak rule in turn (in an
order shuffled by a fixed seed) takes the grid value that is best, until a round changes
nothing. Best means: within the clean-referral limit first, then the highest recall, then the
fewest clean referrals, then the weights closest to where the search started. Weak weights stay
below the lowest threshold of every decision table: a weak indicator refers only in
combination; what should refer alone is marked `strength: strong` and is not searched.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from .rulepack import COMPLETE
from .scoring import Hit, Scorer


@dataclass(frozen=True)
class Case:
    filing_code: str
    fired: tuple[str, ...]  # ids of the rules that fired
    risky: bool
    pattern: str | None = None  # the planted pattern of a risky case


@dataclass(frozen=True)
class Outcome:
    planted: int
    planted_referred: int
    clean: int
    clean_referred: int
    missed: dict = field(default_factory=dict)  # pattern -> risky cases not referred

    @property
    def recall(self) -> float:
        return self.planted_referred / self.planted if self.planted else 0.0

    @property
    def clean_rate(self) -> float:
        return self.clean_referred / self.clean if self.clean else 0.0

    def as_dict(self) -> dict:
        return {"recall": round(self.recall, 4), "clean_referral_rate": round(self.clean_rate, 4),
                "planted": self.planted, "planted_referred": self.planted_referred, "clean": self.clean,
                "clean_referred": self.clean_referred, "missed_by_pattern": dict(sorted(self.missed.items()))}


@dataclass(frozen=True)
class Calibration:
    weights: dict[str, float]  # every weak rule's weight (searched, or held below the thresholds)
    before: Outcome  # with the pack's own weights
    after: Outcome
    rounds: int
    max_weight: float
    searched: tuple[str, ...]


class _Judge:
    """Decides cases under changing weights, re-deciding only the cases a changed rule fired in."""

    def __init__(self, scorer: Scorer, cases: list[Case], weights: dict[str, float]):
        self.scorer, self.cases, self.weights = scorer, cases, dict(weights)
        self.rules = {r.id: r for r in scorer.pack.rules}
        self.by_rule: dict[str, list[int]] = {}
        for i, c in enumerate(cases):
            for rid in c.fired:
                self.by_rule.setdefault(rid, []).append(i)
        self.referred = [self.refers(c) for c in cases]

    def refers(self, case: Case, weights: dict[str, float] | None = None) -> bool:
        weights = weights or self.weights
        rules = [self.rules[r] for r in case.fired]
        hits = [Hit(r.id, r.title, r.area, weights.get(r.id, r.weight), r.decision, (), r.ask) for r in rules]
        return self.scorer.decide(case.filing_code, hits, rules).decision != COMPLETE

    def counts(self, referred: list[bool]) -> tuple[int, int]:
        risky = sum(1 for c, r in zip(self.cases, referred) if r and c.risky)
        clean = sum(1 for c, r in zip(self.cases, referred) if r and not c.risky)
        return risky, clean

    def trial(self, rule: str, weight: float) -> list[bool]:
        """The referrals with one rule's weight changed."""
        weights = {**self.weights, rule: weight}
        referred = list(self.referred)
        for i in self.by_rule.get(rule, ()):
            referred[i] = self.refers(self.cases[i], weights)
        return referred

    def outcome(self, referred: list[bool] | None = None) -> Outcome:
        referred = self.referred if referred is None else referred
        missed = Counter(c.pattern or "?" for c, r in zip(self.cases, referred) if c.risky and not r)
        planted = sum(c.risky for c in self.cases)
        risky, clean = self.counts(referred)
        return Outcome(planted, risky, len(self.cases) - planted, clean, dict(missed))


def weak_rules(scorer: Scorer, cases: list[Case]) -> list[str]:
    """The rules a calibration sets: weak, adding to the score (not trusted-trader discounts), and
    fired in the traffic (a weight nothing fired on has no evidence to move it)."""
    fired = {r for c in cases for r in c.fired}
    return [r.id for r in scorer.pack.rules if not r.strong and r.weight > 0 and r.id in fired]


def calibrate(scorer: Scorer, cases: list[Case], target_clean_rate: float = 0.03, step: float = 5,
              seed: int = 0, max_rounds: int = 8) -> Calibration:
    lowest = min(minimum for t in scorer.pack.tables for _, minimum in t.thresholds)
    max_weight = step * ((lowest - 1) // step)  # below every threshold: weak indicators refer only together
    grid = [step * k for k in range(int(max_weight // step) + 1)]
    searched = weak_rules(scorer, cases)
    start = {r.id: min(r.weight, max_weight) for r in scorer.pack.rules if r.id in searched}
    before = _Judge(scorer, cases, {}).outcome()  # the pack as it is
    judge = _Judge(scorer, cases, start)
    limit = target_clean_rate * before.clean

    def key(referred: list[bool], weights: dict[str, float]) -> tuple:
        risky, clean = judge.counts(referred)
        distance = sum(abs(weights[r] - start[r]) for r in searched)
        return (1, risky, -clean, -distance) if clean <= limit else (0, -clean, risky, -distance)

    rng = random.Random(seed)
    best = key(judge.referred, judge.weights)
    rounds = 0
    for rounds in range(1, max_rounds + 1):
        changed = False
        order = list(searched)
        rng.shuffle(order)
        for rule in order:
            for weight in grid:
                if weight == judge.weights[rule]:
                    continue
                referred = judge.trial(rule, weight)
                candidate = key(referred, {**judge.weights, rule: weight})
                if candidate > best:
                    best, changed = candidate, True
                    judge.weights[rule], judge.referred = weight, referred
        if not changed:
            break
    # A weak rule the traffic never fired has no evidence to move it, but the policy still holds it below
    # the thresholds.
    unfired = {r.id: min(r.weight, max_weight) for r in scorer.pack.rules
               if not r.strong and r.weight > 0 and r.id not in start}
    return Calibration({**unfired, **judge.weights}, before, judge.outcome(), rounds, max_weight, tuple(searched))
