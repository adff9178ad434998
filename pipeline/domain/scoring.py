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
whose threshold the score reaches and that some rule that fired can lead to.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from .conditions import PHRASE, RANGE_TESTS, Evidence, TermMatcher, field_getter, field_spec
from .enrichment import Fact
from .filings import FILING_KINDS
from .rulepack import COMPLETE, RFI, RFS, Rule, RulePack
from .screening import ScreeningRecord, record_from_dict


class Subject:
    """What conditions read: the record, its container-status facts, and the assessment time."""

    __slots__ = ("record", "facts", "container_status", "now", "_roles")

    def __init__(self, record: ScreeningRecord, facts=(), container_status: str = "no-containers",
                 now: float | None = None):
        self.record, self.facts, self.container_status = record, tuple(facts), container_status
        self.now = record.issued_at if now is None else now
        self._roles = None

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

    @property
    def referral(self) -> bool:
        return self.decision != COMPLETE

    def information_requested(self) -> list[tuple[str | None, str]]:
        return [(next((e.pointer for e in h.evidence if e.pointer), None), h.ask) for h in self.hits
                if h.decision == RFI and h.ask]

    def screening_methods(self) -> list[str]:
        return list(dict.fromkeys(m for h in self.hits if h.decision in (RFS, "do-not-load")
                                  for m in h.screening_methods))


class _Features:
    """Reads the index keys a filing carries, for the key shapes the pack's guards use.

    Per scope (the filing, goods, parties, containers, facts): which fields to read as values,
    which to cut into prefixes, which texts to scan for term lists (all lists in one scan).
    """

    def __init__(self, keys: Iterable[tuple], references: dict, statistics):
        eq: dict[str, set[str]] = {}
        prefix: dict[tuple[str, str], set[int]] = {}
        terms: dict[tuple[str, str], set[str]] = {}
        ranges: dict[tuple[str, str], set[tuple[str, float]]] = {}
        self.facts = False
        for key in keys:
            if key[0] == "range":
                ranges.setdefault((key[1], key[2]), set()).add((key[3], key[4]))
            elif key[0] == "eq":
                eq.setdefault(key[1], set()).add(key[2])
            elif key[0] == "prefix":
                prefix.setdefault((key[1], key[2]), set()).add(len(key[3]))
            elif key[0] == "terms":
                terms.setdefault((key[1], key[2]), set()).add(key[3])
            else:
                self.facts = True
        self.eq = {scope: tuple(sorted(names)) for scope, names in eq.items()}
        self.prefix = {k: tuple(sorted(v)) for k, v in prefix.items()}
        self.terms = {}
        for (scope, name), lists in terms.items():
            listed = {n: ([n.removeprefix(PHRASE)] if n.startswith(PHRASE) else references[n].terms)
                      for n in sorted(lists)}
            self.terms[(scope, name)] = TermMatcher(lists=listed)
        self.ranges = {(scope, name): (field_getter(scope, field_spec(scope, name), statistics),
                                       tuple((op, RANGE_TESTS[op], limit) for op, limit in sorted(tests)))
                       for (scope, name), tests in ranges.items()}

    @staticmethod
    def _items(subject: Subject, scope: str):
        if scope == "filing":
            return (subject.record,)
        if scope == "facts":
            return subject.facts
        return getattr(subject.record, scope)

    def read(self, subject: Subject) -> list[tuple]:
        keys: list[tuple] = []
        add = keys.append
        for scope, names in self.eq.items():
            for item in self._items(subject, scope):
                for name in names:
                    if scope == "facts":
                        value = getattr(item, name) if name in ("kind", "container", "detail") else item.values.get(name)
                    elif name == "container_status":
                        value = subject.container_status
                    else:
                        value = getattr(item, name)
                    if value is None:
                        continue
                    if type(value) is tuple or type(value) is list:
                        for v in value:
                            add(("eq", scope, name, v))
                    else:
                        add(("eq", scope, name, value))
        for (scope, name), lengths in self.prefix.items():
            for item in self._items(subject, scope):
                value = getattr(item, name)
                if value:
                    for n in lengths:
                        if n <= len(value):
                            add(("prefix", scope, name, value[:n]))
        for (scope, name), matcher in self.terms.items():
            for item in self._items(subject, scope):
                for listed in matcher.scan(getattr(item, name)):
                    add(("terms", scope, name, listed))
        for (scope, name), (get, tests) in self.ranges.items():
            for item in self._items(subject, scope):
                value = get(subject, item)
                if value is not None:
                    for op, test, limit in tests:
                        if test(value, limit):
                            add(("range", scope, name, op, limit))
        if self.facts:
            for f in subject.facts:
                add(("fact", f.kind))
        return keys


class Scorer:
    """A pack compiled for scoring: per filing type, an index from keys to rules."""

    def __init__(self, pack: RulePack):
        self.pack = pack
        self._by_code: dict[str, tuple[dict[tuple, tuple[int, ...]], tuple[int, ...]]] = {}
        self._lowest = pack.level_for(0.0)
        guards = [r.condition.guard for r in pack.rules]
        self._features = _Features({k for g in guards if g for k in g}, pack.environment.references,
                                   pack.environment.statistics)
        for kind in FILING_KINDS:
            index: dict[tuple, list[int]] = {}
            unguarded = []
            for i, (rule, guard) in enumerate(zip(pack.rules, guards)):
                if kind.code not in rule.filings:
                    continue
                if guard is None:
                    unguarded.append(i)
                else:
                    for key in guard:
                        index.setdefault(key, []).append(i)
            self._by_code[kind.code] = ({k: tuple(v) for k, v in index.items()}, tuple(unguarded))

    def candidates(self, subject: Subject) -> list[Rule]:
        """The rules that may fire for this filing, in pack order."""
        index, unguarded = self._by_code["F" + subject.record.filing_code[1:]]
        chosen = set(unguarded)
        for key in self._features.read(subject):
            rules = index.get(key)
            if rules:
                chosen.update(rules)
        return [self.pack.rules[i] for i in sorted(chosen)]

    def fired(self, subject: Subject) -> tuple[list[Rule], list[str]]:
        fired, errors = [], []
        for rule in self.candidates(subject):
            if not rule.valid_at(subject.now):
                continue
            try:
                if rule.condition.test(subject):
                    fired.append(rule)
            except Exception as exc:  # a rule's bug must not cost the filing its assessment
                errors.append(f"{rule.id}: {type(exc).__name__}: {exc}")
        return fired, errors

    def assess(self, record: ScreeningRecord, facts=(), container_status: str = "no-containers",
               now: float | None = None) -> Assessment:
        subject = Subject(record, facts, container_status, now)
        fired, errors = self.fired(subject)
        hits = []
        for rule in fired:
            _, evidence = rule.condition.explain(subject)
            hits.append(Hit(rule.id, rule.title, rule.area, rule.weight, rule.decision, tuple(evidence), rule.ask,
                            rule.screening_methods))
        return self.decide(record.filing_code, hits, fired, tuple(errors))

    def decide(self, filing_code: str, hits: list[Hit], fired: list[Rule], errors=()) -> Assessment:
        table = self.pack.table_for(filing_code)
        if not hits:  # most filings: nothing to add up
            return Assessment(self.pack.id, 0.0, self._lowest, COMPLETE, table.name, (), errors)
        score = max(0.0, sum(h.weight for h in hits))
        decision = next((d for d, minimum in table.thresholds
                         if score >= minimum and any(r.can_lead_to(d) for r in fired)), COMPLETE)
        hits.sort(key=lambda h: -h.weight)
        return Assessment(self.pack.id, score, self.pack.level_for(score), decision, table.name, tuple(hits), errors)


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
    return Subject(record_from_dict(data), facts, status, now)


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

