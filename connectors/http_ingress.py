"""HTTP ingress for filers: a filing in, a receipt out; answers fetched per filer.

    POST /v1/filings              body: the ENS (application/xml); header Authorization: Bearer TOKEN
                                  202 {"submission_id", "received_at", "answers"}: it is on the stream
                                  401 unknown token; 413 too big; 415 not XML; 400 hostile or not
                                  well-formed (code, reason, line, column); 503 Redis unavailable;
                                  429, 503 BACKLOG, 408: one filer cannot crowd out the others, below
    GET  /v1/answers?after=ID     the caller's own answers after stream id ID (default: from the
                                  start), oldest first, at most `count` (default 100): {"answers", "next"}
    POST /v1/rfi-answers          body: an IE3R02 answering a request for information; checked
                                  against its schema here (400 with every violation located), then
                                  202 {"submission_id", ...}: the workbench re-assesses (workbench/rfi.py)
    GET  /healthz                 200 when Redis answers

Who a caller is comes from the token alone (a filer cannot name another filer anywhere), and
the filing goes on the stream with that identity as its channel filer: the pipeline registers
it under that filer and answers on that filer's stream (connectors/redis_streams.py), which is
the only stream GET /v1/answers reads. Tokens are kept as SHA-256 digests in a file the
operator owns (`cargoscreen ingress token` adds one); the token itself is shown once.

Hostile bodies never reach the pipeline: the size is checked from Content-Length before the
body is read (and counted while a chunked body streams in), then the bytes go through the
same safe parser as the pipeline (no DTD, no entities, no network, depth and size bounds).
Schema and data-quality validation stay in the pipeline, whose answer locates every error.

One filer cannot crowd out the others (settings: config.IngressSettings):
    429 + Retry-After  the filer is over its request or byte rate (token buckets, charged from
                       Content-Length before the body is read) or has too many requests in flight
    503 + Retry-After  the filings stream holds max_backlog entries: nobody is reading it, and
                       Redis would grow without bound (checked in the script that queues the filing);
                       or its oldest unfinished filing has waited max_wait_seconds: the workers
                       are stopped or far behind, and a filing queued now would get no answer in
                       time (checked at most once a second, off the event loop)
    408                the body did not arrive within body_timeout_seconds
    (closed)           headers not complete within header_timeout_seconds of connecting or of the
                       previous answer; idle for keep_alive_seconds between requests
Parsing (and an RFI answer's schema check) runs on worker threads, where lxml releases the GIL:
a large filing no longer stalls the event loop, nor everyone's requests and health checks on it.
A refusal sent before the body was read closes the connection, so the body is not uploaded for
nothing (a client that sends `Expect: 100-continue`, as curl does for large bodies, never sends it).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import re
import secrets
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import h11
import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster
import uvicorn
from lxml import etree
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from cargoscreen.config import IngressSettings, Settings
from cargoscreen.connectors.redis_slots import REPLICA_WAIT_MS
from cargoscreen.connectors.redis_store import connect, connect_async, connection_options
from cargoscreen.connectors.redis_streams import StreamKeys
from cargoscreen.health import stream_backlog
from cargoscreen.linking import routing_name
from cargoscreen.reassessment import RESPONSES_NS
from cargoscreen.safexml import RejectedXml, SafeXmlParser
from cargoscreen.schemas import SchemaRegistry
from cargoscreen.validation import utc_now

log = logging.getLogger(__name__)
TOKENS_ENV = "CARGOSCREEN_FILER_TOKENS"  # path of the token file, when not given on the command line
XML_TYPES = ("application/xml", "text/xml", "application/octet-stream")
MAX_PAGE = 1000
FILER_ID = re.compile(r"[A-Z]{2}[A-Za-z0-9]{1,15}")  # types.xsd PartyId
PARSE_THREADS = 2  # per pool, small and large bodies: lxml parses without the GIL
LARGE_BODY = 256 * 1024  # parsed on threads of their own: an ordinary filing never queues behind one
BACKLOG_RETRY_SECONDS = 5
BACKLOG_RECHECK_SECONDS = 1.0  # after a refusal for backlog, refuse before reading bodies this long
LAG_RECHECK_SECONDS = 1.0  # how often the age of the oldest unfinished filing is read from Redis
# Queues a filing unless the stream already holds ARGV[1] entries (0: no bound); nil when refused.
# One script, so the bound holds however many ingress processes add at once.
QUEUE_FILING = """
local bound = tonumber(ARGV[1])
if bound > 0 and redis.call('XLEN', KEYS[1]) >= bound then return false end
return redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
"""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class FilerTokens:
    """Token digest -> filer (EORI). File format: one `FILER sha256:HEX` per line, # comments."""

    by_digest: dict

    @staticmethod
    def load(path: Path) -> "FilerTokens":
        by_digest = {}
        for n, line in enumerate(Path(path).read_text().splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            filer, _, digest = line.partition(" ")
            if not digest.strip().startswith("sha256:") or len(digest.strip()) != 71 or not FILER_ID.fullmatch(filer):
                raise ValueError(f"{path}:{n}: expected 'FILER sha256:<64 hex digits>', FILER an EORI")
            by_digest[digest.strip()[7:]] = filer
        return FilerTokens(by_digest)

    def filer(self, token: str | None) -> str | None:
        return self.by_digest.get(_digest(token)) if token else None


def issue_token(path: Path, filer: str) -> str:
    """A new random token for `filer`, its digest appended to the file (created 0600); the token
    is returned once and stored nowhere."""
    if not FILER_ID.fullmatch(filer):  # it becomes the Recipient of every answer to this filer
        raise ValueError(f"{filer!r} is not an EORI or TIN (2 letters, then up to 15 letters or digits)")
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as f:
        f.write(f"{filer} sha256:{_digest(token)}\n")
    return token


def _error(status: int, code: str, reason: str, retry_after: float | None = None, close: bool = False,
           **extra) -> JSONResponse:
    """A refusal as JSON. close: the body was not read, so end the connection instead of
    receiving it for nothing; retry_after: seconds, rounded up (Retry-After takes whole ones)."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    if close:
        headers["Connection"] = "close"
    return JSONResponse({"error": code, "reason": reason, **extra}, status_code=status, headers=headers)


def _unauthenticated(close: bool) -> JSONResponse:
    return _error(401, "UNAUTHENTICATED", "a valid filer token is required (Authorization: Bearer ...)", close=close)


class FilerQuotas:
    """Per filer: a token bucket of requests, one of body bytes, and the requests in flight.
    Only the event loop's thread touches it, so no lock."""

    def __init__(self, s: IngressSettings, max_bytes: int, clock=time.monotonic):
        self._s, self._clock = s, clock
        self._byte_burst = max(s.byte_burst, max_bytes)
        self._buckets: dict[str, list[float]] = {}  # filer -> [requests, bytes, when last refilled]
        self._in_flight: Counter = Counter()

    def take(self, filer: str, nbytes: int) -> float:
        """One request and nbytes out of the filer's buckets: 0 when granted, else the seconds until
        they hold enough (nothing is taken then)."""
        s, now = self._s, self._clock()
        requests, size, then = self._buckets.get(filer) or (s.request_burst, self._byte_burst, now)
        requests = min(s.request_burst, requests + (now - then) * s.requests_per_second)
        size = min(self._byte_burst, size + (now - then) * s.bytes_per_second)
        wait = max((1 - requests) / s.requests_per_second, (nbytes - size) / s.bytes_per_second, 0.0)
        if not wait:
            requests, size = requests - 1, size - nbytes
        self._buckets[filer] = [requests, size, now]
        return wait

    def charge(self, filer: str, nbytes: int) -> None:
        """Bytes of a body whose size was not declared, once read: a debt the next requests wait out."""
        self._buckets[filer][1] -= nbytes

    def enter(self, filer: str) -> bool:
        if self._in_flight[filer] >= self._s.in_flight:
            return False
        self._in_flight[filer] += 1
        return True

    def leave(self, filer: str) -> None:
        self._in_flight[filer] -= 1


class TooLarge(Exception):
    pass


def _declared(request: Request) -> int | None:
    declared = request.headers.get("content-length")
    return int(declared) if declared is not None and declared.isdigit() else None


async def _body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it is known to exceed `limit` (before reading, if declared)."""
    declared = _declared(request)
    if declared is not None and declared > limit:
        raise TooLarge(declared)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(size)
        chunks.append(chunk)
    return b"".join(chunks)


def ingress_app(settings: Settings, tokens: FilerTokens) -> Starlette:
    keys, limits, quota = StreamKeys.for_settings(settings), settings.limits, settings.ingress
    url, options = connection_options(settings.redis.url)
    client = connect_async(url)
    backlog_bound = -(-quota.max_backlog // keys.partitions)  # per partition's stream
    queue_filing = client.register_script(QUEUE_FILING)
    quotas = FilerQuotas(quota, limits.max_bytes)
    responses = SchemaRegistry.from_dirs(settings.schema_dirs)
    parsing = {large: ThreadPoolExecutor(PARSE_THREADS, thread_name_prefix="ingress-parse")  # by len > LARGE_BODY
               for large in (False, True)}
    per_thread = threading.local()  # parsers are not thread-safe: one per parsing thread
    one_schema_check = threading.Lock()  # a schema keeps its last error log: one check at a time
    backlog_full_until = [0.0]  # loop time until which filings are refused before their bodies are read
    lag_reader = connect(url)  # the lag check reuses health's (sync, on a thread)
    lag = {"checked": -math.inf, "seconds": 0.0}  # the oldest unfinished filing's wait, as last read

    async def waiting_too_long() -> float | None:
        """How long the oldest unfinished filing has waited, when that is past max_wait_seconds."""
        if quota.max_wait_seconds <= 0:
            return None
        now = asyncio.get_running_loop().time()
        if now - lag["checked"] >= LAG_RECHECK_SECONDS:
            lag["checked"] = now  # before awaiting: one check at a time, whatever arrives meanwhile
            try:
                unread, _, oldest_pending = await asyncio.to_thread(
                    stream_backlog, lag_reader, keys, settings.streams.group, int(time.time() * 1000))
                lag["seconds"] = max(unread, oldest_pending)
            except redis.RedisError as exc:  # queueing will say whether Redis is there
                log.warning("the filings stream's lag could not be read: %s", exc)
        return lag["seconds"] if lag["seconds"] > quota.max_wait_seconds else None

    masters: dict[str, aioredis.Redis] = {}  # on a cluster, a client per master: WAIT counts its connection's writes

    async def queue(stream: str, args: list):
        """The filing on `stream`, or None past its backlog; on a cluster only once a replica has it
        too (the filer's receipt must outlive its master)."""
        if not isinstance(client, redis.asyncio.cluster.RedisCluster):
            return await queue_filing(keys=[stream], args=args)
        node = client.get_node_from_key(stream)
        if node.name not in masters:
            masters[node.name] = aioredis.Redis(connection_pool=aioredis.ConnectionPool(
                connection_class=node.connection_class, **node.connection_kwargs))
        try:
            pipe = masters[node.name].pipeline(transaction=False)
            pipe.evalsha(queue_filing.sha, 1, stream, *args)
            pipe.execute_command("WAIT", 1, REPLICA_WAIT_MS)
            queued, _ = await pipe.execute()
            return queued
        except redis.RedisError:  # the script not there yet, the slot moved, the node gone: as the cluster says
            return await queue_filing(keys=[stream], args=args)  # (the same id twice is one submission)

    def parse(data: bytes) -> etree._ElementTree:
        if not hasattr(per_thread, "parser"):
            per_thread.parser = SafeXmlParser(limits)
        return per_thread.parser.parse(data)

    def filing_check(data: bytes) -> str | None:
        """The filing's routing name (its consignment's partition); the tree is dropped here, not on the
        event loop: freeing a large tree takes milliseconds."""
        return routing_name(parse(data).getroot())

    def caller(request: Request) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return tokens.filer(token.strip()) if scheme.lower() == "bearer" else None

    def for_filers(handler, queues_filings: bool = False):
        """The endpoint for an authenticated filer within its quotas; each refusal before the body
        is read costs nothing but headers (and ends the connection, see _error)."""
        async def endpoint(request: Request):
            has_body = request.method == "POST"
            filer = caller(request)
            if filer is None:
                return _unauthenticated(close=has_body)
            if queues_filings and asyncio.get_running_loop().time() < backlog_full_until[0]:
                return _backlog()
            if queues_filings and (waited := await waiting_too_long()) is not None:
                return _error(503, "BACKLOG", f"filings have waited {waited:,.0f} s to be screened; send it again "
                              "later", retry_after=BACKLOG_RETRY_SECONDS, close=has_body)
            if not quotas.enter(filer):
                return _error(429, "TOO_MANY_IN_FLIGHT", f"at most {quota.in_flight} requests at once per filer",
                              retry_after=1, close=has_body)
            try:
                size = (_declared(request) or 0) if has_body else 0  # undeclared: charged once read
                wait = quotas.take(filer, size if size <= limits.max_bytes else 0)  # past the limit: a 413
                if wait:
                    return _error(429, "RATE_LIMITED", f"over this filer's quota of {quota.requests_per_second:g} "
                                  f"requests and {quota.bytes_per_second:,} bytes per second", retry_after=wait,
                                  close=has_body)
                return await handler(request, filer)
            finally:
                quotas.leave(filer)
        return endpoint

    def _backlog() -> JSONResponse:
        return _error(503, "BACKLOG", f"{quota.max_backlog:,} filings are waiting to be screened; send it again later",
                      retry_after=BACKLOG_RETRY_SECONDS, close=True)

    async def submit(request: Request, filer: str):
        data, route, refusal = await _xml_body(request, filer, filing_check)  # the pipeline parses it again
        if refusal is not None:
            return refusal
        submission_id, received_at = uuid.uuid4().hex, utc_now()
        stream = keys.filings_for(route or submission_id)  # its consignment's partition, or any
        try:  # no MAXLEN (it would drop filings nobody read): the workers trim what they finish
            queued = await queue(stream, [backlog_bound, "filing", data, "id", submission_id, "filer", filer,
                                          "received_at", received_at])
        except redis.RedisError as exc:
            log.warning("filing from %s not queued: %s", filer, exc)
            return _error(503, "UNAVAILABLE", "the filing could not be queued; send it again")
        if queued is None:
            loop = asyncio.get_running_loop()
            if loop.time() >= backlog_full_until[0]:
                log.warning("%d filings wait on %s: refusing filings for now", backlog_bound, stream)
            backlog_full_until[0] = loop.time() + BACKLOG_RECHECK_SECONDS
            return _backlog()
        log.info("filing %s queued for %s (%d bytes)", submission_id, filer, len(data))
        return JSONResponse({"submission_id": submission_id, "received_at": received_at,
                             "answers": "/v1/answers"}, status_code=202)

    def rfi_check(data: bytes) -> JSONResponse | None:
        tree = parse(data)
        root = tree.getroot()
        schema = responses.lookup(RESPONSES_NS, "IE3R02") if root.tag == f"{{{RESPONSES_NS}}}IE3R02" else None
        if schema is None:
            return _error(400, "NOT_AN_RFI_ANSWER", f"expected IE3R02 in {RESPONSES_NS}, got {root.tag}")
        with one_schema_check:
            violations = schema.violations(tree)
        if violations:
            return _error(400, "SCHEMA", "the answer does not follow responses.xsd", errors=[
                {"code": v.code, "pointer": v.pointer, "line": v.line, "value": v.value, "constraint": v.constraint,
                 "reason": v.detail} for v in violations])
        return None

    async def rfi_answer(request: Request, filer: str):
        data, _, refusal = await _xml_body(request, filer, rfi_check)
        if refusal is not None:
            return refusal
        submission_id, received_at = uuid.uuid4().hex, utc_now()
        try:
            await client.xadd(keys.rfi_answers, {
                "xml": data, "id": submission_id, "filer": filer, "received_at": received_at})
        except redis.RedisError as exc:
            log.warning("RFI answer from %s not queued: %s", filer, exc)
            return _error(503, "UNAVAILABLE", "the answer could not be queued; send it again")
        return JSONResponse({"submission_id": submission_id, "received_at": received_at,
                             "answers": "/v1/answers"}, status_code=202)

    async def _xml_body(request: Request, filer: str, check) -> tuple[bytes | None, object, JSONResponse | None]:
        """(the body, what `check` found, None) if it is XML within the size and time limits that
        `check` (run on a parsing thread; it returns a refusal, or anything else) accepts, else
        (None, None, the refusal)."""
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in XML_TYPES:
            return None, None, _error(415, "UNSUPPORTED_MEDIA_TYPE", f"send XML (application/xml), not {media or 'nothing'}",
                                close=True)
        try:
            data = await asyncio.wait_for(_body(request, limits.max_bytes), quota.body_timeout_seconds)
        except TooLarge as exc:
            return None, None, _error(413, "SIZE_LIMIT", f"the body is {exc.args[0]:,} bytes or more; the limit is "
                                                   f"{limits.max_bytes:,} bytes", close=True)
        except asyncio.TimeoutError:
            return None, None, _error(408, "BODY_TIMEOUT", f"the body did not arrive within "
                                f"{quota.body_timeout_seconds:g} seconds", close=True)
        except ClientDisconnect:  # gone mid-body: nobody reads this
            return None, None, _error(400, "DISCONNECTED", "the client went away during the body", close=True)
        if _declared(request) is None:
            quotas.charge(filer, len(data))
        try:
            found = await asyncio.get_running_loop().run_in_executor(parsing[len(data) > LARGE_BODY], check, data)
        except RejectedXml as exc:
            p = exc.problem
            return None, None, _error(400, p.code, p.reason, line=p.line, column=p.column)
        return (None, None, found) if isinstance(found, JSONResponse) else (data, found, None)

    async def answers(request: Request, filer: str):
        after = request.query_params.get("after", "0")
        try:
            count = max(1, min(MAX_PAGE, int(request.query_params.get("count", "100"))))
            entries = await client.xrange(keys.answers(filer), min=f"({after}", count=count)
        except ValueError:
            return _error(400, "BAD_QUERY", "count must be a number")
        except redis.ResponseError:
            return _error(400, "BAD_QUERY", "after must be a stream id such as 1700000000000-0")
        except redis.RedisError:
            return _error(503, "UNAVAILABLE", "answers cannot be read now; try again")
        page = []
        for entry_id, fields in entries:
            body = json.loads(fields[b"body"])
            page.append({"id": entry_id.decode(), "message_type": body["message_type"],
                         "submission_id": body["submission_id"], "lrn": body.get("lrn"), "mrn": body.get("mrn"),
                         "xml": body["xml"]})
        return JSONResponse({"answers": page, "next": page[-1]["id"] if page else after})

    async def health(request: Request):
        try:
            await client.ping()
        except redis.RedisError as exc:
            return JSONResponse({"healthy": False, "error": f"redis: {exc}"}, status_code=503)
        return JSONResponse({"healthy": True})

    return Starlette(routes=[Route("/v1/filings", for_filers(submit, queues_filings=True), methods=["POST"]),
                             Route("/v1/answers", for_filers(answers), methods=["GET"]),
                             Route("/v1/rfi-answers", for_filers(rfi_answer), methods=["POST"]),
                             Route("/healthz", health, methods=["GET"])])


def deadline_protocol(header_timeout: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, with a deadline on a request's headers: from connecting, or from the
    previous answer, to the next request's last header. uvicorn itself times out only idle
    keep-alive connections, and only after a first answer: a client that connects and sends nothing,
    trickles its headers a byte at a time, or trickles a body nobody reads after its answer (a 404),
    would hold its connection for ever."""

    class HeaderDeadline(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport):
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if not self._between_requests():
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self._between_requests():  # not a pipelined one in hand
                self._arm()

        def connection_lost(self, exc):
            self._disarm()
            super().connection_lost(exc)

        def _between_requests(self) -> bool:
            """No request in hand: none yet, or the last one answered."""
            return self.cycle is None or self.cycle.response_complete

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(header_timeout, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            if self._between_requests() and not self.transport.is_closing():
                self.transport.close()

    return HeaderDeadline


def serve(app: Starlette, host: str, port: int, s: IngressSettings) -> None:
    """Runs the app under uvicorn with the ingress's connection timeouts, until SIGTERM/SIGINT."""
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False,
                http=deadline_protocol(s.header_timeout_seconds), timeout_keep_alive=s.keep_alive_seconds)
