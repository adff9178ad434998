"""Registration of accepted filings: MRNs, idempotent re-sends, amendments and invalidations.

The store keeps, per (filer, LRN), the registration, and per MRN its filer and state. One
Lua script handles a whole batch in one round trip and atomically, so two workers can never
hand out two MRNs for one filing. Keys (prefix cs by default):
    {p}:mrn:seq             counter behind every MRN (the MRN encodes it, see domain/mrn.py)
    {p}:reg:{filer}:{lrn}   "seq|YYCC|digest|registered-at"       (expires after the retention)
    {p}:mrn:{seq}           hash: filer, lrn, state (R registered, I invalidated), amendments
The script builds keys from its arguments, so it needs one Redis instance (not a cluster).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import redis

from .domain.mrn import is_valid_mrn, make_mrn, mrn_sequence

# Per request (5 arguments): kind F/A/Q, filer, lrn, digest, YYCC prefix or referenced MRN sequence.
_SCRIPT = """
local p, now, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out = {}
local n = (#ARGV - 3) / 5
for i = 1, n do
  local b = 3 + 5 * (i - 1)
  local kind, filer, lrn, digest, arg = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4], ARGV[b + 5]
  if kind == 'F' then
    local reg_key = p .. ':reg:' .. filer .. ':' .. lrn
    local existing = redis.call('GET', reg_key)
    if existing then
      out[i] = 'E|' .. existing
    else
      local seq = redis.call('INCR', p .. ':mrn:seq')
      local rec = seq .. '|' .. arg .. '|' .. digest .. '|' .. now
      redis.call('SET', reg_key, rec, 'EX', ttl)
      redis.call('HSET', p .. ':mrn:' .. seq, 'filer', filer, 'lrn', lrn, 'state', 'R', 'prefix', arg, 'amendments', 0)
      redis.call('EXPIRE', p .. ':mrn:' .. seq, ttl)
      out[i] = 'N|' .. rec
    end
  else
    local key = p .. ':mrn:' .. arg
    local owner = redis.call('HGET', key, 'filer')
    if not owner then
      out[i] = 'U'
    elseif owner ~= filer then
      out[i] = 'X'
    elseif kind == 'A' then
      if redis.call('HGET', key, 'state') == 'I' then
        out[i] = 'I'
      else
        out[i] = 'A|' .. redis.call('HINCRBY', key, 'amendments', 1)
      end
    else
      redis.call('HSET', key, 'state', 'I')
      out[i] = 'V'
    end
  end
end
return out
"""

# Outcomes of a registration request.
REGISTERED = "registered"  # new MRN
RESENT = "resent"  # same filer, LRN and content as before: the same MRN again
LRN_REUSED = "lrn-reused"  # same filer and LRN, different content
AMENDED = "amended"
INVALIDATED = "invalidated"
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


@dataclass(frozen=True)
class RegistrationResult:
    status: str
    mrn: str | None
    registered_at: str | None = None
    amendment: int = 0  # for AMENDED: how many amendments the filing has had, this one included


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
            args += [r.kind, r.filer, r.lrn, r.digest, arg]
        replies = self._script(args=args) if requests else []
        return [self._result(r, reply.decode() if isinstance(reply, bytes) else reply)
                for r, reply in zip(requests, replies)]

    @staticmethod
    def _result(request: RegistrationRequest, reply: str) -> RegistrationResult:
        code, _, rest = reply.partition("|")
        if code in ("N", "E"):
            seq, prefix, digest, registered_at = rest.split("|")
            mrn = make_mrn(int(prefix[:2]), prefix[2:], int(seq))
            if code == "N":
                return RegistrationResult(REGISTERED, mrn, registered_at)
            return RegistrationResult(RESENT if digest == request.digest else LRN_REUSED, mrn, registered_at)
        status = {"A": AMENDED, "V": INVALIDATED, "U": UNKNOWN_MRN, "X": FOREIGN_MRN, "I": WITHDRAWN}[code]
        return RegistrationResult(status, request.referenced_mrn if status in (AMENDED, INVALIDATED) else None,
                                  amendment=int(rest) if code == "A" else 0)
