"""The filers' HTTP ingress, as a real uvicorn process: receipts, per-filer answers, refusals."""
from __future__ import annotations

import http.client
import json
import multiprocessing
import random
import selectors
import socket
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
from cargoscreen.health import stream_backlog
from cargoscreen.service import run_service

from .conftest import free_port, stop

KEYS = StreamKeys()
LIMIT = 200_000


FILERS = ("DEFILER000000001", "NLFILER000000002")


def start_ingress(processes, tmp_path, *options: str, filers=FILERS, redis_url: str | None = None,
                  env: dict | None = None) -> tuple[int, dict]:
    """(port, {filer: token}) of a `cargoscreen ingress serve` process, once it answers /healthz."""
    tokens_file = tmp_path / "tokens"
    tokens = {filer: issue_token(tokens_file, filer) for filer in filers}
    port = free_port()
    # Its log goes to a file: a pipe nobody drains would fill and stop the server mid-test.
    log = tmp_path / f"ingress-{port}.log"
    with log.open("wb") as sink:
        server = processes.start([sys.executable, "-m", "cargoscreen.cli", "ingress", "serve",
                                  *(["--redis-url", redis_url] if redis_url else []), "--tokens", str(tokens_file),
                                  "--port", str(port), *options], stderr=sink, env=env)
    deadline = time.monotonic() + 60
    while True:
        try:
            if _call(port, "GET", "/healthz")[0] == 200:
                return port, tokens
        except OSError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            raise RuntimeError("ingress did not start: " + log.read_text(errors="replace")[-2000:])
        time.sleep(0.1)


@pytest.fixture
def ingress(redis_server, redis_client, tmp_path, processes):
    """(port, {filer: token}) of a running `cargoscreen ingress serve`, its request quota out of the
    way of tests that send hundreds of filings at once (the tests of quotas start their own)."""
    return start_ingress(processes, tmp_path, "--max-bytes", str(LIMIT), "--requests-per-second", "10000",
                         "--request-burst", "10000", redis_url=redis_server.url)


def _request(port, method, path, body=None, token=None, headers=None, chunks=None) -> tuple[int, dict, dict]:
    """(status, response headers in lower case, JSON body)."""
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
    return status, {k.lower(): v for k, v in r.getheaders()}, json.loads(data) if data else {}


def _call(port, method, path, body=None, token=None, headers=None, chunks=None) -> tuple[int, dict]:
    status, _, body = _request(port, method, path, body, token, headers, chunks)
    return status, body


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
    assert sum(redis_client.xlen(k) for k in KEYS.filing_streams) == 4
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
    assert redis_client.exists(*KEYS.filing_streams) == 0  # none of it reached the pipeline


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
        while not any(client.xpending_range(k, "screening", "-", "+", 1, consumername=victim)
                      for k in KEYS.filing_streams):
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


def _wait_polling(client, procs: dict, timeout: float = 180) -> None:
    """Until every worker polls the stream (each leaves a heartbeat). A liveness bound, not a speed
    check: three workers' set-ups on two cores shared with other tests took over 60 s under load."""
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
        unread, pending, _ = stream_backlog(client, KEYS, "screening", int(time.time() * 1000))
        busy = bool(pending or unread)
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
    assert sum(redis_client.xpending(k, "screening")["pending"] for k in KEYS.filing_streams) == 0


# -- one filer cannot crowd out the others ---------------------------------------------------------
def _post_expecting_continue(port: int, token: str, body: bytes) -> tuple[int | None, dict]:
    """POST a filing with `Expect: 100-continue`, as curl does for large bodies: the body goes only
    after the server's 100. (status, headers); None when the connection broke."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        try:
            s.sendall(f"POST /v1/filings HTTP/1.1\r\nHost: ingress\r\nAuthorization: Bearer {token}\r\n"
                      f"Content-Type: application/xml\r\nContent-Length: {len(body)}\r\n"
                      "Expect: 100-continue\r\n\r\n".encode())
            reply = s.makefile("rb")
            status, headers = _response_head(reply)
            if status == 100:
                s.sendall(body)
                status, headers = _response_head(reply)
            return status, headers
        except OSError:
            return None, {}


def _response_head(reply) -> tuple[int, dict]:
    status, headers = int(reply.readline().split()[1]), {}
    for line in iter(reply.readline, b"\r\n"):
        if not line:
            break
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    if status != 100:
        reply.read(int(headers.get("content-length", 0)))
    return status, headers


def _flood(port: int, token: str, body: bytes, connections: int, until: float, results) -> None:
    """In a process of its own (its threads would slow the measuring ones): POST `body` on each
    connection as fast as answers come, ignoring Retry-After, until the wall-clock time `until`."""
    def one() -> list:
        got = [_post_expecting_continue(port, token, body)]
        while time.time() < until:
            got.append(_post_expecting_continue(port, token, body))
        return got
    with ThreadPoolExecutor(connections) as pool:
        results.put([r for f in [pool.submit(one) for _ in range(connections)] for r in f.result()])


def _timed(call) -> tuple[int, float]:
    started = time.perf_counter()
    status = call()[0]
    return status, time.perf_counter() - started


def _latencies(seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    return f"p50 {ms[len(ms) // 2]:.1f} ms, p95 {ms[int(len(ms) * 0.95)]:.1f} ms, max {ms[-1]:.1f} ms (n={len(ms)})"


def test_a_flooding_filer_gets_429_with_retry_after_while_other_filers_and_health_checks_are_served(
        redis_server, redis_client, tmp_path, processes):
    """One filer POSTs ~1 MB filings (120,000 elements to parse each) on 6 connections for 4 s;
    another submits up to 10 filings a second and a probe reads /healthz meanwhile. The flooder is held
    to its byte quota (429 with Retry-After, before its bodies are read); everyone else is answered.
    Latencies are printed (pytest -s), not asserted: the machine is shared."""
    max_bytes, rate, burst = 1024 * 1024, 512 * 1024, 1024 * 1024
    flooder, other, poller = "DEFLOOD000000001", "NLOTHER000000002", "BEPOLL0000000003"
    port, tokens = start_ingress(processes, tmp_path, "--max-bytes", str(max_bytes), "--bytes-per-second",
                                 str(rate), "--byte-burst", str(burst), "--in-flight", "2", "--requests-per-second",
                                 "20", "--request-burst", "20", filers=(flooder, other, poller),
                                 redis_url=redis_server.url)
    big = b"<a>" + b"<b>x</b>" * 120_000 + b"</a>"
    filing = next(iter(generate(GeneratorSpec(count=1, seed=3, defect_rate=0, envelope_rate=0,
                                              resubmission_rate=0)))).data
    health = lambda: _request(port, "GET", "/healthz")  # noqa: E731
    submit = lambda: _request(port, "POST", "/v1/filings", filing, tokens[other])  # noqa: E731
    quiet = [_timed(health)[1] for _ in range(20)] + [_timed(submit)[1] for _ in range(5)]

    started, until = time.time(), time.time() + 4.0
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    flood = context.Process(target=_flood, args=(port, tokens[flooder], big, 6, until, results))
    flood.start()
    probes, submissions = [], []
    while time.time() < until:
        probes.append(_timed(health))
        submissions.append(_timed(submit))
        time.sleep(0.1)
    outcomes = results.get(timeout=120)
    flood.join(timeout=30)
    elapsed = time.time() - started

    flooded = [len(f[b"filing"]) for k in KEYS.filing_streams for _, f in redis_client.xrange(k)
               if f[b"filer"] == flooder.encode()]
    refused = [headers for status, headers in outcomes if status == 429]
    print(f"\nquiet: health and submissions {_latencies(quiet)}")
    print(f"flood: {Counter(status for status, _ in outcomes)} for the flooder; {len(flooded)} of its filings "
          f"({sum(flooded) / elapsed / 1e6:.2f} MB/s) queued")
    print(f"flood: other filer's submissions {_latencies([t for _, t in submissions])}")
    print(f"flood: health checks {_latencies([t for _, t in probes])}")
    assert {status for status, _ in probes} == {200} and {status for status, _ in submissions} == {202}
    assert refused and all(h["retry-after"].isdigit() and int(h["retry-after"]) >= 1 for h in refused)
    assert sum(flooded) <= burst + rate * elapsed + max_bytes  # its quota, give or take the body in hand
    assert {status for status, _ in outcomes} <= {202, 429}

    # Requests are counted too: past the burst, 429 until the bucket refills.
    started = time.monotonic()
    pages = [_request(port, "GET", "/v1/answers", token=tokens[poller]) for _ in range(80)]
    granted, limited = sum(status == 200 for status, _, _ in pages), [h for s, h, _ in pages if s == 429]
    assert limited and granted + len(limited) == 80 and granted <= 20 + 20 * (time.monotonic() - started) + 1
    time.sleep(int(limited[-1]["retry-after"]))
    assert _call(port, "GET", "/v1/answers", token=tokens[poller])[0] == 200


def test_a_stream_nobody_reads_pushes_back_with_503_instead_of_growing(redis_server, redis_client, tmp_path,
                                                                       processes):
    """With no worker reading, the filings streams stop at --max-backlog (each partition's at its
    share): further filings get 503 with Retry-After (the filer sends again later) and Redis stops
    growing; once the workers have screened the backlog the ingress accepts again."""
    port, tokens = start_ingress(processes, tmp_path, "--max-backlog", "20", redis_url=redis_server.url)
    token = next(iter(tokens.values()))
    filings = list(generate(GeneratorSpec(count=30, seed=4, defect_rate=0, envelope_rate=0, resubmission_rate=0)))
    replies = [_request(port, "POST", "/v1/filings", f.data, token) for f in filings]
    queued = sum(1 for status, _, _ in replies if status == 202)
    assert [status for status, _, _ in replies] == [202] * queued + [503] * (30 - queued) and 2 < queued <= 20
    assert {(body["error"], headers["retry-after"]) for status, headers, body in replies if status == 503} == \
        {("BACKLOG", "5")}
    assert sum(redis_client.xlen(k) for k in KEYS.filing_streams) == queued
    assert max(redis_client.xlen(k) for k in KEYS.filing_streams) == -(-20 // KEYS.partitions)  # one was full
    s = Settings().with_redis_url(redis_server.url)
    run_service(replace(s, streams=replace(s.streams, once=True)), ["w0"])  # the workers catch up
    time.sleep(1.0)  # the ingress refuses without asking Redis for a second after a refusal
    assert _call(port, "POST", "/v1/filings", filings[-1].data, token)[0] == 202


def test_a_stream_whose_oldest_filing_waits_too_long_pushes_back_with_503(redis_server, redis_client, tmp_path,
                                                                          processes):
    """Workers stopped for an hour leave a few filings unread: far below --max-backlog, but a filing
    queued now would get no answer in time, so filings get 503 with Retry-After once the oldest
    unfinished one has waited --max-wait-seconds; the same for one read and never finished; once the
    workers have screened them the ingress accepts again."""
    port, tokens = start_ingress(processes, tmp_path, "--max-wait-seconds", "600", redis_url=redis_server.url)
    token = next(iter(tokens.values()))
    filings = list(generate(GeneratorSpec(count=4, seed=5, defect_rate=0, envelope_rate=0, resubmission_rate=0)))
    hour_ago = int(time.time() * 1000) - 3_600_000
    redis_client.xgroup_create(KEYS.filings, Settings().streams.group, id="0", mkstream=True)
    redis_client.xadd(KEYS.filings, {"filing": filings[0].data, "id": "old", "filer": FILERS[0],
                                     "received_at": "2026-01-01T00:00:00Z"}, id=f"{hour_ago}-0")
    status, headers, body = _request(port, "POST", "/v1/filings", filings[1].data, token)
    assert (status, body["error"], headers["retry-after"]) == (503, "BACKLOG", "5")
    assert "waited 3,6" in body["reason"] and redis_client.xlen(KEYS.filings) == 1

    # Read by a worker that died: pending, not unread, and still too old.
    redis_client.xreadgroup(Settings().streams.group, "dead", {KEYS.filings: ">"}, count=1)
    time.sleep(1.1)  # the lag is read again at most once a second
    assert _request(port, "POST", "/v1/filings", filings[2].data, token)[0] == 503

    s = Settings().with_redis_url(redis_server.url)
    s = replace(s, streams=replace(s.streams, once=True, claim_idle_ms=1))
    run_service(s, ["w0"])  # takes over the dead worker's filing and finishes it
    time.sleep(1.1)
    assert _call(port, "POST", "/v1/filings", filings[3].data, token)[0] == 202


def test_slow_and_idle_connections_are_dropped_after_the_timeouts(redis_server, redis_client, tmp_path, processes):
    """100 connections that send nothing, 100 that trickle their headers a byte every 0.1 s, one that
    trickles its body, one left idle after an answer and one trickling a body nobody reads after its
    answer: each is closed by the server soon after its timeout (1 s here), and the ingress answers
    others meanwhile."""
    port, tokens = start_ingress(processes, tmp_path, "--header-timeout-seconds", "1", "--body-timeout-seconds", "1",
                                 "--keep-alive-seconds", "1", redis_url=redis_server.url)
    token = next(iter(tokens.values()))
    selector, opened = selectors.DefaultSelector(), time.monotonic()
    head = b"POST /v1/filings HTTP/1.1\r\nHost: ingress\r\nContent-Type: application/xml\r\n" + b"X-Pad: x\r\n" * 20

    def connect(kind: str, first: bytes = b"", trickle: bytes = b"") -> None:
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(first)
        s.setblocking(False)
        selector.register(s, selectors.EVENT_READ, {"kind": kind, "trickle": trickle, "got": b""})

    for _ in range(100):
        connect("idle")
    for _ in range(100):
        connect("slow headers", trickle=head)
    connect("slow body", f"POST /v1/filings HTTP/1.1\r\nHost: ingress\r\nAuthorization: Bearer {token}\r\n"
                         "Content-Type: application/xml\r\nContent-Length: 1000\r\n\r\n<a>".encode(),
            trickle=b" " * 997)
    connect("kept alive", b"GET /healthz HTTP/1.1\r\nHost: ingress\r\n\r\n")
    connect("unread body", b"POST /nowhere HTTP/1.1\r\nHost: ingress\r\nContent-Length: 1000\r\n\r\n",
            trickle=b" " * 1000)  # answered 404 at once, then trickled on
    closed: dict[str, list[float]] = {}
    answers = {}
    served_meanwhile = _call(port, "GET", "/healthz")[0]
    deadline = time.monotonic() + 15
    while selector.get_map() and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.1):
            try:
                data = key.fileobj.recv(65536)
            except ConnectionResetError:
                data = b""
            key.data["got"] += data
            if not data:  # closed by the server
                closed.setdefault(key.data["kind"], []).append(time.monotonic() - opened)
                answers[key.data["kind"]] = key.data["got"]
                selector.unregister(key.fileobj)
                key.fileobj.close()
        for key in list(selector.get_map().values()):
            if key.data["trickle"]:
                try:
                    key.fileobj.send(key.data["trickle"][:1])
                    key.data["trickle"] = key.data["trickle"][1:]
                except OSError:
                    pass  # closed: the read above sees it
    left = Counter(key.data["kind"] for key in selector.get_map().values())
    for key in list(selector.get_map().values()):
        key.fileobj.close()
    print("\nclosed after (s):", {k: f"{min(v):.2f}-{max(v):.2f}" for k, v in closed.items()})
    assert not left, f"still open after 15 s: {dict(left)}"
    assert {k: len(v) for k, v in closed.items()} == {"idle": 100, "slow headers": 100, "slow body": 1,
                                                      "kept alive": 1, "unread body": 1}
    assert all(t < 8 for times in closed.values() for t in times)  # 1 s timeouts, and slack for a busy machine
    assert answers["slow body"].startswith(b"HTTP/1.1 408 ") and b"BODY_TIMEOUT" in answers["slow body"]
    assert answers["kept alive"].startswith(b"HTTP/1.1 200 ") and answers["unread body"].startswith(b"HTTP/1.1 404 ")
    assert served_meanwhile == 200


def test_filer_quotas_refill_at_their_rate_and_say_when_to_come_back():
    from cargoscreen.config import IngressSettings
    from cargoscreen.connectors.http_ingress import FilerQuotas

    now = [0.0]
    quotas = FilerQuotas(IngressSettings(requests_per_second=2, request_burst=2, bytes_per_second=1000,
                                         byte_burst=1000, in_flight=1), max_bytes=3000, clock=lambda: now[0])
    assert quotas.take("A", 3000) == 0  # the burst is at least the largest body
    assert quotas.take("A", 1000) == pytest.approx(1.0)  # 1,000 bytes short at 1,000/s; nothing taken
    assert quotas.take("B", 10) == 0  # another filer's buckets are its own
    now[0] = 1.0  # 1 s refilled 1,000 bytes and 2 requests (the burst)
    assert quotas.take("A", 1000) == 0 and quotas.take("A", 0) == 0 and quotas.take("A", 0) == pytest.approx(0.5)
    quotas.charge("A", 500)  # a chunked body, counted once read: a debt
    now[0] = 2.0
    assert quotas.take("A", 1000) == pytest.approx(0.5)  # -500 + 1,000 refilled: 500 short
    assert quotas.enter("A") and not quotas.enter("A") and quotas.enter("B")
    quotas.leave("A")
    assert quotas.enter("A")
