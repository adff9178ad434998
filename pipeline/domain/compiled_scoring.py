"""A rule pack compiled into Python source, once per pack version: its index per filing type,
and each rule's condition.

scoring._Index answers "which rules may fire for this filing" by walking its tables shape by
shape: per shape a loop over the filing's items and a getter closure per field read; and
each condition (conditions.py) is a tree of closures, a Python call per node. Here both
become generated functions: the index one loop per collection (goods, parties, containers,
facts) reading each field an item's rules are keyed on as a plain attribute, every look-up
written out; a condition one expression, its fields read as attributes, its quantifiers as
generator expressions that charge the filing's evaluation budget as the closures do.
Generated code reads the compiled tree and tables and changes nothing in them, so both give
the same candidates, hits and budget overruns (tests/test_compiled_scoring.py, on every rule
example and on generated traffic); Scorer(pack, compiled=False) keeps the closures, the
reference. Explanations (referrals only) stay with the closure tree.
"""
from __future__ import annotations

import ast
import operator
from typing import Callable

from .conditions import (And, AtLeast, Call, Compare, Condition, Const, FieldRef, HasFact, Member, Node, Not, Or,
                         Quantifier, Ref, _rec, field_spec, over)

# The collection a scope's items come from, as an expression on the subject `s` and its record `r`.
_ITEMS = {"goods": "r.goods", "parties": "r.parties", "containers": "r.containers", "facts": "s.facts"}


def compile_index(index) -> Callable:
    """(subject, chosen) -> None: adds the index of the rules the subject may fire to `chosen`,
    as index.candidates does."""
    names: dict[str, object] = {}

    def bind(value) -> str:
        name = f"_{len(names)}"
        names[name] = value
        return name

    by_scope: dict[str, list[str]] = {}
    for n, (shape, values) in enumerate(index.eq.items()):
        v = f"v{n}e"
        lines = [f"{v} = {_read(index, shape, bind)}",
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
        v, table = f"v{n}p", bind(prefixes)
        lines = [f"{v} = {_read(index, shape, bind)}", f"if {v}:"]
        for length in index.prefix_lengths[shape]:
            lines += [f"    rules = {table}.get({v}[:{length}])", "    if rules:", "        chosen.update(rules)"]
        by_scope.setdefault(shape[0], []).extend(lines)
    for n, (shape, lists) in enumerate(index.terms.items()):
        lines = [f"for listed in {bind(index.matchers[shape].scan)}({_read(index, shape, bind)}):",
                 f"    chosen.update({bind(lists)}[listed])"]
        by_scope.setdefault(shape[0], []).extend(lines)
    for n, (shape, tests) in enumerate(index.ranges.items()):
        v = f"v{n}r"
        lines = [f"{v} = {_read(index, shape, bind)}", f"if {v} is not None:"]
        for test, limit, rules in tests:
            lines += [f"    if {bind(test)}({v}, {bind(limit)}):", f"        chosen.update({bind(rules)})"]
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


def _read(index, shape: tuple[str, str], bind) -> str:
    """The expression that reads a shape's field: an item's attribute straight off the item `x`
    where the field is one, else the getter conditions use (the filing's fields, statistics)."""
    scope, name = shape
    spec = field_spec(scope, name)
    plain = scope != "filing" and isinstance(spec.get, operator.attrgetter) and not spec.derived \
        and not spec.of_subject and repr(spec.get) == f"operator.attrgetter({name!r})"
    return f"x.{name}" if plain else f"{bind(index.getters[shape])}(s, x)"


# -- conditions ----------------------------------------------------------------------------------
_COMPARE_SYMBOLS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_RECORD_FIELD = _rec("").__code__  # the code of every filing field read straight off the record


def _items(s, xs, weight: int):
    """A quantifier's items, its cost charged first (as Quantifier.fast does: conditions.charge)."""
    n = len(xs) * weight
    s.spent += n
    if s.spent > s.limit:
        over(s, n)
    return xs


def compile_test(condition: Condition) -> Callable:
    """subject -> bool, as condition.test(subject): one generated function instead of a tree of
    closures. Node kinds it does not write out are called as the closures they compile to."""
    names: dict[str, object] = {"_items": _items}
    temps = iter(range(1_000_000))

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
            spec = node.spec
            if node.scope == "filing" and not spec.derived and not spec.of_subject \
                    and getattr(spec.get, "__code__", None) is _RECORD_FIELD:
                return f"s.record.{spec.get.__closure__[0].cell_contents}"
            if node.scope != "filing" and not spec.derived and not spec.of_subject \
                    and repr(spec.get) == f"operator.attrgetter({node.name!r})":
                return f"{item}.{node.name}"
            return f"{bind(node.fast())}(s, {item})"
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
            if node.kind == "count":
                return f"sum(1 for {x} in {items} if {cond})"
            return f"{node.kind}({cond} for {x} in {items})"
        if isinstance(node, Call):
            impl, subject = node._impl(), emit(node._subject(), item, depth)
            call = f"{bind(impl)}(s, {subject})"
            return f"({call} is not None)" if node.type == "bool" else call
        return f"{bind(node.fast())}(s, {item})"  # sum, max, min, arithmetic: the closure itself

    expression = emit(condition.root, "x0", 0)
    source = f"def test(s):\n    x0 = None\n    return bool({expression})\n"
    namespace = dict(names)
    exec(compile(source, f"<condition {condition.text[:60]!r}>", "exec"), namespace)  # noqa: S102 - our own source
    function = namespace["test"]
    function.source = source
    return function
