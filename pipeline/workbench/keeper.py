"""The keeper: takes new referrals into the centres' queues, returns abandoned claims, counts rule hits,
and handles filers' answers to requests for information (rfi.py).

Runs inside `cargoscreen workbench serve` (a thread) or alone (`cargoscreen workbench keep`);
several keepers may run at once: every step is a consumer-group read and an atomic script.
"""
from __future__ import annotations

import logging
import threading
import time

import redis

from .. import audit
from ..config import Settings
from ..risk_information import RiskInformationStore
from ..rule_store import RulePackSource, RulePackStore
from .effectiveness import DecisionCounter
from .queue import DEFAULT_CLAIM_SECONDS, ReferralQueue, centres
from .rfi import RfiDesk

log = logging.getLogger(__name__)


class Keeper:
    def __init__(self, client: redis.Redis, settings: Settings, claim_seconds: int = DEFAULT_CLAIM_SECONDS,
                 discover_seconds: float = 2.0):
        self.client, self.prefix, self.claim_seconds = client, settings.redis.key_prefix, claim_seconds
        self._queues: dict[str, ReferralQueue] = {}
        self._counter = DecisionCounter(client, self.prefix)
        rules = settings.rules
        scorers = RulePackSource(rules.pack_dir, RulePackStore(client, self.prefix), rules.poll_seconds,
                                 risk_information=RiskInformationStore(client, self.prefix), budget=rules.budget)
        self._rfi = RfiDesk(client, scorers, settings, claim_seconds)
        self._discover_seconds, self._discovered_at = discover_seconds, float("-inf")
        self._closed, self._forget_due = settings.workbench, 0.0
        self._answers_kept = settings.streams.output_retention_seconds  # filers' RFI answers, once handled

    def queue(self, centre: str) -> ReferralQueue:
        if centre not in self._queues:
            self._queues[centre] = ReferralQueue(self.client, centre, self.prefix, self.claim_seconds)
        return self._queues[centre]

    def once(self) -> dict[str, int]:
        """One round: every centre's new referrals and expired claims, then the decisions to count."""
        if time.monotonic() - self._discovered_at > self._discover_seconds:
            for centre in centres(self.client, self.prefix):
                self.queue(centre)
            self._discovered_at = time.monotonic()
        done = {"taken_in": 0, "returned": 0}
        for q in list(self._queues.values()):
            done["taken_in"] += q.take_in()
            done["returned"] += len(q.return_expired())
        done["decisions_counted"] = self._counter.count_new()
        done["rfi_answers"] = self._rfi.handle_new()
        if time.monotonic() >= self._forget_due:  # resolved referrals past their retention leave Redis
            self._forget_due = time.monotonic() + self._closed.forget_every_seconds
            done["forgotten"] = sum(q.forget_closed(self._closed.closed_retention_seconds)
                                    for q in self._queues.values())
            cutoff_ms = int((time.time() - self._closed.audit_retention_seconds) * 1000)
            for trail in (audit.system_trail(self.prefix), *(audit.trail(self.prefix, c) for c in self._queues)):
                self.client.xtrim(trail, minid=cutoff_ms, approximate=True)  # the centres known: no SCAN
            self._rfi.trim(self._answers_kept)
        return done

    def run(self, stop: threading.Event, interval: float = 0.2) -> None:
        while not stop.is_set():
            try:
                done = self.once()
                if any(done.values()):
                    log.debug("keeper: %s", done)
                    continue  # more may be waiting
            except redis.RedisError as exc:
                log.warning("keeper: Redis unavailable, retrying: %s", exc)
                stop.wait(1.0)
            stop.wait(interval)
