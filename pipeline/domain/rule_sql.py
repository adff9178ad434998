"""Rule conditions compiled to SQL (DuckDB) over the archive's record columns: backtests set at a time.

    compiled = compile_pack(pack, now, prefix="c_")
    compiled.rules                  # per rule: a boolean SQL expression over `f`, or why it cannot be one
    compiled.tables                 # reference sets, term hits, statistics: tables the expressions read
    compiled.goods_sql(...)         # the pack's goods table: the base goods with the pack's statistics

The input is the compiled condition tree of conditions.py (the row-by-row scorer's own), so both
paths read one parse. The SQL runs over these relations (archive_sql.py makes them):

    <records>  f: one row per assessed record (`rid`), the record's columns (record_columns.py)
    goods, parties, containers, facts: the record's lists unnested, one row per item, with `rid`

A quantifier is a correlated EXISTS / NOT EXISTS / scalar aggregate over the item table (DuckDB
turns each into a semi-join or a grouped join); a reference set is a table (`x IN (SELECT ...)`),
as valid at the assessment time; `matches` reads a table of the texts that match, made by the
scorer's own TermMatcher over the distinct texts of the archive; statistics are joins against the
pack's learned cells. The language's missing values follow it: every test is false when a value
is missing (SQL's NULL is folded to false at each test), arithmetic with a missing value is
missing, division by zero is missing.

What the compiler cannot say the same way raises CannotExpress with the reason; the backtest then
evaluates that rule row by row (and says so).
"""
from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from .conditions import (LIST, NUMBER, TEXT, And, Arith, AtLeast, Call, Compare, Const, FieldRef, HasFact,
                         Member, Node, Not, Or, Quantifier, Ref, RefTable, TermMatcher)

# Collections a quantifier can range over: item table and the role that selects its rows.
COLLECTIONS = {"goods": ("goods", None), "parties": ("parties", None), "consignors": ("parties", "consignor"),
               "consignees": ("parties", "consignee"), "notify_parties": ("parties", "notify"),
               "containers": ("containers", None), "facts": ("facts", None)}
# Filing fields whose column has another name in the archive (the decision's own say it of the lead).
_FILING_COLUMNS = {"filing_code": "record_filing_code", "lrn": "record_lrn",
                   "office_of_first_entry": "record_office_of_first_entry", "filer": "record_filer"}
_COMPARE = {ast.Eq: "=", ast.NotEq: "<>", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_READS_FILING = re.compile(r"\bf\.")  # an expression that reads the filing's own columns


class CannotExpress(Exception):
    """A condition (part) the compiler does not turn into SQL with the same meaning."""


def literal(value: Any) -> str:
    """A SQL literal of a constant of the language."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CannotExpress(f"the number {value!r}")
        return f"CAST({value!r} AS DOUBLE)"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise CannotExpress(f"the constant {value!r}")


def _texts(values) -> list[str]:
    values = list(values)
    if not all(isinstance(v, str) for v in values):
        raise CannotExpress("a list mixing text and numbers")
    return sorted(values)


def _list_literal(values) -> str:
    return "[" + ", ".join(literal(v) for v in values) + "]::VARCHAR[]"


@dataclass
class RuleSql:
    id: str
    sql: str | None  # a boolean expression over `f` (never null), or None
    reason: str | None = None  # why not, when sql is None


@dataclass
class CompiledPack:
    prefix: str
    rules: list[RuleSql]
    tables: dict[str, pa.Table] = field(default_factory=dict)  # name -> rows, registered before the rules run
    matches: list[tuple[str, TermMatcher, str, str]] = field(default_factory=list)  # table, matcher, items, column
    statistics: set[str] = field(default_factory=set)  # statistical goods fields the rules read
    # item table -> SQL -> column: per-filing aggregates of the items (alias q), one row per rid
    aggregates: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def goods(self) -> str:
        return f"{self.prefix}goods" if self.statistics else "goods"

    # (item table, column) -> SQL -> name: tests of one item column, made once per distinct value
    flags: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    def flag(self, table: str, column: str, sql: str) -> str:
        """A test that reads one column of an item, as its aggregates read it (see aggregate_tables)."""
        tests = self.flags.setdefault((table, column), {})
        if sql not in tests:
            tests[sql] = f"f{sum(len(t) for t in self.flags.values())}"
        return f"x_{column}.{tests[sql]}"

    def aggregate(self, table: str, sql: str) -> str:
        """The column of the aggregate (made once, whichever rules share it), as the rules read it."""
        columns = self.aggregates.setdefault(table, {})
        if sql not in columns:
            columns[sql] = f"f.{table}_{len(columns)}"
        return columns[sql]

    def aggregate_tables(self) -> dict[str, str]:
        """name -> SQL of each per-filing aggregate table."""
        out = {}
        for table, columns in self.aggregates.items():
            source = self.goods if table == "goods" else table
            # Each test of one column is computed on the column's distinct values (a code, a description
            # recurs across filings), then joined to the items: once, not once per row.
            joins = " ".join(
                f"LEFT JOIN (SELECT q.{column}, {', '.join(f'{sql} AS {name}' for sql, name in tests.items())} "
                f"FROM (SELECT DISTINCT {column} FROM {source}) q) x_{column} ON x_{column}.{column} IS NOT DISTINCT FROM q.{column}"
                for (of, column), tests in self.flags.items() if of == table)
            out[f"{self.prefix}{table}_agg"] = (
                f"SELECT q.rid, {', '.join(f'{sql} AS {column[2:]}' for sql, column in columns.items())} "
                f"FROM {source} q {joins} GROUP BY q.rid")
        return out

    def source(self) -> str:
        """What the rules' expressions read as `f`: the records with every aggregate joined."""
        joins = " ".join(f"LEFT JOIN {name} USING (rid)" for name in self.aggregate_tables())
        return f"(SELECT * FROM records {joins}) f"


class _Compiler:
    def __init__(self, prefix: str, now: float, compiled: CompiledPack):
        self.prefix, self.now, self.out = prefix, now, compiled
        self.aliases = 0
        self.flagging, self.flagging_table = False, ""  # compiling an aggregate's condition: flag one-column tests
        self._refs: dict[int, str] = {}
        self._matches: dict[tuple, str] = {}

    # -- tables -----------------------------------------------------------------------------------
    def ref_table(self, ref: Ref) -> str:
        """The reference set as a table of the values valid at the assessment time."""
        name = self._refs.get(id(ref.value))
        if name is None:
            values = [v for v in _texts(ref.value.values) if ref.value.contains(v, self.now)]
            name = self._refs[id(ref.value)] = f"{self.prefix}ref_{ref.name}"
            self.out.tables[name] = pa.table({"value": pa.array(values, pa.string())})
        return name

    def valid_values(self, target: Node) -> list[str]:
        if isinstance(target, Ref):
            return [v for v in _texts(target.value.values) if target.value.contains(v, self.now)]
        values = target.value if isinstance(target.value, frozenset) else (target.value,)
        return _texts(values)

    def match_table(self, matcher: TermMatcher, subject: Node, label: str) -> str:
        if not isinstance(subject, FieldRef) or subject.type != TEXT or subject.spec.derived:
            raise CannotExpress("matches(...) on anything but a text field")
        items = "records" if subject.scope == "filing" else COLLECTIONS[subject.scope][0]
        column = _FILING_COLUMNS.get(subject.name, subject.name) if subject.scope == "filing" else subject.name
        key = (id(matcher), items, column)
        if key not in self._matches:
            self._matches[key] = name = f"{self.prefix}match_{len(self._matches)}_{label}"
            self.out.matches.append((name, matcher, items, column))
        return self._matches[key]

    # -- expressions ------------------------------------------------------------------------------
    def boolean(self, node: Node, scopes: tuple) -> str:
        """A test that is never NULL (the language's missing values make a test false)."""
        column = _one_column(node, scopes[0][0]) if self.flagging and scopes else None
        if column is not None and not isinstance(node, Const):
            self.flagging = False
            try:
                return self.out.flag(self.flagging_table, column, self.boolean(node, scopes))
            finally:
                self.flagging = True
        if isinstance(node, And):
            return "(" + " AND ".join(self.boolean(p, scopes) for p in node.parts) + ")"
        if isinstance(node, Or):
            return "(" + " OR ".join(self.boolean(p, scopes) for p in node.parts) + ")"
        if isinstance(node, Not):
            return f"(NOT {self.boolean(node.operand, scopes)})"
        if isinstance(node, AtLeast):
            return self.boolean(node.compare, scopes)
        if isinstance(node, Compare):
            return self.compare(node, scopes)
        if isinstance(node, Member):
            return self.member(node, scopes)
        if isinstance(node, HasFact):
            kinds = ", ".join(literal(k) for k in _texts(node.kinds))
            return f"coalesce({self.out.aggregate('facts', f'bool_or(q.kind IN ({kinds}))')}, FALSE)"
        if isinstance(node, Quantifier) and node.kind in ("any", "all"):
            return self.quantifier(node, scopes)
        if isinstance(node, Call) and node.type == "bool":
            return self.predicate(node, scopes)
        if isinstance(node, Const) and isinstance(node.value, bool):
            return literal(node.value)
        raise CannotExpress(f"{type(node).__name__} as a test")

    def value(self, node: Node, scopes: tuple) -> tuple[str, str]:
        """(SQL, type) of a value; NULL where the language's value is missing."""
        if isinstance(node, Const):
            if isinstance(node.value, frozenset):
                raise CannotExpress("a list constant outside `in`")
            return literal(node.value), node.type
        if isinstance(node, FieldRef):
            return self.field(node, scopes), node.type
        if isinstance(node, Arith):
            return self.arith(node, scopes), NUMBER
        if isinstance(node, Quantifier):
            return self.quantifier(node, scopes), NUMBER
        if isinstance(node, Call):
            return self.function(node, scopes)
        if node.type == "bool":
            return self.boolean(node, scopes), "bool"
        raise CannotExpress(f"{type(node).__name__} as a value")

    def field(self, node: FieldRef, scopes: tuple) -> str:
        if node.type.startswith("collection"):
            raise CannotExpress(f"the collection {node.name} as a value")
        if node.scope == "filing":
            if node.name == "entry_country":
                return "CASE WHEN f.record_office_of_first_entry <> '' THEN substr(f.record_office_of_first_entry, 1, 2) END"
            return "f." + _FILING_COLUMNS.get(node.name, node.name)
        # The scorer reads an item field off the innermost item only: an outer item's field is not that.
        if not scopes or COLLECTIONS[scopes[0][0]][0] != COLLECTIONS[node.scope][0]:
            raise CannotExpress(f"{node.name} of an enclosing quantifier's item")
        return f"{scopes[0][1]}.{node.name}"

    def arith(self, node: Arith, scopes: tuple) -> str:
        (a, _), (b, _) = self.value(node.left, scopes), self.value(node.right, scopes)
        symbol = {"add": "+", "sub": "-", "mul": "*", "truediv": "/"}[node.op.__name__]
        if symbol == "/":  # the language: division by zero is missing
            return f"(CASE WHEN ({b}) = 0 THEN NULL ELSE CAST(({a}) AS DOUBLE) / ({b}) END)"
        return f"(({a}) {symbol} ({b}))"

    def compare(self, node: Compare, scopes: tuple) -> str:
        (a, ta), (b, tb) = self.value(node.left, scopes), self.value(node.right, scopes)
        if "NULL" in (a, b):
            return "FALSE"  # a comparison with None is false
        if {ta, tb} - {TEXT, NUMBER} or ta != tb:
            raise CannotExpress(f"a comparison of {ta} with {tb}")
        return f"coalesce(({a}) {_COMPARE[node.op]} ({b}), FALSE)"

    def member(self, node: Member, scopes: tuple) -> str:
        left, kind = self.value(node.left, scopes)
        negate = "NOT " if node.negate else ""
        if isinstance(node.right, Ref):
            if kind != TEXT:
                raise CannotExpress(f"`in` a reference set with a {kind} on the left")
            return f"(({left}) IS NOT NULL AND {negate}(({left}) IN (SELECT value FROM {self.ref_table(node.right)})))"
        if isinstance(node.right, Const):
            if kind not in (TEXT, NUMBER):
                raise CannotExpress(f"`in` a list with a {kind} on the left")
            # Only constants of the left's type can equal it (the scorer compares with ==).
            values = sorted(v for v in node.right.value if (isinstance(v, str) if kind == TEXT else
                                                             isinstance(v, (int, float)) and not isinstance(v, bool)))
            if not values:
                return f"(({left}) IS NOT NULL AND {'TRUE' if negate else 'FALSE'})"
            listed = ", ".join(literal(v) for v in values)
            return f"(({left}) IS NOT NULL AND {negate}(({left}) IN ({listed})))"
        right, right_kind = self.value(node.right, scopes)
        if right_kind != LIST or kind != TEXT:
            raise CannotExpress("`in` a list field with a non-text value")
        return f"(({left}) IS NOT NULL AND ({right}) IS NOT NULL AND {negate}list_contains({right}, {left}))"

    def quantifier(self, node: Quantifier, scopes: tuple) -> str:
        table, role = COLLECTIONS[node.collection.name] if node.collection.name in COLLECTIONS else (None, None)
        if table is None:
            raise CannotExpress(f"a quantifier over {node.collection.name}")
        if not scopes:  # at the top: an aggregate of one pass over the items, if the items alone decide
            found = self.aggregate(node, table, role)
            if found is not None:
                return found
        self.aliases += 1
        alias = f"q{self.aliases}"
        source = self.out.goods if table == "goods" else table
        where = f"FROM {source} {alias} WHERE {alias}.rid = f.rid" + (f" AND {alias}.role = {literal(role)}" if role else "")
        inner = ((node.collection.name, alias), *scopes)
        cond = self.boolean(node.cond, inner) if node.cond is not None else None
        if node.kind == "any":
            return f"EXISTS (SELECT 1 {where} AND {cond})"
        if node.kind == "all":
            return f"(NOT EXISTS (SELECT 1 {where} AND NOT {cond}))"
        if node.kind == "count":
            return f"(SELECT count(*) {where}{' AND ' + cond if cond else ''})"
        expr, _ = self.value(node.expr, inner)
        if node.kind == "sum":
            return f"(SELECT coalesce(sum({expr}), 0) {where}{' AND ' + cond if cond else ''})"
        return f"(SELECT {node.kind}({expr}) {where}{' AND ' + cond if cond else ''})"

    def aggregate(self, node: Quantifier, table: str, role: str | None) -> str | None:
        """A top-level quantifier whose condition reads only its items, as a column of the pack's
        per-filing aggregate of that item table (CompiledPack.aggregates): every rule's quantifiers
        over goods are then one pass over the goods. None when the condition reads the filing too."""
        inner = ((node.collection.name, "q"),)
        flags = {k: dict(v) for k, v in self.out.flags.items()}
        self.flagging, self.flagging_table = True, table
        try:
            cond = self.boolean(node.cond, inner) if node.cond is not None else "TRUE"
            expr = self.value(node.expr, inner)[0] if node.expr is not None else None
        finally:
            self.flagging = False
        if _READS_FILING.search(cond) or (expr and _READS_FILING.search(expr)):
            self.out.flags = flags  # not an aggregate after all: its flags are not needed
            return None
        of_role = f"q.role = {literal(role)} AND " if role else ""
        sql = {"any": f"bool_or({of_role}{cond})", "all": f"bool_or({of_role}NOT {cond})",
               "count": f"count_if({of_role}{cond})"}.get(node.kind) or \
            f"{node.kind}({expr}) FILTER (WHERE {of_role}{cond})"
        column = self.out.aggregate(table, sql)
        if node.kind == "any":
            return f"coalesce({column}, FALSE)"
        if node.kind == "all":
            return f"(NOT coalesce({column}, FALSE))"
        if node.kind in ("count", "sum"):
            return f"coalesce({column}, 0)"
        return column

    def predicate(self, node: Call, scopes: tuple) -> str:
        name, args = node.name, node.args
        if name == "missing":
            subject, kind = self.value(args[0], scopes)
            return f"(({subject}) IS NULL OR len({subject}) = 0)" if kind == LIST else f"(({subject}) IS NULL)"
        if name == "matches":
            target = args[1]
            matcher = target.value if isinstance(target, Ref) else TermMatcher([target.value])
            label = target.name if isinstance(target, Ref) else "phrase"
            table = self.match_table(matcher, args[0], label)
            subject, _ = self.value(args[0], scopes)
            return f"coalesce(({subject}) IN (SELECT text FROM {table}), FALSE)"
        if name == "prefixed":
            subject, kind = self.value(args[0], scopes)
            if kind != TEXT:
                raise CannotExpress("prefixed(...) of a non-text value")
            if isinstance(args[1], Ref):
                table = self.ref_table(args[1])
                tests = [f"(length({subject}) >= {n} AND substr({subject}, 1, {n}) IN (SELECT value FROM {table}))"
                         for n in args[1].value.prefix_lengths]
            else:
                tests = [f"starts_with({subject}, {literal(p)})" for p in self.valid_values(args[1])]
            if not tests:
                return "FALSE"
            return f"coalesce(({subject}) <> '' AND ({' OR '.join(tests)}), FALSE)"
        if name == "intersects":
            subject, kind = self.value(args[0], scopes)
            if kind != LIST:
                raise CannotExpress("intersects(...) of a non-list value")
            values = self.valid_values(args[1])
            if not values:
                return "FALSE"
            return f"coalesce(list_has_any({subject}, {_list_literal(values)}), FALSE)"
        raise CannotExpress(f"the function {name}")

    def function(self, node: Call, scopes: tuple) -> tuple[str, str]:
        name, args = node.name, node.args
        if node.type == "bool":
            return self.predicate(node, scopes), "bool"
        if name == "lookup":
            return self.lookup(node, scopes)
        subject, kind = self.value(args[0], scopes)
        if name == "len":
            if kind == TEXT:
                return f"length({subject})", NUMBER
            if kind == LIST:
                return f"len({subject})", NUMBER
            raise CannotExpress(f"len(...) of a {kind}")
        if name == "abs":
            return f"abs({subject})", NUMBER
        if name == "lower":
            return f"lower({subject})", TEXT
        raise CannotExpress(f"the function {name}")

    def lookup(self, node: Call, scopes: tuple) -> tuple[str, str]:
        table: RefTable = node.args[0].value
        column = node.args[2].value
        values = [row.get(column) for row in table.rows.values() if row.get(column) is not None]
        kind = TEXT if all(isinstance(v, str) for v in values) else \
            NUMBER if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) else None
        if kind is None:
            raise CannotExpress(f"lookup of column {column!r} mixing text and numbers")
        key, key_kind = self.value(node.args[1], scopes)
        if key_kind != TEXT:
            raise CannotExpress("lookup(...) with a non-text key")
        name = f"{self.prefix}lookup_{node.args[0].name}_{column}"
        keys = list(table.rows)
        self.out.tables[name] = pa.table({"k": pa.array(keys, pa.string()), "v": pa.array(
            [table.rows[k].get(column) for k in keys], pa.string() if kind == TEXT else pa.float64())})
        if not table.prefix:
            return f"(SELECT v FROM {name} WHERE k = ({key}))", kind
        # The longest listed prefix decides, even when its row lacks the column.
        cases = " ".join(f"WHEN length({key}) >= {n} AND EXISTS (SELECT 1 FROM {name} WHERE k = substr({key}, 1, {n})) "
                         f"THEN (SELECT v FROM {name} WHERE k = substr({key}, 1, {n}))" for n in table.lengths)
        return f"(CASE {cases} END)", kind


def applies(rule, now: float) -> str | None:
    """The rule's filing types and validity as a test of `f`; None when it cannot fire at all."""
    if not rule.valid_at(now) or not rule.filings:
        return None
    codes = ", ".join(literal(c) for c in sorted(rule.filings))
    return f"('F' || substr(f.record_filing_code, 2)) IN ({codes})"


def compile_pack(pack, now: float, prefix: str) -> CompiledPack:
    """Every rule of the pack, with the tables they read, for a backtest as of `now` (epoch seconds)."""
    compiled = CompiledPack(prefix, [])
    # Known before compiling: every quantifier over goods then reads the pack's goods table.
    compiled.statistics = {name for rule in pack.rules for name in _derived(rule.condition.root)}
    shared = _Compiler(prefix, now, compiled)  # one set of tables for every rule
    for rule in pack.rules:
        shared.aliases = 0
        try:
            sql = shared.boolean(rule.condition.root, ())
            compiled.rules.append(RuleSql(rule.id, sql))
        except CannotExpress as exc:
            compiled.rules.append(RuleSql(rule.id, None, str(exc)))
    if compiled.statistics:
        compiled.tables.update(statistics_tables(pack.environment.statistics, prefix))
    return compiled


def _one_column(node: Node, collection: str) -> str | None:
    """The one item column a test reads (of the innermost quantifier's items, not a statistic), if it
    reads nothing else of the filing or the items."""
    columns, ok = set(), True

    def walk(n: Node) -> None:
        nonlocal ok
        if isinstance(n, (Quantifier, HasFact)):
            ok = False
        elif isinstance(n, FieldRef):
            if n.scope == "filing" or n.spec.derived or n.type.startswith("collection") or \
                    COLLECTIONS[n.scope][0] != COLLECTIONS[collection][0]:
                ok = False
            columns.add(n.name)
        for child in n.children():
            walk(child)
    walk(node)
    return columns.pop() if ok and len(columns) == 1 else None


def _derived(node: Node) -> set[str]:
    """The statistical fields a condition reads."""
    found = {node.spec.derived} if isinstance(node, FieldRef) and node.spec.derived else set()
    for child in node.children():
        found |= _derived(child)
    return found


# -- the pack's statistics as tables and joins ----------------------------------------------------
def statistics_tables(statistics, prefix: str) -> dict[str, pa.Table]:
    """The reference distributions of a PackStatistics (rulepack.py) as tables."""
    cells = []
    learned = getattr(statistics, "learned", None)
    if learned is not None:
        cells = [(c.measure, c.hs, c.package_type, c.stats.median, learned.spread(c)) for c in learned.cells()]
    table = getattr(statistics, "unit_values", None)
    medians = []
    if learned is None and table is not None:  # a hand-typed table of medians per HS prefix
        medians = [(k, row.get("median_eur_per_kg"), row.get("log_sigma")) for k, row in table.rows.items()]
    routes = getattr(statistics, "routes", {}) or {}
    weights = getattr(statistics, "package_weights", {}) or {}
    return {
        f"{prefix}cells": pa.table({"measure": [c[0] for c in cells], "hs": [c[1] for c in cells],
                                    "package_type": [c[2] for c in cells],
                                    "median": pa.array([c[3] for c in cells], pa.float64()),
                                    "spread": pa.array([c[4] for c in cells], pa.float64())},
                                   schema=pa.schema([("measure", pa.string()), ("hs", pa.string()),
                                                     ("package_type", pa.string()), ("median", pa.float64()),
                                                     ("spread", pa.float64())])),
        f"{prefix}medians": pa.table({"k": pa.array([m[0] for m in medians], pa.string()),
                                      "median": pa.array([m[1] for m in medians], pa.float64()),
                                      "sigma": pa.array([m[2] for m in medians], pa.float64())}),
        f"{prefix}routes": pa.table({"hs4": pa.array([h for h, s in routes.items() for _ in s], pa.string()),
                                     "country": pa.array([c for s in routes.values() for c in s], pa.string()),
                                     "share": pa.array([v for s in routes.values() for v in s.values()], pa.float64())}),
        f"{prefix}route_headings": pa.table({"hs4": pa.array(list(routes), pa.string())}),
        f"{prefix}package_weights": pa.table({"package_type": pa.array(list(weights), pa.string()),
                                              "kg": pa.array([float(v) for v in weights.values()], pa.float64())}),
    }


def goods_sql(compiled: CompiledPack, statistics) -> str:
    """The pack's goods table: the base goods with each statistical field as the pack computes it."""
    from .unit_statistics import EUR_PER_KG, EUR_PER_PIECE, KG_PER_PACKAGE, PRICED_BY_THE_PIECE

    p = compiled.prefix
    learned = getattr(statistics, "learned", None) is not None
    lengths = sorted({len(k) for k in getattr(getattr(statistics, "unit_values", None), "rows", {})}, reverse=True)
    prefix_table = getattr(getattr(statistics, "unit_values", None), "prefix", False)

    def cell(measure: str, package_type: str, alias: str) -> list[str]:
        """The joins of a learned cell at each level (subheading, heading, chapter): `found` takes the first."""
        return [f"LEFT JOIN {p}cells {alias}{n} ON {alias}{n}.measure = '{measure}' AND {alias}{n}.package_type = "
                f"{package_type} AND length(g.hs_code) >= {n} AND {alias}{n}.hs = substr(g.hs_code, 1, {n})"
                for n in (6, 4, 2)]

    def found(alias: str, column: str) -> str:
        return (f"CASE WHEN {alias}6.hs IS NOT NULL THEN {alias}6.{column} WHEN {alias}4.hs IS NOT NULL "
                f"THEN {alias}4.{column} ELSE {alias}2.{column} END")

    joins: list[str] = []
    needs = compiled.statistics  # only the fields the rules read, and only the joins they need
    if learned and needs & {"unit_value_z", "unit_value_ratio"}:
        joins += cell(EUR_PER_KG, "''", "kg")
        kg_median, kg_sigma = found("kg", "median"), found("kg", "spread")
    elif lengths and needs & {"unit_value_z", "unit_value_ratio"}:
        tried = lengths if prefix_table else [None]
        for i, n in enumerate(tried):
            key = "g.hs_code" if n is None else f"substr(g.hs_code, 1, {n})"
            cond = "" if n is None else f" AND length(g.hs_code) >= {n}"
            joins.append(f"LEFT JOIN {p}medians m{i} ON m{i}.k = {key}{cond}")
        kg_median = "CASE " + " ".join(f"WHEN m{i}.k IS NOT NULL THEN m{i}.median" for i in range(len(tried))) + " END"
        kg_sigma = "CASE " + " ".join(f"WHEN m{i}.k IS NOT NULL THEN m{i}.sigma" for i in range(len(tried))) + " END"
    else:
        kg_median = kg_sigma = "CAST(NULL AS DOUBLE)"
    one_type = "(len(g.package_types) = 1)"
    pc_median = pc_sigma = pk_median = pk_sigma = "CAST(NULL AS DOUBLE)"
    if learned and needs & {"piece_value_z", "piece_value_ratio"}:
        joins += cell(EUR_PER_PIECE, "g.pt", "pc")
        pc_median, pc_sigma = found("pc", "median"), found("pc", "spread")
    if learned and needs & {"package_mass_z", "package_mass_ratio"}:
        joins += cell(KG_PER_PACKAGE, "g.pt", "pk")
        pk_median, pk_sigma = found("pk", "median"), found("pk", "spread")
    # The references depend on the code and package type only: looked up once per distinct pair, then joined.
    by_piece = " OR ".join(f"starts_with(g.hs_code, {literal(code)})" for code in PRICED_BY_THE_PIECE)
    kg_median = f"CASE WHEN {by_piece} THEN NULL ELSE {kg_median} END"  # unit_statistics.valued_by_mass
    reference = (f"SELECT g.hs_code, g.pt, {kg_median} AS kg_median, {kg_sigma} AS kg_sigma, {pc_median} AS pc_median, "
                 f"{pc_sigma} AS pc_sigma, {pk_median} AS pk_median, {pk_sigma} AS pk_sigma FROM (SELECT DISTINCT "
                 f"hs_code, package_types[1] AS pt FROM goods) g {' '.join(joins)}")
    kg_median, kg_sigma, pc_median, pc_sigma, pk_median, pk_sigma = (
        "r.kg_median", "r.kg_sigma", "r.pc_median", "r.pc_sigma", "r.pk_median", "r.pk_sigma")
    joins = [f"LEFT JOIN ({reference}) r ON r.hs_code IS NOT DISTINCT FROM g.hs_code "
             f"AND r.pt IS NOT DISTINCT FROM g.package_types[1]"]
    if "route_share" in needs:
        joins.append(f"JOIN records f ON f.rid = g.rid LEFT JOIN {p}routes rt ON rt.hs4 = substr(g.hs_code, 1, 4) "
                     f"AND rt.country = f.loading_country")
    kg = getattr(statistics, "package_weights", {}) or {}
    table = "MAP {" + ", ".join(f"{literal(k)}: {literal(float(v))}" for k, v in kg.items()) + "}" if kg else None
    weights = f"list_max(list_transform(g.package_types, lambda t: map_extract_value({table}, t)))" if table else "NULL"
    single = f"map_extract_value({table}, g.package_types[1])" if table else "NULL"
    goods_kg = getattr(statistics, "goods_package_weights", ()) or ()
    if goods_kg:  # PackStatistics.package_limit: the goods' own row first
        cases = " ".join(
            f"WHEN g.package_types[1] = {literal(kind)} AND ("
            + " OR ".join(f"starts_with(coalesce(g.hs_code, ''), {literal(p)})" for p in prefixes)
            + f") THEN {literal(float(kg))}" for kind, prefixes, kg in goods_kg)
        single = f"CASE {cases} ELSE {single} END"

    def log_ratio(x: str, median: str, sigma: str) -> str:
        return (f"CASE WHEN ({median}) IS NULL OR ({median}) = 0 OR ({sigma}) IS NULL OR ({sigma}) = 0 THEN NULL "
                f"WHEN {x} / ({median}) > 0 THEN ln({x} / ({median})) / ({sigma}) END")

    # the value in euros, as declared or converted at enrichment (screening.GoodsLine.value_eur)
    kg_ok = "g.value_eur IS NOT NULL AND g.value_eur <> 0 AND g.value_eur >= 0 AND g.gross_mass IS NOT NULL AND g.gross_mass <> 0"
    piece_ok = (f"g.value_eur IS NOT NULL AND g.value_eur <> 0 AND g.value_eur >= 0 AND g.packages IS NOT NULL "
                f"AND g.packages <> 0 AND {one_type}")
    mass_ok = f"g.gross_mass IS NOT NULL AND g.gross_mass <> 0 AND g.gross_mass >= 0 AND g.packages IS NOT NULL AND g.packages <> 0 AND {one_type}"
    columns = {
        "unit_value_z": f"CASE WHEN {kg_ok} THEN {log_ratio('(g.value_eur / g.gross_mass)', kg_median, kg_sigma)} END",
        "unit_value_ratio": (f"CASE WHEN g.value_eur IS NOT NULL AND g.gross_mass IS NOT NULL AND g.gross_mass <> 0 "
                             f"AND ({kg_median}) IS NOT NULL AND ({kg_median}) <> 0 THEN g.value_eur / g.gross_mass / ({kg_median}) END"),
        "piece_value_z": f"CASE WHEN {piece_ok} THEN {log_ratio('(g.value_eur / g.packages)', pc_median, pc_sigma)} END",
        "piece_value_ratio": (f"CASE WHEN {piece_ok} AND ({pc_median}) IS NOT NULL AND ({pc_median}) <> 0 "
                              f"THEN g.value_eur / g.packages / ({pc_median}) END"),
        "package_mass_z": f"CASE WHEN {mass_ok} THEN {log_ratio('(g.gross_mass / g.packages)', pk_median, pk_sigma)} END",
        "package_mass_ratio": (f"CASE WHEN {mass_ok} AND ({pk_median}) IS NOT NULL AND ({pk_median}) <> 0 "
                               f"THEN g.gross_mass / g.packages / ({pk_median}) END"),
        "route_share": (f"CASE WHEN g.hs_code IS NULL OR g.hs_code = '' OR f.loading_country IS NULL OR f.loading_country = '' "
                        f"OR substr(g.hs_code, 1, 4) NOT IN (SELECT hs4 FROM {p}route_headings) THEN NULL "
                        f"ELSE coalesce(rt.share, 0.0) END"),
        "package_max_kg": weights,
        "package_load": (f"CASE WHEN g.gross_mass IS NULL OR g.packages IS NULL OR g.packages = 0 THEN NULL ELSE "
                         f"g.gross_mass / g.packages / nullif(CASE WHEN {one_type} THEN {single} ELSE {weights} END, 0) END"),
    }
    chosen = ", ".join(f"{v} AS {k}" for k, v in columns.items() if k in needs)
    return f"SELECT g.*, {chosen} FROM goods g {' '.join(joins)}"
