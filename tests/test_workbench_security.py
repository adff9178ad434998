"""Attacks on the workbench through its real interfaces: a real `cargoscreen workbench serve`
process over HTTP, the real command line, a real Redis. Each attack is refused, and the refusals
a person made (a revoked session used, sign-in throttled and locked) are in the audit trail.

Clients give their address in X-Forwarded-For, which the server trusts from its proxy on
127.0.0.1 (uvicorn's default, FORWARDED_ALLOW_IPS): each test acts from addresses of its own."""
from __future__ import annotations

import csv
import http.cookiejar
import io
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import pytest

from cargoscreen import audit
from cargoscreen.connectors.redis_store import connect
from cargoscreen.connectors.redis_streams import StreamKeys
from cargoscreen.risk_information import RiskInformationStore

from .conftest import workbench_server
from .test_workbench_cli import run

PASSWORD = "correct horse battery"
# What a spreadsheet runs as a formula or command when a cell starts with it (OWASP).
FORMULA = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class Answer:
    status: int
    url: str
    text: str
    headers: Message  # any case


class Client:
    """One browser's worth of HTTP: its own cookies, its own address."""

    def __init__(self, base: str, address: str):
        self.base, self.jar = base, http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.address = address

    def request(self, path: str, data: dict | None = None) -> Answer:
        body = urllib.parse.urlencode(data, doseq=True).encode() if data is not None else None
        req = urllib.request.Request(self.base + path, body, headers={"X-Forwarded-For": self.address})
        try:
            with self.opener.open(req, timeout=60) as r:
                return Answer(r.status, r.url, r.read().decode(), r.headers)
        except urllib.error.HTTPError as e:
            return Answer(e.code, e.url, e.read().decode(), e.headers)

    def token(self, path: str) -> str:
        return re.search(r'name="csrf" value="([^"]+)"', self.request(path).text).group(1)

    def sign_in(self, name: str, password: str = PASSWORD) -> Answer:
        return self.request("/login", {"name": name, "password": password, "csrf": self.token("/login"), "next": "/"})

    def signed_in(self) -> bool:
        answer = self.request("/")
        return answer.status == 200 and "/login" not in answer.url

    def copy(self, address: str) -> "Client":
        """Another client holding this one's cookies as they are now (a copied or stolen cookie)."""
        other = Client(self.base, address)
        for cookie in self.jar:
            other.jar.set_cookie(cookie)
        return other


def add(analysts: Path, name: str, centre: str = "RC-NL", password: str = PASSWORD) -> None:
    run("workbench", "user", "add", name, "--centre", centre, "--analysts", analysts, "--password", password)


def trail(client, action: str, **match) -> list[dict]:
    return [r for r in audit.entries(client, audit.every_trail(client, "cs")) if r["action"] == action
            and all(r[k] == v for k, v in match.items())]


@pytest.fixture(scope="module")
def wb(tmp_path_factory, redis_server):
    """One workbench for the module, its analysts in the file before it starts; each test has
    analysts and client addresses of its own."""
    folder = tmp_path_factory.mktemp("wbsec")
    analysts = folder / "analysts"
    for name in ("carol", "dave", "erin", "frank", "gina", "hana", "ivan", "jo"):
        add(analysts, name)
    with workbench_server(redis_server.url, analysts, folder, "--no-keeper") as base:
        yield base, analysts, connect(redis_server.url)


def container_form(csrf: str, title: str) -> dict:
    return {"csrf": csrf, "kind": "container", "title": title, "watch_container": "MSKU1234565",
            "area": "drug-precursors", "action": "control", "valid_until": "2099-01-01T00:00:00Z"}


def published_by(client, analyst: str) -> list[str]:
    return [f["title"] for f in map(json.loads, client.hvals(RiskInformationStore(client).forms_key)) if f["published_by"] == analyst]


def test_a_copy_of_the_cookie_stops_working_when_its_analyst_signs_out(wb):
    base, analysts, client = wb
    carol = Client(base, "192.0.2.10")
    carol.sign_in("carol")
    thief = carol.copy("198.51.100.66")
    assert thief.signed_in()  # a live session works from any copy of its cookie
    stale = thief.token("/risk-information")

    assert carol.request("/logout", {"csrf": carol.token("/")}).url.endswith("/login")
    assert not thief.signed_in()
    published = thief.request("/risk-information", container_form(stale, "Published after sign-out"))
    assert "/login" in published.url and published_by(client, "carol") == []
    refused = trail(client, "session-refused", who="carol")
    assert [(r["centre"], r["detail"]) for r in refused] == [("RC-NL", "used after: signed out; from 198.51.100.66")]
    assert thief.signed_in() is False and len(trail(client, "session-refused", who="carol")) == 1  # audited once
    assert trail(client, "sign-out", who="carol")


def test_removal_and_a_new_password_end_the_analysts_sessions(wb):
    """The incident: an analyst removed from the file published risk information with an old cookie."""
    base, analysts, client = wb
    dave, erin = Client(base, "192.0.2.20"), Client(base, "192.0.2.21")
    dave.sign_in("dave")
    erin.sign_in("erin")
    token = dave.token("/risk-information")
    assert dave.request("/risk-information", container_form(token, "Before removal")).status == 200
    assert published_by(client, "dave") == ["Before removal"]

    assert "dave removed" in run("workbench", "user", "remove", "dave", "--analysts", analysts)
    published = dave.request("/risk-information", container_form(token, "After removal"))
    assert "/login" in published.url and published_by(client, "dave") == ["Before removal"]
    assert dave.sign_in("dave").status == 401
    assert [r["detail"] for r in trail(client, "session-refused", who="dave")] == \
        ["analyst removed; from 192.0.2.20"]
    assert "no analyst dave" in run("workbench", "user", "remove", "dave", "--analysts", analysts, ok=False)

    assert erin.signed_in()
    add(analysts, "erin", password="a brand new secret")  # `user password` does the same, keeping the centre
    assert not erin.signed_in()
    assert [r["detail"] for r in trail(client, "session-refused", who="erin")] == \
        ["password or centre changed; from 192.0.2.21"]
    assert erin.sign_in("erin").status == 401
    assert erin.sign_in("erin", "a brand new secret").status == 200 and erin.signed_in()


def test_sessions_end_when_idle_and_at_their_lifetime(tmp_path, redis_server):
    """Idle for 3 s ends a session; requests keep it alive, but not past its 8 s lifetime."""
    analysts = tmp_path / "analysts"
    add(analysts, "fay")
    with workbench_server(redis_server.url, analysts, tmp_path, "--no-keeper", "--idle-minutes", "0.05",
                          "--session-hours", str(8 / 3600)) as base:
        busy = Client(base, "192.0.2.30")
        busy.sign_in("fay")
        start = time.monotonic()
        while busy.signed_in():
            time.sleep(0.5)
            assert time.monotonic() - start < 15, "the session outlived its lifetime"
        lasted = time.monotonic() - start
        assert lasted > 4  # longer than the idle timeout: activity kept it
        idle = Client(base, "192.0.2.31")
        idle.sign_in("fay")
        assert idle.signed_in()
        time.sleep(4)
        assert not idle.signed_in()
    print(f"\nan active session lasted {lasted:.1f} s (lifetime 8 s, idle timeout 3 s)")


def test_sign_in_is_throttled_then_locked_per_account_and_per_address(wb):
    base, analysts, client = wb
    attacker = Client(base, "203.0.113.10")
    statuses = [attacker.sign_in("frank", f"guess {n:04d} abcdef").status for n in range(15)]
    print(f"\n15 guesses at one account, back to back: {statuses}")
    checked = statuses.count(401)  # password checked (and wrong); 429: refused before any check
    assert 429 in statuses[:9] and statuses[9:] == [429] * 6 and checked <= 9
    locked = attacker.sign_in("frank", "guess 9999 abcdef")
    assert locked.status == 429 and "locked" in locked.text and 800 < int(locked.headers["Retry-After"]) <= 900
    # Locked for everyone, with the right password too, from another address.
    assert Client(base, "192.0.2.40").sign_in("frank").status == 429
    assert len(trail(client, "sign-in-refused", who="frank")) == checked  # each checked guess, no more
    assert [(r["centre"], r["subject"]) for r in trail(client, "sign-in-locked", who="frank")] == \
        [("RC-NL", "account frank")]

    # Spraying names from one address locks that address, for real analysts too; others go on.
    sprayer = Client(base, "203.0.113.77")
    sprayed = [sprayer.sign_in(f"user{n}", "password123456").status for n in range(35)]
    assert sprayed[29:] == [429] * 6 and sprayed.count(401) <= 29
    assert sprayer.sign_in("gina").status == 429
    assert [r["subject"] for r in trail(client, "sign-in-locked") if r["subject"].startswith("address")] == \
        ["address 203.0.113.77"]
    gina = Client(base, "192.0.2.41")
    assert gina.sign_in("gina").status == 200 and gina.signed_in()


def test_a_sign_in_form_without_its_token_signs_nobody_in(wb):
    """Login CSRF at the HTTP level (the browser test posts from another site): a sign-in posted
    without this client's own token is refused, even with a good name and password."""
    base, analysts, client = wb
    victim, attacker = Client(base, "192.0.2.50"), Client(base, "192.0.2.51")
    victim.request("/login")
    forged = victim.request("/login", {"name": "hana", "password": PASSWORD, "csrf": attacker.token("/login")})
    assert forged.status == 403 and not victim.signed_in()
    assert victim.sign_in("hana").status == 200 and victim.signed_in()  # the refusal gave it a fresh form
    # A client that never loaded the form (no cookie, so no token to compare) posting no token.
    blank = Client(base, "192.0.2.52")
    assert blank.request("/login", {"name": "hana", "password": PASSWORD, "next": "/"}).status == 403
    assert blank.request("/login", {"name": "hana", "password": PASSWORD, "csrf": "", "next": "/"}).status == 403
    assert not blank.signed_in()


def cells(text: str) -> list[str]:
    return [c for row in csv.reader(io.StringIO(text)) for c in row]


def formulas(text: str) -> list[str]:
    return [c for c in cells(text) if c.startswith(FORMULA) and not re.fullmatch(r"-?\d+(\.\d+)?", c)]


def test_csv_exports_write_no_formulas(wb, tmp_path, redis_server):
    """A sign-in name, a risk information title, a rule pack's and a rule's names that a
    spreadsheet would run: each CSV the product writes keeps the text and runs nothing."""
    base, analysts, client = wb
    name = '=HYPERLINK("//x.example","go")'  # what the audit keeps of a name: 32 characters
    title = "@SUM(1+1)*cmd|' /C calc'!A0"
    assert Client(base, "192.0.2.60").sign_in(name, "password123456").status == 401
    ivan = Client(base, "192.0.2.61")
    ivan.sign_in("ivan")
    ivan.request("/risk-information", container_form(ivan.token("/risk-information"), title))
    fid = next(f["id"] for f in map(json.loads, client.hvals(RiskInformationStore(client).forms_key)) if f["title"] == title)
    ivan.request(f"/risk-information/{fid}/revoke", {"csrf": ivan.token("/risk-information")})  # detail: the title

    page = ivan.request("/audit/export?format=csv").text
    assert "'" + title in cells(page) and formulas(page) == []
    everything = run("workbench", "audit", "--redis-url", redis_server.url, "--format", "csv")
    assert "'" + name in cells(everything) and "'" + title in cells(everything) and formulas(everything) == []

    client.xadd(StreamKeys().decisions, {"body": json.dumps({
        "rule_pack": "=SUM(A1:A9)@1.0.0+abc", "assessed_at": "2026-03-01T10:00:00Z",
        "decision": "control", "hits": [{"rule": '-2+HYPERLINK("//x.example")'}]})})
    run("rules", "report", "--redis-url", redis_server.url, "--out", tmp_path)
    for report in ("rules.csv", "rules-by-day.csv"):
        text = (tmp_path / report).read_text()
        assert """'-2+HYPERLINK("//x.example")""" in cells(text) and formulas(text) == [], report
    assert "'=SUM(A1:A9)@1.0.0" in cells((tmp_path / "rules.csv").read_text())


def test_queue_views_that_are_not_numbers_are_refused(wb, redis_server):
    base, analysts, client = wb
    jo = Client(base, "192.0.2.70")
    jo.sign_in("jo")
    assert jo.request("/?older=1&offset=0").status == 200
    for query in ("older=nan", "newer=inf", "older=-1", "older=1e400", "offset=" + "1" + "0" * 23,
                  "offset=%C2%B2", "offset=-5", "offset=1_0"):
        answer = jo.request("/?" + query)
        assert answer.status == 400 and "Not a queue view" in answer.text, (query, answer.status)
    assert "refused: offset" in run("workbench", "list", "--redis-url", redis_server.url, "--centre", "RC-NL",
                                    "--offset", 10 ** 23, ok=False)
