"""HTTP ingress for filers: a filing in, a receipt out; answers fetched per filer.

    POST /v1/filings              body: the ENS (application/xml); header Authorization: Bearer TOKEN
                                  202 {"submission_id", "received_at", "answers"}: it is on the stream
                                  401 unknown token; 413 too big; 415 not XML; 400 hostile or not
                                  well-formed (code, reason, line, column); 503 Redis unavailable
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
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path

import redis
import redis.asyncio as aioredis
from lxml import etree
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cargoscreen.config import Settings
from cargoscreen.connectors.redis_store import connection_options
from cargoscreen.connectors.redis_streams import StreamKeys
from cargoscreen.reassessment import RESPONSES_NS
from cargoscreen.safexml import RejectedXml, SafeXmlParser
from cargoscreen.schemas import SchemaRegistry
from cargoscreen.validation import utc_now

log = logging.getLogger(__name__)
TOKENS_ENV = "CARGOSCREEN_FILER_TOKENS"  # path of the token file, when not given on the command line
XML_TYPES = ("application/xml", "text/xml", "application/octet-stream")
MAX_PAGE = 1000
FILER_ID = re.compile(r"[A-Z]{2}[A-Za-z0-9]{1,15}")  # types.xsd PartyId


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


def _error(status: int, code: str, reason: str, **extra) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": code, "reason": reason, **extra}, status_code=status, headers=headers)


def _unauthenticated() -> JSONResponse:
    return _error(401, "UNAUTHENTICATED", "a valid filer token is required (Authorization: Bearer ...)")


class TooLarge(Exception):
    pass


async def _body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it is known to exceed `limit` (before reading, if declared)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(int(declared))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(size)
        chunks.append(chunk)
    return b"".join(chunks)


def ingress_app(settings: Settings, tokens: FilerTokens) -> Starlette:
    keys, limits = StreamKeys(settings.redis.key_prefix), settings.limits
    url, options = connection_options(settings.redis.url)
    client = aioredis.Redis.from_url(url, **options)
    parser = SafeXmlParser(limits)  # one event-loop thread: never used by two requests at once
    responses = SchemaRegistry.from_dirs(settings.schema_dirs)

    def caller(request: Request) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return tokens.filer(token.strip()) if scheme.lower() == "bearer" else None

    async def submit(request: Request):
        filer = caller(request)
        if filer is None:
            return _unauthenticated()
        data, _, refusal = await _xml_body(request)  # the tree is dropped: the pipeline parses again
        if refusal is not None:
            return refusal
        submission_id, received_at = uuid.uuid4().hex, utc_now()
        try:
            await client.xadd(keys.filings, {"filing": data, "id": submission_id, "filer": filer,
                                             "received_at": received_at})  # no MAXLEN: see trim_finished
        except redis.RedisError as exc:
            log.warning("filing from %s not queued: %s", filer, exc)
            return _error(503, "UNAVAILABLE", "the filing could not be queued; send it again")
        log.info("filing %s queued for %s (%d bytes)", submission_id, filer, len(data))
        return JSONResponse({"submission_id": submission_id, "received_at": received_at,
                             "answers": "/v1/answers"}, status_code=202)

    async def rfi_answer(request: Request):
        filer = caller(request)
        if filer is None:
            return _unauthenticated()
        data, tree, refusal = await _xml_body(request)
        if refusal is not None:
            return refusal
        root = tree.getroot()
        schema = responses.lookup(RESPONSES_NS, "IE3R02") if root.tag == f"{{{RESPONSES_NS}}}IE3R02" else None
        if schema is None:
            return _error(400, "NOT_AN_RFI_ANSWER", f"expected IE3R02 in {RESPONSES_NS}, got {root.tag}")
        violations = schema.violations(tree)
        if violations:
            return _error(400, "SCHEMA", "the answer does not follow responses.xsd", errors=[
                {"code": v.code, "pointer": v.pointer, "line": v.line, "value": v.value, "constraint": v.constraint,
                 "reason": v.detail} for v in violations])
        submission_id, received_at = uuid.uuid4().hex, utc_now()
        try:
            await client.xadd(keys.rfi_answers, {
                "xml": data, "id": submission_id, "filer": filer, "received_at": received_at})
        except redis.RedisError as exc:
            log.warning("RFI answer from %s not queued: %s", filer, exc)
            return _error(503, "UNAVAILABLE", "the answer could not be queued; send it again")
        return JSONResponse({"submission_id": submission_id, "received_at": received_at,
                             "answers": "/v1/answers"}, status_code=202)

    async def _xml_body(request: Request) -> tuple[bytes | None, etree._ElementTree | None, JSONResponse | None]:
        """The body if it is XML within the size limit that the safe parser accepts, else the refusal."""
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in XML_TYPES:
            return None, None, _error(415, "UNSUPPORTED_MEDIA_TYPE",
                                      f"send XML (application/xml), not {media or 'nothing'}")
        try:
            data = await _body(request, limits.max_bytes)
        except TooLarge as exc:
            return None, None, _error(413, "SIZE_LIMIT", f"the body is {exc.args[0]:,} bytes or more; the limit is "
                                                   f"{limits.max_bytes:,} bytes")
        try:
            tree = parser.parse(data)
        except RejectedXml as exc:
            p = exc.problem
            return None, None, _error(400, p.code, p.reason, line=p.line, column=p.column)
        return data, tree, None

    async def answers(request: Request):
        filer = caller(request)
        if filer is None:
            return _unauthenticated()
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

    return Starlette(routes=[Route("/v1/filings", submit, methods=["POST"]),
                             Route("/v1/answers", answers, methods=["GET"]),
                             Route("/v1/rfi-answers", rfi_answer, methods=["POST"]),
                             Route("/healthz", health, methods=["GET"])])
