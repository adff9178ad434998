"""The condition language of risk rules.

A condition reads like a Python expression, and is parsed by Python's own parser, but only a
small, checked subset is accepted and nothing is ever run by Python's eval:

    any(goods, prefixed(hs_code, ref.precursor_hs) and matches(description, ref.precursor_terms))
      and loading_country in ref.precursor_source_countries
      and not any(parties, id in ref.aeo)

- names: fields of the filing (loading_country, routing_countries, goods, ...); inside a
  quantifier, fields of the item first (hs_code, description), then of the filing;
- ref.NAME: reference data of the pack (sets, term lists, tables); param.NAME: pack parameters;
- and, or, not; == != < <= > >= in, not in; + - * /; constants and lists of constants;
- functions: any, all, count, sum, max, min over a collection; has_fact, matches, prefixed,
  intersects, missing, lookup, len, abs, lower.

A missing value (an optional element not filed) makes every comparison with it false, and
arithmetic with it missing; division by zero gives a missing value. There are no loops but
the quantifiers over the filing's own (bounded) collections, so every condition terminates.

Terminating is not enough: nested quantifiers multiply (count(goods, count(goods, ...)) is
items squared), and one rule that takes seconds holds up every filing behind it. So every
condition's worst case is bounded at compile time (`worst_cost`: nodes evaluated on a filing
with the largest collections the schema allows; quantifiers nest at most
MAX_QUANTIFIER_NESTING deep), and at run time each quantifier charges its items to the
subject's budget before it iterates (`OverBudget` when spent, which the scorer turns into a
rule error). A condition that reads nothing of the filing (`True`, `1 == 1`) is refused.

The compiler turns the checked tree into three things: closures for the fast yes/no
(`Condition.test`), an evaluator that also says which data elements and container events
made it true (`Condition.explain`, run only for rules that fired), and a guard: index keys
of which a filing must have one for the condition to possibly hold (see scoring.py).
"""
from __future__ import annotations

import ast
import difflib
import operator
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, NamedTuple

from .budgets import MAX_COST
from .enrichment import PARTY_HISTORY
from .memo import BoundedMemo, Memo
from .parties import person_kind
from .reference import EU_MEMBER_STATES

MAX_EXPRESSION_CHARS = 4000
MAX_DEPTH = 40
MAX_EVIDENCE = 20  # data elements kept per quantifier in an explanation
# Bounds on what a condition may cost (rules/README.md, "Bounds"). The collections are the
# schema's per-filing maxima (9,999 goods items, houses' parties, equipment); facts follow the
# equipment. A quantifier over them costs its size times its body; nesting multiplies.
COLLECTION_LIMITS = {"goods": 9_999, "parties": 9_999, "containers": 9_999, "facts": 9_999}
MAX_QUANTIFIER_NESTING = 2
OVER_BUDGET = "over its evaluation budget"  # what the error of a rule that went past it says
PHRASE = "phrase:"  # index key of a phrase written in a condition, as opposed to a term list
_WORD = re.compile(r"[a-z0-9]+")
_TEXTS_REMEMBERED = 100_000  # texts a term list keeps its answers for (a worker's memory stays bounded)


class ConditionError(ValueError):
    """A condition that cannot be compiled; column is 1-based within the expression."""

    def __init__(self, message: str, column: int | None = None, line: int | None = None):
        super().__init__(message)
        self.message, self.column, self.line = message, column, line

    def __str__(self) -> str:
        where = f"line {self.line}, " if self.line else ""
        return f"{where}column {self.column}: {self.message}" if self.column else self.message


class OverBudget(RuntimeError):
    """An evaluation would go past its subject's budget (`spent` > `limit`); nothing of it counts."""


def charge(s, n: int) -> None:
    """Charges n node evaluations to the subject; OverBudget before the work, not after."""
    s.spent += n
    if s.spent > s.limit:
        over(s, n)


def over(s, n: int):
    s.spent -= n  # not spent: what is left stays for the other rules
    raise OverBudget(f"{OVER_BUDGET} ({s.limit:,} node evaluations for this filing)")


class Evidence(NamedTuple):
    """One data element (or container fact) behind a rule's hit."""

    pointer: str | None
    value: str
    events: tuple[str, ...] = ()


# -- the vocabulary: what a condition can read ------------------------------------------------
TEXT, NUMBER, LIST, ANY = "text", "number", "list", "any"


@dataclass(frozen=True)
class FieldSpec:
    type: str  # text, number, list, or "collection:<scope>"
    get: Callable[[Any], Any]  # from the scope's object (the subject for filing fields)
    pointer: Callable[[Any, Any], str | None] | None = None  # (subject, object) -> element pointer
    derived: str | None = None  # name of a statistic of the pack it needs (see Statistics)
    of_subject: Callable[[Any, Any], Any] | None = None  # (subject, object) -> value: read from the subject too


class Statistics:
    """Reference distributions behind the statistical fields; the pack provides them."""

    def unit_value_z(self, item) -> float | None:
        return None

    def unit_value_ratio(self, item) -> float | None:
        return None

    def route_share(self, item, loading_country) -> float | None:
        return None

    def package_max_kg(self, item) -> float | None:
        return None

    def package_load(self, item) -> float | None:
        return None

    def piece_value_z(self, item) -> float | None:
        return None

    def piece_value_ratio(self, item) -> float | None:
        return None

    def package_mass_z(self, item) -> float | None:
        return None

    def package_mass_ratio(self, item) -> float | None:
        return None

    def reference(self, name: str, item) -> str | None:
        """Which reference a statistical field of this item was measured against, for its evidence."""
        return None


def _rec(name):
    return lambda s: getattr(s.record, name)


def _rec_pointer(name):
    return lambda s, o: s.record.pointers.get(name)


def _item_pointer(suffix):
    return lambda s, o: f"{o.pointer}/{suffix}" if suffix else o.pointer


def onward_countries(routing: tuple[str, ...]) -> tuple[str, ...]:
    """The countries of an itinerary after its first member state: where the goods go on from the
    Union (CN NL LT BY -> LT BY). Those before it are the way in (the rail land bridge CN KZ RU BY PL)."""
    for i, country in enumerate(routing):
        if country in EU_MEMBER_STATES:
            return routing[i + 1:]
    return ()


def _party_history(name):
    """A party's history before this filing (its party-history fact, parties.py); missing when not tracked."""
    def get(s, party):
        for f in s.facts:
            if f.kind == PARTY_HISTORY and f.values.get("pointer") == party.pointer:
                return f.values.get(name)
        return None
    return get


def _fact_value(name):
    """A value of a fact's `values`; the getter says which (generated code reads it inline)."""
    def get(f):
        return f.values.get(name)
    get.fact_value = name
    return get


def _fact_pointer(s, fact):
    """The fact's container, else the data element it is about (a data-quality warning, an RFI correction)."""
    return next((c.pointer for c in s.record.containers if c.container_id == fact.container),
                fact.values.get("pointer"))


FILING_FIELDS: dict[str, FieldSpec] = {
    **{name: FieldSpec(TEXT, _rec(name), _rec_pointer(name)) for name in (
        "filing_code", "mode", "level", "lrn", "office_of_first_entry", "entry_country", "place_of_loading",
        "loading_country", "place_of_unloading", "unloading_country", "vessel_imo", "voyage", "conveyance",
        "means_nationality", "transport_document", "master_document", "declarant", "filer")},
    "routing_countries": FieldSpec(LIST, _rec("routing_countries"), _rec_pointer("routing_countries")),
    "onward_countries": FieldSpec(LIST, lambda s: onward_countries(s.record.routing_countries),
                                  _rec_pointer("routing_countries")),
    "house_documents": FieldSpec(LIST, _rec("house_documents")),
    "total_gross_mass": FieldSpec(NUMBER, _rec("total_gross_mass"), _rec_pointer("total_gross_mass")),
    "total_packages": FieldSpec(NUMBER, _rec("total_packages"), _rec_pointer("total_packages")),
    "receptacles": FieldSpec(NUMBER, _rec("receptacles")),
    "container_status": FieldSpec(TEXT, lambda s: s.container_status),
    "goods": FieldSpec("collection:goods", _rec("goods")),
    "parties": FieldSpec("collection:parties", _rec("parties")),
    "consignors": FieldSpec("collection:parties", lambda s: s.by_role("consignor")),
    "consignees": FieldSpec("collection:parties", lambda s: s.by_role("consignee")),
    "notify_parties": FieldSpec("collection:parties", lambda s: s.by_role("notify")),
    "containers": FieldSpec("collection:containers", _rec("containers")),
    "facts": FieldSpec("collection:facts", lambda s: s.facts),
}

_GOODS_POINTERS = {"number": "ItemNumber", "description": "Description", "hs_code": "HSCode", "hs2": "HSCode",
                   "hs4": "HSCode", "hs6": "HSCode", "undg": "UNDGNumber", "gross_mass": "GrossMass",
                   "packages": "Packaging", "package_types": "Packaging", "value": "DeclaredValue",
                   "currency": "DeclaredValue", "value_eur": "DeclaredValue", "value_per_kg": "DeclaredValue",
                   "kg_per_package": "GrossMass",
                   "containers": "ContainerRef", "house": ""}
SCOPES: dict[str, dict[str, FieldSpec]] = {
    "goods": {
        **{name: FieldSpec(TEXT if name in ("description", "hs_code", "hs2", "hs4", "hs6", "undg", "currency")
                           else LIST if name in ("package_types", "containers") else NUMBER,
                           operator.attrgetter(name), _item_pointer(suffix))
           for name, suffix in _GOODS_POINTERS.items()},
        "unit_value_z": FieldSpec(NUMBER, None, _item_pointer("DeclaredValue"), "unit_value_z"),
        "unit_value_ratio": FieldSpec(NUMBER, None, _item_pointer("DeclaredValue"), "unit_value_ratio"),
        "route_share": FieldSpec(NUMBER, None, _item_pointer("HSCode"), "route_share"),
        "package_max_kg": FieldSpec(NUMBER, None, _item_pointer("Packaging"), "package_max_kg"),
        "package_load": FieldSpec(NUMBER, None, _item_pointer("GrossMass"), "package_load"),
        "piece_value_z": FieldSpec(NUMBER, None, _item_pointer("DeclaredValue"), "piece_value_z"),
        "piece_value_ratio": FieldSpec(NUMBER, None, _item_pointer("DeclaredValue"), "piece_value_ratio"),
        "package_mass_z": FieldSpec(NUMBER, None, _item_pointer("GrossMass"), "package_mass_z"),
        "package_mass_ratio": FieldSpec(NUMBER, None, _item_pointer("GrossMass"), "package_mass_ratio"),
    },
    "parties": {
        **{name: FieldSpec(TEXT, operator.attrgetter(name), _item_pointer(suffix)) for name, suffix in (
            ("role", ""), ("id", "IdentificationNumber"), ("name", "Name"), ("street", "Address"),
            ("city", "Address"), ("postcode", "Address"), ("country", "Address"), ("name_key", "Name"),
            ("address_key", "Address"))},
        # consignor, consignee, notify party: filings of this filer naming it before this one, and days since
        # the first of them (0 for a party never seen; missing for other roles, or when the store was away)
        **{name: FieldSpec(NUMBER, None, _item_pointer(""), of_subject=_party_history(name))
           for name in ("filings", "first_seen_days")},
        # "natural": a private person at a residential address; "legal": an id, legal form or business word
        "person": FieldSpec(TEXT, person_kind, _item_pointer("Name")),
    },
    "containers": {
        "container_id": FieldSpec(TEXT, operator.attrgetter("container_id"), _item_pointer("ContainerId")),
        "packed_status": FieldSpec(TEXT, operator.attrgetter("packed_status"), _item_pointer("PackedStatus")),
        "size_type": FieldSpec(TEXT, operator.attrgetter("size_type"), _item_pointer("SizeType")),
        "seals": FieldSpec(LIST, operator.attrgetter("seals"), _item_pointer("Seal")),
    },
    "facts": {
        "kind": FieldSpec(TEXT, operator.attrgetter("kind"), _fact_pointer),
        "container": FieldSpec(TEXT, operator.attrgetter("container"), _fact_pointer),
        "detail": FieldSpec(TEXT, operator.attrgetter("detail"), _fact_pointer),
        **{name: FieldSpec(kind, _fact_value(name), _fact_pointer) for name, kind in (
            ("km", NUMBER), ("hours", NUMBER), ("kmh", NUMBER), ("age_hours", NUMBER), ("location", TEXT),
            ("code", TEXT), ("countries", LIST), ("ports", LIST), ("before", TEXT), ("after", TEXT),
            ("controlled", TEXT), ("category", TEXT), ("declared", TEXT), ("proposed", LIST),
            ("brand", TEXT), ("value_eur", NUMBER), ("ratio", NUMBER))},
    },
}


# -- reference data a condition can name -------------------------------------------------------
class TermMatcher:
    """Whole-word phrase matching of free text against term lists ('ephedrine', 'red phosphorus').

    A list may hold exclusions, written `!phrase`: a term found inside an exclusion of its list
    is not a hit ('cash' in 'cash register', 'documents' in 'provenance documents'), so a
    list says what it means in context. One matcher can hold several named lists (the scorer's
    index reads every list in one scan of a description); `find` answers for the first list.
    Answers are cached: descriptions repeat.
    """

    def __init__(self, terms: Iterable[str] = (), lists: dict[str, Iterable[str]] | None = None):
        self.phrases: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        self.exclusions: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        self.names: list[str] = []
        for name, listed in (lists or {"": terms}).items():
            self.names.append(name)
            for term in listed:
                excluded = term.startswith("!")
                words = tuple(_WORD.findall(term.lower()))
                if words:
                    (self.exclusions if excluded else self.phrases).setdefault(words[0], []).append((words, name))
        self._cache = BoundedMemo(_TEXTS_REMEMBERED)  # text -> scan(text)
        # text -> find(text): generated conditions read `found[text]`, one subscript where find is two calls
        self.found = Memo(self.find, _TEXTS_REMEMBERED)

    @staticmethod
    def _at(words: list[str], i: int, index: dict) -> Iterator[tuple[tuple[str, ...], str]]:
        for phrase, name in index.get(words[i], ()):
            if tuple(words[i:i + len(phrase)]) == phrase:
                yield phrase, name

    def scan(self, text: str | None) -> dict[str, str]:
        """List name -> the first phrase of that list found in the text (outside the list's exclusions)."""
        if not text:
            return {}
        hits = self._cache.get(text)
        if hits is not None:
            return hits
        hits = {}
        words = _WORD.findall(text.lower())
        excluded: dict[str, set[int]] = {}  # list -> word positions an exclusion of it covers
        if self.exclusions:
            for i in range(len(words)):
                for phrase, name in self._at(words, i, self.exclusions):
                    excluded.setdefault(name, set()).update(range(i, i + len(phrase)))
        for i in range(len(words)):
            for phrase, name in self._at(words, i, self.phrases):
                if name not in hits and excluded.get(name, _NONE).isdisjoint(range(i, i + len(phrase))):
                    hits[name] = " ".join(phrase)
        return self._cache.remember(text, hits)

    def find(self, text: str | None) -> str | None:
        return self.scan(text).get(self.names[0]) if self.names else None

    @property
    def terms(self) -> list[str]:
        """The list as written: terms, and exclusions with their `!`."""
        return [" ".join(p) for entries in self.phrases.values() for p, _ in entries] + \
            ["!" + " ".join(p) for entries in self.exclusions.values() for p, _ in entries]


_NONE: frozenset = frozenset()


class RefSet:
    """A reference list; entries may expire (valid_until, epoch seconds)."""

    def __init__(self, values: Iterable[str], expiry: dict[str, float] | None = None):
        self.values = frozenset(values)
        self.expiry = expiry or {}
        self.prefix_lengths = tuple(sorted({len(v) for v in self.values}))

    def contains(self, value, now: float) -> bool:
        if value not in self.values:
            return False
        until = self.expiry.get(value)
        return until is None or now < until

    def prefix_of(self, value: str | None, now: float) -> str | None:
        if not value:
            return None
        for n in self.prefix_lengths:
            if n <= len(value) and self.contains(value[:n], now):
                return value[:n]
        return None


class RefTable:
    """Rows keyed by one column; prefix tables find the longest listed prefix of a key (HS codes)."""

    def __init__(self, rows: dict[str, dict[str, Any]], prefix: bool = False):
        self.rows, self.prefix = rows, prefix
        self.lengths = sorted({len(k) for k in rows}, reverse=True)

    def get(self, key) -> dict[str, Any] | None:
        if key is None:
            return None
        if not self.prefix:
            return self.rows.get(key)
        for n in self.lengths:
            row = self.rows.get(key[:n]) if n <= len(key) else None
            if row is not None:
                return row
        return None


# -- compiled nodes ----------------------------------------------------------------------------
Fast = Callable[[Any, Any], Any]  # (subject, item) -> value
Explained = tuple[Any, list]  # (value, evidence)


class Node:
    type = ANY
    own_cost = 1  # what evaluating this node costs, in node evaluations (its children apart)

    def fast(self) -> Fast:
        raise NotImplementedError

    def explain(self, s, item) -> Explained:
        raise NotImplementedError

    def guard(self) -> frozenset | None:
        """Index keys of which a filing needs one for this to be true; None: no such keys."""
        return None

    def children(self) -> tuple["Node", ...]:
        return ()


class Const(Node):
    def __init__(self, value):
        self.value = value
        self.type = NUMBER if isinstance(value, (int, float)) and not isinstance(value, bool) else \
            TEXT if isinstance(value, str) else LIST if isinstance(value, frozenset) else ANY

    def fast(self):
        v = self.value
        return lambda s, i: v

    def explain(self, s, item):
        return self.value, []


class Ref(Node):
    def __init__(self, name: str, value):
        self.name, self.value = name, value
        self.type = "ref"


def field_getter(scope: str, spec: FieldSpec, statistics: Statistics) -> Fast:
    """(subject, item) -> the field's value; the same for conditions and for the scorer's index."""
    get = spec.get
    if spec.of_subject:
        return spec.of_subject
    if spec.derived == "route_share":
        fn = statistics.route_share
        return lambda s, i: fn(i, s.record.loading_country)
    if spec.derived:
        fn = getattr(statistics, spec.derived)
        return lambda s, i: fn(i)
    if scope == "filing":
        return lambda s, i: get(s)
    return lambda s, i: get(i)


def field_spec(scope: str, name: str) -> FieldSpec:
    return (FILING_FIELDS if scope == "filing" else SCOPES[scope])[name]


class FieldRef(Node):
    def __init__(self, scope: str, name: str, spec: FieldSpec, statistics: Statistics):
        self.scope, self.name, self.spec = scope, name, spec
        self.type = spec.type
        self._get = field_getter(scope, spec, statistics)
        self._statistics = statistics

    def fast(self):
        return self._get

    def explain(self, s, item):
        value = self._get(s, item)
        if value is None or self.spec.pointer is None or self.type.startswith("collection"):
            return value, []
        shown = " ".join(value) if isinstance(value, tuple) else value if isinstance(value, str) else \
            f"{value:.4g}" if isinstance(value, float) else str(value)
        target = item if self.scope != "filing" else None
        events = tuple(item.events) if self.scope == "facts" else ()
        # A statistic names the reference it was measured against ("subheading 851713, n=412, ...").
        reference = self._statistics.reference(self.name, item) if self.spec.derived else None
        shown = f"{shown} (reference: {reference})" if reference else shown
        return value, [Evidence(self.spec.pointer(s, target), f"{self.name} = {shown}", events)]


_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge}
_RANGE = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
RANGE_TESTS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


class Compare(Node):
    type = "bool"

    def __init__(self, op, left: Node, right: Node):
        self.op, self.left, self.right = op, left, right

    def fast(self):
        op, left, right = _COMPARE[self.op], self.left.fast(), self.right.fast()
        if isinstance(self.right, Const):
            c = self.right.value

            def compare_const(s, i):
                v = left(s, i)
                return v is not None and op(v, c)
            return compare_const

        def compare(s, i):
            a, b = left(s, i), right(s, i)
            return a is not None and b is not None and op(a, b)
        return compare

    def explain(self, s, item):
        (a, ea), (b, eb) = self.left.explain(s, item), self.right.explain(s, item)
        ok = a is not None and b is not None and _COMPARE[self.op](a, b)
        return ok, (ea + eb if ok else [])

    def children(self):
        return self.left, self.right

    def guard(self):
        if not isinstance(self.left, FieldRef) or not isinstance(self.right, Const):
            return None
        if self.op is ast.Eq and self.left.type == TEXT and not self.left.spec.derived:
            return frozenset({("eq", self.left.scope, self.left.name, self.right.value)})
        if self.left.type == NUMBER and self.op in _RANGE and isinstance(self.right.value, (int, float)):
            # The index computes the value per item and emits the key when the comparison holds.
            return frozenset({("range", self.left.scope, self.left.name, _RANGE[self.op], self.right.value)})
        return None


class Member(Node):
    """x in container / x not in container: a list constant, a reference set, or a list field."""

    type = "bool"

    def __init__(self, left: Node, right: Node, negate: bool):
        self.left, self.right, self.negate = left, right, negate

    def fast(self):
        left, negate = self.left.fast(), self.negate
        if isinstance(self.right, Ref):
            ref = self.right.value
            values, expiry = ref.values, ref.expiry
            if not expiry:
                def in_ref(s, i):
                    v = left(s, i)
                    return v is not None and (v in values) != negate
                return in_ref

            def in_expiring_ref(s, i):
                v = left(s, i)
                return v is not None and ref.contains(v, s.now) != negate
            return in_expiring_ref
        right = self.right.fast()

        def member(s, i):
            v, c = left(s, i), right(s, i)
            return v is not None and c is not None and (v in c) != negate
        return member

    def explain(self, s, item):
        value, evidence = self.left.explain(s, item)
        if isinstance(self.right, Ref):
            ok = value is not None and self.right.value.contains(value, s.now) != self.negate
            if ok and not self.negate:
                evidence = [Evidence(e.pointer, f"{e.value}, listed in {self.right.name}", e.events) for e in evidence]
        else:
            c, ec = self.right.explain(s, item)
            ok = value is not None and c is not None and (value in c) != self.negate
            evidence = evidence + ec
        return ok, (evidence if ok else [])

    def children(self):
        return self.left, self.right

    def guard(self):
        if self.negate or not isinstance(self.left, (FieldRef, Const)):
            return None
        if isinstance(self.left, FieldRef) and self.left.type == TEXT and not self.left.spec.derived:
            if isinstance(self.right, Ref) and isinstance(self.right.value, RefSet):
                return frozenset(("eq", self.left.scope, self.left.name, v) for v in self.right.value.values)
            if isinstance(self.right, Const) and isinstance(self.right.value, frozenset):
                return frozenset(("eq", self.left.scope, self.left.name, v) for v in self.right.value)
        if isinstance(self.left, Const) and isinstance(self.right, FieldRef) and self.right.type == LIST \
                and not self.right.spec.derived:
            return frozenset({("eq", self.right.scope, self.right.name, self.left.value)})
        return None


class Not(Node):
    type = "bool"

    def __init__(self, operand: Node):
        self.operand = operand

    def fast(self):
        f = self.operand.fast()
        return lambda s, i: not f(s, i)

    def explain(self, s, item):
        value, _ = self.operand.explain(s, item)
        return (not value), []

    def children(self):
        return self.operand,


# How likely a filing is to carry one key: the guard of an `and` is its most selective part's.
# Categories (a party's role, the mode) are on most filings; identifiers, HS prefixes and terms on few.
_CATEGORIES = frozenset({"role", "mode", "level", "filing_code", "currency", "packed_status", "container_status",
                         "kind", "size_type", "package_types", "person"})
_COUNTRIES = frozenset({"loading_country", "unloading_country", "routing_countries", "country", "entry_country",
                        "means_nationality", "countries"})


def _key_odds(key: tuple) -> float:
    if key[0] == "range":
        return 0.05
    if key[0] == "eq" and key[2] in _CATEGORIES:
        return 0.3
    if key[0] == "eq" and key[2] in _COUNTRIES:
        return 0.05
    return 0.02 if key[0] in ("fact", "terms") else 0.01


def _odds(keys: frozenset) -> float:
    return sum(_key_odds(k) for k in keys)


class And(Node):
    type = "bool"

    def __init__(self, parts: list[Node]):
        self.parts = parts

    def fast(self):
        fs = [p.fast() for p in self.parts]
        if len(fs) == 2:
            a, b = fs
            return lambda s, i: bool(a(s, i)) and bool(b(s, i))
        return lambda s, i: all(f(s, i) for f in fs)

    def explain(self, s, item):
        evidence = []
        for p in self.parts:
            value, e = p.explain(s, item)
            if not value:
                return False, []
            evidence += e
        return True, evidence

    def guard(self):
        guards = [g for g in (p.guard() for p in self.parts) if g]
        return min(guards, key=_odds) if guards else None

    def children(self):
        return tuple(self.parts)


class Or(Node):
    type = "bool"

    def __init__(self, parts: list[Node]):
        self.parts = parts

    def fast(self):
        fs = [p.fast() for p in self.parts]
        return lambda s, i: any(f(s, i) for f in fs)

    def explain(self, s, item):
        for p in self.parts:
            value, e = p.explain(s, item)
            if value:
                return True, e
        return False, []

    def guard(self):
        guards = [p.guard() for p in self.parts]
        return frozenset().union(*guards) if all(guards) else None

    def children(self):
        return tuple(self.parts)


_ARITH = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


class Arith(Node):
    type = NUMBER

    def __init__(self, op, left: Node, right: Node):
        self.op, self.left, self.right = _ARITH[op], left, right

    def fast(self):
        op, left, right = self.op, self.left.fast(), self.right.fast()

        def arith(s, i):
            a, b = left(s, i), right(s, i)
            if a is None or b is None:
                return None
            try:
                return op(a, b)
            except ZeroDivisionError:
                return None
        return arith

    def explain(self, s, item):
        (a, ea), (b, eb) = self.left.explain(s, item), self.right.explain(s, item)
        if a is None or b is None:
            return None, []
        try:
            return self.op(a, b), ea + eb
        except ZeroDivisionError:
            return None, []

    def children(self):
        return self.left, self.right


class Quantifier(Node):
    """any / all / count / sum / max / min over a collection of the filing."""

    def __init__(self, kind: str, collection: FieldRef, cond: Node | None, expr: Node | None):
        self.kind, self.collection, self.cond, self.expr = kind, collection, cond, expr
        self.type = "bool" if kind in ("any", "all") else NUMBER
        body = tuple(n for n in (cond, expr) if n is not None)
        self.size = COLLECTION_LIMITS[collection.type.split(":", 1)[1]]
        # Per item: what the body costs itself (a nested quantifier charges its own items at run time).
        self.weight = 1 + sum(worst_cost(n, nested=False) for n in body)
        self.cost = 2 + self.size * (1 + sum(worst_cost(n) for n in body)) if body else 2
        self._sort = None  # the condition's fast path, with which explain() picks the items it explains

    def children(self):
        return tuple(n for n in (self.collection, self.cond, self.expr) if n is not None)

    def fast(self):
        get = self.collection.spec.get  # collections are the filing's: read straight off the subject
        cond = self.cond.fast() if self.cond else None
        expr = self.expr.fast() if self.expr else None
        kind, weight = self.kind, self.weight
        if kind == "count" and cond is None:
            return lambda s, i: len(get(s))

        def items(s, i):  # charge() inlined: this is every quantifier's hot path
            xs = get(s)
            n = len(xs) * weight
            s.spent += n
            if s.spent > s.limit:
                over(s, n)
            return xs
        if kind == "any":
            return lambda s, i: any(cond(s, x) for x in items(s, i))
        if kind == "all":
            return lambda s, i: all(cond(s, x) for x in items(s, i))
        if kind == "count":
            return lambda s, i: sum(1 for x in items(s, i) if cond(s, x))

        def aggregate(s, i):
            values = [v for x in items(s, i) if cond is None or cond(s, x) for v in (expr(s, x),) if v is not None]
            if not values:
                return 0 if kind == "sum" else None
            return sum(values) if kind == "sum" else max(values) if kind == "max" else min(values)
        return aggregate

    def explain(self, s, item):
        items = self.collection.fast()(s, item)
        charge(s, len(items) * self.weight)
        matched, evidence = [], []
        # The items to explain: those the condition holds for, as the subject's scorer tests them (its
        # generated code, see compiled_scoring.py), else as the closures do (built once: per referral
        # they were most of its cost).
        tests = getattr(s, "item_tests", None)
        test = tests.get(self) if tests else None
        if test is None:
            test = self._sort
            if test is None and self.cond is not None:
                test = self._sort = self.cond.fast()
        for x in items:
            if test is not None and not test(s, x):  # the fast path sorts; only matches are explained
                continue
            matched.append(x)
            if self.cond is not None and len(evidence) < MAX_EVIDENCE:
                evidence += self.cond.explain(s, x)[1]
        if self.kind == "any":
            return bool(matched), evidence
        if self.kind == "all":
            return len(matched) == len(items), evidence if len(matched) == len(items) else []
        if self.kind == "count":
            return len(matched), evidence
        values = []
        for x in matched:
            v, e = self.expr.explain(s, x)
            if v is not None:
                values.append(v)
                if len(evidence) < MAX_EVIDENCE:
                    evidence += e
        if not values:
            return (0 if self.kind == "sum" else None), []
        return (sum(values) if self.kind == "sum" else max(values) if self.kind == "max" else min(values)), evidence

    def guard(self):
        return self.cond.guard() if self.kind == "any" and self.cond is not None else None


class AtLeast(Node):
    """count(...) >= n, n > 0: true only if the counted condition holds somewhere (indexable)."""

    type = "bool"

    def __init__(self, compare: Compare):
        self.compare = compare

    def fast(self):
        return self.compare.fast()

    def explain(self, s, item):
        return self.compare.explain(s, item)

    def guard(self):
        q = self.compare.left
        return q.cond.guard() if q.cond is not None else None

    def children(self):
        return self.compare,


class Call(Node):
    """matches / prefixed / intersects / missing / lookup / len / abs / lower."""

    def __init__(self, name: str, args: list[Node]):
        self.name, self.args = name, args
        self._impl_fn = None
        self.matcher = None  # matches(): its term matcher, made with its body (_build)
        if name == "matches":  # scans a text of up to 512 characters: measured ~10 times a comparison
            self.own_cost = 10
        self.type = {"matches": "bool", "prefixed": "bool", "intersects": "bool", "missing": "bool", "lookup": ANY,
                     "len": NUMBER, "abs": NUMBER, "lower": TEXT}[name]

    def _impl(self):
        """The function's body, built once (a phrase's matcher and its cache live with it)."""
        if self._impl_fn is None:
            self._impl_fn = self._build()
        return self._impl_fn

    def _build(self):
        name, args = self.name, self.args
        if name == "matches":
            target = args[1]
            matcher = self.matcher = target.value if isinstance(target, Ref) else TermMatcher([target.value])
            return lambda s, v: matcher.find(v)
        if name == "prefixed":
            target = args[1]
            if isinstance(target, Ref):
                ref = target.value
                return lambda s, v: ref.prefix_of(v, s.now)
            prefixes = tuple(target.value) if isinstance(target.value, frozenset) else (target.value,)
            return lambda s, v: next((p for p in prefixes if v and v.startswith(p)), None)
        if name == "intersects":
            target = args[1]
            if isinstance(target, Ref):
                ref = target.value
                return lambda s, v: next((x for x in v or () if ref.contains(x, s.now)), None)
            values = target.value
            return lambda s, v: next((x for x in v or () if x in values), None)
        if name == "missing":
            return lambda s, v: "missing" if v is None or v == () else None
        if name == "lookup":
            table, column = args[0].value, args[2].value

            def lookup(s, v):
                row = table.get(v)
                return row.get(column) if row else None
            return lookup
        if name == "len":
            return lambda s, v: len(v) if v is not None else None
        if name == "abs":
            return lambda s, v: abs(v) if v is not None else None
        return lambda s, v: v.lower() if v is not None else None

    def _subject(self) -> Node:
        return self.args[1] if self.name == "lookup" else self.args[0]

    def children(self):
        return tuple(self.args)

    def fast(self):
        impl, subject = self._impl(), self._subject().fast()
        if self.type == "bool":
            return lambda s, i: impl(s, subject(s, i)) is not None
        return lambda s, i: impl(s, subject(s, i))

    def explain(self, s, item):
        value, evidence = self._subject().explain(s, item)
        out = self._impl()(s, value)
        if self.name == "missing":
            subject = self.args[0]
            pointer = subject.spec.pointer(s, item if subject.scope != "filing" else None) \
                if isinstance(subject, FieldRef) and subject.spec.pointer else None
            return (True, [Evidence(pointer, f"{subject.name} not given")]) if out else (False, [])
        if self.type == "bool":
            if out is None:
                return False, []
            label = {"matches": "mentions", "prefixed": "starts with", "intersects": "includes"}[self.name]
            listed = f" ({self.args[1].name})" if isinstance(self.args[1], Ref) else ""
            # Evidence(...) written out: _replace costs several calls per element
            return True, [Evidence(e.pointer, f"{e.value}: {label} {out}{listed}", e.events) for e in evidence]
        return out, (evidence if out is not None else [])

    def guard(self):
        subject = self.args[0]
        if self.name not in ("matches", "prefixed", "intersects") or not isinstance(subject, FieldRef) \
                or subject.spec.derived:
            return None
        target = self.args[1]
        if self.name == "matches":
            name = target.name if isinstance(target, Ref) else PHRASE + target.value
            return frozenset({("terms", subject.scope, subject.name, name)})
        if self.name == "prefixed":
            values = target.value.values if isinstance(target, Ref) else \
                target.value if isinstance(target.value, frozenset) else (target.value,)
            return frozenset(("prefix", subject.scope, subject.name, v) for v in values)
        if self.name == "intersects" and subject.type == LIST:
            values = target.value.values if isinstance(target, Ref) else target.value
            return frozenset(("eq", subject.scope, subject.name, v) for v in values)
        return None


class HasFact(Node):
    type = "bool"

    def __init__(self, kinds: frozenset):
        self.kinds = kinds

    def fast(self):
        kinds = self.kinds
        return lambda s, i: any(f.kind in kinds for f in s.facts)

    def explain(self, s, item):
        hits = [f for f in s.facts if f.kind in self.kinds]
        return bool(hits), [Evidence(_fact_pointer(s, f), f"{f.kind}: {f.detail}", tuple(f.events))
                            for f in hits[:MAX_EVIDENCE]]

    def guard(self):
        return frozenset(("fact", k) for k in self.kinds)


def worst_cost(node: Node, nested: bool = True) -> int:
    """Nodes evaluated for one filing whose collections are as large as the schema allows.
    nested=False: what a node costs itself, its quantifiers and has_fact counted once (at run
    time a quantifier charges its own items)."""
    if isinstance(node, Quantifier):
        return node.cost if nested else 1
    if isinstance(node, HasFact):
        return 1 + COLLECTION_LIMITS["facts"] if nested else 1
    return node.own_cost + sum(worst_cost(n, nested) for n in node.children())


_UNKNOWN = object()


def constant(node: Node):
    """The value a node has whatever the filing, or _UNKNOWN when it reads the filing. Cheap and
    partial: the tautologies it misses, risk information checks against generated traffic."""
    if isinstance(node, Const):
        return node.value
    if isinstance(node, AtLeast):
        return constant(node.compare)
    if isinstance(node, Not):
        value = constant(node.operand)
        return _UNKNOWN if value is _UNKNOWN else not value
    if isinstance(node, (And, Or)):
        values = [constant(p) for p in node.parts]
        decisive = isinstance(node, Or)  # a true part decides an `or`, a false one an `and`
        if any(v is not _UNKNOWN and bool(v) is decisive for v in values):
            return decisive
        return _UNKNOWN if _UNKNOWN in values else not decisive
    if isinstance(node, (Compare, Member)):
        a, b = constant(node.left), constant(node.right)
        if _UNKNOWN in (a, b):
            return _UNKNOWN
        if a is None or b is None:
            return False
        try:
            return (a in b) != node.negate if isinstance(node, Member) else _COMPARE[node.op](a, b)
        except TypeError:  # fails on every filing alike: a rule error, not a constant
            return _UNKNOWN
    return _UNKNOWN


# -- the compiler ------------------------------------------------------------------------------
_FUNCTIONS = {"any", "all", "count", "sum", "max", "min", "has_fact", "matches", "prefixed", "intersects", "missing",
              "lookup", "len", "abs", "lower"}


@dataclass(frozen=True)
class Environment:
    """What a pack offers its conditions: reference data by name, parameters, statistics."""

    references: dict[str, Any]
    parameters: dict[str, Any]
    statistics: Statistics


class _Compiler:
    def __init__(self, env: Environment):
        self.env = env

    def fail(self, node: ast.AST, message: str):
        raise ConditionError(message, getattr(node, "col_offset", -1) + 1)

    def compile(self, node: ast.AST, scopes: tuple[str, ...], depth: int = 0) -> Node:
        if depth > MAX_DEPTH:
            self.fail(node, f"nested more than {MAX_DEPTH} levels")
        d = depth + 1
        if isinstance(node, ast.BoolOp):
            parts = [self.boolean(v, scopes, d) for v in node.values]
            return And(parts) if isinstance(node.op, ast.And) else Or(parts)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                return Not(self.boolean(node.operand, scopes, d))
            if isinstance(node.op, ast.USub):
                operand = self.compile(node.operand, scopes, d)
                if isinstance(operand, Const) and operand.type == NUMBER:
                    return Const(-operand.value)
                return Arith(ast.Sub, Const(0), self.number(operand, node.operand))
            self.fail(node, f"operator {type(node.op).__name__} is not part of the language")
        if isinstance(node, ast.Compare):
            return self.comparison(node, scopes, d)
        if isinstance(node, ast.BinOp):
            if type(node.op) not in _ARITH:
                self.fail(node, f"operator {type(node.op).__name__} is not part of the language (+ - * / are)")
            left = self.number(self.compile(node.left, scopes, d), node.left)
            right = self.number(self.compile(node.right, scopes, d), node.right)
            return Arith(type(node.op), left, right)
        if isinstance(node, ast.Constant):
            if not isinstance(node.value, (str, int, float, bool, type(None))):
                self.fail(node, f"constant {node.value!r} is not allowed")
            return Const(node.value)
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            values = []
            for element in node.elts:
                c = self.compile(element, scopes, d)
                if not isinstance(c, Const) or c.type not in (TEXT, NUMBER):
                    self.fail(element, "a list may hold only text and number constants")
                values.append(c.value)
            return Const(frozenset(values))
        if isinstance(node, ast.Name):
            return self.name(node, scopes)
        if isinstance(node, ast.Attribute):
            return self.attribute(node)
        if isinstance(node, ast.Call):
            return self.call(node, scopes, d)
        self.fail(node, f"{type(node).__name__} is not part of the condition language")

    def boolean(self, node, scopes, depth) -> Node:
        compiled = self.compile(node, scopes, depth)
        if compiled.type.startswith("collection") or compiled.type == "ref":
            self.fail(node, "a collection or reference is not a condition; use any(...), count(...) or `in`")
        return compiled

    def number(self, compiled: Node, node) -> Node:
        if compiled.type not in (NUMBER, ANY):
            self.fail(node, f"arithmetic needs numbers, not {compiled.type}")
        return compiled

    def name(self, node: ast.Name, scopes) -> Node:
        for scope in scopes:
            spec = (FILING_FIELDS if scope == "filing" else SCOPES[scope]).get(node.id)
            if spec is not None:
                return FieldRef(scope, node.id, spec, self.env.statistics)
        if node.id in ("True", "False", "None"):
            return Const({"True": True, "False": False, "None": None}[node.id])
        known = sorted({n for scope in scopes for n in (FILING_FIELDS if scope == "filing" else SCOPES[scope])})
        close = difflib.get_close_matches(node.id, known, n=3)
        hint = f"did you mean {' or '.join(close)}?" if close else f"known here: {', '.join(known)}"
        self.fail(node, f"unknown name {node.id!r}; {hint}")

    def attribute(self, node: ast.Attribute) -> Node:
        if not isinstance(node.value, ast.Name) or node.value.id not in ("ref", "param"):
            self.fail(node, "only ref.NAME (reference data) and param.NAME (pack parameters) use a dot")
        if node.attr.startswith("_"):
            self.fail(node, f"{node.attr!r} is not a valid name")
        if node.value.id == "ref":
            if node.attr not in self.env.references:
                self.fail(node, f"no reference data {node.attr!r} in this pack; it has: "
                                f"{', '.join(sorted(self.env.references)) or 'none'}")
            return Ref(node.attr, self.env.references[node.attr])
        if node.attr not in self.env.parameters:
            self.fail(node, f"no parameter {node.attr!r} in this pack; it has: "
                            f"{', '.join(sorted(self.env.parameters)) or 'none'}")
        value = self.env.parameters[node.attr]
        return Const(frozenset(value) if isinstance(value, list) else value)

    def comparison(self, node: ast.Compare, scopes, depth) -> Node:
        parts, left, left_node = [], self.compile(node.left, scopes, depth), node.left
        for op, right_node in zip(node.ops, node.comparators):
            right = self.compile(right_node, scopes, depth)
            if isinstance(op, (ast.In, ast.NotIn)):
                ok = (isinstance(right, Ref) and isinstance(right.value, RefSet)) or right.type == LIST
                if not ok:
                    self.fail(right_node, "`in` needs a list, a list field or a reference set (ref.NAME)")
                if isinstance(left, Ref) or left.type.startswith("collection"):  # e.g. x in ref.A in ref.B
                    self.fail(left_node, "the left of `in` is a value (a field or a constant), not a list")
                parts.append(Member(left, right, isinstance(op, ast.NotIn)))
            elif type(op) in _COMPARE:
                for side, n in ((left, node.left), (right, right_node)):
                    if side.type.startswith("collection") or side.type in ("ref", LIST):
                        self.fail(n, f"cannot compare a {side.type}; use `in`, len(...) or a quantifier")
                if TEXT in (left.type, right.type) and NUMBER in (left.type, right.type):
                    self.fail(node, "compares text with a number")
                compare = Compare(type(op), left, right)
                if isinstance(left, Quantifier) and left.kind == "count" and isinstance(right, Const) \
                        and isinstance(right.value, (int, float)) and (
                            (type(op) is ast.GtE and right.value >= 1) or (type(op) is ast.Gt and right.value >= 0)):
                    compare = AtLeast(compare)
                parts.append(compare)
            else:
                self.fail(node, f"operator {type(op).__name__} is not part of the language")
            left, left_node = right, right_node
        return parts[0] if len(parts) == 1 else And(parts)

    def call(self, node: ast.Call, scopes, depth) -> Node:
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            name = f" {node.func.id!r}" if isinstance(node.func, ast.Name) else ""
            self.fail(node, f"unknown function{name}; the language has {', '.join(sorted(_FUNCTIONS))}")
        if node.keywords:
            self.fail(node, "functions take positional arguments only")
        name, args = node.func.id, node.args
        if any(isinstance(a, ast.Starred) for a in args):
            self.fail(node, "starred arguments are not part of the language")
        if name in ("any", "all", "count", "sum", "max", "min"):
            return self.quantifier(node, name, args, scopes, depth)
        if name == "has_fact":
            if len(args) != 1:
                self.fail(node, "has_fact(kind) takes one fact kind, or a list of them")
            c = self.compile(args[0], scopes, depth)
            if not isinstance(c, Const) or c.type not in (TEXT, LIST):
                self.fail(args[0], "has_fact needs a fact kind as text, or a list of them")
            return HasFact(c.value if isinstance(c.value, frozenset) else frozenset({c.value}))
        arity = {"matches": 2, "prefixed": 2, "intersects": 2, "missing": 1, "lookup": 3, "len": 1, "abs": 1,
                 "lower": 1}[name]
        if len(args) != arity:
            self.fail(node, f"{name} takes {arity} argument{'s' if arity > 1 else ''}")
        compiled = [self.compile(a, scopes, depth) for a in args]
        if name == "matches":
            self.expect(compiled[0], args[0], TEXT, "matches(text, terms)")
            if not ((isinstance(compiled[1], Ref) and isinstance(compiled[1].value, TermMatcher))
                    or (isinstance(compiled[1], Const) and compiled[1].type == TEXT)):
                self.fail(args[1], "matches needs a term list (ref.NAME of kind terms) or a phrase")
        elif name == "prefixed":
            self.expect(compiled[0], args[0], TEXT, "prefixed(code, prefixes)")
            if not ((isinstance(compiled[1], Ref) and isinstance(compiled[1].value, RefSet))
                    or (isinstance(compiled[1], Const) and compiled[1].type in (TEXT, LIST))):
                self.fail(args[1], "prefixed needs a reference set, a list or a text of prefixes")
        elif name == "intersects":
            self.expect(compiled[0], args[0], LIST, "intersects(list, values)")
            if not ((isinstance(compiled[1], Ref) and isinstance(compiled[1].value, RefSet))
                    or (isinstance(compiled[1], Const) and compiled[1].type == LIST)):
                self.fail(args[1], "intersects needs a reference set or a list")
        elif name == "lookup":
            if not (isinstance(compiled[0], Ref) and isinstance(compiled[0].value, RefTable)):
                self.fail(args[0], "lookup needs a reference table (ref.NAME of kind table)")
            if not (isinstance(compiled[2], Const) and compiled[2].type == TEXT):
                self.fail(args[2], "lookup's third argument is a column name in quotes")
            columns = {c for row in compiled[0].value.rows.values() for c in row}
            if compiled[2].value not in columns:
                self.fail(args[2], f"table {compiled[0].name} has no column {compiled[2].value!r}; it has "
                                   f"{', '.join(sorted(columns))}")
        elif name in ("abs",):
            self.number(compiled[0], args[0])
        elif name == "lower":
            self.expect(compiled[0], args[0], TEXT, "lower(text)")
        elif name == "len" and compiled[0].type not in (TEXT, LIST, ANY):
            self.fail(args[0], "len needs a text or a list field")
        return Call(name, compiled)

    def expect(self, compiled: Node, node, kind: str, usage: str):
        if compiled.type not in (kind, ANY):
            self.fail(node, f"{usage}: expected {kind}, got {compiled.type}")

    def quantifier(self, node, name, args, scopes, depth) -> Node:
        wants = {"any": (2,), "all": (2,), "count": (1, 2), "sum": (2, 3), "max": (2, 3), "min": (2, 3)}[name]
        if len(args) not in wants:
            usage = {"any": "any(collection, condition)", "all": "all(collection, condition)",
                     "count": "count(collection) or count(collection, condition)"}.get(
                name, f"{name}(collection, value) or {name}(collection, value, condition)")
            self.fail(node, f"usage: {usage}")
        if len(scopes) > MAX_QUANTIFIER_NESTING:  # scopes: the enclosing quantifiers' items, then the filing
            self.fail(node, f"{name}(...) inside {len(scopes) - 1} other quantifiers: quantifiers nest at most "
                            f"{MAX_QUANTIFIER_NESTING} deep, as each level multiplies the work by its collection's "
                            f"size (up to {max(COLLECTION_LIMITS.values()):,} items)")
        collection = self.compile(args[0], scopes, depth + 1)
        if not collection.type.startswith("collection:"):
            self.fail(args[0], f"{name}(...) needs a collection first: goods, parties, consignors, consignees, "
                               f"notify_parties, containers or facts")
        inner = (collection.type.split(":", 1)[1], *scopes)
        cond = expr = None
        if name in ("any", "all", "count") and len(args) == 2:
            cond = self.boolean(args[1], inner, depth + 1)
        elif name in ("sum", "max", "min"):
            expr = self.number(self.compile(args[1], inner, depth + 1), args[1])
            if len(args) == 3:
                cond = self.boolean(args[2], inner, depth + 1)
        quantifier = Quantifier(name, collection, cond, expr)
        if quantifier.cost > MAX_COST:
            scope = collection.type.split(":", 1)[1]
            self.fail(node, f"{name}({collection.name}, ...) may evaluate {quantifier.cost:,} nodes on a filing of "
                            f"{quantifier.size:,} {scope} (its condition once per item), over the bound of "
                            f"{MAX_COST:,}: do not nest a quantifier over a large collection in another")
        return quantifier


class Condition:
    """A compiled condition: test(subject) fast, explain(subject) with evidence, guard keys."""

    def __init__(self, text: str, root: Node):
        self.text, self.root = text, root
        self._fast = root.fast()
        self.cost = worst_cost(root)

    def test(self, subject) -> bool:
        return bool(self._fast(subject, None))

    def explain(self, subject) -> tuple[bool, list[Evidence]]:
        value, evidence = self.root.explain(subject, None)
        unique = list(dict.fromkeys(evidence))
        return bool(value), unique

    @property
    def guard(self) -> frozenset | None:
        return self.root.guard()


def compile_condition(text: str, env: Environment) -> Condition:
    """Parses and checks a condition; ConditionError with the column on anything not allowed."""
    if not isinstance(text, str) or not text.strip():
        raise ConditionError("the condition is empty")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ConditionError(f"the condition is longer than {MAX_EXPRESSION_CHARS} characters")
    source = " ".join(text.split("\n"))  # YAML folded text: one logical line, columns stay meaningful
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:  # at the end of the text, Python reports offset 0
        raise ConditionError(f"syntax error: {exc.msg}", exc.offset or len(source.strip()) + 1) from None
    root = _Compiler(env).compile(tree.body, ("filing",))
    if root.type.startswith("collection") or root.type in ("ref", NUMBER, TEXT, LIST):
        raise ConditionError(f"a condition must be true or false, this is a {root.type}", 1)
    value = constant(root)
    if value is not _UNKNOWN:
        raise ConditionError(f"the condition is always {'true' if value else 'false'}, whatever the filing", 1)
    cost = worst_cost(root)
    if cost > MAX_COST:
        raise ConditionError(f"the condition may evaluate {cost:,} nodes on a filing of the largest size the schema "
                             f"allows, over the bound of {MAX_COST:,}: split it into rules", 1)
    return Condition(text, root)

