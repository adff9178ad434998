"""Is the service up, and is it keeping up? GET /healthz answers both, from Redis alone.

Up: the job is running and every reader polled within the last few poll intervals (readers
leave a heartbeat, connectors/redis_streams.ReaderControl). Keeping up: no filing has waited
longer than `max_lag_seconds` to be read (the oldest unread entry of the filings stream, or
the oldest file in the drop folder) or to be finished (the oldest read but unacknowledged
entry), and no scorer is falling behind: each worker's scorer reports its last few minutes
(`ScoringMonitor`, written to {prefix}:scoring by the score step), and one that took longer than
`max_scoring_seconds` over a filing, or had a rule go over its evaluation budget (a rule left
unevaluated), is falling behind before the backlog shows it. Because it reads only Redis and
the folder, it works the same on any runner: the workers may be elsewhere. 200 when up and
keeping up, 503 otherwise, JSON either way.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import redis

from .connectors.redis_slots import pipelined
from .connectors.redis_streams import StreamKeys, entry_key

log = logging.getLogger(__name__)
DEFAULT_MAX_LAG_SECONDS = 30.0  # a filing waiting longer than this to be read or finished: not keeping up
DEFAULT_MAX_SCORING_SECONDS = 1.0  # scoring one filing takes milliseconds; a second is a scorer in trouble
SCORING_WINDOW_SECONDS = 300  # what a scorer's report covers; an older report is of a scorer gone
_BUCKET_SECONDS = 10


def scoring_key(prefix: str) -> str:
    return f"{prefix}:scoring"  # hash: worker -> its ScoringMonitor report (JSON)


class ScoringMonitor:
    """One worker's scoring over the last SCORING_WINDOW_SECONDS, in 10-second buckets: filings,
    seconds, the slowest filing, rules over their budget. Pure: the caller gives the time."""

    def __init__(self):
        self._buckets: dict[int, list] = defaultdict(lambda: [0, 0.0, 0.0, 0])  # filings, seconds, slowest, overruns

    def record(self, seconds: float, overruns: int, now: float) -> None:
        b = self._buckets[int(now // _BUCKET_SECONDS)]
        b[0] += 1
        b[1] += seconds
        b[2] = max(b[2], seconds)
        b[3] += overruns

    def report(self, now: float) -> dict:
        first = int((now - SCORING_WINDOW_SECONDS) // _BUCKET_SECONDS)
        for old in [k for k in self._buckets if k < first]:
            del self._buckets[old]
        buckets = self._buckets.values()
        filings, seconds = sum(b[0] for b in buckets), sum(b[1] for b in buckets)
        return {"at": round(now, 3), "filings": filings, "mean_seconds": round(seconds / max(filings, 1), 6),
                "slowest_seconds": round(max((b[2] for b in buckets), default=0.0), 6),
                "budget_overruns": sum(b[3] for b in buckets)}


def publish_scoring(client: redis.Redis, prefix: str, worker: str, report: dict) -> None:
    pipe = client.pipeline(transaction=False)
    pipe.hset(scoring_key(prefix), worker, json.dumps(report))
    pipe.expire(scoring_key(prefix), 86400)  # gone a day after the last scorer stopped
    pipe.execute()


def forget_scorers(client: redis.Redis, prefix: str, now: float, older_than: float = 86400) -> None:
    """Drops the reports of workers long gone (a worker's name is host:pid: each restart adds one)."""
    gone = [w for w, raw in client.hgetall(scoring_key(prefix)).items() if now - json.loads(raw)["at"] > older_than]
    if gone:
        client.hdel(scoring_key(prefix), *gone)


def scorers(client: redis.Redis, prefix: str, now: float) -> dict[str, dict]:
    """Worker -> its report of the last SCORING_WINDOW_SECONDS, for scorers that reported within it."""
    out = {}
    for worker, raw in client.hgetall(scoring_key(prefix)).items():
        report = json.loads(raw)
        if now - report["at"] <= SCORING_WINDOW_SECONDS:
            out[worker.decode()] = {**report, "age_seconds": round(max(0.0, now - report["at"]), 3)}
    return out


def falling_behind(report: dict, max_scoring_seconds: float) -> bool:
    return report["slowest_seconds"] > max_scoring_seconds or report["budget_overruns"] > 0


@dataclass(frozen=True)
class Health:
    up: bool
    keeping_up: bool
    running: bool
    readers: dict  # reader name -> seconds since its last poll (None: never, or long gone)
    oldest_unread_seconds: float  # the filing waiting longest to be read (0: none waiting)
    pending: int  # read, not yet acknowledged
    oldest_pending_seconds: float
    max_lag_seconds: float
    scorers: dict  # worker -> its scoring in the last minutes (filings, mean and slowest seconds, budget overruns)
    scorers_keeping_up: bool  # none took longer than max_scoring_seconds over a filing or went over its budget
    max_scoring_seconds: float

    @property
    def healthy(self) -> bool:
        return self.up and self.keeping_up and self.scorers_keeping_up


def _age(entry_id: bytes | str, now_ms: int) -> float:
    return max(0.0, (now_ms - entry_key(entry_id)[0]) / 1000)


def stream_backlog(client: redis.Redis, keys: StreamKeys, group: str, now_ms: int) -> tuple[float, int, float]:
    """(oldest unread age, pending count, oldest pending age) of the filings streams (every partition) for `group`."""
    each = [_partition_backlog(client, stream, group, now_ms) for stream in keys.filing_streams]
    return max(e[0] for e in each), sum(e[1] for e in each), max(e[2] for e in each)


def _partition_backlog(client: redis.Redis, stream: str, group: str, now_ms: int) -> tuple[float, int, float]:
    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError:  # no stream yet: nothing waits
        return 0.0, 0, 0.0
    mine = next((g for g in groups if (g["name"].decode() if isinstance(g["name"], bytes) else g["name"]) == group),
                None)
    last = mine["last-delivered-id"] if mine else b"0-0"
    last = last.decode() if isinstance(last, bytes) else last
    unread = client.xrange(stream, min=f"({last}", count=1)
    pending = client.xpending(stream, group) if mine else {"pending": 0, "min": None}
    return (_age(unread[0][0], now_ms) if unread else 0.0, int(pending["pending"]),
            _age(pending["min"], now_ms) if pending["pending"] else 0.0)


def folder_backlog(folder: Path, now: float) -> float:
    """Age of the oldest filing waiting in a drop folder (0: none)."""
    oldest = min((e.stat().st_mtime for e in os.scandir(folder)
                  if e.name.endswith(".xml") and not e.name.startswith(".") and e.is_file()), default=now)
    return max(0.0, now - oldest)


def check(client: redis.Redis, keys: StreamKeys, group: str, readers: list[str], running: bool,
          max_lag_seconds: float, poll_seconds: float, folder: Path | None = None,
          max_scoring_seconds: float = DEFAULT_MAX_SCORING_SECONDS) -> Health:
    now_ms = int(time.time() * 1000)
    heartbeats = [keys.heartbeat(r) for r in readers]  # not MGET: on a Redis Cluster they lie in several slots
    beats = pipelined(client, [(k, ("GET", k)) for k in heartbeats])
    ages = {r: None if b is None else max(0.0, (now_ms - int(b)) / 1000) for r, b in zip(readers, beats)}
    # A poll blocks up to poll_seconds, and a bundle in flight delays the next poll: allow a few.
    fresh = max(10.0, 4 * poll_seconds)
    up = running and all(a is not None and a <= fresh for a in ages.values())
    if folder is not None:
        unread, pending, oldest_pending = folder_backlog(folder, now_ms / 1000), 0, 0.0
    else:
        unread, pending, oldest_pending = stream_backlog(client, keys, group, now_ms)
    keeping_up = unread <= max_lag_seconds and oldest_pending <= max_lag_seconds
    scoring = scorers(client, keys.prefix, now_ms / 1000)
    return Health(up, keeping_up, running, ages, round(unread, 3), pending, round(oldest_pending, 3),
                  max_lag_seconds, scoring, not any(falling_behind(r, max_scoring_seconds) for r in scoring.values()),
                  max_scoring_seconds)


class HealthServer:
    """GET /healthz (and /) on host:port, in a daemon thread: 200 when healthy, 503 otherwise."""

    def __init__(self, host: str, port: int, report: Callable[[], Health]):
        def respond(handler: BaseHTTPRequestHandler):
            if handler.path.split("?")[0] not in ("/", "/healthz"):
                handler.send_error(404)
                return
            try:
                health = report()
                status, body = (200 if health.healthy else 503), {**asdict(health), "healthy": health.healthy}
            except redis.RedisError as exc:  # Redis down: the service cannot be keeping up
                status, body = 503, {"healthy": False, "error": f"redis: {exc}"}
            data = json.dumps(body).encode()
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)

        class Handler(BaseHTTPRequestHandler):
            do_GET = respond
            timeout = 5  # a client that connects and sends nothing does not keep its thread

            def log_message(self, *args):  # probes every few seconds: keep them out of the log
                pass

        class Server(ThreadingHTTPServer):
            address_family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]  # IPv4 or IPv6

        self._server = Server((host, port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="health", daemon=True).start()
        log.info("health endpoint on %s:%d/healthz", host, self.port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
