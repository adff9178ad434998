"""Prometheus metrics: the catalogue (each metric's name, meaning and labels) and their exposition.

Every process that runs cargoscreen's steps (the service, each SDK worker of a portable runner,
the batch job when asked) keeps these in its own registry and serves them at
`http://<metrics_host>:<port>/metrics`, the port being the first free one of
[metrics_port, metrics_port + port_span) (several workers share a host); metrics_host is loopback
unless told otherwise, since the rule hit counts would tell a filer who can scrape them what its
filing set off. Each process also registers the address it is reached at in Redis
(`{prefix}:metrics:targets`, refreshed every 15 s), from which
`cargoscreen metrics targets` writes Prometheus file service discovery: workers that a runner
starts anywhere are scraped without configuration. Beam's own counters (counters.py) feed the
same calls, so the batch summary and Prometheus never disagree.

Labels come from small fixed sets (stages, outcomes, message types, decisions, the rules of the
active pack and the risk information forms, fact kinds, exception class names), never from ids.
The README's "Metrics" section lists each metric with its meaning; a test keeps the two in step.
"""
from __future__ import annotations

import logging
import socket
import threading
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, start_http_server

from .domain.container_events import utc_epoch

disable_created_metrics()  # no *_created series: they double what is scraped and nobody graphs them
log = logging.getLogger(__name__)
REGISTRY = CollectorRegistry()  # one per process: a metric is a process-wide fact
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)

STAGE_MESSAGES = Counter(
    "cargoscreen_stage_messages", "Messages leaving a step of the pipeline, by step and outcome "
    "(read: in, claimed; validate: accepted, rejected; register: registered, resent, lrn-reused, amended, "
    "invalidated, unknown-mrn, foreign-mrn, withdrawn; link: linked, overdue, refused; enrich: enriched, "
    "unavailable; score: assessed, referral).",
    ["stage", "outcome"], registry=REGISTRY)
DEAD_LETTERS = Counter(
    "cargoscreen_dead_letters", "Messages dead-lettered, by step and reason (the exception class or the "
    "refusal's kind); each is kept with its payload on the dead-letter stream.", ["stage", "reason"],
    registry=REGISTRY)
ANSWERS = Counter("cargoscreen_answers", "Answers sent to filers, by message type (IE3R01, IE3N99, IE3Q02...).",
                  ["message_type"], registry=REGISTRY)
DECISIONS = Counter("cargoscreen_decisions", "Consignments assessed, by decision.", ["decision"], registry=REGISTRY)
RULE_HITS = Counter("cargoscreen_rule_hits", "Rules that fired, by rule id (the active pack's rules and the risk "
                    "information forms).", ["rule"], registry=REGISTRY)
RULE_ERRORS = Counter("cargoscreen_rule_errors", "Rule evaluations that raised (a bug in a rule) or would have gone "
                      "past the filing's evaluation budget; the other rules still counted.", registry=REGISTRY)
CONTAINER_FACTS = Counter("cargoscreen_container_facts", "Container-status facts found, by kind.", ["kind"],
                          registry=REGISTRY)
DATA_QUALITY_WARNINGS = Counter("cargoscreen_data_quality_warnings", "Filings accepted with a data-quality warning, "
                                "by rule (e.g. DQ_LOCODE_NOT_IN_EDITION: a place newer than the code list).",
                                ["rule"], registry=REGISTRY)
EFFECTS = Counter("cargoscreen_effects", "Effects delivered to Redis streams, by kind (answer, decision, referral, "
                  "withdrawal, dead-letter) and outcome (written, or suppressed as already written).",
                  ["kind", "outcome"], registry=REGISTRY)
REGISTRATION_LATENCY = Histogram(
    "cargoscreen_registration_latency_seconds", "From a filing's submission (as the channel received it) to its "
    "registration or rejection.", buckets=LATENCY_BUCKETS, registry=REGISTRY)
DECISION_LATENCY = Histogram(
    "cargoscreen_decision_latency_seconds", "From the submission of the filing that completed a consignment to the "
    "consignment's decision.", buckets=LATENCY_BUCKETS, registry=REGISTRY)
SOURCE_LAG = Gauge("cargoscreen_source_lag_seconds", "Age of the oldest filing not yet finished: unread, or read "
                   "and not yet acknowledged (0 when none).", ["source"], registry=REGISTRY)
SOURCE_BACKLOG = Gauge("cargoscreen_source_backlog_entries", "Filings on the source read by a worker and not yet "
                       "finished (state=pending: not acknowledged; the unread ones show in the lag).",
                       ["source", "state"], registry=REGISTRY)
REDIS_ERRORS = Counter("cargoscreen_redis_errors", "Redis calls that failed with a connection error or timeout, "
                       "by operation (each retried with backoff).", ["operation"], registry=REGISTRY)
REDIS_GIVE_UPS = Counter("cargoscreen_redis_give_ups", "Redis calls that failed after every retry (the filings "
                         "concerned are dead-lettered or left unacknowledged for redelivery).", ["operation"],
                         registry=REGISTRY)
RULE_PACK = Gauge("cargoscreen_rule_pack_info", "The rule pack this process scores with: 1 for the pack in use "
                  "(label pack = name@version+digest).", ["pack"], registry=REGISTRY)
RULE_PACK_RELOADS = Counter("cargoscreen_rule_pack_reloads", "Rule packs loaded after a publication.",
                            registry=REGISTRY)
RULE_PACK_RELOAD_FAILURES = Counter("cargoscreen_rule_pack_reload_failures", "Published rule packs this process "
                                    "refused (it keeps scoring with the pack it had).", registry=REGISTRY)
RISK_INFORMATION_FORMS = Gauge("cargoscreen_risk_information_forms", "Risk information forms active in this "
                               "process's scorer.", registry=REGISTRY)
ARCHIVE_FILES = Counter("cargoscreen_archive_files", "Parquet files written to the archive, by table.", ["table"],
                        registry=REGISTRY)
ARCHIVE_ROWS = Counter("cargoscreen_archive_rows", "Rows written to the archive, by table.", ["table"],
                       registry=REGISTRY)


def since(received_at: str) -> float | None:
    """Seconds from an ISO 8601 UTC time to now (None when unknown or unreadable)."""
    if not received_at:
        return None
    try:
        return max(0.0, time.time() - utc_epoch(received_at))
    except ValueError:
        return None


def observe(histogram: Histogram, received_at: str) -> None:
    seconds = since(received_at)
    if seconds is not None:
        histogram.observe(seconds)


def reason_of(text: str) -> str:
    """A bounded label from a dead letter's reason: the exception class or refusal kind before ':'."""
    head = text.split(":", 1)[0].strip()
    return head if head.isidentifier() and len(head) <= 40 else "other"


class _Exposition:
    """This process's /metrics server and its registration as a scrape target. Started once per process
    by the first step that asks (a DoFn's setup), whatever the runner."""

    def __init__(self):
        self._lock = threading.Lock()
        self.port: int | None = None

    def start(self, host: str, port: int, span: int, redis_url: str | None, key_prefix: str) -> int | None:
        with self._lock:
            if self.port is not None or port <= 0:
                return self.port
            for candidate in range(port, port + span):
                try:
                    start_http_server(candidate, addr=host, registry=REGISTRY)
                except OSError:
                    continue
                self.port = candidate
                break
            else:
                log.warning("no free metrics port in %d..%d: this process is not scraped", port, port + span - 1)
                return None
        target = scrape_target(host, self.port)
        log.info("metrics at http://%s/metrics", target)
        if redis_url:
            threading.Thread(target=self._register, args=(redis_url, key_prefix, target), daemon=True,
                             name="metrics-target").start()
        return self.port

    def _register(self, redis_url: str, key_prefix: str, target: str) -> None:
        from .connectors.redis_store import connect

        client = connect(redis_url)
        while True:
            try:
                client.zadd(targets_key(key_prefix), {target: time.time()})
            except Exception as exc:  # noqa: BLE001 - keep trying: Redis may come back
                log.debug("metrics target not registered: %s", exc)
            time.sleep(TARGET_REFRESH_SECONDS)


TARGET_REFRESH_SECONDS = 15
EXPOSITION = _Exposition()


def scrape_target(host: str, port: int) -> str:
    """host:port as a scraper reaches it: the host's name when listening on every interface, else
    the address listened on (a loopback one serves a Prometheus on the same host only)."""
    if host in ("", "0.0.0.0", "::"):
        host = socket.getfqdn()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def targets_key(key_prefix: str) -> str:
    return f"{key_prefix}:metrics:targets"


def live_targets(client, key_prefix: str, max_age_seconds: float = 4 * TARGET_REFRESH_SECONDS) -> list[str]:
    """Addresses of processes that registered recently (older ones are dropped from Redis)."""
    cutoff = time.time() - max_age_seconds
    client.zremrangebyscore(targets_key(key_prefix), "-inf", cutoff)
    return sorted(t.decode() for t in client.zrangebyscore(targets_key(key_prefix), cutoff, "+inf"))


def expose(settings) -> int | None:
    """Serve this process's metrics if the settings ask for it (idempotent; any step may call it)."""
    m = settings.metrics
    return EXPOSITION.start(m.host, m.port, m.port_span, settings.redis.url, settings.redis.key_prefix)
