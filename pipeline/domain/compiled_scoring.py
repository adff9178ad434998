"""A rule pack compiled into Python source, once per pack version: its index per filing type,
and each rule's condition.

scoring._Index answers "which rules may fire for this filing" by walking its tables shape by
shape: per shape a loop over the filing's items and a getter closure per field read; and
each condition (conditions.py) is a tree of closures, a Python call per node. Here both
become generated functions: the index one loop per collection (goods, parties, containers,
facts) reading each field an item's rules are keyed on as a plain attribute (statistics by
their methods, a goods item's several in one call), every look-up written out, ranges
compared inline; a condition one expression, its fields read as attributes, its quantifiers
as generator expressions that charge the filing's evaluation budget as the closures do.

Keys that follow from a few attributes of an item alone (an HS code's prefixes and chapter,
a description's terms, a party's name and address keys: screening.MADE_OF; a plain text
attribute such as a UN number or a party id) are looked up once per distinct values of all
those attributes of a collection, in one memo per collection remembered with the index (up
to 20,000 items each; filing types with the same rules share an index): codes, descriptions
and names repeat across filings, and a party's keys cost more to make than to look up.

Generated code reads the compiled tree and tables and changes nothing in them, so both give the
same candidates, hits and budget overruns (tests/test_compiled_scoring.py, on every rule example
and on generated traffic); Scorer(pack, compiled=False) keeps the closures, the reference.
Explanations (referrals only) walk the closure tree, picking the items a quantifier explains
with its generated item test (compile_test's item_tests).
"""
from __future__ import annotations

import ast
from typing import Callable

from .conditions import (RANGE_TESTS, TEXT, And, AtLeast, Call, Compare, Condition, Const, FieldRef, HasFact, Member,
                         Node, Not, Or, Quantifier, Ref, _rec, field_spec, over)
from .memo import BoundedMemo
from .screening import MADE_OF

# The collection a scope's items come from, as an expression on the subject `s` and its record `r`.
_RECORD_FIELD = _rec("").__code__  # the code of every filing field read straight off the record
_ITEMS = {"goods": "r.goods", "parties": "r.parties", "containers": "r.containers", "facts": "s.facts"}


def compile_index(index) -> Callable:
    """(subject, chosen) -> None: adds the index of the rules the subject may fire to `chosen`,
    as index.candidates does."""
    names: dict[str, object] = {}

    def bind(value) -> str:
        name = f"_{len(names)}"
        names[name] = value
        return name

    def read(shape: tuple[str, str]) -> str:
        return _field(shape[0], shape[1], index.statistics, "x", bind)

    by_scope: dict[str, list[str]] = {}
    # Keys that follow from a few attributes of an item (an HS code's prefixes and chapter, a text's
    # terms, a name's key, a plain attribute's value) are looked up once per distinct values of the
    # attributes of the item they follow from: one memo per collection, keyed by all those
    # attributes, all its tables in it (codes, descriptions and names repeat across filings, and
    # one look-up of a few attributes costs less than one per table).
    memos: dict[str, list[tuple[tuple[str, ...], Callable]]] = {}  # scope -> (attributes, finder)
    for n, (shape, values) in enumerate(index.eq.items()):
        v = f"v{n}e"
        inputs = _made_of(*shape)
        if inputs and _scalar_text(*shape):  # a str or None: one look-up (no table has a None key)
            table = {k: r for k, r in values.items() if k is not None}
            memos.setdefault(shape[0], []).append(
                (inputs, lambda x, table=table, name=shape[1]: (table.get(getattr(x, name), ()),)))
        elif _scalar_text(*shape):  # a filing's text field: one look-up
            lines = [f"rules = {bind({k: r for k, r in values.items() if k is not None})}.get({read(shape)})",
                     "if rules:",
                     "    chosen.update(rules)"]
            by_scope.setdefault(shape[0], []).extend(lines)
        else:
            lines = [f"{v} = {read(shape)}",
                     f"if {v} is not None:",
                     f"    if type({v}) is tuple or type({v}) is list:",
                     f"        for w in {v}:",
                     f"            rules = {bind(values)}.get(w)",
                     "            if rules:",
                     "                chosen.update(rules)",
                     "    else:",
                     f"        rules = {bind(values)}.get({v})",
                     "        if rules:",
                     "            chosen.update(rules)"]
            by_scope.setdefault(shape[0], []).extend(lines)
    for n, (shape, prefixes) in enumerate(index.prefix.items()):
        lengths, name = index.prefix_lengths[shape], shape[1]

        def prefixed(x, name=name, prefixes=prefixes, lengths=lengths):
            value = getattr(x, name)
            return (prefixes.get(value[:k], ()) for k in lengths) if value else ()
        if _made_of(*shape):
            memos.setdefault(shape[0], []).append((_made_of(*shape), prefixed))
        else:  # a filing's field, or one read through a getter
            lines = [f"v{n}p = {read(shape)}", f"if v{n}p:"]
            lines += [line for k in lengths for line in (f"    rules = {bind(prefixes)}.get(v{n}p[:{k}])",
                                                         "    if rules:", "        chosen.update(rules)")]
            by_scope.setdefault(shape[0], []).extend(lines)
    for n, (shape, lists) in enumerate(index.terms.items()):
        scan, name = index.matchers[shape].scan, shape[1]
        if _made_of(*shape):
            memos.setdefault(shape[0], []).append((_made_of(*shape), lambda x, scan=scan, lists=lists, name=name: (
                lists[listed] for listed in scan(getattr(x, name)))))
        else:
            lines = [f"for listed in {bind(scan)}({read(shape)}):", f"    chosen.update({bind(lists)}[listed])"]
            by_scope.setdefault(shape[0], []).extend(lines)
    for scope, finding in memos.items():
        inputs = tuple(dict.fromkeys(a for attributes, _ in finding for a in attributes))
        finders = tuple(find for _, find in finding)
        memo = _Memo(lambda x, finders=finders: (found for find in finders for found in find(x)))
        key = f"x.{inputs[0]}" if len(inputs) == 1 else f"({', '.join(f'x.{a}' for a in inputs)})"
        by_scope.setdefault(scope, []).extend([f"rules = {bind(memo.known)}.get({key})",
                                               "if rules is None:",
                                               f"    rules = {bind(memo)}({key}, x)",
                                               "if rules:",
                                               "    chosen.update(rules)"])
    # A goods item's statistics, where the index reads several: in one call (goods_measures, rulepack.py).
    measured = getattr(index.statistics, "MEASURED", ())
    together = [shape for shape in index.ranges if shape[0] == "goods" and shape[1] in measured]
    if len(together) > 1:
        by_scope.setdefault("goods", []).append(f"m = {bind(index.statistics.goods_measures)}(x, r.loading_country)")
    for n, (shape, tests) in enumerate(index.ranges.items()):
        v = f"v{n}r"
        value = f"m[{measured.index(shape[1])}]" if len(together) > 1 and shape in together else read(shape)
        lines = [f"{v} = {value}", f"if {v} is not None:"]
        for test, limit, rules in tests:
            lines += [f"    if {v} {_RANGE_SYMBOLS[test]} {_literal(limit, bind)}:", f"        chosen.update({bind(rules)})"]
        by_scope.setdefault(shape[0], []).extend(lines)
    if index.facts:
        by_scope.setdefault("facts", []).extend([f"rules = {bind(index.facts)}.get(x.kind)", "if rules:",
                                                 "    chosen.update(rules)"])

    source = ["def candidates(s, chosen):", "    r = s.record", "    x = None"]
    for scope, lines in by_scope.items():
        if scope == "filing":
            source += [f"    {line}" for line in lines]
        else:
            source += [f"    for x in {_ITEMS[scope]}:"] + [f"        {line}" for line in lines]
    if len(source) == 3:
        source.append("    return")
    namespace = dict(names)
    exec(compile("\n".join(source), f"<index of {len(names)} tables>", "exec"), namespace)  # noqa: S102 - our own source
    function = namespace["candidates"]
    function.source = "\n".join(source)  # for a reader who wants to see what runs
    return function


_RANGE_SYMBOLS = {test: symbol for symbol, test in RANGE_TESTS.items()}
_MEMO_SIZE = 20_000  # distinct values a memo keeps before starting afresh (a worker's memory stays bounded)


class _Memo:
    """Attribute values of an item (its HS code; a party's street, city and country) -> the rules
    their keys lead to, as one sorted tuple, found once per distinct values by `find` (item ->
    iterables of rule indexes)."""

    def __init__(self, find: Callable):
        self.known = BoundedMemo(_MEMO_SIZE)
        self.find = find

    def __call__(self, values, item) -> tuple[int, ...]:
        return self.known.remember(values, tuple(sorted({i for found in self.find(item) for i in found})))


def _literal(value, bind) -> str:
    """A number as source when it reads back the same, else a bound name."""
    if type(value) in (int, float) and value == value and abs(value) != float("inf"):
        return repr(value)
    return bind(value)


def _made_of(scope: str, name: str) -> tuple[str, ...] | None:
    """The attributes of an item a field follows from alone: its own, where it is a plain attribute
    of the item, or those screening.MADE_OF names for a property."""
    spec = field_spec(scope, name)
    if scope in ("filing", "facts") or _plain(scope, name, spec) is None:
        return None
    return MADE_OF.get(name, (name,))


def _scalar_text(scope: str, name: str) -> bool:
    """A text field read straight off a record's or an item's attribute: a str or None."""
    spec = field_spec(scope, name)
    return spec.type == TEXT and _plain(scope, name, spec) is not None


def _plain(scope: str, name: str, spec) -> str | None:
    """The attribute a field is read from, where it is a plain one (of the record, or of the item)."""
    if spec.derived or spec.of_subject:
        return None
    if scope == "filing":
        return spec.get.__closure__[0].cell_contents if getattr(spec.get, "__code__", None) is _RECORD_FIELD \
            else None
    return name if repr(spec.get) == f"operator.attrgetter({name!r})" else None


def _field(scope: str, name: str, statistics, item: str, bind) -> str:
    """The expression that reads a field, as conditions.field_getter does: an attribute of the
    record (`s.record`) or of the item where it is one, a statistic's method called directly,
    else the field's getter."""
    spec = field_spec(scope, name)
    attribute = _plain(scope, name, spec)
    if attribute is not None:
        return f"s.record.{attribute}" if scope == "filing" else f"{item}.{attribute}"
    if spec.of_subject:
        return f"{bind(spec.of_subject)}(s, {item})"
    if spec.derived == "route_share":
        return f"{bind(statistics.route_share)}({item}, s.record.loading_country)"
    if spec.derived:
        return f"{bind(getattr(statistics, spec.derived))}({item})"
    if hasattr(spec.get, "fact_value"):  # one of a fact's values (conditions._fact_value)
        return f"{item}.values.get({spec.get.fact_value!r})"
    return f"{bind(spec.get)}(s)" if scope == "filing" else f"{bind(spec.get)}({item})"


# -- conditions ----------------------------------------------------------------------------------
_COMPARE_SYMBOLS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}


def _items(s, xs, weight: int):
    """A quantifier's items, its cost charged first (as Quantifier.fast does: conditions.charge)."""
    n = len(xs) * weight
    s.spent += n
    if s.spent > s.limit:
        over(s, n)
    return xs


def compile_test(condition: Condition) -> Callable:
    """subject -> bool, as condition.test(subject): one generated function instead of a tree of
    closures. Node kinds it does not write out are called as the closures they compile to.

    Its `item_tests` attribute maps each quantifier written out (any, all, count with a condition)
    to its condition as a generated (subject, item) -> bool: what an explanation picks the items
    it explains with (Quantifier.explain, through Subject.item_tests)."""
    names: dict[str, object] = {"_items": _items}
    temps = iter(range(1_000_000))
    item_tests: list[tuple[Quantifier, str, str]] = []  # (quantifier, its item's name, its condition)

    def bind(value) -> str:
        name = f"_{len(names)}"
        names[name] = value
        return name

    def temp() -> str:
        return f"t{next(temps)}"

    def emit(node: Node, item: str, depth: int) -> str:
        if isinstance(node, Const):
            return bind(node.value)
        if isinstance(node, FieldRef):
            return _field(node.scope, node.name, node._statistics, item, bind)
        if isinstance(node, Compare):
            symbol, left = _COMPARE_SYMBOLS[node.op], emit(node.left, item, depth)
            a = temp()
            if isinstance(node.right, Const):
                return f"(({a} := {left}) is not None and {a} {symbol} {bind(node.right.value)})"
            b = temp()
            return f"(({a} := {left}) is not None and ({b} := {emit(node.right, item, depth)}) is not None " \
                   f"and {a} {symbol} {b})"
        if isinstance(node, Member):
            a, left = temp(), emit(node.left, item, depth)
            test = "not in" if node.negate else "in"
            if isinstance(node.right, Ref):
                ref = node.right.value
                if not ref.expiry:
                    return f"(({a} := {left}) is not None and {a} {test} {bind(ref.values)})"
                return f"(({a} := {left}) is not None and {bind(ref.contains)}({a}, s.now) != {node.negate})"
            b = temp()
            return f"(({a} := {left}) is not None and ({b} := {emit(node.right, item, depth)}) is not None " \
                   f"and {a} {test} {b})"
        if isinstance(node, Not):
            return f"(not {emit(node.operand, item, depth)})"
        if isinstance(node, (And, Or)):
            joined = f" {'and' if isinstance(node, And) else 'or'} ".join(emit(p, item, depth) for p in node.parts)
            return f"(True if {joined} else False)"
        if isinstance(node, AtLeast):
            return emit(node.compare, item, depth)
        if isinstance(node, HasFact):
            return f"any(f.kind in {bind(node.kinds)} for f in s.facts)"
        if isinstance(node, Quantifier) and node.kind in ("any", "all", "count"):
            get = node.collection.spec.get
            if node.kind == "count" and node.cond is None:
                return f"len({bind(get)}(s))"
            x = f"x{depth + 1}"
            items = f"_items(s, {bind(get)}(s), {node.weight})"
            cond = emit(node.cond, x, depth + 1)
            item_tests.append((node, x, cond))
            if node.kind == "count":
                return f"sum(1 for {x} in {items} if {cond})"
            return f"{node.kind}({cond} for {x} in {items})"
        if isinstance(node, Call):
            impl, subject = node._impl(), emit(node._subject(), item, depth)
            call = f"{bind(node.matcher.found)}[{subject}]" if node.name == "matches" else f"{bind(impl)}(s, {subject})"
            return f"({call} is not None)" if node.type == "bool" else call
        return f"{bind(node.fast())}(s, {item})"  # sum, max, min, arithmetic: the closure itself

    expression = emit(condition.root, "x0", 0)
    source = f"def test(s):\n    x0 = None\n    return bool({expression})\n"
    source += "".join(f"\n\ndef item_test_{n}(s, {x}):\n    return bool({cond})\n"
                      for n, (_, x, cond) in enumerate(item_tests))
    namespace = dict(names)
    exec(compile(source, f"<condition {condition.text[:60]!r}>", "exec"), namespace)  # noqa: S102 - our own source
    function = namespace["test"]
    function.source = source
    function.item_tests = {node: namespace[f"item_test_{n}"] for n, (node, _, _) in enumerate(item_tests)}
    return function
