"""Container status events in Redis: histories per container, idempotent, bounded.

Key layout (prefix `cs` by default), {c} the container (an event naming none: its own eventID):
    {p}:ev:{c}:{eventID}               the normalized event (JSON); written once: a re-sent event is a duplicate
    {p}:eq:{c}:{classifier}            sorted set of eventIDs by event time (UTC epoch); ACT, EST and PLN apart
    {p}:vv:{vesselIMO}:{voyage}        sorted set of `c|eventID` on that vessel voyage (export or import number)
    {p}:td:{type}:{reference}          sorted set of `c|eventID` naming that document (TRD, BKG, ...)
    {p}:csm:loaded                     set while any event is held: without it, no container can be judged
    {p}:rejudge                        stream: watched containers (rejudge.py) that received an ACT event
Events arrive late and out of order; the sorted sets keep them in event-time order anyway.
Bounded: each index keeps its newest `max_per_key` events, and every key expires `retention`
after its last write.

A container's events and its histories share a slot of a Redis Cluster (the hash tag {c}): one
script per container stores its new events with their history (declaring every key); the voyage
and document indexes, each in a slot of its own, are written after, for every event of the batch
(idempotent: a batch repeated after a crash completes them), and so are the rejudge stream's
entries (at least once: the desk re-judges idempotently). Reads are two pipelined round trips: the
indexes (one script call reads them all on a single Redis, one per slot on a cluster), then the events
(one MGET, one per slot on a cluster).
"""
from __future__ import annotations

import json
from collections import defaultdict
from typing import Iterable, Sequence

import redis

from .config import ContainerStatusSettings, Settings
from .connectors.redis_slots import BatchScript, SlotScript, by_slot, pipelined
from .domain.container_events import ContainerEvent

# KEYS: the events' keys, then their container's history keys. ARGV: ttl, keep, then per event its
# JSON, the place of its history key in KEYS (0: none), its time and its eventID.
_ADD = """
local ttl, keep = tonumber(ARGV[1]), tonumber(ARGV[2])
local out, touched = {}, {}
for i = 1, (#ARGV - 2) / 4 do
  local at = 4 * i - 1
  local history = tonumber(ARGV[at + 1])
  if redis.call('SET', KEYS[i], ARGV[at], 'NX', 'EX', ttl) then
    if history > 0 then
      redis.call('ZADD', KEYS[history], ARGV[at + 2], ARGV[at + 3])
      touched[history] = true
    end
    out[i] = 1
  else
    out[i] = 0
  end
end
-- Trim and refresh each history once per batch, not once per event.
for k in pairs(touched) do
  redis.call('ZREMRANGEBYRANK', KEYS[k], 0, -keep - 1)
  redis.call('EXPIRE', KEYS[k], ttl)
end
return out
"""

# The newest ARGV[1] members of each index in KEYS (ZRANGE key -keep -1), one list per key: a batch's
# indexes in one call per slot (BatchScript) rather than a command each.
_NEWEST = """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('ZRANGE', key, -tonumber(ARGV[1]), -1) end
return out
"""

# One index of another slot (voyage, document): KEYS[1]; ARGV: ttl, keep, then score and member pairs.
_INDEX = """
for i = 3, #ARGV, 2 do redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -tonumber(ARGV[2]) - 1)
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""


def _tag(event: ContainerEvent) -> str:
    return event.equipment or event.event_id


class ContainerEventStore:
    @classmethod
    def for_settings(cls, client: redis.Redis, settings: Settings) -> "ContainerEventStore":
        return cls(client, settings.container_status, settings.redis.key_prefix)

    def __init__(self, client: redis.Redis, settings: ContainerStatusSettings | None = None, key_prefix: str = "cs"):
        self._client, self._settings, self._prefix = client, settings or ContainerStatusSettings(), key_prefix
        self._add = SlotScript(client, _ADD)
        self._index = SlotScript(client, _INDEX)
        self._newest = BatchScript(client, _NEWEST)

    def _event_key(self, tag: str, event_id: str) -> str:
        return f"{self._prefix}:ev:{{{tag}}}:{event_id}"

    def _history_key(self, container: str, classifier: str) -> str:
        return f"{self._prefix}:eq:{{{container}}}:{classifier}"

    def add(self, events: Sequence[ContainerEvent]) -> list[bool]:
        """Stores a batch; True for each event stored, False for a duplicate eventID. One script per
        container (pipelined: a round trip per node), then the voyage and document indexes."""
        s = self._settings
        if not events:
            return []
        by_tag: dict[str, list[int]] = defaultdict(list)
        for i, e in enumerate(events):
            by_tag[_tag(e)].append(i)
        calls = []
        for tag, members in by_tag.items():
            keys = [self._event_key(tag, events[i].event_id) for i in members]
            histories: list[str] = []
            args: list = [s.retention_seconds, s.max_per_key]
            for i in members:
                e = events[i]
                history = self._history_key(e.equipment, e.classifier) if e.equipment else None
                if history and history not in histories:
                    histories.append(history)
                args += [e.to_json(), len(members) + 1 + histories.index(history) if history else 0, e.event_time,
                         e.event_id]
            calls.append(([*keys, *histories], args))
        new = [False] * len(events)
        for members, flags in zip(by_tag.values(), self._add.run(calls)):
            for i, flag in zip(members, flags):
                new[i] = bool(flag)
        self._index_elsewhere(events)
        return new

    def _index_elsewhere(self, events: Sequence[ContainerEvent]) -> None:
        """The voyage and document indexes, the loaded mark and the rejudge stream (other slots)."""
        s, p = self._settings, self._prefix
        indexes: dict[str, list] = defaultdict(list)
        acted: set[str] = set()
        for e in events:
            member = f"{_tag(e)}|{e.event_id}"
            if e.vessel_imo:
                for v in e.voyages:
                    indexes[f"{p}:vv:{e.vessel_imo}:{v}"] += [e.event_time, member]
            for d in e.documents:
                indexes[f"{p}:td:{d}"] += [e.event_time, member]
            if e.equipment and e.classifier == "ACT":
                acted.add(e.equipment)
        self._index.run([([key], [s.retention_seconds, s.max_per_key, *pairs]) for key, pairs in indexes.items()])
        from .rejudge import ContainerWatch  # it reads this store

        watch_of = ContainerWatch(self._client, p, 0).of_key
        acted_list = sorted(acted)
        loaded = f"{p}:csm:loaded"
        watched = pipelined(self._client, [(loaded, ("SET", loaded, "1", "EX", s.retention_seconds)), *(
            (watch_of(container), ("EXISTS", watch_of(container))) for container in acted_list)])[1:]
        # A consignment assessed before these events waits for them (rejudge.py): tell its desk.
        rejudge = f"{p}:rejudge"
        pipelined(self._client, [(rejudge, ("XADD", rejudge, "MAXLEN", "~", 100000, "*", "container", container))
                                 for container, yes in zip(acted_list, watched) if yes])

    def has_events(self) -> bool:
        """Whether any container status is held at all (a store never loaded judges nothing)."""
        return bool(self._client.exists(f"{self._prefix}:csm:loaded"))

    def histories(self, containers: Iterable[str], classifier: str = "ACT",
                  limit: int | None = None) -> dict[str, list[ContainerEvent]]:
        """Each container's events of one classifier, oldest first, in two pipelined round trips."""
        containers = list(dict.fromkeys(containers))
        return dict(zip(containers, self._fetch([(c, self._history_key(c, classifier)) for c in containers], limit)))

    def histories_and_plans(self, containers: Iterable[str]) -> dict[str, list[ContainerEvent]]:
        """Each container's actual events and what the carrier announced (estimated and planned), oldest
        first, in two pipelined round trips: enrichment judges the actual ones and reads the announced
        next steps (a transhipment onto the declared vessel, say)."""
        containers = list(dict.fromkeys(containers))
        fetched = self._fetch([(c, self._history_key(c, classifier)) for c in containers
                               for classifier in ("ACT", "EST", "PLN")], None)
        return {c: sorted(fetched[3 * i] + fetched[3 * i + 1] + fetched[3 * i + 2], key=lambda e: e.event_time)
                for i, c in enumerate(containers)}

    def by_voyage(self, vessel_imo: str, voyage: str, limit: int | None = None) -> list[ContainerEvent]:
        return self._fetch([(None, f"{self._prefix}:vv:{vessel_imo}:{voyage}")], limit)[0]

    def by_document(self, document: str, limit: int | None = None) -> list[ContainerEvent]:
        """document as 'TRD:reference' or 'BKG:reference'."""
        return self._fetch([(None, f"{self._prefix}:td:{document}")], limit)[0]

    def _fetch(self, indexes: list[tuple[str | None, str]], limit: int | None) -> list[list[ContainerEvent]]:
        """The events of each index (container, key), oldest first: the index's newest ids, then their
        bodies (an MGET per slot); an index of another entity (container None) names each event's
        container with it (`c|eventID`)."""
        if not indexes:
            return []
        keep = limit or self._settings.max_per_key
        refs = []  # per index: (container, event id) in order
        for (container, _), ids in zip(indexes, self._newest.run([keep], [(key, ()) for _, key in indexes])):
            refs.append([(container, i.decode()) if container else tuple(i.decode().split("|", 1)) for i in ids])
        wanted = list(dict.fromkeys(r for index in refs for r in index))
        keys = [self._event_key(tag, i) for tag, i in wanted]
        groups = by_slot(self._client, keys)  # an MGET per slot
        bodies = {}
        for group, got in zip(groups, pipelined(self._client, [(keys[g[0]], ("MGET", *(keys[i] for i in g)))
                                                               for g in groups])):
            bodies.update(zip((wanted[i] for i in group), got))
        # A body can have expired after its index entry: skip it (None). All bodies of the
        # batch are decoded by one json.loads: one C call instead of one per event.
        present = [[bodies[r] for r in index if bodies[r] is not None] for index in refs]
        decoded = iter(json.loads(b"[" + b",".join(b for index in present for b in index) + b"]"))
        return [[ContainerEvent.decoded(next(decoded)) for _ in index] for index in present]
