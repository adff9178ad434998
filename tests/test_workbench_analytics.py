"""The workbench's query page and indicators in a real browser, over the archive of a real service
run; and what a query must not do: see another centre's rows, read a file outside the archive,
write anything, or run past its time limit.

Screenshots go to test-output/workbench/ (kept after the run)."""
from __future__ import annotations

import csv
import io
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from cargoscreen import audit
from cargoscreen.analytics import archive_outcomes
from cargoscreen.connectors.archive import DECISIONS, read_archive
from cargoscreen.workbench.accounts import add_analyst
from cargoscreen.workbench.keeper import Keeper
from cargoscreen.workbench.queue import ReferralQueue

from .conftest import screen_through_service, workbench_server
from .test_workbench_browser import PASSWORD, browser, pytestmark, shot, sign_in, until  # noqa: F401 (fixture)

QUERY_SECONDS = 2


@pytest.fixture(scope="module")
def screened(tmp_path_factory, redis_server):
    """Filings through the real service into its archive; two referrals of the busiest centre resolved
    in the workbench's queue and their outcomes archived."""
    from cargoscreen.connectors.redis_store import connect

    client = connect(redis_server.url)
    client.flushall()
    work = tmp_path_factory.mktemp("wb-analytics")
    archive = work / "archive"
    s = screen_through_service(redis_server.url, work, 240, 12, ("sea", "air"), archive)
    Keeper(client, s).once()
    decisions = read_archive(archive, DECISIONS).to_pylist()
    referred = {}
    for d in decisions:
        if d["referral_id"]:
            referred.setdefault(d["risk_centre"], []).append(d)
    centre, other = sorted(referred, key=lambda c: -len(referred[c]))[:2]
    queue = ReferralQueue(client, centre)
    resolved = {}
    for d, (outcome, category) in zip(referred[centre], (("finding", "drugs"), ("no-finding", ""))):
        queue.claim(d["referral_id"], "alice")
        queue.resolve(d["referral_id"], "alice", outcome, category)
        resolved[d["referral_id"]] = (outcome, d)
    assert archive_outcomes(client, archive) == 2
    yield client, work, archive, centre, other, decisions, resolved
    client.flushall()


@pytest.fixture(scope="module")
def server(screened, redis_server):
    client, work, archive, centre, other, decisions, resolved = screened
    analysts = work / "analysts"
    add_analyst(analysts, "alice", centre, PASSWORD)
    add_analyst(analysts, "bob", other, PASSWORD)
    with workbench_server(redis_server.url, analysts, work, "--archive", str(archive), "--no-keeper",
                          "--query-seconds", str(QUERY_SECONDS)) as base:
        yield base, screened


def _ask(base: str, cookie: str, sql: str, path: str = "/analytics/query") -> tuple[int, str]:
    request = urllib.request.Request(f"{base}{path}?{urllib.parse.urlencode({'sql': sql})}",
                                     headers={"Cookie": f"cs_workbench={cookie}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _rows(page: str) -> list[list[str]]:
    """The result table's rows as the page shows them (header row left out)."""
    import re

    table = page.split('id="result"', 1)[1].split("</table>", 1)[0] if 'id="result"' in page else ""
    return [re.findall(r"<td>(.*?)</td>", row, re.S) for row in table.split("<tr>")[2:]]


def test_an_analyst_asks_the_archive_and_reads_the_indicators_in_a_browser(server, browser):
    from selenium.webdriver.common.by import By

    base, (client, work, archive, centre, other, decisions, resolved) = server
    mine = [d for d in decisions if d["risk_centre"] == centre]
    sign_in(browser, base, "alice")
    browser.find_element(By.LINK_TEXT, "Query").click()
    until(browser, lambda d: "/analytics/query" in d.current_url, "query page")
    box = browser.find_element(By.ID, "sql")
    box.clear()
    box.send_keys("SELECT risk_centre, count(*) AS filings, count(referral_id) AS referrals FROM filings GROUP BY 1")
    browser.find_element(By.ID, "run").click()
    until(browser, lambda d: d.find_elements(By.ID, "result"), "result")
    cells = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "#result td")]
    assert cells == [centre, str(len(mine)), str(sum(1 for d in mine if d["referral_id"]))]  # its own centre only
    shot(browser, "20-query")

    by_mode = "SELECT mode, count(*) AS filings FROM filings GROUP BY mode ORDER BY mode"
    browser.get(f"{base}/analytics/query?{urllib.parse.urlencode({'sql': by_mode})}")
    modes = sorted({d["mode"] for d in mine})
    bars = browser.find_elements(By.CSS_SELECTOR, "#chart .bar")
    assert len(bars) == len(modes) and max(b.size["width"] for b in bars) > 100  # drawn, the largest full width
    assert [td.text for td in browser.find_elements(By.CSS_SELECTOR, "#chart td.label")] == modes
    href = browser.find_element(By.ID, "csv").get_attribute("href")
    status, text = _ask(href.split("/analytics")[0], browser.get_cookie("cs_workbench")["value"], by_mode,
                        "/analytics/query.csv")
    assert status == 200
    assert list(csv.reader(io.StringIO(text))) == [["mode", "filings"]] + [
        [m, str(sum(1 for d in mine if d["mode"] == m))] for m in modes]
    shot(browser, "21-query-chart")

    browser.find_element(By.LINK_TEXT, "Indicators").click()
    until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "section.indicator"), "indicators")
    assert len(browser.find_elements(By.CSS_SELECTOR, "section.indicator")) == 5
    rate = browser.find_element(By.ID, "table-1").text
    referrals = sum(1 for d in mine if d["referral_id"])
    assert f"{100 * referrals / len(mine):.2f}".rstrip("0").rstrip(".") in rate
    areas = browser.find_element(By.ID, "indicator-3").text  # outcomes per risk area: the two resolved
    for rid, (outcome, d) in resolved.items():
        for hit in d["hits"]:
            assert f"{hit['area']}: {outcome}" in areas
    assert browser.find_elements(By.CSS_SELECTOR, "#chart-1 .bar")
    shot(browser, "22-indicators")


def test_a_query_sees_its_centre_only_reads_no_file_writes_nothing_and_stops_at_its_limit(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    base, (client, work, archive, centre, other, decisions, resolved) = server
    theirs = [d for d in decisions if d["risk_centre"] == other]
    before = {p: p.stat().st_mtime_ns for p in archive.rglob("*")}
    sign_in(browser, base, "bob")
    cookie = browser.get_cookie("cs_workbench")["value"]

    def ask(sql: str) -> tuple[int, str]:
        return _ask(base, cookie, sql)

    assert _rows(ask("SELECT count(*) FROM filings")[1]) == [[str(len(theirs))]]
    assert _rows(ask("SELECT count(*) FROM _decisions")[1]) == [[str(len(theirs))]]  # the registered data itself
    assert _rows(ask(f"SELECT count(*) FROM filings WHERE risk_centre <> '{other}'")[1]) == [["0"]]
    assert _rows(ask("SELECT count(*) FROM outcomes")[1]) == [["0"]]  # alice's centre's outcomes are not bob's
    assert _rows(ask("SELECT count(*) FROM goods")[1]) == [[str(sum(len(d["goods"]) for d in theirs))]]

    parquet = next(archive.rglob("*.parquet"))
    escapes = [f"SELECT * FROM read_parquet('{parquet}')", f"SELECT * FROM read_parquet('{archive}/**/*.parquet')",
               "SELECT * FROM read_csv('/etc/passwd')", "SELECT * FROM glob('/*')",
               f"COPY (SELECT 1) TO '{tmp_path}/out.csv'", f"ATTACH '{tmp_path}/db.duckdb' AS x",
               "SET enable_external_access = true", "INSTALL httpfs", "SELECT * FROM submissions",
               "SELECT * FROM decisions"]  # no such table: a Python variable of the server is no table either
    for sql in escapes:
        status, page = ask(sql)
        assert status == 400 and 'id="error"' in page and not _rows(page), sql
    assert list(tmp_path.iterdir()) == []

    for sql in ("CREATE TABLE kept AS SELECT 1 AS x", "SELECT 1; CREATE TABLE kept AS SELECT 1 AS x",
                "INSERT INTO filings SELECT * FROM filings", "DROP VIEW filings"):
        status, page = ask(sql)
        assert status == 400 and "read-only" in page, sql
    assert ask("SELECT * FROM kept")[0] == 400 and _rows(ask("SELECT count(*) FROM filings")[1]) == [[str(len(theirs))]]

    started = time.monotonic()
    status, page = ask("SELECT count(*) FROM range(1000000000000) a, range(1000) b")
    assert status == 400 and f"longer than its limit of {QUERY_SECONDS} s" in page
    assert time.monotonic() - started < QUERY_SECONDS + 15
    assert {p: p.stat().st_mtime_ns for p in archive.rglob("*")} == before  # the archive untouched

    browser.get(f"{base}/analytics/query?{urllib.parse.urlencode({'sql': escapes[2]})}")
    assert "disabled" in browser.find_element(By.ID, "error").text
    shot(browser, "23-query-refused")
    asked = [e for e in audit.entries(client, audit.trails("cs", other), centre=other) if e["action"] == "query"]
    assert any(e["who"] == "bob" and "read_csv('/etc/passwd')" in e["detail"] for e in asked)  # who asked what
