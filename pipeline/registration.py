"""Registration of accepted filings: MRNs, idempotent re-sends, amendments and invalidations.

The store keeps, per (filer, LRN), the registration, and per MRN its filer and state. One
Lua script handles a whole batch in one round trip and atomically, so two workers can never
hand out two MRNs for one filing. Keys (prefix cs by default):
    {p}:mrn:seq             counter behind every MRN (the MRN encodes it, see domain/mrn.py)
    {p}:reg:{filer}:{lrn}   "seq|YYCC|digest|registered-at"       (expires after the retention)
    {p}:mrn:{seq}           hash: filer, lrn, state (R registered, I invalidated), amendments, and the
                            submissions that registered it, made its latest amendment (with the
                            amendment's digest) and invalidated it
Each registration, amendment and invalidation keeps the submission that made it: the same
submission again (a redelivery) is told apart from another one of the same content (a re-send).
(In the hash, not the registration record: workers of the previous version, still running during
a rolling upgrade, read that record and ignore fields of the hash they do not know.)
The script builds keys from its arguments, so it needs one Redis instance (not a cluster).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import redis

from .domain.mrn import is_valid_mrn, make_mrn, mrn_sequence

# Per request (6 arguments): kind F/A/Q, filer, lrn, digest, YYCC prefix or referenced MRN sequence,
# submission id.
_SCRIPT = """
local p, now, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out = {}
local n = (#ARGV - 3) / 6
for i = 1, n do
  local b = 3 + 6 * (i - 1)
  local kind, filer, lrn, digest, arg = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4], ARGV[b + 5]
  if kind == 'F' then
    local reg_key = p .. ':reg:' .. filer .. ':' .. lrn
    local existing = redis.call('GET', reg_key)
    if existing then
      local by = redis.call('HGET', p .. ':mrn:' .. string.match(existing, '^[^|]+'), 'registered-by')
      out[i] = 'E|' .. existing .. '|' .. (by or '')
    else
      local seq = redis.call('INCR', p .. ':mrn:seq')
      local rec = seq .. '|' .. arg .. '|' .. digest .. '|' .. now
      redis.call('SET', reg_key, rec, 'EX', ttl)
      redis.call('HSET', p .. ':mrn:' .. seq, 'filer', filer, 'lrn', lrn, 'state', 'R', 'prefix', arg, 'amendments', 0,
                 'registered-by', ARGV[b + 6])
      redis.call('EXPIRE', p .. ':mrn:' .. seq, ttl)
      out[i] = 'N|' .. rec .. '|' .. ARGV[b + 6]
    end
  else
    local key = p .. ':mrn:' .. arg
    local owner = redis.call('HGET', key, 'filer')
    if not owner then
      out[i] = 'U'
    elseif owner ~= filer then
      out[i] = 'X'
    elseif kind == 'A' then
      local state, last, by = unpack(redis.call('HMGET', key, 'state', 'amended-digest', 'amended-by'))
      if state == 'I' then
        out[i] = 'I'
      elseif last == digest then  -- the latest amendment again: not amended twice
        out[i] = 'A|' .. redis.call('HGET', key, 'amendments') .. '|' .. by
      else
        local count = redis.call('HINCRBY', key, 'amendments', 1)
        redis.call('HSET', key, 'amended-digest', digest, 'amended-by', ARGV[b + 6])
        out[i] = 'A|' .. count .. '|' .. ARGV[b + 6]
      end
    else
      if redis.call('HGET', key, 'state') ~= 'I' then
        redis.call('HSET', key, 'state', 'I', 'invalidated-by', ARGV[b + 6])
      end
      out[i] = 'V|' .. (redis.call('HGET', key, 'invalidated-by') or '')
    end
  end
end
return out
"""

# Outcomes of a registration request.
REGISTERED = "registered"  # new MRN
RESENT = "resent"  # same filer, LRN and content as before: the same MRN again (a re-send, or a redelivery)
LRN_REUSED = "lrn-reused"  # same filer and LRN, different content
AMENDED = "amended"  # (or, with the latest amendment's content, amended already)
INVALIDATED = "invalidated"  # (or invalidated already)
UNKNOWN_MRN = "unknown-mrn"
FOREIGN_MRN = "foreign-mrn"  # the MRN belongs to another filer
WITHDRAWN = "withdrawn"  # the MRN was invalidated; it cannot be amended


@dataclass(frozen=True)
class RegistrationRequest:
    kind: str  # "F" filing, "A" amendment, "Q" invalidation
    filer: str
    lrn: str
    digest: str
    year: int
    country: str  # of the office of first entry: the MRN's country
    referenced_mrn: str | None = None
    submission_id: str = ""


@dataclass(frozen=True)
class RegistrationResult:
    status: str
    mrn: str | None
    registered_at: str | None = None
    amendment: int = 0  # for AMENDED: how many amendments the filing has had, this one included
    # The submission that made the registration (REGISTERED, RESENT, LRN_REUSED), the amendment
    # (AMENDED) or the invalidation (INVALIDATED); "" when an earlier version did not record it.
    registered_by: str | None = None


class RegistrationStore:
    def __init__(self, client: redis.Redis, key_prefix: str = "cs", retention_seconds: int = 400 * 86400):
        self._client = client
        self._prefix = key_prefix
        self._retention = retention_seconds
        self._script = client.register_script(_SCRIPT)

    def register(self, requests: Sequence[RegistrationRequest], now: str) -> list[RegistrationResult]:
        """One round trip for the whole batch; results in the order of the requests."""
        args: list[str] = [self._prefix, now, str(self._retention)]
        for r in requests:
            if r.kind == "F":
                arg = f"{r.year % 100:02d}{r.country}"
            else:
                arg = str(mrn_sequence(r.referenced_mrn)) if r.referenced_mrn and is_valid_mrn(r.referenced_mrn) else "none"
            args += [r.kind, r.filer, r.lrn, r.digest, arg, r.submission_id]
        replies = self._script(args=args) if requests else []
        return [self._result(r, reply.decode() if isinstance(reply, bytes) else reply)
                for r, reply in zip(requests, replies)]

    @staticmethod
    def _result(request: RegistrationRequest, reply: str) -> RegistrationResult:
        code, _, rest = reply.partition("|")
        if code in ("N", "E"):
            seq, prefix, digest, registered_at, by = rest.split("|", 4)  # the id last: it may hold a '|'
            mrn = make_mrn(int(prefix[:2]), prefix[2:], int(seq))
            status = REGISTERED if code == "N" else RESENT if digest == request.digest else LRN_REUSED
            return RegistrationResult(status, mrn, registered_at, registered_by=by)
        status = {"A": AMENDED, "V": INVALIDATED, "U": UNKNOWN_MRN, "X": FOREIGN_MRN, "I": WITHDRAWN}[code]
        if status == AMENDED:
            count, _, by = rest.partition("|")
            return RegistrationResult(status, request.referenced_mrn, amendment=int(count), registered_by=by)
        if status == INVALIDATED:
            return RegistrationResult(status, request.referenced_mrn, registered_by=rest)
        return RegistrationResult(status, None)
