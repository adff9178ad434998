"""Registration of accepted filings: MRNs, idempotent re-sends, amendments and invalidations.

The store keeps, per (filer, LRN), the MRN it was given, and per MRN the registration. Keys are
laid out for a Redis Cluster and for memory (ops/REDIS-KEYS.md): a filing's (filer, LRN) names
its bucket (one of mrn.BUCKETS, the hash tag `{r<bucket>}`) and its sub-bucket; its registration
period (`period_days` long) and the two name one small hash, which Redis keeps as a listpack:

    {p}:{r<b>}:seq                   the bucket's counter (every MRN of the bucket encodes it)
    {p}:{r<b>}:reg:<period>:<sub>    hash, expiring `retention + period` after the period began:
        <8-byte digest of filer and LRN>  -> the counter of its MRN
        <counter>                         -> the registration: digest (10 bytes) state (R registered,
                                             I invalidated) YYCC, then joined by \x1f: registered at
                                             (µs since the epoch), filer, the submission that registered
                                             it, its consignment (linking key, "" standing alone);
                                             once amended: amendments, the latest amendment's digest
                                             and submission; once invalidated: its submission

The MRN encodes bucket, period, sub-bucket and counter (domain/mrn.py): an amendment or invalidation
finds its registration from the MRN alone; a re-send finds it by (filer, LRN) in the periods of
the retention, whatever its content (LRN reused). Each registration, amendment and invalidation
keeps the submission that made it: the same submission again (a redelivery) is told apart from
another one of the same content (a re-send). A batch is one script call per bucket, all sent at
once (connectors/redis_slots.py); each call atomic, so two workers never hand out two MRNs for one
filing.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Sequence

import redis

from .connectors.redis_slots import SlotScript
from .domain.mrn import BUCKETS, PERIODS, SUBS, is_valid_mrn, make_mrn, mrn_sequence, pack_sequence, unpack_sequence
from .validation import utc_iso

PERIOD_DAYS = 16  # registrations of one period share hashes, which expire together
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

# KEYS: per filing (F) the hashes of its sub-bucket in every live period, the current one first,
# then the bucket's counter; per amendment (A) or invalidation (Q) the hash its MRN names.
# ARGV: now (µs), ttl, live periods; per request (7): kind, digest of filer and LRN (F) or counter
# (A, Q), the content digest (F: 10 bytes; A, Q: 20 hex digits), YYCC (F), submission id, filer,
# consignment.
_SCRIPT = """
local now, ttl = ARGV[1], tonumber(ARGV[2])
local out, k, seq = {}, 1, KEYS[#KEYS]
local periods = tonumber(ARGV[3])
local function split(v)
  local t = {}
  for part in (string.sub(v, 16) .. '\\31'):gmatch('(.-)\\31') do t[#t + 1] = part end
  return t
end
local function join(v, state, t)
  return string.sub(v, 1, 10) .. state .. string.sub(v, 12, 15) .. table.concat(t, '\\31')
end
local n = (#ARGV - 3) / 7
for i = 1, n do
  local b = 3 + 7 * (i - 1)
  local kind, id, digest, prefix, by, filer, cons = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4], ARGV[b + 5],
                                                    ARGV[b + 6], ARGV[b + 7]
  if kind == 'F' then
    local found
    for j = 0, periods - 1 do
      local c = redis.call('HGET', KEYS[k + j], id)
      if c then
        found = {'E', c, j, redis.call('HGET', KEYS[k + j], c) or ''}
        break
      end
    end
    if not found then
      local c = redis.call('INCR', seq)
      redis.call('HSET', KEYS[k], id, c, c, digest .. 'R' .. prefix .. table.concat({now, filer, by, cons}, '\\31'))
      redis.call('EXPIRE', KEYS[k], ttl)
      found = {'N', c, 0, ''}
    end
    out[i] = found
    k = k + periods
  else
    local key = KEYS[k]
    k = k + 1
    local v = redis.call('HGET', key, id)
    local t = v and split(v)
    if not v then
      out[i] = {'U'}
    elseif t[2] ~= filer then
      out[i] = {'X'}
    elseif kind == 'A' then
      for x = #t + 1, 7 do t[x] = '' end
      if string.sub(v, 11, 11) == 'I' then
        out[i] = {'I'}
      elseif t[6] == digest then  -- the latest amendment again: not amended twice
        out[i] = {'A', t[5], t[7]}
      else
        t[5], t[6], t[7] = tostring((tonumber(t[5]) or 0) + 1), digest, by
        if cons ~= '' then t[4] = cons end
        redis.call('HSET', key, id, join(v, 'R', t))
        out[i] = {'A', t[5], by}
      end
    else
      if string.sub(v, 11, 11) ~= 'I' then
        for x = #t + 1, 8 do t[x] = '' end
        t[8] = by
        redis.call('HSET', key, id, join(v, 'I', t))
      end
      out[i] = {'V', t[8] or '', t[4]}
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
    consignment: str = ""  # its linking key (linking.linked_key), "" for a filing standing alone


@dataclass(frozen=True)
class RegistrationResult:
    status: str
    mrn: str | None
    registered_at: str | None = None
    amendment: int = 0  # for AMENDED: how many amendments the filing has had, this one included
    # The submission that made the registration (REGISTERED, RESENT, LRN_REUSED), the amendment
    # (AMENDED) or the invalidation (INVALIDATED); "" when an earlier version did not record it.
    registered_by: str | None = None
    consignment: str = ""  # INVALIDATED: the linking key of the filing's latest version ("" standing alone)


def _location(filer: str, lrn: str, index_subs: int) -> tuple[bytes, int, int]:
    """(index field, bucket, sub-bucket) of a (filer, LRN): its digest's first byte has its top bit
    set, so no counter (a number) is ever the same field."""
    d = hashlib.blake2b(f"{filer}\x1f{lrn}".encode(), digest_size=8).digest()
    return bytes([d[0] | 0x80]) + d[1:], int.from_bytes(d[1:3], "big") % BUCKETS, \
        int.from_bytes(d[3:6], "big") % index_subs


def _digest(hexdigest: str) -> bytes:
    """A filing's content digest as kept: its first 10 bytes (80 bits tell one filer's contents apart)."""
    return bytes.fromhex(hexdigest[:20]).ljust(10, b"\0")


class RegistrationStore:
    def __init__(self, client: redis.Redis, key_prefix: str = "cs", retention_seconds: int = 400 * 86400,
                 index_subs: int = SUBS):
        self._prefix = key_prefix
        self._retention = retention_seconds
        self._subs = index_subs  # fixed for the life of the data: see Settings.registration_index_buckets
        self._periods = -(-retention_seconds // (PERIOD_DAYS * 86400)) + 1
        self._script = SlotScript(client, _SCRIPT)

    def key(self, bucket: int, period: int, sub: int) -> str:
        return f"{self._hashes(bucket)}{period}:{sub}"

    def _hashes(self, bucket: int) -> str:
        return f"{self._prefix}:{{r{bucket}}}:reg:"

    def register(self, requests: Sequence[RegistrationRequest], now: str) -> list[RegistrationResult]:
        """One script call per bucket, all sent at once; results in the order of the requests."""
        if not requests:
            return []
        clock = time.time()
        period = int(clock // (PERIOD_DAYS * 86400))
        now_us = str(int((datetime.fromisoformat(now.replace("Z", "+00:00")) - _EPOCH) / timedelta(microseconds=1)))
        calls: dict[int, tuple[list, list]] = {}
        where: list[tuple[int, int, int]] = []  # per request: bucket, sub, period
        for r in requests:
            if r.kind == "F":
                field, bucket, sub = _location(r.filer, r.lrn, self._subs)
                base = self._hashes(bucket)  # one key per live period (27 for 400 days): the common part once
                keys = [f"{base}{p}:{sub}" for p in range(period, period - self._periods, -1)]
                where.append((bucket, sub, period))
            elif r.referenced_mrn and is_valid_mrn(r.referenced_mrn):
                counter, sub, bits, bucket = unpack_sequence(mrn_sequence(r.referenced_mrn))
                then = period - (period - bits) % PERIODS  # the latest period with those low bits
                field, keys = str(counter).encode(), [self.key(bucket, then, sub)]
                where.append((bucket, sub, then))
            else:  # no MRN of ours: nothing to find, in a bucket of its own
                field, keys, bucket = b"none", [self.key(0, period, 0)], 0
                where.append((0, 0, period))
            call = calls.setdefault(bucket, ([], [now_us, self._retention + PERIOD_DAYS * 86400, self._periods]))
            call[0].extend(keys)
            digest = _digest(r.digest) if r.kind == "F" else r.digest[:20]  # kept as text in the \x1f-joined part
            call[1].extend([r.kind, field, digest,
                            f"{r.year % 100:02d}{r.country}" if r.kind == "F" else "", r.submission_id, r.filer,
                            r.consignment])
        for bucket, (keys, _) in calls.items():
            keys.append(f"{self._prefix}:{{r{bucket}}}:seq")
        replies = dict(zip(calls, self._script.run(list(calls.values()))))
        taken: dict[int, int] = {}
        out = []
        for r, (bucket, sub, at) in zip(requests, where):
            n = taken.get(bucket, 0)
            taken[bucket] = n + 1
            out.append(self._result(r, replies[bucket][n], bucket, sub, at, now))
        return out

    @staticmethod
    def _result(request: RegistrationRequest, reply: list, bucket: int, sub: int, period: int,
                now: str) -> RegistrationResult:
        code = reply[0].decode()
        text = [x.decode(errors="replace") if isinstance(x, bytes) else str(x) for x in reply[1:]]
        if code == "N":
            mrn = make_mrn(request.year, request.country, pack_sequence(int(text[0]), sub, period, bucket))
            return RegistrationResult(REGISTERED, mrn, now, registered_by=request.submission_id)
        if code == "E":
            record = reply[3]
            prefix = record[11:15].decode()
            at, _, by, *_ = record[15:].decode(errors="replace").split("\x1f")
            mrn = make_mrn(int(prefix[:2]), prefix[2:], pack_sequence(int(text[0]), sub, period - int(text[1]), bucket))
            same = record[:10] == _digest(request.digest)
            registered_at = utc_iso(_EPOCH + timedelta(microseconds=int(at)))
            return RegistrationResult(RESENT if same else LRN_REUSED, mrn, registered_at, registered_by=by)
        status = {"A": AMENDED, "V": INVALIDATED, "U": UNKNOWN_MRN, "X": FOREIGN_MRN, "I": WITHDRAWN}[code]
        if status == AMENDED:
            return RegistrationResult(status, request.referenced_mrn, amendment=int(text[0]), registered_by=text[1])
        if status == INVALIDATED:
            return RegistrationResult(status, request.referenced_mrn, registered_by=text[0], consignment=text[1])
        return RegistrationResult(status, None)
