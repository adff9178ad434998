"""`cargoscreen query` (SQL over the archive) and `cargoscreen archive-outcomes` (the workbench's
outcomes into the archive). The views and the read-only connection: analytics.py."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from .exits import InputError

ARCHIVE_ENV = "CARGOSCREEN_ARCHIVE"


def _archive(path: str | None) -> Path:
    if not path:
        raise click.UsageError(f"name the archive with --archive or {ARCHIVE_ENV} (a run's OUTPUT/latest/archive)")
    folder = Path(path)
    if not folder.is_dir() or not any((folder / t).is_dir() for t in ("filings", "decisions")):
        raise InputError(f"{path} is not an archive: no filings/ or decisions/ in it "
                         "(a run's archive is OUTPUT/latest/archive, the service's OUTPUT/archive)")
    return folder


@click.command("query")
@click.argument("sql")
@click.option("--archive", "archive_path", envvar=ARCHIVE_ENV, default=None,
              help=f"The Parquet archive (or {ARCHIVE_ENV}).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--max-rows", default=10_000, show_default=True, type=click.IntRange(min=1))
@click.option("--timeout", "seconds", default=300.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Seconds a query may take before it is stopped.")
@click.option("--centre", default=None, help="Only this risk centre's decisions and outcomes, as its analysts see them.")
def query(sql, archive_path, fmt, max_rows, seconds, centre) -> None:
    """Ask the archive a question in SQL (DuckDB), read-only. Views: filings (each decision with the
    screening record it was made on), goods, parties, containers, facts, hits (rules that fired),
    outcomes, submissions; indicators: referral_rate, rule_hit_rate, outcomes_by_area,
    time_to_decision, time_to_outcome. Columns: connectors/ARCHIVE.md.

    \b
    cargoscreen query --archive out/latest/archive \\
      "SELECT hs6, count(*) FROM goods WHERE hs4 = '2939' GROUP BY 1 ORDER BY 2 DESC"
    """
    from .analytics import QueryError, archive_connection, run_query

    root = _archive(archive_path)
    with archive_connection(root, centre) as con:
        try:
            result = run_query(con, sql, seconds, max_rows)
        except QueryError as exc:
            click.echo(f"cargoscreen: query refused or failed: {exc}", err=True)
            sys.exit(1)
    if fmt == "csv":
        click.echo(result.csv(), nl=False)
    elif fmt == "json":
        for row in result.rows:
            click.echo(json.dumps(dict(zip(result.columns, row)), default=str))
    else:
        table = Table(header_style="bold")
        for column in result.columns:
            table.add_column(column, overflow="fold")
        for row in result.rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        console = Console()
        console.print(table)
        console.print(f"{len(result.rows)} row(s){' (more not shown: --max-rows)' if result.truncated else ''} "
                      f"in {result.seconds:.2f} s")
    if result.truncated:
        click.echo(f"cargoscreen: only the first {max_rows} rows (--max-rows)", err=True)


@click.command("archive-outcomes")
@click.argument("archive", type=click.Path(file_okay=False))
@click.option("--redis-url", envvar="CARGOSCREEN_REDIS_URL", required=True, help="The workbench's Redis.")
def archive_outcomes_command(archive, redis_url) -> None:
    """Write the outcomes of resolved referrals (every centre's) that the archive does not hold yet
    into ARCHIVE/outcomes/, for the indicators and ad hoc questions."""
    from .analytics import archive_outcomes
    from .config import Settings
    from .connectors.redis_store import connect

    written = archive_outcomes(connect(redis_url), Path(archive), Settings().redis.key_prefix)
    click.echo(f"{written} outcome(s) archived in {archive}/outcomes")
