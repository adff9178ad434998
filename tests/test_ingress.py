"""The filers' HTTP ingress, as a real uvicorn process: receipts, per-filer answers, refusals."""
from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from cargoscreen.config import Settings
from cargoscreen.connectors.http_ingress import FilerTokens, issue_token
from cargoscreen.connectors.redis_streams import StreamKeys
from cargoscreen.generator import GeneratorSpec, generate
from cargoscreen.service import run_service

from .conftest import free_port

KEYS = StreamKeys()
LIMIT = 200_000


@pytest.fixture
def ingress(redis_server, redis_client, tmp_path):
    """(port, {filer: token}) of a running `cargoscreen ingress serve`."""
    tokens_file = tmp_path / "tokens"
    tokens = {filer: issue_token(tokens_file, filer) for filer in ("DEFILER000000001", "NLFILER000000002")}
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "cargoscreen.cli", "ingress", "serve", "--redis-url",
                               redis_server.url, "--tokens", str(tokens_file), "--port", str(port),
                               "--max-bytes", str(LIMIT)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while True:
        try:
            if _call(port, "GET", "/healthz")[0] == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise RuntimeError("ingress did not start: " + server.stderr.read().decode()[-2000:])
        time.sleep(0.1)
    yield port, tokens
    server.terminate()
    server.wait(timeout=10)


def _call(port, method, path, body=None, token=None, headers=None, chunks=None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    h = {"Content-Type": "application/xml", **(headers or {})}
    if token:
        h["Authorization"] = f"Bearer {token}"
    if chunks is not None:  # a chunked body: no Content-Length to refuse it by
        conn.request(method, path, body=iter(chunks), headers=h, encode_chunked=True)
    else:
        conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    status, data = r.status, r.read()
    conn.close()
    return status, json.loads(data) if data else {}


def test_a_filer_gets_a_receipt_and_reads_its_own_answers_and_never_another_filers(ingress, redis_server,
                                                                                  redis_client):
    port, tokens = ingress
    (a, token_a), (b, token_b) = tokens.items()
    filings = list(generate(GeneratorSpec(count=4, seed=21, defect_rate=0, envelope_rate=0, resubmission_rate=0)))
    receipts = {}
    for f, token in zip(filings, [token_a, token_a, token_b, token_b]):
        status, receipt = _call(port, "POST", "/v1/filings", f.data, token)
        assert status == 202 and receipt["answers"] == "/v1/answers"
        receipts[receipt["submission_id"]] = a if token == token_a else b
    assert redis_client.xlen(KEYS.filings) == 4
    s = Settings().with_redis_url(redis_server.url)
    run_service(replace(s, streams=replace(s.streams, once=True)), ["w0"])
    for filer, token in ((a, token_a), (b, token_b)):
        status, page = _call(port, "GET", "/v1/answers?count=1", token=token)
        answers = page["answers"]
        while page["answers"]:  # page through with the cursor
            status, page = _call(port, "GET", f"/v1/answers?count=1&after={page['next']}", token=token)
            answers += page["answers"]
        mine = {sid for sid, who in receipts.items() if who == filer}
        assert status == 200 and {x["submission_id"] for x in answers} == mine  # all of its own, none of the other's
        assert {x["message_type"] for x in answers} >= {"IE3R01"} and all(x["xml"].startswith("<") for x in answers)
    assert _call(port, "GET", "/v1/answers")[0] == 401
    assert _call(port, "GET", f"/v1/answers?filer={a}", token="not-a-token")[0] == 401


BILLION_LAUGHS = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>
<lolz>&lol2;</lolz>"""


def test_hostile_oversized_or_unauthenticated_bodies_are_refused_before_the_stream(ingress, redis_client):
    port, tokens = ingress
    token = next(iter(tokens.values()))
    cases = [
        ({"body": BILLION_LAUGHS, "token": token}, 400, "DTD_FORBIDDEN"),
        ({"body": b"<ens:IE3F10 xmlns:ens='urn:x'><a></ens:IE3F10>", "token": token}, 400, "NOT_WELL_FORMED"),
        ({"body": b"<a>" * 300 + b"</a>" * 300, "token": token}, 400, "DEPTH_LIMIT"),
        ({"body": b"", "token": token}, 400, "EMPTY"),
        ({"body": b"<a/>", "token": token, "headers": {"Content-Length": str(LIMIT + 1)}}, 413, "SIZE_LIMIT"),
        ({"chunks": [b"<a>" + b" " * 65536] * 4, "token": token}, 413, "SIZE_LIMIT"),
        ({"body": b"<a/>", "token": token, "headers": {"Content-Type": "application/json"}}, 415,
         "UNSUPPORTED_MEDIA_TYPE"),
        ({"body": b"<a/>"}, 401, "UNAUTHENTICATED"),
        ({"body": b"<a/>", "token": "guessed"}, 401, "UNAUTHENTICATED"),
    ]
    for kwargs, want_status, want_code in cases:
        try:
            status, body = _call(port, "POST", "/v1/filings", **kwargs)
        except (BrokenPipeError, ConnectionResetError):  # refused while we were still sending: also fine
            assert want_status == 413
            continue
        assert (status, body.get("error")) == (want_status, want_code), kwargs.get("body", b"")[:60]
    status, body = _call(port, "POST", "/v1/filings", b"<a>\n<b></a>", token)
    assert (body["line"], body["column"]) == (2, 8)  # located for the filer
    assert redis_client.exists(KEYS.filings) == 0  # none of it reached the pipeline


def test_token_files_keep_digests_only_and_name_a_bad_line(tmp_path):
    path = tmp_path / "tokens"
    token = issue_token(path, "DEFILER000000001")
    assert token not in path.read_text() and (path.stat().st_mode & 0o777) == 0o600
    tokens = FilerTokens.load(path)
    assert tokens.filer(token) == "DEFILER000000001" and tokens.filer(token + "x") is None and tokens.filer(None) is None
    path.write_text(path.read_text() + "NLFILER000000002 plain-token\n")
    with pytest.raises(ValueError, match=":2:"):
        FilerTokens.load(path)
    # A filer is an EORI: it becomes the Recipient of its answers (a placeholder would fail their schema).
    with pytest.raises(ValueError, match="not an EORI"):
        issue_token(tmp_path / "other", "unknown")
    (tmp_path / "other").write_text(f"unknown sha256:{'a' * 64}\n")
    with pytest.raises(ValueError, match=":1:.*EORI"):
        FilerTokens.load(tmp_path / "other")
