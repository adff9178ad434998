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
from .connectors.archive import DECISIONS
from .decisions import incompleteness
from .domain.record_columns import record_from_columns
from .domain.rule_sql import CompiledPack, applies, compile_pack, goods_sql
from .domain.rulepack import RulePack
from .domain.scoring import Hit, Scorer, Subject

# The record of each consignment's latest decision (a re-assessed consignment's version that stands).
_RECORDS = """
    CREATE TEMP TABLE records AS
    SELECT row_number() OVER (ORDER BY consignment) AS rid, * EXCLUDE (explanation, hits, rule_errors) FROM (
        SELECT * FROM _decisions WHERE record_filing_code IS NOT NULL
        QUALIFY row_number() OVER (PARTITION BY consignment ORDER BY version DESC, assessed_at DESC) = 1)"""
# Items unnested, with the goods fields the language derives from an item (screening.GoodsLine).
_ITEMS = {
    "goods": """SELECT rid, g.*, CASE WHEN g.hs_code <> '' THEN substr(g.hs_code, 1, 2) END AS hs2,
                   CASE WHEN g.hs_code <> '' THEN substr(g.hs_code, 1, 4) END AS hs4,
                   CASE WHEN g.hs_code <> '' THEN substr(g.hs_code, 1, 6) END AS hs6,
                   CASE WHEN g.value IS NOT NULL AND g.gross_mass <> 0 AND g.currency = 'EUR'
                        THEN g.value / g.gross_mass END AS value_per_kg,
                   CASE WHEN g.gross_mass IS NOT NULL AND g.packages <> 0 THEN g.gross_mass / g.packages END AS kg_per_package
                FROM (SELECT rid, unnest(goods) AS g FROM records)""",
    "parties": "SELECT rid, p.* FROM (SELECT rid, unnest(parties) AS p FROM records)",
    "containers": "SELECT rid, c.* FROM (SELECT rid, unnest(containers) AS c FROM records)",
    "facts": "SELECT rid, x.* FROM (SELECT rid, unnest(facts) AS x FROM records)",
}


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
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        self.con.register("_decisions", dataset(root, DECISIONS))
        self.con.execute(_RECORDS)
        for name, sql in _ITEMS.items():
            self.con.execute(f"CREATE TEMP TABLE {name} AS {sql}")
        self.count = self.con.execute("SELECT count(*) FROM records").fetchall()[0][0]
        self._packs = 0

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
        for name, matcher, items, column in compiled.matches:
            texts = [t for (t,) in self.con.execute(
                f"SELECT DISTINCT {column} FROM {items} WHERE {column} IS NOT NULL").fetchall()]
            self.con.register(name, pa.table({"text": pa.array([t for t in texts if matcher.find(t)], pa.string())}))
        if compiled.statistics:
            self.con.execute(f"CREATE TEMP TABLE {compiled.goods} AS {goods_sql(compiled, pack.environment.statistics)}")
        return compiled

    def fired(self, pack: RulePack, now: float) -> tuple[dict[str, set[int]], list[SlowRule]]:
        """Rule id -> the rows (rid) it fires on, as of `now`; and the rules done row by row, with why."""
        compiled = self.prepare(pack, now)
        by_id = {r.id: r for r in pack.rules}
        fired: dict[str, set[int]] = {}
        slow: list[SlowRule] = []
        for rule_sql in compiled.rules:
            rule = by_id[rule_sql.id]
            test = applies(rule, now)
            if test is None:
                fired[rule.id] = set()
                continue
            if rule_sql.sql is None:
                slow.append(SlowRule(rule.id, rule_sql.reason))
                continue
            try:
                rows = self.con.execute(f"SELECT rid FROM records f WHERE {test} AND {rule_sql.sql}").fetchall()
            except Exception as exc:  # the query failed: the scorer decides, row by row
                slow.append(SlowRule(rule.id, f"query failed: {str(exc).splitlines()[0]}"))
                continue
            fired[rule.id] = {rid for (rid,) in rows}
        if slow:
            slow_ids = {s.rule for s in slow}
            by_row = fired_row_by_row(self, Scorer(pack), now, only=slow_ids)
            for rule_id in slow_ids:
                fired[rule_id] = by_row.get(rule_id, set())
        return fired, slow

    def rows(self, columns: str = "*", batch: int = 2048) -> Iterator[dict]:
        reader = self.con.sql(f"SELECT {columns} FROM records ORDER BY rid").to_arrow_reader(batch)
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
        out = {}
        for row in self.rows("rid, submission_id, member_submissions, filing_code, record_filing_code, missing"):
            rules = by_row.get(row["rid"], [])
            hits = [Hit(r.id, r.title, r.area, r.weight, r.decision, (), r.ask, r.screening_methods) for r in rules]
            assessment = scorer.decide(row["record_filing_code"], hits, rules)
            if row["missing"]:
                assessment = incompleteness(assessment, tuple(row["missing"]))
            out[row["submission_id"]] = Replayed(row["submission_id"], tuple(row["member_submissions"] or ()) or
                                                 (row["submission_id"],), row["filing_code"], assessment)
        return out


def fired_row_by_row(replay: ArchiveReplay, scorer: Scorer, now: float,
                     only: Iterable[str] | None = None) -> dict[str, set[int]]:
    """The scorer's own verdicts on the records rebuilt from the columns: rule id -> rows it fires on
    (`only`: just these rules). The reference the SQL path is checked against."""
    wanted = set(only) if only is not None else None
    fired: dict[str, set[int]] = {}
    for row in replay.rows():
        record, facts = record_from_columns(row)
        rules, _ = scorer.fired(Subject(record, facts, row["container_status"] or "no-containers", now))
        for rule in rules:
            if wanted is None or rule.id in wanted:
                fired.setdefault(rule.id, set()).add(row["rid"])
    return fired
