"""Container status events in Redis: histories per container, idempotent, bounded.

Key layout (prefix `cs` by default):
    {p}:ev:{eventID}                   the normalized event (JSON); written once: a re-sent event is a duplicate
    {p}:eq:{container}:{classifier}    sorted set of eventIDs by event time (UTC epoch); ACT, EST and PLN apart
    {p}:vv:{vesselIMO}:{voyage}        sorted set of eventIDs on that vessel voyage (export or import number)
    {p}:td:{type}:{reference}          sorted set of eventIDs naming that document (TRD, BKG, ...)
    {p}:csm:loaded                     set while any event is held: without it, no container can be judged
    {p}:rejudge                        stream: watched containers (rejudge.py) that received an ACT event
Events arrive late and out of order; the sorted sets keep them in event-time order anyway.
Bounded: each index keeps its newest `max_per_key` events, and every key expires `retention`
after its last write. One Lua script per batch writes everything (one round trip); one
per batch reads histories back. The scripts build keys from arguments: one Redis instance.
"""
from __future__ import annotations

import json
from typing import Iterable, Sequence

import redis

from .config import ContainerStatusSettings, Settings
from .domain.container_events import ContainerEvent

_ADD = """
local p, ttl, keep = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local out, touched, watched = {}, {}, {}
local function index(key, score, id)
  redis.call('ZADD', key, score, id)
  touched[key] = true
end
for i = 4, #ARGV do
  -- One argument per event: the ContainerEvent JSON array (see domain/container_events.py).
  local body = ARGV[i]
  local f = cjson.decode(body)
  local id, cls, score, eq, imo, voyages, docs = f[1], f[3], f[5], f[7], f[11], f[12], f[13]
  if redis.call('SET', p .. ':ev:' .. id, body, 'NX', 'EX', ttl) then
    if eq ~= cjson.null then
      index(p .. ':eq:' .. eq .. ':' .. cls, score, id)
      if cls == 'ACT' and watched[eq] == nil then watched[eq] = redis.call('EXISTS', p .. ':watch-of:' .. eq) == 1 end
    end
    if imo ~= cjson.null then
      for _, v in ipairs(voyages) do index(p .. ':vv:' .. imo .. ':' .. v, score, id) end
    end
    for _, d in ipairs(docs) do index(p .. ':td:' .. d, score, id) end
    out[i - 3] = 1
  else
    out[i - 3] = 0
  end
end
-- Trim and refresh each index once per batch, not once per event.
for key in pairs(touched) do
  redis.call('ZREMRANGEBYRANK', key, 0, -keep - 1)
  redis.call('EXPIRE', key, ttl)
end
if next(touched) ~= nil then redis.call('SET', p .. ':csm:loaded', '1', 'EX', ttl) end
-- A consignment assessed before these events waits for them (rejudge.py): tell its desk.
for container, yes in pairs(watched) do
  if yes then redis.call('XADD', p .. ':rejudge', 'MAXLEN', '~', 100000, '*', 'container', container) end
end
return out
"""

_READ = """
local p, limit = ARGV[1], tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV do
  local ids = redis.call('ZRANGE', p .. ARGV[i], -limit, -1)
  local bodies = {}
  if #ids > 0 then
    local keys = {}
    for j, id in ipairs(ids) do keys[j] = p .. ':ev:' .. id end
    bodies = redis.call('MGET', unpack(keys))
  end
  out[i - 2] = bodies
end
return out
"""


class ContainerEventStore:
    @classmethod
    def for_settings(cls, client: redis.Redis, settings: Settings) -> "ContainerEventStore":
        return cls(client, settings.container_status, settings.redis.key_prefix)

    def __init__(self, client: redis.Redis, settings: ContainerStatusSettings | None = None, key_prefix: str = "cs"):
        self._client, self._settings, self._prefix = client, settings or ContainerStatusSettings(), key_prefix
        self._add = client.register_script(_ADD)
        self._read = client.register_script(_READ)

    def add(self, events: Sequence[ContainerEvent]) -> list[bool]:
        """Stores a batch in one round trip; True for each event stored, False for a duplicate eventID."""
        s = self._settings
        args = [self._prefix, s.retention_seconds, s.max_per_key, *(e.to_json() for e in events)]
        return [bool(r) for r in self._add(args=args)] if events else []

    def has_events(self) -> bool:
        """Whether any container status is held at all (a store never loaded judges nothing)."""
        return bool(self._client.exists(f"{self._prefix}:csm:loaded"))

    def histories(self, containers: Iterable[str], classifier: str = "ACT",
                  limit: int | None = None) -> dict[str, list[ContainerEvent]]:
        """Each container's events of one classifier, oldest first, in one round trip."""
        containers = list(dict.fromkeys(containers))
        keys = [f":eq:{c}:{classifier}" for c in containers]
        return dict(zip(containers, self._fetch(keys, limit)))

    def histories_and_plans(self, containers: Iterable[str]) -> dict[str, list[ContainerEvent]]:
        """Each container's actual events and what the carrier announced (estimated and planned), oldest
        first, in one round trip: enrichment judges the actual ones and reads the announced next steps
        (a transhipment onto the declared vessel, say)."""
        containers = list(dict.fromkeys(containers))
        keys = [f":eq:{c}:{classifier}" for c in containers for classifier in ("ACT", "EST", "PLN")]
        fetched = self._fetch(keys, None)
        return {c: sorted(fetched[3 * i] + fetched[3 * i + 1] + fetched[3 * i + 2], key=lambda e: e.event_time)
                for i, c in enumerate(containers)}

    def by_voyage(self, vessel_imo: str, voyage: str, limit: int | None = None) -> list[ContainerEvent]:
        return self._fetch([f":vv:{vessel_imo}:{voyage}"], limit)[0]

    def by_document(self, document: str, limit: int | None = None) -> list[ContainerEvent]:
        """document as 'TRD:reference' or 'BKG:reference'."""
        return self._fetch([f":td:{document}"], limit)[0]

    def _fetch(self, keys: list[str], limit: int | None) -> list[list[ContainerEvent]]:
        if not keys:
            return []
        replies = self._read(args=[self._prefix, limit or self._settings.max_per_key, *keys])
        # A body can have expired after its index entry: skip it (None). All bodies of the
        # batch are decoded by one json.loads: one C call instead of one per event.
        present = [[b for b in bodies if b is not None] for bodies in replies]
        decoded = iter(json.loads(b"[" + b",".join(b for bodies in present for b in bodies) + b"]"))
        return [[ContainerEvent.decoded(next(decoded)) for _ in bodies] for bodies in present]
