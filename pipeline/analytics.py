"""Analytics over the Parquet archive: SQL with DuckDB, read-only, per risk centre, time-limited.

    with archive_connection(root, centre="RC-NL") as con:     # None: every centre (the operator's CLI)
        result = run_query(con, "SELECT hs6, count(*) FROM goods GROUP BY 1", seconds=10)

For a centre (the workbench), DuckDB gets the archive's Parquet files as pyarrow datasets registered
with the connection, each filtered to the centre's rows before DuckDB sees it, and then loses every
access to files (`enable_external_access = false`, no Python variables as tables, configuration
locked): a query reads the views below and nothing else, never another centre's rows. For the
operator (`cargoscreen query`, every centre) DuckDB reads the files itself, several times faster, with
access to the archive's folder only. Either way a query is one SELECT (DuckDB's parser says), so
nothing is written. A watchdog interrupts a query at its time limit.

Views (one row per ...):
    filings       decision, with the screening record it was made on (connectors/ARCHIVE.md)
    goods, parties, containers, facts, hits
                  goods item, party, container, fact, rule that fired, of a filing, with its keys
    outcomes      referral's outcome, as the analyst resolved it
    submissions   submission as received, without its bytes (every centre only: `cargoscreen query`)
    indicators    see INDICATORS: referral rate, hit rate per rule, outcomes per risk area, time
                  to decision and to outcome, per day and centre
"""
from __future__ import annotations

import io
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.dataset as ds

from .csvcells import Writer
from .connectors.archive import DECISIONS, FILINGS, ITEMS, OUTCOMES, SCHEMAS, private_folder, write_part

_PARTITIONS = [pa.field("date", pa.string()), pa.field("mode", pa.string())]
# The keys every item view carries: which filing (consignment version) it belongs to, and where it went.
_KEYS = "mrn, consignment, version, submission_id, risk_centre, decision, assessed_at, date, mode"

VIEWS = {
    "filings": "SELECT * FROM _decisions",
    "goods": "SELECT *, substr(hs_code, 1, 2) AS hs2, substr(hs_code, 1, 4) AS hs4, substr(hs_code, 1, 6) AS hs6 FROM _goods",
    "parties": "SELECT * FROM _parties",
    "containers": "SELECT * FROM _containers",
    "facts": "SELECT * FROM _facts",
    "hits": f"SELECT {_KEYS}, rule_pack, h.* FROM (SELECT {_KEYS}, rule_pack, unnest(hits) AS h FROM _decisions)",
    # The latest resolution of each referral (a re-exported outcome is the same row again).
    "outcomes": "SELECT * FROM _outcomes QUALIFY row_number() OVER (PARTITION BY referral_id ORDER BY resolved_at DESC) = 1",
}
# The indicators the EU risk management strategy asks to monitor, per day (of the decision) and centre.
INDICATORS = {
    "referral_rate": """
        SELECT date, risk_centre, count(*) AS filings, count(referral_id) AS referrals,
               count(referral_id) / count(*) AS referral_rate
        FROM filings GROUP BY ALL""",
    "rule_hit_rate": """
        SELECT h.date, h.risk_centre, h.rule, any_value(h.area) AS area, count(*) AS hits,
               count(*) FILTER (WHERE h.decision <> 'assessment-complete') AS in_referrals,
               count(o.outcome) AS resolved, count(*) FILTER (WHERE o.outcome = 'finding') AS findings,
               count(*) FILTER (WHERE o.outcome = 'finding') / nullif(count(o.outcome), 0) AS hit_rate
        FROM hits h LEFT JOIN outcomes o ON o.referral_id = 'REF-' || h.mrn GROUP BY ALL""",
    "outcomes_by_area": """
        SELECT h.date, h.risk_centre, h.area, o.outcome, count(DISTINCT o.referral_id) AS referrals
        FROM outcomes o JOIN hits h ON 'REF-' || h.mrn = o.referral_id GROUP BY ALL""",
    "time_to_decision": """
        SELECT date, risk_centre, count(*) AS filings,
               quantile_cont(epoch(assessed_at) - epoch(received_at), 0.5) AS p50_seconds,
               quantile_cont(epoch(assessed_at) - epoch(received_at), 0.95) AS p95_seconds
        FROM filings WHERE received_at IS NOT NULL GROUP BY ALL""",
    "time_to_outcome": """
        SELECT f.date, f.risk_centre, count(*) AS resolved,
               quantile_cont(epoch(o.resolved_at) - epoch(f.assessed_at), 0.5) / 3600 AS p50_hours,
               quantile_cont(epoch(o.resolved_at) - epoch(f.assessed_at), 0.95) / 3600 AS p95_hours
        FROM outcomes o JOIN filings f ON f.referral_id = o.referral_id GROUP BY ALL""",
}


class QueryError(Exception):
    """A query refused, failed or interrupted; the message is for the analyst."""


def dataset(root: Path, table: str, leave_out: tuple[str, ...] = ()) -> ds.Dataset:
    """One table of the archive, every schema version read as the latest (columns a file lacks are null)."""
    schema = pa.schema([f for f in SCHEMAS[table] if f.name not in leave_out] + _PARTITIONS)
    folder = Path(root) / table
    if not folder.is_dir():
        return ds.dataset(pa.table({f.name: pa.array([], f.type) for f in schema}, schema=schema))
    return ds.dataset(folder, format="parquet", partitioning=ds.partitioning(pa.schema(_PARTITIONS), flavor="hive"),
                      schema=schema)


def _parquet(root: Path, table: str) -> str:
    """DuckDB's own reader of one table (every version: union_by_name), with its partition columns."""
    files = str(Path(root).resolve() / table / "*" / "*" / "*.parquet").replace("'", "''")
    return (f"read_parquet('{files}', hive_partitioning = true, hive_types_autocast = false, "
            f"union_by_name = true)")


@contextmanager
def archive_connection(root: Path, centre: str | None = None, threads: int | None = None,
                       memory_limit: str | None = None) -> Iterator:
    """A DuckDB connection that can read the archive's views and nothing else (see the module's
    docstring). `centre`: only that risk centre's decisions, items and outcomes, through pyarrow
    datasets filtered before DuckDB sees them, and no file access at all. None (the operator, every
    centre): DuckDB reads the Parquet files itself (several times faster on items), with access to
    the archive's folder only; run_query runs nothing but SELECT there, so nothing is written."""
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        con.execute("SET enable_progress_bar = false")
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        if memory_limit:
            con.execute("SET memory_limit = ?", [memory_limit])
        tables = (DECISIONS, OUTCOMES, *ITEMS)
        if centre is None:
            for table in (*tables, FILINGS):
                name = "_submissions" if table == FILINGS else f"_{table}"
                # Every column of the latest version: those an older file lacks come in as null.
                empty = dataset(root, table, leave_out=("payload",)).schema.empty_table()
                con.register(f"{name}_columns", empty)
                if (Path(root) / table).is_dir():
                    leave_out = " EXCLUDE (payload)" if table == FILINGS else ""
                    con.execute(f"CREATE VIEW {name} AS SELECT *{leave_out} FROM {_parquet(root, table)} "
                                f"UNION ALL BY NAME SELECT * FROM {name}_columns")
                else:  # a table the archive does not have yet
                    con.execute(f"CREATE VIEW {name} AS SELECT * FROM {name}_columns")
            con.execute("CREATE VIEW submissions AS SELECT * FROM _submissions")
        else:
            for table in tables:  # the centre's rows only, before DuckDB can see any
                con.register(f"_{table}", dataset(root, table).filter(ds.field("risk_centre") == centre))
        for name, sql in {**VIEWS, **INDICATORS}.items():
            con.execute(f"CREATE VIEW {name} AS {sql}")
        if centre is None:  # the archive's folder, read (SELECT only: run_query) and nothing else
            con.execute("SET allowed_directories = ?", [[str(Path(root).resolve()) + "/"]])
        for setting in ("SET python_enable_replacements = false", "SET enable_external_access = false",
                        "SET autoinstall_known_extensions = false", "SET autoload_known_extensions = false",
                        "SET lock_configuration = true"):
            con.execute(setting)
        yield con
    finally:
        con.close()


@dataclass
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[tuple]
    truncated: bool  # more rows than max_rows
    seconds: float

    def csv(self) -> str:
        """The result as CSV for a spreadsheet: no cell runs as a formula (csvcells.py)."""
        out = io.StringIO()
        writer = Writer(out, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows(self.rows)
        return out.getvalue()


def run_query(con, sql: str, seconds: float = 30.0, max_rows: int = 10_000) -> QueryResult:
    """Runs one query with a time limit (a watchdog interrupts it); QueryError when it fails."""
    import duckdb

    if not sql or not sql.strip():
        raise QueryError("the query is empty")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(str(exc).split("\n\nLINE", 1)[0]) from None
    if len(statements) != 1 or statements[0].type not in (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN):
        raise QueryError("one SELECT (or EXPLAIN) at a time: the archive is read-only here")
    started = time.monotonic()
    interrupted = threading.Event()

    def stop() -> None:
        interrupted.set()
        con.interrupt()

    watchdog = threading.Timer(seconds, stop)
    watchdog.daemon = True
    watchdog.start()
    try:
        cursor = con.execute(sql)
        if cursor.description is None:
            return QueryResult([], [], [], False, time.monotonic() - started)
        rows = cursor.fetchmany(max_rows + 1)
        columns = [d[0] for d in cursor.description]
        types = [str(d[1]) for d in cursor.description]
    except duckdb.Error as exc:
        if interrupted.is_set():
            raise QueryError(f"the query took longer than its limit of {seconds:g} s and was stopped") from None
        raise QueryError(str(exc).split("\n\nLINE", 1)[0]) from None
    finally:
        watchdog.cancel()
    return QueryResult(columns, types, rows[:max_rows], len(rows) > max_rows, time.monotonic() - started)


# -- outcomes into the archive ------------------------------------------------------------------------
def outcome_rows(resolved: list[dict], centre: str) -> list[dict]:
    """Archive rows of a centre's resolved referrals (ReferralQueue.resolved)."""
    from datetime import datetime, timezone

    def when(value) -> datetime | None:
        try:
            return datetime.fromtimestamp(float(value), timezone.utc) if value not in (None, "") else None
        except ValueError:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))

    return [{"referral_id": r["referral_id"], "mrn": r["mrn"], "risk_centre": centre, "decision": r["decision"],
             "outcome": r["outcome"], "category": r.get("category") or None, "resolved_by": r.get("resolved_by") or None,
             "resolved_at": when(r.get("resolved_at"))}
            for r in resolved if r.get("outcome")]


def archive_outcomes(client, root: Path, key_prefix: str = "cs") -> int:
    """Writes the outcomes of every centre's resolved referrals not yet in the archive
    (outcomes/date=<day resolved>/mode=<mode>/); returns how many."""
    from .workbench.queue import ReferralQueue, centres

    existing = dataset(root, OUTCOMES).to_table(columns=["referral_id", "resolved_at"]).to_pylist()
    done = {(r["referral_id"], r["resolved_at"]) for r in existing}
    written = 0
    for centre in centres(client, key_prefix):
        queue = ReferralQueue(client, centre, key_prefix)
        resolved = queue.resolved(count=client.zcard(queue.keys.base("resolved")) or 1)
        modes = {r["referral_id"]: r.get("mode") or "unknown" for r in resolved}
        parts: dict[tuple[str, str], list[dict]] = {}
        for row in outcome_rows(resolved, centre):
            if (row["referral_id"], row["resolved_at"]) in done or row["resolved_at"] is None:
                continue
            parts.setdefault((f"{row['resolved_at']:%Y-%m-%d}", modes[row["referral_id"]]), []).append(row)
        for (day, mode), rows in parts.items():
            private_folder(Path(root))
            write_part(Path(root), OUTCOMES, day, mode, rows)
            written += len(rows)
    return written
