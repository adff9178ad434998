"""Fuzz targets: each surface that takes input from outside, as a function of raw bytes that checks
the surface's promise and raises AssertionError when it is broken (any other exception escaping
is a crash). Used by the hypothesis tests (tests/test_fuzz.py, fixed budget in CI) and by the
coverage-guided atheris runs by hand (tests/fuzz/run.py).

    validation   bytes -> FilingValidator: accepted, or rejected with every error located
    dcsa         bytes -> a container event: normalized, or refused with its problems
    rules        bytes -> a rule pack file / a condition: compiled, or refused with located problems
    intake       bytes -> POST /v1/filings of the HTTP ingress: 202 on the stream, or a 4xx with a reason
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

from cargoscreen import resources
from cargoscreen.config import Settings
from cargoscreen.connectors import dcsa
from cargoscreen.connectors.dcsa import DcsaEventChecker, JsonError
from cargoscreen.container_feed import check_event
from cargoscreen.domain.conditions import ConditionError, compile_condition
from cargoscreen.domain.rulepack import PackError, RulePack, read_pack_files
from cargoscreen.generator import GeneratorSpec, generate
from cargoscreen.validation import FilingValidator, Submission

DCSA_EXAMPLES = Path(dcsa.__file__).parent / "dcsa-tnt" / "tnt-220-example-events.json"
STARTER = resources.rules_dir() / "risk" / "ics2-starter"
HOSTILE = [b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
           b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]><r>&b;</r>',
           b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="http://example.com/"/>',
           b"<a>" * 300 + b"</a>" * 300, b"\xef\xbb\xbf<?xml version='1.0' encoding='UTF-16'?><a/>", b"", b"\x00"]


def filing_seeds(count: int = 12) -> list[bytes]:
    spec = GeneratorSpec(count=count, seed=99, defect_rate=0.3, envelope_rate=0, resubmission_rate=0, size="small")
    return [f.data for f in generate(spec)]


class Validation:
    def __init__(self):
        self.validator = FilingValidator(Settings())

    def __call__(self, data: bytes) -> str:
        outcome = self.validator.validate(Submission("fuzz", data))
        if outcome.accepted:
            assert outcome.summary is not None and outcome.summary.message_type
            return "accepted"
        for e in outcome.errors:  # every error says what and where
            assert e.code and e.reason and e.pointer is not None, e
        return outcome.errors[0].code


class Dcsa:
    def __init__(self):
        self.checker = DcsaEventChecker()

    def __call__(self, data: bytes) -> str:
        try:
            event = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            event = JsonError(f"not valid JSON: {exc}")
        checked, problems = check_event(event, self.checker)
        if checked is None:
            assert problems and all(len(p) == 3 and p[2] for p in problems), problems
            return problems[0][1]
        assert checked.event_id and checked.event_time > 946684800
        return "loaded"


class Rules:
    """The input is split in two: a condition, and the text of one rule file of the starter pack."""

    def __init__(self):
        self.files = read_pack_files(STARTER)
        self.pack = RulePack.from_files(self.files)
        self.rule_file = sorted(p for p in self.files if p.startswith("rules/"))[0]

    def __call__(self, data: bytes) -> str:
        text = data.decode("utf-8", "replace")
        condition, _, rule_text = text.partition("\n---\n")
        try:
            compile_condition(condition, self.pack.environment)
        except ConditionError as exc:
            assert str(exc)
        except RecursionError:
            raise AssertionError("a deep condition escaped its depth bound") from None
        if not rule_text:
            return "condition"
        try:
            RulePack.from_files({**self.files, self.rule_file: rule_text})
            return "pack"
        except PackError as exc:
            assert exc.problems and all(p.file and p.message for p in exc.problems), exc.problems
            return "refused"


class Intake:
    """The ingress's POST /v1/filings, driven as ASGI (no sockets) against a real Redis. The first
    byte of the input picks the caller's token and content type; the rest is the body."""

    TYPES = ["application/xml", "text/xml", "application/json", "", "application/xml; charset=utf-8"]

    def __init__(self, redis_url: str, tmp: Path, max_bytes: int = 20_000):
        from dataclasses import replace

        from cargoscreen.connectors.http_ingress import FilerTokens, ingress_app, issue_token

        self.token = issue_token(tmp / "tokens", "DEFILER000000001")
        settings = Settings().with_redis_url(redis_url)
        settings = replace(settings, limits=replace(settings.limits, max_bytes=max_bytes),  # quotas out of the way:
                           ingress=replace(settings.ingress, requests_per_second=1e9,  # this drives the parser
                                           request_burst=10**9, bytes_per_second=10**12, max_backlog=0))
        self.app = ingress_app(settings, FilerTokens.load(tmp / "tokens"))
        self.loop = asyncio.new_event_loop()

    def __call__(self, data: bytes) -> str:
        pick, body = (data[0], data[1:]) if data else (0, b"")
        headers = {"content-type": self.TYPES[pick % len(self.TYPES)]}
        if pick % 7:
            headers["authorization"] = f"Bearer {self.token}" if pick % 7 != 3 else "Bearer not-a-token"
        status, answer = self.loop.run_until_complete(_post(self.app, "/v1/filings", headers, body))
        assert status in (202, 400, 401, 413, 415), (status, answer)
        payload = json.loads(answer)
        if status == 202:
            assert payload["submission_id"] and payload["received_at"]
        else:
            assert payload["error"] and payload["reason"], payload
        return str(status)


async def _post(app, path: str, headers: dict, body: bytes) -> tuple[int, bytes]:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(k.encode(), v.encode("latin-1")) for k, v in
                         {**headers, "content-length": str(len(body))}.items()],
             "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8080)}
    sent, out = False, {"status": 0, "body": b""}

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)  # the app never needs more

    async def send(message):
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return out["status"], out["body"]
