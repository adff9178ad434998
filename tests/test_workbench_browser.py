"""The workbench end to end in a real browser (Debian's headless chromium, driven by Selenium):
filings through the real service, referrals into the queue, an analyst signs in, filters, reads a
referral, claims and resolves it; another centre cannot see it; risk information published from
the page reaches the scorer; the rule and audit pages show what happened, the rule chart in the
palette's colours as the browser draws it (its pixels read back); a sign-in form posted from
another site signs nobody in (login CSRF).

Screenshots of every page go to test-output/workbench/ (kept after the run, for a human to look at)."""
from __future__ import annotations

import json
import os
import re
import shutil
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest

from cargoscreen.config import Settings
from cargoscreen.connectors.redis_store import hash_tag
from cargoscreen.connectors.redis_streams import StreamKeys
from cargoscreen.corpus import corpus_spec
from cargoscreen.generator import generate
from cargoscreen.service import run_service
from cargoscreen.workbench import palette
from cargoscreen.workbench.accounts import add_analyst
from cargoscreen.workbench.keeper import Keeper
from cargoscreen.workbench.queue import QueueKeys

from .conftest import free_port, screen_through_service, workbench_server
from .pictures import foreign_colours, outcome_bars, pixels, rgb

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
# `make test` installs the browser and sets CARGOSCREEN_REQUIRE_TOOLS: there, a missing browser fails.
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("CARGOSCREEN_REQUIRE_TOOLS"),
                                 reason="Debian's chromium and chromium-driver are not installed")]
SHOTS = Path(__file__).resolve().parent.parent / "test-output" / "workbench"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def screened(tmp_path_factory, redis_server):
    """Filings with planted risks through the real service; referrals taken into the queues."""
    from cargoscreen.connectors.redis_store import connect

    client = connect(redis_server.url)
    client.flushall()
    work = tmp_path_factory.mktemp("wb")
    s = screen_through_service(redis_server.url, work, 200, 11, ("sea",))
    Keeper(client, s).once()
    yield client, work
    client.flushall()


@pytest.fixture(scope="module")
def server(screened, redis_server):
    client, work = screened
    def serves_every_page(centre: str) -> bool:  # a request for information and a merged control to show
        bodies = bodies_of(client, QueueKeys("cs", centre).referral("*"))
        return any(b["decision"] == "request-for-information" for b in bodies) and any(map(merged_control, bodies))

    centres = sorted((k for k in client.scan_iter("cs:wb:*:open")), key=client.zcard, reverse=True)
    names = [hash_tag(k.decode()) for k in centres]
    busiest = next((c for c in names if serves_every_page(c)), names[0])
    analysts = work / "analysts"
    add_analyst(analysts, "alice", busiest, PASSWORD)
    add_analyst(analysts, "eve", "RC-XX", PASSWORD)
    # An analyst of the centre holding a referral whose goods description contradicts its code.
    goods = next((hash_tag(k.decode()) for k in client.scan_iter("cs:wb:*:ref:*")
                  if json.loads(client.hget(k, "body") or "{}").get("goods_facts")), busiest)
    add_analyst(analysts, "gina", goods, PASSWORD)
    with workbench_server(redis_server.url, analysts, work, "--claim-minutes", "5") as base:
        yield base, busiest, client


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(2)
    yield driver
    driver.quit()


def shot(driver, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000  # a rendered page, not a blank
    return path


def until(driver, condition, what: str):
    """Waits for the page a click loads (a click returns before the next page is there)."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, 15, poll_frequency=0.05).until(lambda d: condition(d), message=what)


def text_of(driver, element_id: str) -> str:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By

    try:
        return driver.find_element(By.ID, element_id).text
    except (NoSuchElementException, StaleElementReferenceException):
        return ""
    except WebDriverException as exc:  # the element found, then the page it was on replaced by the next one
        if "does not belong to the document" in str(exc):
            return ""
        raise


def background(driver, selector: str) -> tuple[int, int, int]:
    """The colour the browser paints behind the first element the selector finds."""
    value = driver.execute_script("return getComputedStyle(document.querySelector(arguments[0])).backgroundColor",
                                  selector)
    return tuple(int(v) for v in re.findall(r"\d+", value)[:3])


def merged_control(body: dict) -> bool:
    """A control decision on a linked consignment whose questions point into another filing than its lead's."""
    return body["decision"] == "control" and any(
        "#" in (i["pointer"] or "") and not i["pointer"].startswith(body["mrn"]) for i in body["information_requested"])


def bodies_of(client, pattern: str) -> list[dict]:
    """The bodies of the referrals whose hashes match (a resolved one keeps its summary only)."""
    return [json.loads(b) for k in client.scan_iter(pattern) if (b := client.hget(k, "body"))]


def sign_in(driver, base: str, name: str, password: str = PASSWORD) -> None:
    from selenium.webdriver.common.by import By

    driver.get(base + "/")
    assert "/login" in driver.current_url  # nothing without signing in
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "sign-in").click()
    until(driver, lambda d: "/login" not in d.current_url or d.find_elements(By.CSS_SELECTOR, ".err"), "sign-in")


def test_an_analyst_works_a_referral_end_to_end(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    base, centre, client = server
    sign_in(browser, base, "alice", "wrong password")
    assert "Unknown name or wrong password" in browser.page_source
    shot(browser, "01-sign-in-refused")
    sign_in(browser, base, "alice")
    total = client.zcard(QueueKeys("cs", centre).base("open"))
    assert browser.find_element(By.ID, "total").text.startswith(f"{total} open referral")
    rows = browser.find_elements(By.CSS_SELECTOR, "#queue tr[data-referral]")
    scores = [float(r.find_elements(By.TAG_NAME, "td")[1].text) for r in rows]
    assert scores == sorted(scores, reverse=True) and len(rows) == min(total, 50)
    # Each referral id on one line: a wrapped link would be drawn as two boxes.
    links = browser.find_elements(By.CSS_SELECTOR, "#queue td.id a")
    assert links and all(browser.execute_script("return arguments[0].getClientRects().length", a) == 1
                         for a in links)
    assert background(browser, ".pill.control") == rgb(palette.DECISIONS["control"][0])
    shot(browser, "02-queue")

    Select(browser.find_element(By.NAME, "decision")).select_by_visible_text("control")
    browser.find_element(By.ID, "apply").click()
    until(browser, lambda d: "decision=control" in d.current_url, "filtered queue")
    decisions = {r.find_elements(By.TAG_NAME, "td")[2].text for r in
                 browser.find_elements(By.CSS_SELECTOR, "#queue tr[data-referral]")}
    assert decisions <= {"control"}
    shot(browser, "03-queue-filtered")

    # The referral with a container anomaly among its reasons, if any, else the top one.
    referral = None
    for rid in client.zrevrange(QueueKeys("cs", centre).base("open"), 0, -1):
        body = json.loads(client.hget(QueueKeys("cs", centre).referral(rid.decode()), "body"))
        if body["container_facts"] and (body.get("filing") or {}).get("containers") and not merged_control(body):
            referral = body
            break
    referral = referral or json.loads(client.hget(QueueKeys("cs", centre).referral(client.zrevrange(
        QueueKeys("cs", centre).base("open"), 0, 0)[0].decode()), "body"))
    browser.get(f"{base}/referrals/{referral['referral_id']}")
    rules_text = browser.find_element(By.ID, "rules").text
    for hit in referral["hits"]:
        assert hit["rule"] in rules_text and hit["explanation"][:40] in rules_text
    assert referral["rule_pack"] in browser.find_element(By.ID, "pack").text
    assert browser.find_element(By.ID, "basis").text == referral["basis"]  # why: a strong indicator, or the score
    assert referral["mrn"] in browser.find_element(By.ID, "filing").text
    if referral["container_facts"]:
        timeline = browser.find_element(By.ID, "containers").text
        assert referral["filing"]["containers"][0] in timeline and "→" in timeline
        assert browser.find_elements(By.CSS_SELECTOR, "table.timeline tr.hit-event")  # the events behind the fact
    shot(browser, "04-referral")

    browser.find_element(By.ID, "claim").click()
    until(browser, lambda d: text_of(d, "state") == "claimed", "claimed")
    Select(browser.find_element(By.ID, "outcome")).select_by_value("finding")
    browser.find_element(By.ID, "resolve").click()  # a finding without its category is refused
    until(browser, lambda d: "needs its category" in text_of(d, "message"), "refusal shown")
    shot(browser, "05-resolve-refused")
    Select(browser.find_element(By.ID, "outcome")).select_by_value("finding")
    Select(browser.find_element(By.ID, "category")).select_by_visible_text("drugs")
    browser.find_element(By.ID, "note").send_keys("cocaine in the cover load")
    browser.find_element(By.ID, "resolve").click()
    until(browser, lambda d: text_of(d, "state") == "resolved", "resolved")
    assert "finding / drugs" in browser.find_element(By.ID, "outcome-shown").text
    assert background(browser, "#outcome-shown .swatch") == rgb(palette.CONFIRMED)
    shot(browser, "06-resolved")
    assert client.zcard(QueueKeys("cs", centre).base("open")) == total - 1

    browser.get(base + "/rules")
    table = browser.find_element(By.ID, "rule-table").text
    assert referral["hits"][0]["rule"] in table
    assert browser.execute_script("return document.getElementById('plot').naturalWidth") > 300  # the PNG loaded
    # The chart as the browser shows it: its legend in the palette, bars for the finding just made
    # and for the open referrals, nothing in other colours; the table's columns in the same colours.
    chart = pixels(browser.find_element(By.ID, "plot").screenshot_as_png)
    bars = outcome_bars(chart)
    assert bars["confirmed"] and bars["open"] and foreign_colours(chart) == []
    assert background(browser, "#rule-table .outcome-confirmed") == rgb(palette.CONFIRMED)
    assert background(browser, "#rule-table .outcome-false") == rgb(palette.FALSE_HIT)
    shot(browser, "07-rules")

    browser.get(base + "/audit")
    audit_text = browser.find_element(By.ID, "audit").text
    assert "claim" in audit_text and "resolve" in audit_text and referral["referral_id"] in audit_text
    shot(browser, "08-audit")


def test_risk_information_from_the_page_reaches_the_pipeline(server, browser, redis_server):
    """Published on the page; a later filing carrying the watched container is referred by the
    running service's scorer, with the form in the referral's explanation."""
    from lxml import etree
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    base, _, client = server
    spec = dict(defect_rate=0.0, envelope_rate=0.0, resubmission_rate=0.0, risk_rate=0.0, modes=("sea",))
    later = next(f for f in generate(corpus_spec(60, 12, **spec)) if f.label.get("filing_code") == "F10"
                 and b"ContainerId" in f.data)
    container = etree.fromstring(later.data).findtext(".//{*}TransportEquipment/{*}ContainerId")
    sign_in(browser, base, "alice")
    browser.get(base + "/risk-information")
    Select(browser.find_element(By.ID, "kind")).select_by_visible_text("container")
    browser.find_element(By.ID, "title").send_keys("Box reloaded at a cocaine port")
    browser.find_element(By.ID, "watch_container").send_keys(container)
    Select(browser.find_element(By.ID, "area")).select_by_visible_text("drug-precursors")
    Select(browser.find_element(By.ID, "action")).select_by_visible_text("control")
    browser.find_element(By.ID, "valid_until").send_keys("2099-01-01T00:00:00Z")
    browser.find_element(By.ID, "publish-button").click()
    until(browser, lambda d: container in text_of(d, "forms"), "form published")
    shot(browser, "09-risk-information")

    client.xadd(StreamKeys().filings, {"filing": later.data, "id": "after-the-form"})
    s = Settings().with_redis_url(redis_server.url)
    run_service(replace(s, streams=replace(s.streams, once=True)), ["w0"])
    decision = next(json.loads(f[b"body"]) for _, f in client.xrevrange(StreamKeys().decisions)
                    if json.loads(f[b"body"]).get("submission_id") == "after-the-form")
    hit = next(h for h in decision["hits"] if h["rule"].startswith("RIF-"))
    assert decision["decision"] == "control" and decision["referral_id"]
    assert "Box reloaded at a cocaine port" in hit["explanation"] and container in hit["explanation"]


def test_a_centre_sees_only_its_own_referrals(server, browser):
    from selenium.webdriver.common.by import By

    base, centre, client = server
    rid = client.zrevrange(QueueKeys("cs", centre).base("open"), 0, 0)[0].decode()
    sign_in(browser, base, "eve")
    assert browser.find_element(By.ID, "total").text.startswith("0 open referrals")
    browser.get(f"{base}/referrals/{rid}")
    assert f"No referral {rid} in RC-XX" in browser.page_source
    shot(browser, "10-other-centre")
    # Actions are refused too, even with the session's own CSRF token.
    token = browser.execute_script("return document.querySelector('input[name=csrf]').value")
    browser.execute_script(f"""const f = document.createElement('form'); f.method = 'post';
        f.action = '/referrals/{rid}/claim'; const i = document.createElement('input'); i.name = 'csrf';
        i.value = '{token}'; f.appendChild(i); document.body.appendChild(f); f.submit();""")
    until(browser, lambda d: d.current_url.endswith("/claim"), "claim posted")
    assert f"No referral {rid} in RC-XX" in browser.page_source
    assert client.hget(QueueKeys("cs", centre).referral(rid), "state") == b"open"
    # Nor are the other centres' rule hits and outcomes: eve's centre has had no decision.
    browser.get(f"{base}/rules")
    assert "Rule effectiveness in RC-XX" in browser.page_source and browser.find_elements(By.ID, "no-rules")
    assert not browser.find_elements(By.ID, "rule-table")


def test_a_referral_says_where_parties_are_from_and_what_was_asked_of_whom(server, browser):
    """Parties without an address take their country from their EORI, saying so; the questions of a
    request for information name the filing they point into, and the page says whom it was sent
    to, or that it was not sent (a control decision answers with its own message instead)."""
    from selenium.webdriver.common.by import By

    base, centre, client = server
    bodies = bodies_of(client, QueueKeys("cs", centre).referral("*"))
    merged = next(b for b in bodies if merged_control(b))  # (the end-to-end test resolves another one)
    asked = next(b for b in bodies if b["decision"] == "request-for-information")
    sign_in(browser, base, "alice")

    browser.get(f"{base}/referrals/{merged['referral_id']}")
    parties = browser.find_element(By.ID, "filing").text
    assert "(?)" not in parties
    for p in merged["filing"]["parties"]:
        where = f"{p['country']}, address" if p["country"] else f"{p['id'][:2]}, from the EORI"
        assert " ".join(filter(None, (f"{p['role']}: {p['name']}", p["id"], f"({where})"))) in parties
    assert not all(p["country"] for p in merged["filing"]["parties"])  # one shown from its EORI
    assert "Not asked of the filers: a control decision" in browser.find_element(By.ID, "rfi-to").text
    filings = {f["mrn"]: f for f in merged["filings"]}
    questions = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#rfi li")]
    assert len(questions) == len(merged["information_requested"])
    for item, shown in zip(merged["information_requested"], questions):
        mrn, _, path = item["pointer"].rpartition("#")
        assert shown.startswith(item["text"]) and shown.endswith(path)
        if mrn != merged["mrn"]:
            other = filings[mrn]
            assert f"in another filing of this consignment, MRN {mrn} ({other['filing_code']}, filer " \
                   f"{other['filer']}): {path}" in shown
    shot(browser, "11-referral-parties-and-questions")

    browser.get(f"{base}/referrals/{asked['referral_id']}")
    sent = browser.find_element(By.ID, "rfi-to").text
    assert sent.startswith("Request for information (IE3Q02) sent to the filer")
    assert f"MRN {asked['mrn']} (this filing)" in sent and asked["filer"] in sent
    assert all(f"MRN {f['mrn']}" in sent and f["filer"] in sent for f in asked["filings"])
    assert "in this filing: " + asked["information_requested"][0]["pointer"] in browser.find_element(By.ID, "rfi").text
    shot(browser, "12-referral-request-sent")


def test_a_sign_in_form_posted_from_another_site_signs_nobody_in(server, browser):
    """Login CSRF: a page on another site (localhost, not 127.0.0.1) posts the sign-in form with the
    attacker's own name, password and a token the attacker got from the server. The victim must not
    end up signed in as the attacker (whose risk information, claims and notes they would then write)."""
    import http.server
    import threading

    base, _, _ = server
    token = re.search(r'name="csrf" value="([^"]+)"', urllib.request.urlopen(base + "/login").read().decode())[1]
    # `next`: a page that sets no cookie of its own, so the attacker's session stays in the victim's browser.
    page = (f'<form id="f" method="post" action="{base}/login"><input name="name" value="eve">'
            f'<input name="password" value="{PASSWORD}"><input name="csrf" value="{token}">'
            '<input name="next" value="/healthz"></form>'
            '<script>document.getElementById("f").submit()</script>').encode()

    class Attacker(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    evil = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Attacker)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        browser.get(base + "/login")  # the victim has the sign-in page open: a token of its own
        browser.get(f"http://localhost:{evil.server_port}/")
        until(browser, lambda d: d.current_url.startswith(base), "the forged form posted")
        assert "/healthz" not in browser.current_url and "sign in again" in browser.page_source  # refused
        shot(browser, "15-sign-in-from-another-site")
        browser.get(base + "/")
        assert "/login" in browser.current_url  # not signed in, as eve or anyone
    finally:
        evil.shutdown()
        evil.server_close()
    sign_in(browser, base, "alice")  # the real form still works
    assert "/login" not in browser.current_url


def test_a_held_rejudgement_shows_on_the_referral_for_the_analyst(server, browser):
    """Container status that would lower a referral is not applied (pipeline/rejudge.py): the
    referral's page shows it, as what the container status says now, for the analyst to decide."""
    from selenium.webdriver.common.by import By

    from cargoscreen.workbench.queue import ReferralQueue

    base, centre, client = server
    queue = ReferralQueue(client, centre, "cs", 300)
    body = json.loads(next(client.hget(k, "body") for k in client.scan_iter(QueueKeys("cs", centre).referral("*"))
                           if client.hget(k, "state") == b"open"))
    rid = body["referral_id"]
    held = {"rejudged": body["consignment"], "referral_id": rid, "mrn": body["mrn"], "at": "2026-11-28T12:00:00Z",
            "state": body["state"] + "+csm:test", "reassessed": "assessment-complete (score 0)",
            "referred": body["decision"], "anomalies_before": ["packed-status-mismatch MSCU6639870"],
            "anomalies_now": [], "facts": [],
            "held": f"the container status now supports assessment-complete, below the {body['decision']} "
                    "referred; a re-judgement never lowers a referral: the analyst decides"}
    assert queue.admit("0-1", held) == "noted" and queue.admit("0-1", held) == "ignored"
    sign_in(browser, base, "alice")
    browser.get(f"{base}/referrals/{rid}")
    [note] = browser.find_elements(By.CSS_SELECTOR, "#notes li")
    assert "re-judged assessment-complete (score 0)" in note.text
    assert "anomalies then: packed-status-mismatch MSCU6639870, now: none" in note.text
    assert "Not applied, yours to decide: the container status now supports assessment-complete" in note.text
    assert queue.show(rid)["state"] == "open" and queue.show(rid)["body"]["decision"] == body["decision"]
    shot(browser, "13-referral-held-rejudgement")


def test_a_referral_shows_what_the_goods_description_says_against_its_code(server, browser):
    """A planted weapon under an innocent code: the page shows the goods classifier's evidence, the
    headings the description reads as with their scores, nomenclature text and matched words, and the
    kind of controlled goods it names, beside the rule that fired on it."""
    from selenium.webdriver.common.by import By

    base, _, client = server
    bodies = bodies_of(client, "cs:wb:*:ref:*")
    referral = next(b for b in bodies if b.get("goods_facts"))
    sign_in(browser, base, "gina")
    browser.get(f"{base}/referrals/{referral['referral_id']}")
    shown = browser.find_element(By.ID, "goods-evidence").text
    for fact in referral["goods_facts"]:
        assert fact["kind"] in shown and fact["description"] in shown and fact["declared"] in shown
        for h in fact["headings"]:
            assert f"{h['heading']} {h['score']:.2f} {h['text']}" in shown
            assert all(t in shown for t in h["terms"])
        if fact.get("controlled"):
            assert f"Names {fact['controlled']} goods" in shown
    rules_text = browser.find_element(By.ID, "rules").text
    assert any(h["rule"].startswith("GD-") and h["rule"] in rules_text for h in referral["hits"])
    assert "description-names-controlled-goods" not in browser.find_element(By.ID, "containers").text
    shot(browser, "14-referral-goods-description")
