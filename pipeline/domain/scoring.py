"""Scoring a filing against a rule pack, and the decision that follows. Pure: no Beam, no Redis.

    scorer = Scorer(pack)
    assessment = scorer.assess(record, facts, container_status, now)

Speed comes from not evaluating most rules. Each rule's condition yields a guard (see
conditions.py): index keys such as "a goods item's HS code starts with 2939", "a party id
is X", "the filing has a seal-mismatch fact", of which a filing must carry one for the rule
to possibly fire. Per filing type the scorer keeps an index key -> rules, reads the filing's
keys once, and evaluates only the rules they point to, plus the few rules without a guard.
This is the rule indexing of policy engines such as Open Policy Agent.

Hits add up to a score (trusted-trader rules subtract), the score gives a risk level, and the
filing type's decision table turns score and hits into a decision: the strongest decision
whose threshold the score reaches and that some rule that fired can lead to. The evidence of
each hit (data elements, container events) is gathered for referrals only: an assessment
complete records which rules fired and their weights.

Each filing has an evaluation budget in node evaluations (quantifiers charge their items before
iterating, see conditions.py), in proportion to its size: `budget_base` plus `budget_per_item`
per goods item, party, container and fact, so a small filing stays cheap whatever rules are
published. A rule that would go past it is an error of that rule (Assessment.errors, counted as
cargoscreen_rule_errors_total), not a stall: the filing is still decided with the others. Pack
rules come before risk information forms, so forms cannot spend the pack's own rules' budget;
explanations (referrals only) get a budget of their own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .budgets import BUDGET_BASE, BUDGET_PER_ITEM
from .compiled_scoring import compile_index, compile_test
from .conditions import PHRASE, RANGE_TESTS, Evidence, OverBudget, TermMatcher, field_getter, field_spec
from .enrichment import Fact
from .filings import FILING_KINDS
from .memo import BoundedMemo
from .rulepack import COMPLETE, DNL, RFI, RFS, SEVERITY, Rule, RulePack
from .currency import bundled_euro_rates, in_euros
from .screening import ScreeningRecord, record_from_dict


DECISIONS_REMEMBERED = 10_000  # distinct (filing type, rules fired) a scorer keeps its assessment of


class Subject:
    """What conditions read: the record, its container-status facts, and the assessment time;
    and what its evaluation has cost (`spent`) against what it may (`limit`, see conditions.charge)."""

    __slots__ = ("record", "facts", "container_status", "now", "_roles", "spent", "limit", "item_tests")

    def __init__(self, record: ScreeningRecord, facts=(), container_status: str = "no-containers",
                 now: float | None = None):
        self.record, self.facts, self.container_status = record, tuple(facts), container_status
        self.now = record.issued_at if now is None else now
        self._roles = None
        self.spent, self.limit = 0, float("inf")  # the scorer sets the filing's budget
        self.item_tests = None  # quantifier -> its condition as generated code, for explanations (the scorer's)

    def by_role(self, role: str):
        if self._roles is None:
            roles: dict[str, list] = {}
            for p in self.record.parties:
                roles.setdefault(p.role, []).append(p)
            self._roles = roles
        return self._roles.get(role, ())


@dataclass(frozen=True)
class Hit:
    rule: str
    title: str
    area: str
    weight: float
    decision: str
    evidence: tuple[Evidence, ...]
    ask: str | None = None
    screening_methods: tuple[str, ...] = ()

    def explanation(self) -> str:
        shown = "; ".join(e.value for e in self.evidence[:5])
        more = f" (+{len(self.evidence) - 5} more)" if len(self.evidence) > 5 else ""
        return f"{self.title}: {shown}{more}" if shown else self.title


@dataclass(frozen=True)
class Assessment:
    pack: str  # the pack id that made the decision
    score: float
    level: str
    decision: str
    table: str
    hits: tuple[Hit, ...]
    errors: tuple[str, ...] = ()  # rules that could not be evaluated (a bug in a rule: the others still count)
    strong: tuple[str, ...] = ()  # the strong indicators that lead to the decision on their own

    @property
    def referral(self) -> bool:
        return self.decision != COMPLETE

    @property
    def basis(self) -> str:
        """Why this decision, in one line: the strong indicator it rests on, or the score's threshold."""
        if self.strong:
            titles = {h.rule: h.title for h in self.hits}
            shown = "; ".join(f"{r} {titles.get(r, '')}".strip() for r in self.strong)
            return f"referred on {'one strong indicator' if len(self.strong) == 1 else 'strong indicators'}: {shown}"
        if not self.referral:
            return f"score {self.score:g}: no threshold reached with a rule that leads there"
        return f"score {self.score:g} reached the {self.decision} threshold of table {self.table!r}"

    def information_requested(self) -> list[tuple[str | None, str]]:
        return [(next((e.pointer for e in h.evidence if e.pointer), None), h.ask) for h in self.hits
                if h.decision == RFI and h.ask]

    def screening_methods(self) -> list[str]:
        return list(dict.fromkeys(m for h in self.hits if h.decision in (RFS, DNL)
                                  for m in h.screening_methods))


def _items(subject: Subject, scope: str):
    """The objects a scope's fields are read from (the filing's own fields take no item)."""
    if scope == "filing":
        return (None,)
    if scope == "facts":
        return subject.facts
    return getattr(subject.record, scope)


class _Index:
    """For one filing type: from what a filing carries to the rules that may fire.

    Keys are looked up straight off the filing, shape by shape: a field's value (or each value
    of a list), the prefixes of a code, the term lists a text mentions (all lists in one scan),
    the thresholds a number passes, the kinds of its container facts.
    """

    def __init__(self, keyed: dict[tuple, list[int]], references: dict, statistics):
        self.eq: dict[tuple[str, str], dict] = {}
        self.prefix: dict[tuple[str, str], dict] = {}
        self.terms: dict[tuple[str, str], dict] = {}
        ranges: dict[tuple[str, str], list] = {}
        self.facts: dict[str, tuple[int, ...]] = {}
        for key, rules in keyed.items():
            rules = tuple(rules)
            kind = key[0]
            if kind == "eq":
                self.eq.setdefault(key[1:3], {})[key[3]] = rules
            elif kind == "prefix":
                self.prefix.setdefault(key[1:3], {})[key[3]] = rules
            elif kind == "terms":
                self.terms.setdefault(key[1:3], {})[key[3]] = rules
            elif kind == "range":
                ranges.setdefault(key[1:3], []).append((RANGE_TESTS[key[3]], key[4], rules))
            else:
                self.facts[key[1]] = rules
        # Fields are read with the getters conditions use, so a key means what the condition means.
        self.getters = {(scope, name): field_getter(scope, field_spec(scope, name), statistics)
                        for scope, name in {*self.eq, *self.prefix, *self.terms, *ranges}}
        self.prefix_lengths = {shape: sorted({len(p) for p in prefixes}) for shape, prefixes in self.prefix.items()}
        self.matchers = {shape: TermMatcher(lists={n: ([n.removeprefix(PHRASE)] if n.startswith(PHRASE)
                                                       else references[n].terms) for n in sorted(lists)})
                         for shape, lists in self.terms.items()}
        self.ranges = ranges
        self.statistics = statistics

    def candidates(self, subject: Subject, chosen: set[int]) -> None:
        getters = self.getters
        for shape, values in self.eq.items():
            get = getters[shape]
            for item in _items(subject, shape[0]):
                value = get(subject, item)
                if value is None:
                    continue
                if type(value) is tuple or type(value) is list:
                    for v in value:
                        rules = values.get(v)
                        if rules:
                            chosen.update(rules)
                else:
                    rules = values.get(value)
                    if rules:
                        chosen.update(rules)
        for shape, prefixes in self.prefix.items():
            get, lengths = getters[shape], self.prefix_lengths[shape]
            for item in _items(subject, shape[0]):
                value = get(subject, item)
                if value:
                    for n in lengths:
                        rules = prefixes.get(value[:n])
                        if rules:
                            chosen.update(rules)
        for shape, lists in self.terms.items():
            get, matcher = getters[shape], self.matchers[shape]
            for item in _items(subject, shape[0]):
                for listed in matcher.scan(get(subject, item)):
                    chosen.update(lists[listed])
        for shape, tests in self.ranges.items():
            get = getters[shape]
            for item in _items(subject, shape[0]):
                value = get(subject, item)
                if value is not None:
                    for test, limit, rules in tests:
                        if test(value, limit):
                            chosen.update(rules)
        if self.facts:
            for f in subject.facts:
                rules = self.facts.get(f.kind)
                if rules:
                    chosen.update(rules)


class Scorer:
    """A pack compiled for scoring: per filing type, an index from what a filing carries to rules."""

    def __init__(self, pack: RulePack, budget_base: int = BUDGET_BASE, budget_per_item: int = BUDGET_PER_ITEM,
                 compiled: bool = True):
        """compiled: each filing type's index and each rule's condition as generated Python
        (compiled_scoring.py); False: the index's tables walked and the conditions' closures, the
        reference they are tested against."""
        self.pack, self.budget_base, self.budget_per_item = pack, budget_base, budget_per_item
        self._by_code: dict[str, tuple[Callable, tuple[int, ...]]] = {}
        self._lowest = pack.level_for(0.0)
        self._tests = [compile_test(r.condition) if compiled else r.condition.test for r in pack.rules]
        self._item_tests = {node: fn for test in self._tests for node, fn in getattr(test, "item_tests", {}).items()}
        # What most filings end with is made once: a rule's hit before its evidence, a table's "nothing fired".
        self._hits = {r.id: Hit(r.id, r.title, r.area, r.weight, r.decision, (), r.ask, r.screening_methods)
                      for r in pack.rules}
        self._tables: dict[str, tuple] = {}  # filing code -> (its decision table, that table's quiet assessment)
        self._decided = BoundedMemo(DECISIONS_REMEMBERED)  # (filing code, rules that fired...) -> the assessment
        guards = [r.condition.guard for r in pack.rules]
        env = pack.environment
        built: dict[tuple, tuple[Callable, tuple[int, ...]]] = {}  # filing types with the same rules share one index
        for kind in FILING_KINDS:
            keyed: dict[tuple, list[int]] = {}
            unguarded = []
            for i, (rule, guard) in enumerate(zip(pack.rules, guards)):
                if kind.code not in rule.filings:
                    continue
                if guard is None:
                    unguarded.append(i)
                else:
                    for key in guard:
                        keyed.setdefault(key, []).append(i)
            signature = (frozenset((key, tuple(rules)) for key, rules in keyed.items()), tuple(unguarded))
            if signature not in built:  # (and its memos: see compiled_scoring.py)
                index = _Index(keyed, env.references, env.statistics)
                built[signature] = (compile_index(index) if compiled else index.candidates, tuple(unguarded))
            self._by_code[kind.code] = built[signature]

    def candidates(self, subject: Subject) -> list[Rule]:
        """The rules that may fire for this filing, in pack order."""
        return [self.pack.rules[i] for i in self._candidates(subject)]

    def _candidates(self, subject: Subject) -> list[int]:
        code = subject.record.filing_code
        found = self._by_code.get(code)
        if found is None:  # an amendment's code: its filing's index
            found = self._by_code[code] = self._by_code["F" + code[1:]]
        keyed, unguarded = found
        chosen = set(unguarded)
        keyed(subject, chosen)
        return sorted(chosen) if chosen else []

    def budget(self, subject: Subject) -> int:
        r = subject.record
        return self.budget_base + self.budget_per_item * (len(r.goods) + len(r.parties) + len(r.containers)
                                                          + len(subject.facts))

    def fired(self, subject: Subject) -> tuple[list[Rule], list[str]]:
        fired, errors = [], []
        candidates = self._candidates(subject)
        if not candidates:  # most filings
            return fired, errors
        subject.limit = self.budget(subject)
        rules, tests = self.pack.rules, self._tests
        for i in candidates:
            rule = rules[i]
            if not rule.valid_at(subject.now):
                continue
            try:
                if tests[i](subject):
                    fired.append(rule)
            except Exception as exc:  # a rule's bug or overrun must not cost the filing its assessment
                errors.append(_rule_error(rule, exc))
        return fired, errors

    def assess(self, record: ScreeningRecord, facts=(), container_status: str = "no-containers",
               now: float | None = None) -> Assessment:
        subject = Subject(record, facts, container_status, now)
        fired, errors = self.fired(subject)
        if errors:
            assessment = self.decide(record.filing_code, [self._hits[r.id] for r in fired], fired, tuple(errors))
        else:  # a decision follows from the filing type and the rules that fired: made once per such pair
            key = (record.filing_code, *[r.id for r in fired])
            assessment = self._decided.get(key)
            if assessment is None:
                assessment = self._decided.remember(
                    key, self.decide(record.filing_code, [self._hits[r.id] for r in fired], fired))
        if not assessment.referral:
            return assessment  # the rules that fired are recorded; their evidence is for referrals
        by_id = {r.id: r for r in fired}
        subject.spent = 0  # explanations get a budget of their own
        subject.item_tests = self._item_tests
        explained = []
        for h in assessment.hits:
            try:
                evidence = tuple(by_id[h.rule].condition.explain(subject)[1])
                # dataclasses.replace, written out: it inspects the fields each call
                explained.append(Hit(h.rule, h.title, h.area, h.weight, h.decision, evidence, h.ask,
                                     h.screening_methods))
            except Exception as exc:  # the hit stands, unexplained
                explained.append(h)
                errors.append(_rule_error(by_id[h.rule], exc))
        a = assessment
        return Assessment(a.pack, a.score, a.level, a.decision, a.table, tuple(explained), tuple(errors), a.strong)

    def decide(self, filing_code: str, hits: list[Hit], fired: list[Rule], errors=()) -> Assessment:
        found = self._tables.get(filing_code)
        if found is None:
            table = self.pack.table_for(filing_code)
            found = self._tables[filing_code] = (table, Assessment(self.pack.id, 0.0, self._lowest, COMPLETE,
                                                                   table.name, ()))
        table, quiet = found
        if not hits:  # most filings: nothing to add up
            return Assessment(self.pack.id, 0.0, self._lowest, COMPLETE, table.name, (), errors) if errors else quiet
        score = max(0.0, sum(h.weight for h in hits))
        decision = next((d for d, minimum in table.thresholds
                         if score >= minimum and any(r.can_lead_to(d) for r in fired)), COMPLETE)
        strong: list[str] = []
        if table.strong is not None:
            # One strong indicator refers on its own: to the strongest decision of the table it can lead to,
            # up to the table's `strong_indicator` (a strong do-not-load rule still needs the score for do-not-load).
            ceiling = SEVERITY[table.strong]
            alone = {r.id: next((d for d, _ in table.thresholds if SEVERITY[d] <= ceiling and r.can_lead_to(d)),
                                COMPLETE) for r in fired if r.strong}
            for d in alone.values():
                if SEVERITY[d] > SEVERITY[decision]:
                    decision = d
            strong = [r for r, d in alone.items() if d == decision != COMPLETE]
        hits.sort(key=lambda h: -h.weight)
        return Assessment(self.pack.id, score, self.pack.level_for(score), decision, table.name, tuple(hits), errors,
                          tuple(strong))


def _rule_error(rule: Rule, exc: Exception) -> str:
    """A rule that raised, as Assessment.errors says it (an overrun says so itself)."""
    return f"{rule.id}: {exc}" if isinstance(exc, OverBudget) else f"{rule.id}: {type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class ExampleFailure:
    rule: str
    file: str
    line: int | None
    expected_to_fire: bool
    message: str

    def __str__(self) -> str:
        what = "should fire but does not" if self.expected_to_fire else "should not fire but does"
        return f"{self.file}:{self.line}: rule {self.rule}: example {what}{': ' + self.message if self.message else ''}"


def example_subject(data: dict) -> Subject:
    """An example's filing: record fields, plus `facts`, `container_status` and `now` (epoch) if given."""
    data = dict(data)
    facts = tuple(Fact(f["kind"], f.get("container", ""), f.get("detail", f["kind"]), tuple(f.get("events", ())),
                       dict(f.get("values", {}))) for f in data.pop("facts", ()))
    status = data.pop("container_status", "available" if facts else "no-containers")
    now = data.pop("now", None)
    return Subject(in_euros(record_from_dict(data), bundled_euro_rates()), facts, status, now)


def check_examples(pack: RulePack) -> list[ExampleFailure]:
    """Runs every rule's examples, through the index as in production (a rule the index would
    never reach fails its positive examples) and on the condition alone."""
    scorer = Scorer(pack)
    failures = []
    for rule in pack.rules:
        for example in rule.examples:
            try:
                subject = example_subject(example.data)
                if rule.id not in {r.id for r in scorer.candidates(subject)} and example.fires:
                    failures.append(ExampleFailure(rule.id, rule.file, example.line, True,
                                                   "the filing type is outside the rule, or the index skips it"))
                    continue
                applies = "F" + subject.record.filing_code[1:] in rule.filings and rule.valid_at(subject.now)
                fired = applies and rule.condition.test(subject)
                explained, _ = rule.condition.explain(subject)
                if explained != rule.condition.test(subject):
                    failures.append(ExampleFailure(rule.id, rule.file, example.line, example.fires,
                                                   "explanation and fast path disagree (a bug in cargoscreen)"))
                elif fired != example.fires:
                    failures.append(ExampleFailure(rule.id, rule.file, example.line, example.fires, ""))
            except (ValueError, KeyError, TypeError) as exc:
                failures.append(ExampleFailure(rule.id, rule.file, example.line, example.fires,
                                               f"example is not a valid filing: {exc}"))
    return failures

