"""Publishing rule packs, and the hot reload of the active one in running pipelines.

Redis holds the packs and which one is active, so every worker of every runner sees the
same thing without a shared disk:

    {prefix}:rules:pack:{name@version}   hash: files (JSON: path -> text), digest, published_at, published_by
    {prefix}:rules:active                the active pack's name@version
    {prefix}:rules:log                   stream: publications, activations, workers' refusals

`cargoscreen rules publish DIR` compiles the pack and runs its examples before anything is
written; a pack that fails is refused with every problem and nothing changes. A version
names one content forever: publishing other files under a published version is refused.

`RulePackSource.current()` is what a worker asks before scoring a batch: at most every
`poll_seconds` it reads the active name and the risk information version (one MGET), and when
either changed, loads and compiles the new pack with the active risk information forms. If that fails (or Redis is unreachable), the worker keeps scoring with the
pack it has, logs why, and records the refusal; it retries a refused version only after a
new publication. Each batch is scored by exactly one pack, whose id each decision records.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import redis

from .domain.rulepack import PackError, Problem, RulePack
from .domain.scoring import BUDGET_BASE, BUDGET_PER_ITEM, Scorer, check_examples
from .risk_information import RiskInformationStore, with_forms

log = logging.getLogger(__name__)
LOG_MAX_ENTRIES = 10_000


class PackRefused(PackError):
    pass


def checked_pack(files: dict[str, str]) -> RulePack:
    """Compiles a pack and runs its examples; PackRefused naming every problem."""
    pack = RulePack.from_files(files)
    failures = check_examples(pack)
    if failures:
        raise PackRefused([Problem(f.file, f.line, str(f).split(": ", 1)[1], f.rule) for f in failures])
    return pack


@dataclass(frozen=True)
class Publication:
    pack_id: str  # name@version+digest
    key: str  # name@version
    activated: bool
    unchanged: bool  # the same content was already published under this version


class RulePackStore:
    def __init__(self, client: redis.Redis, key_prefix: str = "cs"):
        self.client, self.prefix = client, key_prefix
        # One slot of a Redis Cluster (the tag {rules}): a publication is one transaction.
        self.active_key = f"{key_prefix}:rules:{{rules}}:active"
        self.log_key = f"{key_prefix}:rules:{{rules}}:log"
        self.packs_key = f"{key_prefix}:rules:{{rules}}:packs"  # every version published: no SCAN of the store

    def pack_key(self, name_version: str) -> str:
        return f"{self.prefix}:rules:{{rules}}:pack:{name_version}"

    def publish(self, files: dict[str, str], activate: bool = True, by: str | None = None) -> Publication:
        pack = checked_pack(files)
        key = f"{pack.name}@{pack.version}"
        existing = self.client.hget(self.pack_key(key), "digest")
        if existing is not None and existing.decode() != pack.digest:
            raise PackRefused([Problem("pack.yaml", None, f"version {pack.version} of {pack.name} is already "
                                                          f"published with other content: bump `version`")])
        who = by or f"{os.environ.get('USER', 'unknown')}@{socket.gethostname()}"
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        pipe = self.client.pipeline(transaction=True)
        if existing is None:
            pipe.hset(self.pack_key(key), mapping={"files": json.dumps(files), "digest": pack.digest,
                                                   "published_at": now, "published_by": who})
            pipe.sadd(self.packs_key, key)
        if activate:
            pipe.set(self.active_key, key)
        pipe.xadd(self.log_key, {"event": "activated" if activate else "published", "pack": pack.id, "by": who},
                  maxlen=LOG_MAX_ENTRIES, approximate=True)
        pipe.execute()
        return Publication(pack.id, key, activate, existing is not None)

    def activate(self, name_version: str, by: str | None = None) -> None:
        """Makes a published version active again (a rollback)."""
        if not self.client.exists(self.pack_key(name_version)):
            raise KeyError(f"{name_version} is not published")
        self.client.set(self.active_key, name_version)
        self.client.xadd(self.log_key, {"event": "activated", "pack": name_version, "by": by or "cli"},
                         maxlen=LOG_MAX_ENTRIES, approximate=True)

    def active(self) -> str | None:
        value = self.client.get(self.active_key)
        return value.decode() if value else None

    def files(self, name_version: str) -> dict[str, str]:
        raw = self.client.hget(self.pack_key(name_version), "files")
        if raw is None:
            raise KeyError(f"{name_version} is not published")
        return json.loads(raw)

    def published(self) -> list[dict]:
        names = sorted(n.decode() for n in self.client.smembers(self.packs_key))
        if not names:  # a store from before the list was kept: found once by SCAN, listed from then on
            names = sorted(k.decode().rsplit(":", 1)[1] for k in self.client.scan_iter(match=self.pack_key("*"), count=500))
            if names:
                self.client.sadd(self.packs_key, *names)
        out = []
        for name in names:
            meta = self.client.hmget(self.pack_key(name), "digest", "published_at", "published_by")
            out.append({"pack": name, "digest": (meta[0] or b"").decode(),
                        "published_at": (meta[1] or b"").decode(), "published_by": (meta[2] or b"").decode()})
        return sorted(out, key=lambda m: m["published_at"])

    def record_refusal(self, name_version: str, worker: str, reason: str) -> None:
        self.client.xadd(self.log_key, {"event": "refused", "pack": name_version, "by": worker,
                                        "reason": reason[:4000]}, maxlen=LOG_MAX_ENTRIES, approximate=True)

    def events(self, count: int = 50) -> list[dict]:
        return [{k.decode(): v.decode() for k, v in fields.items()}
                for _, fields in self.client.xrevrange(self.log_key, count=count)]


class RulePackSource:
    """The scorer a worker should use now: the active published pack, else the configured folder's,
    plus a rule per active risk information form (risk_information.py) when a store is given."""

    def __init__(self, fallback: Path, store: RulePackStore | None, poll_seconds: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, risk_information: RiskInformationStore | None = None,
                 budget: tuple[int, int] = (BUDGET_BASE, BUDGET_PER_ITEM)):
        self._store, self._poll, self._clock = store, poll_seconds, clock
        self._risk, self._budget = risk_information, budget
        self._pack = RulePack.load(fallback)
        self._scorer = Scorer(self._pack, *budget)
        self._active_name: str | None = None
        self._risk_version = 0
        self._refused: set[str] = set()
        self._checked_at = float("-inf")
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.reload_failures = 0
        self.reloads = 0

    def current(self) -> Scorer:
        if self._store is None or self._clock() - self._checked_at < self._poll:
            return self._scorer
        self._checked_at = self._clock()
        try:  # one round trip for both (a pipeline: on a Redis Cluster they are in two slots)
            pipe = self._store.client.pipeline(transaction=False)
            for key in [self._store.active_key] + ([self._risk.version_key] if self._risk else []):
                pipe.get(key)
            values = pipe.execute()
        except redis.RedisError as exc:
            log.warning("rule store unreachable, keeping %s: %s", self._scorer.pack.id, exc)
            return self._scorer
        active = values[0].decode() if values[0] else None
        risk_version = int(values[1] or 0) if self._risk else 0
        changed = risk_version != self._risk_version
        if active is not None and active != self._active_name and active not in self._refused:
            try:
                self._pack = RulePack.from_files(self._store.files(active))
                self._active_name, changed = active, True
                self.reloads += 1
                log.info("rule pack %s active in %s", self._pack.id, self.worker)
            except (PackError, KeyError, ValueError, redis.RedisError) as exc:
                self._refuse(active, exc)
        if changed:
            try:
                forms = self._risk.active(time.time()) if self._risk else []
            except redis.RedisError as exc:
                log.warning("risk information unreachable, keeping what %s had: %s", self.worker, exc)
                return self._scorer
            self._scorer, self._risk_version = Scorer(with_forms(self._pack, forms), *self._budget), risk_version
            if self._risk:
                log.info("%d risk information forms active in %s", len(forms), self.worker)
        return self._scorer

    def _refuse(self, name_version: str, exc: Exception) -> None:
        self.reload_failures += 1
        if not isinstance(exc, redis.RedisError):  # an unreachable store is retried; a broken pack is not
            self._refused.add(name_version)
        log.error("rule pack %s refused by %s, keeping %s: %s", name_version, self.worker, self._scorer.pack.id, exc)
        try:
            self._store.record_refusal(name_version, self.worker, str(exc))
        except redis.RedisError:
            pass

