"""Party history in Redis: when each consignor, consignee and notify party was first seen, and in how
many filings, as each filer's filings show it.

Key layout (prefix `cs` by default), one hash per (filer, party):

    {p}:ph:{<digest of filer and party identity>}
        n            filings counted
        f            first seen (epoch seconds)
        m:<MRN>      what was known before that filing: "count|first seen|counted at"
        s:<i>        the MRN in ring slot i (count mod replay_window): the oldest marker goes first

Counted once per filing: the update is keyed by MRN, so a redelivered filing, a consignment assessed
again (a new house, an amendment) or a re-sent one reads back what its first count saw, and counts
nothing. A party's hash keeps the markers of its latest `replay_window` filings only (bounded), and
expires `retention_seconds` after the party was last seen (refreshed on every sighting).

Kept per filer: a filer's filings naming a party make it known to that filer only, so one filer cannot
age a shipper in another's filings (ops/THREAT-MODEL.md). One key per party, named with a hash tag,
declared to the script, and a script call spans parties of one slot only: ready for Redis Cluster. One
round trip per batch: one script call for all its parties on a single Redis, one per slot on a cluster.
"""
from __future__ import annotations

import hashlib
import time
from typing import Sequence

import redis

from .config import PartyHistorySettings
from .connectors.redis_slots import BatchScript
from .domain.parties import Seen, Sighting

# One call records many sightings: KEYS the parties' hashes; ARGV now, ttl, ring, then each sighting's MRN.
# In KEYS order, so a party seen twice in one call is counted as two calls one after the other would.
_RECORD = """
local now, ttl, ring = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
for i, h in ipairs(KEYS) do
  local mrn = ARGV[3 + i]
  local seen = redis.call('HGET', h, 'm:' .. mrn)
  if not seen then
    local n, first = unpack(redis.call('HMGET', h, 'n', 'f'))
    n = tonumber(n or '0')
    seen = n .. '|' .. (first or '') .. '|' .. now
    local slot = 's:' .. (n % ring)
    local old = redis.call('HGET', h, slot)
    if old then redis.call('HDEL', h, 'm:' .. old) end
    redis.call('HSET', h, 'n', n + 1, slot, mrn, 'm:' .. mrn, seen)
    if not first then redis.call('HSET', h, 'f', now) end
  end
  redis.call('EXPIRE', h, ttl)
  out[i] = seen
end
return out
"""


def party_key(prefix: str, filer: str, identity: str) -> str:
    """The hash of one party as one filer's filings show it; the digest is the hash tag (one slot)."""
    digest = hashlib.blake2b(f"{filer}\x1f{identity}".encode(), digest_size=12).hexdigest()
    return f"{prefix}:ph:{{{digest}}}"


class PartyHistoryStore:
    def __init__(self, client: redis.Redis, settings: PartyHistorySettings | None = None, key_prefix: str = "cs"):
        self._client, self._settings, self._prefix = client, settings or PartyHistorySettings(), key_prefix
        self._script = BatchScript(client, _RECORD)

    def record(self, sightings: Sequence[Sighting], now: float | None = None) -> list[Seen]:
        """Counts each sighting once (by its filing's MRN) and returns, for each, what was known of its
        party before that filing; one round trip for the batch."""
        if not sightings:
            return []
        now = time.time() if now is None else now
        s = self._settings
        replies = self._run([(party_key(self._prefix, x.filer, x.identity), x.mrn) for x in sightings],
                            f"{now:.3f}", s.retention_seconds, s.replay_window)
        out = []
        for reply in replies:
            count, first, at = reply.decode().split("|")
            out.append(Seen(int(count), float(first) if first else None, float(at)))
        return out

    def _run(self, calls, now, ttl, ring) -> list:
        return self._script.run([now, ttl, ring], [(key, [mrn]) for key, mrn in calls])
