"""The filers' HTTP ingress, as a real uvicorn process: receipts, per-filer answers, refusals."""
from __future__ import annotations

import http.client
import json
import random
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
from lxml import etree

from cargoscreen.answering import ACCEPTING_ANSWERS, REJECTING_ANSWERS
from cargoscreen.config import Settings
from cargoscreen.connectors.http_ingress import FilerTokens, issue_token
from cargoscreen.connectors.redis_streams import StreamKeys
from cargoscreen.decisions import ASSESSMENT_ANSWERS
from cargoscreen.domain.filings import ANSWERS_NS
from cargoscreen.generator import GeneratorSpec, generate
from cargoscreen.service import run_service

from .conftest import free_port, stop

KEYS = StreamKeys()
LIMIT = 200_000


@pytest.fixture
def ingress(redis_server, redis_client, tmp_path, processes):
    """(port, {filer: token}) of a running `cargoscreen ingress serve`."""
    tokens_file = tmp_path / "tokens"
    tokens = {filer: issue_token(tokens_file, filer) for filer in ("DEFILER000000001", "NLFILER000000002")}
    port = free_port()
    server = processes.start([sys.executable, "-m", "cargoscreen.cli", "ingress", "serve", "--redis-url",
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
    return port, tokens


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


# -- re-sends: one door answer per submission, one assessment answer per filing version ----------
DOOR_TYPES = (*ACCEPTING_ANSWERS, *REJECTING_ANSWERS)
ASSESSMENT_TYPES = tuple(ASSESSMENT_ANSWERS.values())


def _worker(url: str, name: str) -> subprocess.Popen:
    """`cargoscreen run --follow` as one consumer; small reads, so an original and its re-send are
    often in different bundles of different workers at once; every answer checked against its schema."""
    return subprocess.Popen([sys.executable, "-m", "cargoscreen.cli", "run", "--follow", "--redis-url", url,
                             "--consumer", name, "--read_batch=25", "--metrics_port=0",
                             "--answer_check_every=1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _all_answers(port: int, token: str) -> list[dict]:
    out, after = [], "0"
    while True:
        status, page = _call(port, "GET", f"/v1/answers?count=1000&after={after}", token=token)
        assert status == 200
        if not page["answers"]:
            return out
        out += page["answers"]
        after = page["next"]


def _repeat_of(xml: str) -> str | None:
    """The submission a re-sent filing's IE3R01 says it repeats (None: not a repeat)."""
    repeat = etree.fromstring(xml.encode()).find(f"{{{ANSWERS_NS}}}Repeat")
    return None if repeat is None else repeat.findtext(f"{{{ANSWERS_NS}}}OriginalSubmissionId", "")


def resend_run(port: int, tokens: dict, url: str, client, count: int, seed: int, workers: int = 2,
               share: float = 0.3) -> dict:
    """`count` filings POSTed to the ingress by 8 senders; a `share` of them re-sent at once (both
    copies in flight together), and as many again after one of `workers` service processes was
    SIGKILLed mid-bundle and restarted. Returns the answers read back through the ingress per filer,
    the receipts {submission id: (filer, filing index)} and the decisions."""
    filers = list(tokens)
    filings = list(generate(GeneratorSpec(count=count, seed=seed, envelope_rate=0, resubmission_rate=0,
                                          filers=tuple(filers))))
    rng = random.Random(seed)
    receipts: dict[str, tuple[str, int]] = {}

    def post(i: int) -> None:
        filer = filings[i].label.get("filer") or filers[i % len(filers)]  # a partial filing: whom its master names
        status, receipt = _call(port, "POST", "/v1/filings", filings[i].data, tokens[filer])
        assert status == 202, receipt
        receipts[receipt["submission_id"]] = (filer, i)

    names = [f"w{n}" for n in range(workers)]
    procs = {n: _worker(url, n) for n in names}
    try:
        _wait_polling(client, procs)
        first = [i for i in range(count) for _ in range(2 if rng.random() < share else 1)]  # twins side by side
        with ThreadPoolExecutor(8) as senders:
            list(senders.map(post, first))
        victim, deadline = names[-1], time.monotonic() + 120
        while not client.xpending_range(KEYS.filings, "screening", "-", "+", 1, consumername=victim):
            assert time.monotonic() < deadline and procs[victim].poll() is None, "the victim never held a bundle"
            time.sleep(0.005)
        procs[victim].kill()  # mid-bundle: some effects written, nothing acknowledged
        procs[victim].wait()
        procs[victim] = _worker(url, victim)  # as a supervisor would: the same name takes its entries back
        _wait_polling(client, procs)
        later = rng.sample(range(count), int(count * share))
        with ThreadPoolExecutor(8) as senders:
            list(senders.map(post, later))
        _wait_finished(client, procs, len(receipts))
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            stop(p, timeout=60)
    answers = {f: _all_answers(port, tokens[f]) for f in filers}
    decisions = [json.loads(f[b"body"]) for _, f in client.xrange(KEYS.decisions)]
    dead = [json.loads(f[b"body"]) for _, f in client.xrange(KEYS.dead_letters)]
    return {"answers": answers, "receipts": receipts, "decisions": decisions, "dead": dead}


def _wait_polling(client, procs: dict, timeout: float = 60) -> None:
    """Until every worker polls the stream (each leaves a heartbeat)."""
    deadline = time.monotonic() + timeout
    while not all(client.exists(KEYS.heartbeat(name)) for name in procs):
        for name, p in procs.items():
            assert p.poll() is None, f"{name} exited: " + p.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.1)


def _wait_finished(client, procs: dict, submissions: int, timeout: float = 240) -> None:
    """Until nothing is pending or unread and the output streams stopped growing for 3 s."""
    deadline, last, since = time.monotonic() + timeout, None, time.monotonic()
    while time.monotonic() < deadline:
        for name, p in procs.items():
            assert p.poll() is None, f"{name} exited: " + p.stderr.read().decode()[-2000:]
        group = client.xinfo_groups(KEYS.filings)[0]
        unread = client.xrange(KEYS.filings, min=f"({group['last-delivered-id'].decode()}", count=1)
        busy = bool(group["pending"] or unread)
        answers = sum(client.xlen(k) for k in client.scan_iter(f"{KEYS.prefix}:answers:*"))
        now = (busy, client.xlen(KEYS.decisions), answers)
        if now != last:
            last, since = now, time.monotonic()
        elif not busy and now[2] >= submissions and time.monotonic() - since > 3:
            return
        time.sleep(0.2)
    raise AssertionError(f"the service did not finish: {last}")


def resend_report(run: dict) -> dict:
    """The rule, counted: door answers per submission id; assessment answers per (MRN, filing
    version), which is per MRN here (the traffic has no amendments: each filing has one version)."""
    answers = [a for filer_answers in run["answers"].values() for a in filer_answers]
    doors = Counter(a["submission_id"] for a in answers if a["message_type"] in DOOR_TYPES)
    assessed = Counter(a["mrn"] for a in answers if a["message_type"] in ASSESSMENT_TYPES)
    # A postal dispatch is in each of its items' decisions, which are answered about the items.
    decided = {f["mrn"] for d in run["decisions"] for f in d["filings"] if f["filing_code"] != "F42"}
    return {
        "submissions": len(run["receipts"]),
        "without_door_answer": sum(1 for sid in run["receipts"] if doors[sid] == 0),
        "door_answers_repeated": sum(n - 1 for n in doors.values() if n > 1),
        "assessment_answers": sum(assessed.values()),
        "assessment_answers_repeated": sum(n - 1 for n in assessed.values() if n > 1),
        "decided_without_assessment_answer": len(decided - set(assessed)),
        "decisions_after_the_first": sum(1 for d in run["decisions"] if d["version"] > 1),  # made by a re-send
        "dead_letters": len(run["dead"]),
    }


@pytest.mark.slow
def test_each_submission_gets_one_door_answer_and_each_filing_version_one_assessment_answer(
        ingress, redis_server, redis_client):
    """Re-sent filings (same filer, LRN and content, new submission) while their first copy is in
    flight, and again after a worker was SIGKILLed mid-bundle: every submission has exactly one door
    answer (a re-send's marked as a repeat of the registration it matches, same MRN), and each
    filing version exactly one assessment answer."""
    port, tokens = ingress
    run = resend_run(port, tokens, redis_server.url, redis_client, count=300, seed=41)
    report = resend_report(run)
    print("re-sends:", report)
    assert report == {**report, "without_door_answer": 0, "door_answers_repeated": 0,
                      "assessment_answers_repeated": 0, "decided_without_assessment_answer": 0,
                      "decisions_after_the_first": 0, "dead_letters": 0}
    # Per (filer, LRN) registered: one IE3R01 proper, every other submission of it a repeat naming it.
    registrations: dict[tuple, list[dict]] = {}
    for filer, answers in run["answers"].items():
        for a in answers:
            if a["message_type"] == "IE3R01":
                registrations.setdefault((filer, a["lrn"]), []).append(a)
    assert len(registrations) > 150 and sum(len(r) > 1 for r in registrations.values()) > 50
    for regs in registrations.values():
        proper = [a for a in regs if _repeat_of(a["xml"]) is None]
        assert len(proper) == 1 and len({a["mrn"] for a in regs}) == 1
        assert all(_repeat_of(a["xml"]) == proper[0]["submission_id"] for a in regs if a is not proper[0])
    assert redis_client.xpending(KEYS.filings, "screening")["pending"] == 0
