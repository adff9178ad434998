"""Backtests over the archive's record columns: each rule one set-based SQL query, not a parse per filing.

    with ArchiveReplay(root) as replay:                      # the latest decision of each consignment
        fired, slow = replay.fired(pack, now)                # rule id -> rows it fires on; rules done row by row
        report = replay.backtest(active, candidate, labels, now)

The records are those the pipeline decided on (connectors/ARCHIVE.md, version 2): the screening
record with the facts it had then (container status, goods descriptions, party history), so a
replay needs no container-status feed and parses no XML. A rule the SQL compiler cannot express
(rule_sql.CannotExpress), or whose query fails, is evaluated row by row by the scorer itself on
records rebuilt from the columns (`fired_row_by_row`, also the reference the tests compare with).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import pyarrow as pa

from .analytics import dataset
from .backtest import BacktestReport, Replayed, compare
from .connectors.archive import DECISIONS, ITEMS
from .decisions import incompleteness
from .domain.record_columns import FIELDS, record_from_columns
from .domain.rule_sql import CompiledPack, applies, compile_pack, goods_sql
from .domain.rulepack import RulePack
from .domain.scoring import Hit, Scorer, Subject

# What a replay reads of each decision besides its items: keys and the record's filing-level columns.
_LISTS = tuple(ITEMS)
_COLUMNS = ("submission_id", "consignment", "version", "assessed_at", "filing_code", "member_submissions", "missing",
            "container_status", "mode") + tuple(name for name, _ in FIELDS
                                                if name not in ("record_pointers", "warnings", *_LISTS))
_KEYS = ("submission_id", "mrn", "consignment", "version", "state", "risk_centre", "decision", "assessed_at", "item",
         "date", "mode")
# Item columns no condition reads (the row-by-row path reads them from the decisions' nested lists).
_UNREAD = ("pointer", "values", "events")
# Fields the language derives from a goods item (screening.GoodsLine), as the scorer computes them.
_GOODS_DERIVED = """, CASE WHEN g.hs_code <> '' THEN substr(g.hs_code, 1, 2) END AS hs2,
    CASE WHEN g.hs_code <> '' THEN substr(g.hs_code, 1, 4) END AS hs4,
    CASE WHEN g.hs_code <> '' THEN substr(g.hs_code, 1, 6) END AS hs6,
    CASE WHEN g.currency = 'EUR' THEN g.value ELSE g.converted_value END AS value_eur,
    CASE WHEN g.gross_mass <> 0 THEN (CASE WHEN g.currency = 'EUR' THEN g.value ELSE g.converted_value END) / g.gross_mass
         END AS value_per_kg,
    CASE WHEN g.gross_mass IS NOT NULL AND g.packages <> 0 THEN g.gross_mass / g.packages END AS kg_per_package"""


def _parquet(root: Path, table: str, filename: bool = False) -> str:
    files = str(Path(root).resolve() / table / "*" / "*" / "*.parquet").replace("'", "''")
    return (f"read_parquet('{files}', hive_partitioning = true, hive_types_autocast = false, "
            f"union_by_name = true{', filename = true' if filename else ''})")


def has_records(root: Path) -> bool:
    """Whether the archive holds decisions with their screening records (version 2)."""
    folder = Path(root) / DECISIONS
    if not folder.is_dir():
        return False
    import pyarrow.dataset as ds

    table = dataset(root, DECISIONS).to_table(columns=["record_filing_code"],
                                              filter=ds.field("record_filing_code").is_valid())
    return table.num_rows > 0


@dataclass
class SlowRule:
    rule: str
    reason: str


class ArchiveReplay:
    """The archive's records loaded into DuckDB once, for any number of packs."""

    def __init__(self, root: Path, threads: int | None = None):
        import duckdb

        self.con = duckdb.connect(":memory:")
        self.con.execute("SET enable_progress_bar = false")
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        # DuckDB reads the Parquet files itself (in parallel); a file of another version lacks columns: null.
        self.con.execute(f"CREATE TEMP VIEW _decisions AS SELECT * FROM {_parquet(root, DECISIONS)} "
                         f"WHERE record_filing_code IS NOT NULL")
        # The latest decision of each consignment (a re-assessed consignment's version stands). A record
        # and its items meet on rid, a 64-bit hash of (consignment, version): no join of the items needed.
        columns = ", ".join(f"d.{c}" for c in _COLUMNS)
        self.con.execute(f"""CREATE TEMP TABLE records AS SELECT hash(d.consignment, d.version) AS rid, {columns}
            FROM _decisions d SEMI JOIN (SELECT consignment, max(version) AS version FROM _decisions GROUP BY consignment) k
            ON d.consignment = k.consignment AND d.version = k.version""")
        count, consignments = self.con.execute("SELECT count(*), count(DISTINCT consignment) FROM records").fetchall()[0]
        if count != consignments:  # the same decision archived twice (a streaming run's at-least-once)
            self.con.execute("CREATE TEMP TABLE deduplicated AS SELECT * FROM records "
                             "QUALIFY row_number() OVER (PARTITION BY consignment ORDER BY assessed_at) = 1")
            self.con.execute("DROP TABLE records")
            self.con.execute("ALTER TABLE deduplicated RENAME TO records")
        superseded = self.con.execute("SELECT count(*) FROM _decisions").fetchall()[0][0] != count
        twice = count != consignments  # an uncompacted streaming archive: its items were archived twice too
        for table in _LISTS:  # each item with its record's rid: the flat tables, else the nested lists
            derived = _GOODS_DERIVED if table == "goods" else ""
            if (Path(root) / table).is_dir():
                unread = [c for c in _UNREAD if c in {f.name for f in ITEMS[table]}]
                source = (f"SELECT hash(consignment, version) AS rid, * EXCLUDE ({', '.join(_KEYS + tuple(unread))}) "
                          f"FROM {_parquet(root, table, filename=twice)}")
                if superseded:  # items of versions a re-assessment replaced stay out
                    source = f"SELECT * FROM ({source}) WHERE rid IN (SELECT rid FROM records)"
                if twice:  # a decision's items are written in one file: those of its first file count
                    source = (f"SELECT * EXCLUDE (filename) FROM ({source}) "
                              f"QUALIFY dense_rank() OVER (PARTITION BY rid ORDER BY filename) = 1")
            else:
                decisions = ("(SELECT * FROM _decisions QUALIFY row_number() OVER (PARTITION BY consignment, version "
                             "ORDER BY assessed_at) = 1)") if twice else "_decisions"
                source = (f"SELECT rid, g.* FROM (SELECT r.rid, unnest(d.{table}) AS g FROM {decisions} d "
                          f"JOIN records r USING (consignment, version, submission_id))")
            self.con.execute(f"CREATE TEMP TABLE {table} AS SELECT g.*{derived} FROM ({source}) g")
        self.count = consignments
        self._packs = 0
        self._distinct: dict[tuple[str, str], list[str]] = {}
        self._keys: list[list] | None = None

    def __enter__(self) -> "ArchiveReplay":
        return self

    def __exit__(self, *exc) -> None:
        self.con.close()

    # -- one pack -------------------------------------------------------------------------------
    def prepare(self, pack: RulePack, now: float) -> CompiledPack:
        """Compiles the pack and loads the tables its rules read."""
        self._packs += 1
        compiled = compile_pack(pack, now, f"p{self._packs}_")
        for name, table in compiled.tables.items():
            self.con.register(name, table)
        for name, matcher, items, column in compiled.matches:  # the scorer's matcher on each distinct text once
            texts = self._distinct.get((items, column))
            if texts is None:
                texts = self._distinct[(items, column)] = [t for (t,) in self.con.execute(
                    f"SELECT DISTINCT {column} FROM {items} WHERE {column} IS NOT NULL").fetchall()]
            self.con.register(name, pa.table({"text": pa.array([t for t in texts if matcher.find(t)], pa.string())}))
        if compiled.statistics:
            # a view: the aggregates' one pass over the goods computes the statistics on the way
            self.con.execute(f"CREATE TEMP VIEW {compiled.goods} AS {goods_sql(compiled, pack.environment.statistics)}")
        for name, sql in compiled.aggregate_tables().items():
            self.con.execute(f"CREATE TEMP TABLE {name} AS {sql}")
        return compiled

    def fired(self, pack: RulePack, now: float) -> tuple[dict[str, set[int]], list[SlowRule]]:
        """Rule id -> the rows (rid) it fires on, as of `now`; and the rules done row by row, with why."""
        compiled = self.prepare(pack, now)
        by_id = {r.id: r for r in pack.rules}
        fired: dict[str, set[int]] = {}
        slow: list[SlowRule] = []
        tests: dict[str, str] = {}
        for rule_sql in compiled.rules:
            rule = by_id[rule_sql.id]
            test = applies(rule, now)
            if test is None:
                fired[rule.id] = set()
            elif rule_sql.sql is None:
                slow.append(SlowRule(rule.id, rule_sql.reason))
            else:
                tests[rule.id] = f"({test} AND {rule_sql.sql})"
        try:  # every rule in one pass over the records and their aggregates
            fired.update(self._select(compiled, tests))
        except Exception:  # one rule's query fails: find it (the others still run in SQL)
            for rule_id, test in tests.items():
                try:
                    fired.update(self._select(compiled, {rule_id: test}))
                except Exception as exc:  # the scorer decides it, row by row
                    slow.append(SlowRule(rule_id, f"query failed: {str(exc).splitlines()[0]}"))
        if slow:
            slow_ids = {s.rule for s in slow}
            by_row = fired_row_by_row(self, Scorer(pack), now, only=slow_ids)
            for rule_id in slow_ids:
                fired[rule_id] = by_row.get(rule_id, set())
        return fired, slow

    def _select(self, compiled: CompiledPack, tests: dict[str, str]) -> dict[str, set[int]]:
        if not tests:
            return {}
        names = list(tests)
        columns = ", ".join(f"{test} AS r{i}" for i, test in enumerate(tests.values()))
        table = self.con.sql(f"SELECT rid, {columns} FROM {compiled.source()}").to_arrow_table()
        rid = table.column("rid")
        return {name: set(rid.filter(table.column(f"r{i}")).to_pylist()) for i, name in enumerate(names)}

    def rows(self, columns: str = "*", batch: int = 2048, where: str = "TRUE") -> Iterator[dict]:
        """The records in rid order; columns "*": every column of the decision (nested lists too)."""
        if columns == "*":
            sql = (f"SELECT r.rid, d.* FROM records r JOIN _decisions d USING (consignment, version, submission_id) "
                   f"WHERE {where} QUALIFY row_number() OVER (PARTITION BY r.rid) = 1 ORDER BY rid")
        else:
            sql = f"SELECT {columns} FROM records WHERE {where} ORDER BY rid"
        reader = self.con.sql(sql).to_arrow_reader(batch)
        for record_batch in reader:
            yield from record_batch.to_pylist()

    # -- a whole backtest ----------------------------------------------------------------------
    def backtest(self, active: Scorer, candidate: Scorer, labels: dict[str, dict] | None, now: float
                 ) -> tuple[BacktestReport, dict[str, list[SlowRule]]]:
        """The backtest report of backtest.py, each pack's rules run in SQL; and each pack's slow rules."""
        replays, slow = {}, {}
        for which, scorer in (("active", active), ("candidate", candidate)):
            fired, slow[which] = self.fired(scorer.pack, now)
            replays[which] = self.assessments(scorer, fired)
        return compare(replays["active"], replays["candidate"], active, candidate, labels), slow

    def assessments(self, scorer: Scorer, fired: dict[str, set[int]]) -> dict[str, Replayed]:
        """Each record's assessment from the rules that fired on it, decided as the scorer decides."""
        by_row: dict[int, list] = {}
        for rule in scorer.pack.rules:  # pack order, as the scorer lists what fired
            for rid in fired.get(rule.id, ()):
                by_row.setdefault(rid, []).append(rule)
        if self._keys is None:  # read once for every pack, column by column (rows of Python objects cost more)
            table = self.con.sql("SELECT rid, submission_id, member_submissions, filing_code, record_filing_code, "
                                 "missing FROM records").to_arrow_table()
            self._keys = [column.to_pylist() for column in table.columns]
        out, nothing = {}, {}  # nothing fired: one assessment per filing type serves every such record
        for rid, submission, members, code, record_code, missing in zip(*self._keys):
            rules = by_row.get(rid)
            if rules:
                hits = [Hit(r.id, r.title, r.area, r.weight, r.decision, (), r.ask, r.screening_methods) for r in rules]
                assessment = scorer.decide(record_code, hits, rules)
            else:
                assessment = nothing.get(record_code) or nothing.setdefault(record_code, scorer.decide(record_code, [], []))
            if missing:
                assessment = incompleteness(assessment, tuple(missing))
            out[submission] = Replayed(submission, members or [submission], code, assessment)
        return out


def fired_row_by_row(replay: ArchiveReplay, scorer: Scorer, now: float,
                     only: Iterable[str] | None = None, where: str = "TRUE") -> dict[str, set[int]]:
    """The scorer's own verdicts on the records rebuilt from the columns: rule id -> rows it fires on
    (`only`: just these rules; `where`: just these rows, a test of `records`). The reference the SQL
    path is checked against."""
    wanted = set(only) if only is not None else None
    fired: dict[str, set[int]] = {}
    for row in replay.rows(where=where):
        record, facts = record_from_columns(row)
        rules, _ = scorer.fired(Subject(record, facts, row["container_status"] or "no-containers", now))
        for rule in rules:
            if wanted is None or rule.id in wanted:
                fired.setdefault(rule.id, set()).add(row["rid"])
    return fired
