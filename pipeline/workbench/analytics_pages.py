"""The workbench's analytics: ad hoc SQL over the centre's archive, and the indicators as charts.

    GET /analytics/query?sql=...        the query page: results as a table and, where a picture
                                        serves, as a bar chart (a label column and a number column)
    GET /analytics/query.csv?sql=...    the same results as CSV
    GET /analytics/indicators           referral rate, hit rate per rule, outcomes per risk area,
                                        time to decision, per day, for the analyst's centre

Each query gets a connection of its own that sees only the analyst's centre's decisions and
outcomes and no file (analytics.archive_connection), a time limit, a thread budget, and at most
QUERY_SLOTS run at once in the server; each is in the audit trail (who asked what).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ..analytics import QueryError, QueryResult, archive_connection, run_query

QUERY_SLOTS = 2  # queries running at once: the queue's pages keep their share of the machine
MAX_ROWS = 5_000
MAX_BARS = 60
EXAMPLES = (
    ("Referrals per mode", "SELECT mode, count(*) AS filings, count(referral_id) AS referrals\nFROM filings GROUP BY mode ORDER BY filings DESC"),
    ("Goods of a heading", "SELECT hs6, count(*) AS items, round(sum(gross_mass)) AS kg\nFROM goods WHERE hs4 = '2939'\nGROUP BY hs6 ORDER BY items DESC"),
    ("A shipper's consignments and what became of them",
     "SELECT f.assessed_at, f.mrn, f.decision, o.outcome, o.category\nFROM filings f JOIN parties p ON p.mrn = f.mrn AND p.version = f.version\n"
     "LEFT JOIN outcomes o ON o.referral_id = f.referral_id\nWHERE p.role = 'consignor' AND p.name_key LIKE '%trading%'\n"
     "  AND f.place_of_unloading = 'NLRTM' AND f.assessed_at > now() - INTERVAL 90 DAY\nORDER BY f.assessed_at DESC"),
    ("Rules that fired", "SELECT rule, area, count(*) AS hits FROM hits GROUP BY ALL ORDER BY hits DESC"),
)
_NUMBERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
            "FLOAT", "DOUBLE", "DECIMAL", "REAL")


@dataclass
class Chart:
    title: str
    label: str
    value: str
    bars: list[tuple[str, float, float]]  # label, value, width in % of the largest


def chart_of(result: QueryResult, title: str = "") -> Chart | None:
    """A bar chart of the first number column against the first other column, when the result has
    both and not too many rows to read as bars."""
    numbers = [i for i, t in enumerate(result.types) if t.upper().startswith(_NUMBERS)]
    labels = [i for i in range(len(result.columns)) if i not in numbers]
    if not numbers or not labels or not result.rows or len(result.rows) > MAX_BARS:
        return None
    n, l = numbers[0], labels[0]
    values = [float(row[n]) if row[n] is not None else 0.0 for row in result.rows]
    top = max((abs(v) for v in values), default=0.0) or 1.0
    return Chart(title or f"{result.columns[n]} by {result.columns[l]}", result.columns[l], result.columns[n],
                 [(str(row[l]), v, 100 * abs(v) / top) for row, v in zip(result.rows, values)])


# The indicators page: each chart one query over the indicator views (analytics.INDICATORS).
INDICATOR_CHARTS = (
    ("Referral rate per day", "SELECT date, round(100 * referral_rate, 2) AS referral_rate_percent, filings, referrals "
                              "FROM referral_rate ORDER BY date DESC LIMIT 30"),
    ("Hits per rule (the table: in referrals, resolved, with a finding, hit rate)",
     "SELECT rule, sum(hits) AS hits, sum(in_referrals) AS in_referrals, sum(resolved) AS resolved, "
     "sum(findings) AS findings, round(100 * sum(findings) / nullif(sum(resolved), 0), 1) AS hit_rate_percent "
     "FROM rule_hit_rate GROUP BY rule ORDER BY hits DESC LIMIT 40"),
    ("Outcomes per risk area", "SELECT area || ': ' || outcome AS area_outcome, sum(referrals) AS referrals "
                               "FROM outcomes_by_area GROUP BY ALL ORDER BY referrals DESC"),
    ("Time to decision per day (seconds from receipt, median)",
     "SELECT date, round(p50_seconds, 3) AS median_seconds, round(p95_seconds, 3) AS p95_seconds, filings "
     "FROM time_to_decision ORDER BY date DESC LIMIT 30"),
    ("Time to outcome per day (hours from decision to resolution, median)",
     "SELECT date, round(p50_hours, 2) AS median_hours, round(p95_hours, 2) AS p95_hours, resolved "
     "FROM time_to_outcome ORDER BY date DESC LIMIT 30"),
)


def analytics_routes(archive: Path, page: Callable, signed_in: Callable, record: Callable, analyst_of: Callable,
                     seconds: float = 30.0, threads: int = 2, memory_limit: str = "1GB") -> list[Route]:
    """The routes, given the workbench's page renderer, sign-in guard, audit recorder and
    (analyst, centre) of a request."""
    slots = threading.BoundedSemaphore(QUERY_SLOTS)

    def ask(centre: str, sql: str, rows: int = MAX_ROWS) -> QueryResult:
        if not slots.acquire(timeout=seconds):
            raise QueryError("the server is busy with other queries: try again in a moment")
        try:
            with archive_connection(archive, centre, threads=threads, memory_limit=memory_limit) as con:
                return run_query(con, sql, seconds, rows)
        finally:
            slots.release()

    def query_page(request: Request) -> Response:
        who, centre = analyst_of(request)
        sql = request.query_params.get("sql", "")
        result = error = None
        if sql.strip():
            record(who, centre, "query", "", sql[:1000])
            try:
                result = ask(centre, sql)
            except QueryError as exc:
                error = str(exc)
        return page(request, "query.html", sql=sql or EXAMPLES[0][1], result=result, error=error,
                    chart=chart_of(result) if result else None, examples=EXAMPLES, seconds=seconds,
                    status=400 if error else 200)

    def query_csv(request: Request) -> Response:
        who, centre = analyst_of(request)
        sql = request.query_params.get("sql", "")
        record(who, centre, "query-export", "", sql[:1000])
        try:
            result = ask(centre, sql, rows=1_000_000)
        except QueryError as exc:
            return PlainTextResponse(str(exc), status_code=400)
        return PlainTextResponse(result.csv(), media_type="text/csv",
                                 headers={"Content-Disposition": f"attachment; filename=query-{centre}.csv"})

    def indicators_page(request: Request) -> Response:
        _, centre = analyst_of(request)
        charts, errors = [], []
        for title, sql in INDICATOR_CHARTS:
            try:
                result = ask(centre, sql)
                charts.append((title, result, chart_of(result, title)))
            except QueryError as exc:
                errors.append(f"{title}: {exc}")
        return page(request, "indicators.html", charts=charts, errors=errors)

    return [Route("/analytics/query", signed_in(query_page)), Route("/analytics/query.csv", signed_in(query_csv)),
            Route("/analytics/indicators", signed_in(indicators_page))]
