"""Risk-centre queues: referrals taken in from the pipeline's streams, claimed, released, resolved.

Each risk centre reads its referral stream `{p}:referrals:{centre}` through the consumer group
`workbench`. The stream's pending entries list (PEL) says who holds what, as consumer names:

    `intake`       read, not yet in the queue (a keeper died between the two: taken in on restart)
    `queue`        open, nobody holds it
    `<analyst>`    claimed by that analyst (XCLAIM moves the entry; release moves it back)
    (acknowledged) resolved, superseded by a newer version, or withdrawn

Next to the stream, per centre, what the pages need without reading the stream, every key in the
stream's slot of a Redis Cluster (the hash tag {c}, the centre, as the stream's):

    {p}:wb:{c}:ref:{referral}   hash: state, claim, summary fields, the latest referral body,
                                the filer's answers, the outcome; once resolved or withdrawn only
                                the summary (SUMMARY_FIELDS): the body is in the Parquet archive
                                and, for the stream's retention, in the referral stream
    {p}:wb:{c}:open             sorted set referral -> score (open and claimed referrals)
    {p}:wb:{c}:unclaimed        sorted set referral -> score (open, nobody holds it)
    {p}:wb:{c}:age              sorted set referral -> assessed at (epoch s), for age filters
    {p}:wb:{c}:f:{dim}:{value}  sets for the filters (mode, decision, area, claimed)
    {p}:wb:{c}:claims           sorted set referral -> claim expiry (epoch ms)
    {p}:wb:{c}:resolved         sorted set referral -> resolved at (epoch s)
    {p}:wb:{c}:rulestats        hash: the centre's resolutions counted per rule (effectiveness.py)
    {p}:wb:{c}:audit            stream: the centre's audit trail (audit.py)

and, one key per MRN in the MRN's own slot, {p}:wb:referral-of:{mrn} -> `centre|referral id`.

Every change of a referral's state is one Lua script that checks the state, moves the PEL
entry, updates the hash and the indexes, and appends the audit record: two analysts cannot
both resolve a referral, and a keeper crash leaves no half-made change. Each script declares
every key it touches: the filter sets a referral is in are read first and passed in, and the
script refuses ('retry') if they changed meanwhile. The hash is the authority for the state (it
survives the stream's length cap); the PEL mirrors it.
"""
from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from string import ascii_uppercase
from datetime import datetime, timezone

import redis

from ..domain.container_events import utc_epoch
from ..connectors.redis_slots import SlotScript, pipelined
from ..connectors.redis_store import hash_tag
from ..connectors.redis_streams import StreamKeys, ensure_group, read_group
from .. import audit
from ..audit import audit_args

GROUP = "workbench"
INTAKE = "intake"
QUEUE = "queue"

# What a control or check found. `confirms`: counts as a confirmed finding for the rules that
# fired; `clears`: counts as a false hit; neither: says nothing about the rules (no control).
OUTCOMES = {
    "finding": ("Seizure or finding (give the category)", True, False),
    "no-finding": ("Controlled: nothing found", False, True),
    "documentary-check": ("Documentary check only: nothing irregular", False, True),
    "rfi-answered": ("The filer's answer settled the request for information", False, False),
    "not-controlled": ("Not controlled (not arrived, diverted, control not possible)", False, False),
}
FINDING_CATEGORIES = ("drugs", "weapons", "explosives", "precursors", "security-threat", "counterfeit",
                      "tobacco", "cash", "cultural-goods", "wildlife", "dual-use", "product-safety",
                      "prohibited-goods", "fiscal", "other")
DEFAULT_CLAIM_SECONDS = 30 * 60
ALL_RULES = "*"  # rule statistics per pack and day, counted once per referral (the rules' own overlap)


class QueueError(Exception):
    """An action that cannot be done (unknown referral, held by someone else, already resolved)."""


MAX_AGE_HOURS = 10 * 366 * 24  # no referral is older: a larger bound is a mistake or a probe
MAX_OFFSET = 10_000_000  # more than any queue holds (about 50 GB of Redis); Redis refuses past 2**63


def _check_query(older: float | None, newer: float | None, offset: int, count: int) -> None:
    """Refuses numbers Redis would choke on (nan, an offset past its range: an error, a 500 on a
    page) before anything is asked of Redis. Unknown filter values just match nothing."""
    for what, hours in (("older than", older), ("newer than", newer)):
        if hours is not None and not 0 <= hours <= MAX_AGE_HOURS:  # also false for nan
            raise QueueError(f"{what}: a number of hours from 0 to {MAX_AGE_HOURS}")
    if not 0 <= offset <= MAX_OFFSET or not 1 <= count <= MAX_OFFSET:
        raise QueueError(f"offset: 0 to {MAX_OFFSET}; count: 1 to {MAX_OFFSET}")


@dataclass(frozen=True)
class QueueKeys:
    prefix: str
    centre: str

    @property
    def stream(self) -> str:
        return StreamKeys(self.prefix).referrals(self.centre)

    def base(self, name: str) -> str:
        """A key of the centre's queue, in the slot of its referral stream (the scripts touch both)."""
        return f"{self.prefix}:wb:{{{hash_tag(self.stream)}}}:{name}"

    def referral(self, rid: str) -> str:
        return self.base(f"ref:{rid}")

    def filter(self, dimension: str, value: str) -> str:
        return self.base(f"f:{dimension}:{value}")

    @property
    def audit(self) -> str:
        return self.base("audit")

    @property
    def rule_stats(self) -> str:
        return self.base("rulestats")


def referral_of(prefix: str, mrn: str) -> str:
    """MRN of any filing in a referred consignment -> `centre|referral id` (the RFI desk finds the
    referral of an answer by it): one key per MRN, in the MRN's own slot."""
    return f"{prefix}:wb:referral-of:{{{mrn}}}"


# What a resolved or withdrawn referral keeps (what the resolved list, the archive of outcomes, the
# rule statistics and the RFI desk still need), with the filer's answers and the notes if any.
SUMMARY_FIELDS = ("referral_id", "mrn", "lrn", "filer", "mode", "filing_code", "decision", "score", "risk_level",
                  "areas", "rule_pack", "assessed_at", "consignment", "transport_document", "rules", "mrns",
                  "filers", "entry", "version", "state", "admitted_ms", "outcome", "category", "note",
                  "resolved_by", "resolved_at", "answers", "notes")


def pack_version(pack_id: str) -> str:
    """name@version of a pack id name@version+digest (statistics are per published version)."""
    return pack_id.split("+", 1)[0]


def day_of(iso: str) -> str:
    return iso[:10]


def summary(record: dict) -> dict:
    """The fields a queue row shows and filters on, from a referral record (decisions.decision_record)."""
    areas = sorted({h["area"] for h in record.get("hits", ()) if h.get("weight", 0) > 0})
    filing = record.get("filing") or {}
    filings = {f.get("mrn"): f.get("filer") or "" for f in (record, *record.get("filings", ())) if f.get("mrn")}
    return {"mrn": record.get("mrn") or "", "lrn": record.get("lrn") or "", "filer": record.get("filer") or "",
            "mode": record.get("mode") or "", "filing_code": record.get("filing_code") or "",
            "decision": record.get("decision") or "", "score": float(record.get("score") or 0.0),
            "risk_level": record.get("risk_level") or "", "areas": areas, "rule_pack": record.get("rule_pack") or "",
            "assessed_at": record.get("assessed_at") or "", "version": int(record.get("version") or 1),
            "consignment": record.get("consignment") or "",
            "transport_document": filing.get("transport_document") or "",
            "rules": [h["rule"] for h in record.get("hits", ())],
            "mrns": list(filings), "filers": list(filings.values())}


def summary_body(fields: dict) -> dict:
    """A referral body as far as a closed referral's summary tells it (pages and the RFI desk read
    bodies): who filed what, how it was judged, which rules fired."""
    mrns, filers = fields.get("mrns", "").split(), fields.get("filers", "").split()
    body = {f: fields.get(f, "") for f in ("referral_id", "mrn", "lrn", "filer", "mode", "filing_code", "decision",
                                           "risk_level", "rule_pack", "assessed_at", "consignment")}
    return {**body, "score": float(fields.get("score") or 0.0), "version": int(fields.get("version") or 1),
            "state": "", "filing": {"transport_document": fields.get("transport_document", "")},
            "filings": [{"mrn": m, "filer": f} for m, f in zip(mrns, filers)],
            "hits": [{"rule": r, "area": "", "weight": 0, "contribution": 0.0, "explanation": ""}
                     for r in fields.get("rules", "").split(",") if r]}


def filter_keys(keys: QueueKeys, s: dict) -> list[str]:
    return [keys.filter("mode", s["mode"]), keys.filter("decision", s["decision"]),
            *(keys.filter("area", a) for a in s["areas"])]


def outcome_stats(record: dict, outcome: str, by_rule_of: str) -> list[str]:
    """The rule-statistics counters a resolution adds: per rule that fired, per pack version, per day
    of the assessment (so a rule's false-hit rate reads against the referrals it made that day)."""
    _, confirms, clears = OUTCOMES[outcome]
    metrics = ["resolved"] + (["confirmed"] if confirms else []) + (["false"] if clears else [])
    pack, day = pack_version(record.get("rule_pack") or ""), day_of(by_rule_of)
    return [f"{pack}|{rule}|{day}|{m}" for rule in [ALL_RULES, *(h["rule"] for h in record.get("hits", ())
                                                          if h.get("weight", 0) > 0)] for m in metrics]


# Declared filter sets: KEYS[n + 1 ..] are the sets the referral's hash lists in `filters` (read by
# the caller), ARGV[1] that list as read; a script finding another list refuses with 'retry'.
_FILTERS = """
local function filters_unchanged(ref, listed)
  return (redis.call('HGET', ref, 'filters') or '') == listed
end
local function leave_filters(first, rid)
  for i = first, #KEYS do redis.call('SREM', KEYS[i], rid) end
end
"""

# A closed referral keeps its summary (and the filer's answers and system notes, which only some
# have and nothing else keeps whole); its body and empty fields go. Written anew, not with HDEL: a
# hash that once held the body stays in Redis's large encoding (about 4 times the bytes), a new
# one of short fields takes the compact one (listpack: hash-max-listpack-value, 64 bytes).
_SLIM = """
local function slim(ref)
  local all, kept = redis.call('HGETALL', ref), {}
  for i = 1, #all, 2 do
    local f = all[i]
    if f ~= 'body' and f ~= 'filters' and f ~= 'claimed_by' and f ~= 'claimed_until' and all[i + 1] ~= '' then
      kept[#kept + 1] = f
      kept[#kept + 1] = all[i + 1]
    end
  end
  redis.call('DEL', ref)
  redis.call('HSET', ref, unpack(kept))
end
"""

# Admit a referral entry (read by `intake`) as the referral's current version. A newer version
# replaces the body and keeps the claim; an older one is only acknowledged; a resolved or
# withdrawn referral that comes back (an amendment re-assessed) opens again.
# KEYS: ref, open, age, stream, claimed set, resolved, unclaimed, then the old filter sets (ARGV[9]
# of them), then the new ones.
_ADMIT = _FILTERS + """
local ref, open, age, stream, claimed_set = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local rid, entry, version, score, assessed, group = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7]
local nfields, nold = tonumber(ARGV[8]), tonumber(ARGV[9])
if not filters_unchanged(ref, ARGV[1]) then return 'retry' end
local current = redis.call('HMGET', ref, 'version', 'state', 'entry', 'claimed_by')
if current[1] and tonumber(current[1]) > version then
  redis.call('XACK', stream, group, entry)
  return 'stale'
end
local state = current[2]
if state == 'claimed' then
  redis.call('XCLAIM', stream, group, current[4], 0, entry, 'JUSTID')
else
  state = 'open'
  redis.call('XCLAIM', stream, group, 'queue', 0, entry, 'JUSTID')
end
if current[3] and current[3] ~= entry then redis.call('XACK', stream, group, current[3]) end
for i = 8, 7 + nold do redis.call('SREM', KEYS[i], rid) end
for i = 1, nfields do
  redis.call('HSET', ref, ARGV[9 + 2 * i - 1], ARGV[9 + 2 * i])
end
local filters = {}
for i = 8 + nold, #KEYS do
  redis.call('SADD', KEYS[i], rid)
  filters[#filters + 1] = KEYS[i]
end
local now = redis.call('TIME')  -- when it reached the queue, on the clock of the stream entry ids
redis.call('HSET', ref, 'entry', entry, 'version', version, 'state', state, 'filters', table.concat(filters, ' '),
           'admitted_ms', now[1] * 1000 + math.floor(now[2] / 1000))
redis.call('HDEL', ref, 'outcome', 'category', 'note', 'resolved_by', 'resolved_at')
redis.call('ZADD', open, score, rid)
redis.call('ZADD', age, assessed, rid)
redis.call('ZREM', KEYS[6], rid)
if state == 'open' then redis.call('ZADD', KEYS[7], score, rid) end
return state
"""

# Withdraw (the filing was invalidated): the referral leaves the queue, whoever held it.
# KEYS: ref, stream, open, age, claims, claimed set, resolved, unclaimed, then its filter sets.
_WITHDRAW = _FILTERS + _SLIM + """
local ref, stream = KEYS[1], KEYS[2]
local rid, entry, group, at = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if not filters_unchanged(ref, ARGV[1]) then return 'retry' end
redis.call('XACK', stream, group, entry)
local current = redis.call('HMGET', ref, 'state', 'entry')
if current[1] ~= 'open' and current[1] ~= 'claimed' then return 0 end
redis.call('XACK', stream, group, current[2])
leave_filters(9, rid)
redis.call('HSET', ref, 'state', 'withdrawn', 'resolved_at', at, 'resolved_by', 'system')
slim(ref)
redis.call('ZREM', KEYS[3], rid)
redis.call('ZREM', KEYS[4], rid)
redis.call('ZREM', KEYS[5], rid)
redis.call('SREM', KEYS[6], rid)
redis.call('ZADD', KEYS[7], at, rid)
redis.call('ZREM', KEYS[8], rid)
return 1
"""

# Claim: open, or already held by the same analyst (renewal), or held past its expiry.
_CLAIM = """
local ref, stream, claims, claimed_set, audit = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local rid, analyst, now_ms, until_ms, group = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local s = redis.call('HMGET', ref, 'state', 'claimed_by', 'claimed_until', 'entry', 'resolved_by')
if not s[1] then return {'unknown'} end
if s[1] ~= 'open' and s[1] ~= 'claimed' then return {s[1], s[5] or ''} end
if s[1] == 'claimed' and s[2] ~= analyst and tonumber(s[3]) > now_ms then return {'held', s[2]} end
redis.call('XCLAIM', stream, group, analyst, 0, s[4], 'JUSTID')
redis.call('HSET', ref, 'state', 'claimed', 'claimed_by', analyst, 'claimed_until', until_ms)
redis.call('ZADD', claims, until_ms, rid)
redis.call('SADD', claimed_set, rid)
redis.call('ZREM', KEYS[6], rid)
redis.call('XADD', audit, '*', unpack(ARGV, 6))
return {'ok', analyst}
"""

# Release by the holder, or (analyst '') a claim past its expiry, back to the queue.
_RELEASE = """
local ref, stream, claims, claimed_set, audit = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local rid, analyst, now_ms, group = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local s = redis.call('HMGET', ref, 'state', 'claimed_by', 'claimed_until', 'entry')
if s[1] ~= 'claimed' then return {s[1] or 'unknown'} end
if analyst == '' then
  if tonumber(s[3]) > now_ms then return {'held', s[2]} end
elseif s[2] ~= analyst then return {'held', s[2]} end
redis.call('XCLAIM', stream, group, 'queue', 0, s[4], 'JUSTID')
redis.call('HSET', ref, 'state', 'open')
redis.call('HDEL', ref, 'claimed_by', 'claimed_until')
redis.call('ZREM', claims, rid)
redis.call('SREM', claimed_set, rid)
redis.call('ZADD', KEYS[6], redis.call('HGET', ref, 'score'), rid)
redis.call('XADD', audit, '*', unpack(ARGV, 5))
return {'ok', s[2]}
"""

# Resolve: only the holder; acknowledged, out of every index, counted for the rules, audited, and
# only its summary kept. KEYS: ref, stream, claims, claimed set, audit, open, age, resolved, rule
# statistics, unclaimed, then its filter sets.
_RESOLVE = _FILTERS + _SLIM + """
local ref, stream, claims, claimed_set, audit = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local open, age, resolved, stats = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local rid, analyst, group, at, outcome, category, note = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local nstats = tonumber(ARGV[9])
if not filters_unchanged(ref, ARGV[1]) then return {'retry'} end
local s = redis.call('HMGET', ref, 'state', 'claimed_by', 'entry', 'filters', 'resolved_by', 'outcome', 'version')
if not s[1] then return {'unknown'} end
local by = analyst
if analyst == '' then  -- the system settles (a plain RFI answered): only the version it judged, and nobody holding it
  if s[1] == 'claimed' then return {'held', s[2]} end
  if s[1] ~= 'open' then return {s[1], s[5] or '', s[6] or ''} end
  if s[7] ~= ARGV[10 + nstats] then return {'changed', s[7]} end
  by = 'system'
else
  if s[1] ~= 'claimed' then return {s[1], s[5] or '', s[6] or ''} end
  if s[2] ~= analyst then return {'held', s[2]} end
end
redis.call('XACK', stream, group, s[3])
leave_filters(11, rid)
redis.call('HSET', ref, 'state', 'resolved', 'outcome', outcome, 'category', category, 'note', note,
           'resolved_by', by, 'resolved_at', at)
slim(ref)
redis.call('ZREM', claims, rid)
redis.call('SREM', claimed_set, rid)
redis.call('ZREM', open, rid)
redis.call('ZREM', age, rid)
redis.call('ZADD', resolved, at, rid)
redis.call('ZREM', KEYS[10], rid)
for i = 1, nstats do redis.call('HINCRBY', stats, ARGV[9 + i], 1) end
redis.call('XADD', audit, '*', unpack(ARGV, 11 + nstats))
return {'ok', by}
"""

# Attach a filer's answer to a referral (once per answer submission), with its audit records (the
# filer's answer, the system's re-assessment): ARGV[3] fields per record.
# Appends an item to a list on the referral (ARGV[1]: 'answers' or 'notes'; ARGV[2]: its id, once)
# and its audit records, in one step; 0 when that item is there already, or the referral is not.
_ATTACH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local items = raw and cjson.decode(raw) or {}
for _, a in ipairs(items) do if (a.id or a.submission_id) == ARGV[2] then return 0 end end
table.insert(items, cjson.decode(ARGV[3]))
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(items))
local n = tonumber(ARGV[4])
for first = 5, #ARGV, n do redis.call('XADD', KEYS[2], '*', unpack(ARGV, first, first + n - 1)) end
return 1
"""


@dataclass(frozen=True)
class Page:
    total: int
    rows: list[dict]


def _bound(value: float) -> str:
    return "-inf" if value == float("-inf") else "+inf" if value == float("inf") else repr(value)


# The open referrals by score, highest first, whose assessment time lies in [lo, hi]: scanned in
# chunks until the page is full. Total from the age index (less the claimed ones in range when
# only unclaimed referrals count).
_AGED_BY_SCORE = """
local base, age, claimed = KEYS[1], KEYS[2], KEYS[3]
local lo, hi, offset, count, unclaimed = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5] == '1'
local low, high = tonumber(lo) or -math.huge, tonumber(hi) or math.huge
if lo == '-inf' then low = -math.huge end
if hi == '+inf' then high = math.huge end
local total = redis.call('ZCOUNT', age, lo, hi)
if unclaimed then
  for _, rid in ipairs(redis.call('SMEMBERS', claimed)) do
    local t = tonumber(redis.call('ZSCORE', age, rid))
    if t and t >= low and t <= high then total = total - 1 end
  end
end
local out, seen, start = {total}, 0, 0
while #out <= count do
  local chunk = redis.call('ZREVRANGE', base, start, start + 499)
  if #chunk == 0 then break end
  for _, rid in ipairs(chunk) do
    local t = tonumber(redis.call('ZSCORE', age, rid))
    if t and t >= low and t <= high then
      seen = seen + 1
      if seen > offset and #out <= count then out[#out + 1] = rid end
    end
  end
  start = start + 500
end
return out
"""


# Forget a referral closed (resolved or withdrawn) before ARGV[2]: its hash and its place in the
# resolved index; returns the MRNs it had (the caller drops those still pointing at it: another
# referral may have taken an MRN since), false if kept. A referral opened again since is not in
# the resolved index, and is kept.
_FORGET = """
local ref, resolved = KEYS[1], KEYS[2]
local rid, before = ARGV[1], tonumber(ARGV[2])
local at = tonumber(redis.call('ZSCORE', resolved, rid))
if not at or at > before then return false end
local s = redis.call('HMGET', ref, 'state', 'mrn', 'mrns')
if s[1] == 'open' or s[1] == 'claimed' then return false end
redis.call('DEL', ref)
redis.call('ZREM', resolved, rid)
return s[3] or s[2] or ''
"""

# Drops an MRN's pointer if it still names the referral forgotten (ARGV[1]).
_DROP_POINTER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class ReferralQueue:
    """One risk centre's queue. Every method is safe to call from several processes at once."""

    def __init__(self, client: redis.Redis, centre: str, key_prefix: str = "cs",
                 claim_seconds: int = DEFAULT_CLAIM_SECONDS):
        self.client, self.centre = client, centre
        self.keys = QueueKeys(key_prefix, centre)
        self.claim_seconds = claim_seconds
        self._admit = SlotScript(client, _ADMIT)
        self._withdraw = SlotScript(client, _WITHDRAW)
        self._claim = SlotScript(client, _CLAIM)
        self._release = SlotScript(client, _RELEASE)
        self._resolve = SlotScript(client, _RESOLVE)
        self._attach = SlotScript(client, _ATTACH)
        self._aged_by_score = SlotScript(client, _AGED_BY_SCORE)
        self._forget = SlotScript(client, _FORGET)
        self._drop_pointer = SlotScript(client, _DROP_POINTER)

    def forget_closed(self, retention_seconds: int, now: float | None = None, limit: int = 500) -> int:
        """Referrals resolved or withdrawn more than retention_seconds ago leave Redis (the audit trail
        and the Parquet archive keep their record); how many went. At most `limit` per call."""
        k, before = self.keys, int((time.time() if now is None else now) - retention_seconds)
        gone = 0
        for rid in self.client.zrangebyscore(k.base("resolved"), "-inf", before, start=0, num=limit):
            rid = rid.decode()
            mrns = self._forget(keys=[k.referral(rid), k.base("resolved")], args=[rid, before])
            if mrns is None:
                continue
            gone += 1
            self._drop_pointer.run([([referral_of(k.prefix, mrn)], [self._pointer(rid)])  # after the hash: a crash
                                    for mrn in mrns.decode().split()])  # between leaves a pointer to nothing
        return gone

    def _pointer(self, rid: str) -> str:
        return f"{self.centre}|{rid}"

    def _with_filters(self, rid: str, run) -> list | bytes | int:
        """Runs a script that declares the referral's filter sets (`run(listed, keys)`), again while
        they change between the read and the script (a newer version admitted meanwhile)."""
        for _ in range(20):
            listed = (self.client.hget(self.keys.referral(rid), "filters") or b"").decode()
            result = run(listed, listed.split())
            if result not in (b"retry", [b"retry"]):
                return result
        raise QueueError(f"{rid} keeps changing; try again")

    # ---- intake (the keeper) ----
    def ensure_group(self) -> None:
        ensure_group(self.client, self.keys.stream, GROUP)

    def take_in(self, count: int = 500) -> int:
        """Reads new referral entries and admits each; first what a previous intake left half done."""
        entries = read_group(self.client, self.keys.stream, GROUP, INTAKE, count)
        for entry_id, fields in entries:
            self.admit(entry_id.decode(), json.loads(fields[b"body"]))
        return len(entries)

    def admit(self, entry: str, body: dict) -> str:
        k = self.keys
        if "rejudged" in body:  # a held re-judgement: shown to the analyst, the referral unchanged
            attached = self.attach_note(body.get("referral_id") or "", body["state"], body, [
                ("system", "rejudged-held", f"{body['reassessed']}: {body['held']}")])
            self.client.xack(k.stream, GROUP, entry)
            return "noted" if attached else "ignored"
        if "withdrawn" in body:
            rid = body.get("referral_id") or ""
            done = self._with_filters(rid, lambda listed, filters: self._withdraw(
                keys=[k.referral(rid), k.stream, k.base("open"), k.base("age"), k.base("claims"),
                      k.base("f:claimed:yes"), k.base("resolved"), k.base("unclaimed"), *filters],
                args=[listed, rid, entry, GROUP, int(time.time())]))
            if done:
                self._record("system", "withdrawn", rid, body.get("withdrawn", ""))
            return "withdrawn" if done else "ignored"
        s = summary(body)
        fields = {"referral_id": body["referral_id"], "mrn": s["mrn"], "lrn": s["lrn"], "filer": s["filer"],
                  "mode": s["mode"], "filing_code": s["filing_code"], "decision": s["decision"],
                  "score": s["score"], "risk_level": s["risk_level"], "areas": ",".join(s["areas"]),
                  "rule_pack": s["rule_pack"], "assessed_at": s["assessed_at"], "consignment": s["consignment"],
                  "transport_document": s["transport_document"], "rules": ",".join(s["rules"]),
                  "mrns": " ".join(s["mrns"]), "filers": " ".join(s["filers"]),
                  "body": json.dumps(body, ensure_ascii=False)}
        rid, filters = body["referral_id"], filter_keys(k, s)
        pairs = [x for pair in fields.items() for x in pair]
        state = self._with_filters(rid, lambda listed, old: self._admit(
            keys=[k.referral(rid), k.base("open"), k.base("age"), k.stream, k.base("f:claimed:yes"),
                  k.base("resolved"), k.base("unclaimed"), *old, *filters],
            args=[listed, rid, entry, s["version"], s["score"], utc_epoch(s["assessed_at"]), GROUP, len(fields),
                  len(old), *pairs]))
        pointers = [referral_of(k.prefix, mrn) for mrn in s["mrns"]]  # a house filer answers under its own MRN
        pipelined(self.client, [(p, ("SET", p, self._pointer(rid))) for p in pointers])
        return state.decode()

    def attach_answer(self, rid: str, answer: dict, records: list[tuple[str, str, str]] = ()) -> bool:
        """The filer's answer on the referral's page, and its audit records (who, action, detail) in the
        same step (False: that answer was attached before, and audited then)."""
        return self._attach_item(rid, "answers", answer["submission_id"], answer, records)

    def attach_note(self, rid: str, note_id: str, note: dict, records: list[tuple[str, str, str]] = ()) -> bool:
        """A note from the system on the referral's page (a held re-judgement), audited in the same step."""
        return self._attach_item(rid, "notes", note_id, note, records)

    def _attach_item(self, rid: str, field: str, item_id: str, item: dict, records) -> bool:
        args = [x for who, action, detail in records for x in audit_args(who, self.centre, action, rid, detail)]
        return bool(self._attach(keys=[self.keys.referral(rid), self.keys.audit],
                                 args=[field, item_id, json.dumps({**item, "id": item_id}, ensure_ascii=False),
                                       2 * len(audit.FIELDS), *args]))

    def return_expired(self, now: float | None = None) -> list[str]:
        """Claims past their expiry go back to the queue (an analyst who left without releasing)."""
        now_ms = int((now or time.time()) * 1000)
        returned = []
        for rid in self.client.zrangebyscore(self.keys.base("claims"), "-inf", now_ms, start=0, num=500):
            rid = rid.decode()
            result = self._state_change(self._release, rid, "", [now_ms, GROUP], "system", "claim-expired", "")
            if result[0] == "ok":
                returned.append(rid)
        return returned

    # ---- analysts ----
    def claim(self, rid: str, analyst: str, now: float | None = None) -> dict:
        now_ms = int((now or time.time()) * 1000)
        until = now_ms + self.claim_seconds * 1000
        result = self._state_change(self._claim, rid, analyst, [now_ms, until, GROUP], analyst, "claim",
                                    f"until {datetime.fromtimestamp(until / 1000, timezone.utc):%H:%M:%SZ}")
        if result[0] != "ok":
            raise QueueError(self._refusal(rid, result))
        return self.show(rid)

    def release(self, rid: str, analyst: str) -> dict:
        result = self._state_change(self._release, rid, analyst, [int(time.time() * 1000), GROUP], analyst,
                                    "release", "")
        if result[0] != "ok":
            raise QueueError(self._refusal(rid, result))
        return self.show(rid)

    def resolve(self, rid: str, analyst: str, outcome: str, category: str = "", note: str = "",
                version: int | None = None) -> dict:
        """Record the outcome of a referral `analyst` holds ('': the system settles it, only while nobody
        holds it and only at `version`, the one it judged)."""
        if outcome not in OUTCOMES:
            raise QueueError(f"unknown outcome {outcome!r}; one of {', '.join(OUTCOMES)}")
        if outcome == "finding" and category not in FINDING_CATEGORIES:
            raise QueueError(f"a finding needs its category: one of {', '.join(FINDING_CATEGORIES)}")
        if outcome != "finding" and category:
            raise QueueError("only a finding has a category")
        if not analyst and version is None:
            raise QueueError("the system settles only the version it judged")
        record = self.show(rid)["body"]
        stats = outcome_stats(record, outcome, record.get("assessed_at") or "")
        k = self.keys
        detail = f"{outcome}{' / ' + category if category else ''}{': ' + note if note else ''}"
        args = [rid, analyst, GROUP, int(time.time()), outcome, category, note[:2000], len(stats), *stats,
                "" if version is None else str(version), *audit_args(analyst or "system", self.centre, "resolve",
                                                                     rid, detail)]
        result = [x.decode() for x in self._with_filters(rid, lambda listed, filters: self._resolve(
            keys=[k.referral(rid), k.stream, k.base("claims"), k.base("f:claimed:yes"), k.audit, k.base("open"),
                  k.base("age"), k.base("resolved"), k.rule_stats, k.base("unclaimed"), *filters],
            args=[listed, *args]))]
        if result[0] != "ok":
            raise QueueError(self._refusal(rid, result))
        return self.show(rid)

    def _state_change(self, script, rid: str, analyst: str, extra: list, who: str, action: str, detail: str):
        k = self.keys
        return [x.decode() for x in script(
            keys=[k.referral(rid), k.stream, k.base("claims"), k.base("f:claimed:yes"), k.audit, k.base("unclaimed")],
            args=[rid, analyst, *extra, *audit_args(who, self.centre, action, rid, detail)])]

    def _refusal(self, rid: str, result: list[str]) -> str:
        state = result[0]
        if state == "unknown":
            return f"{rid}: no such referral in {self.centre}"
        if state == "held":
            return f"{rid} is claimed by {result[1]}"
        if state == "open":
            return f"{rid} is not claimed: claim it first"
        if state == "resolved":
            return f"{rid} was already resolved by {result[1]}" + (f" ({result[2]})" if len(result) > 2 else "")
        if state == "changed":
            return f"{rid} is at version {result[1]} now"
        return f"{rid} is {state}"

    def _record(self, who: str, action: str, rid: str, detail: str) -> None:
        audit.record(self.client, self.keys.audit, who, self.centre, action, rid, detail)

    # ---- reading ----
    def show(self, rid: str) -> dict:
        raw = self.client.hgetall(self.keys.referral(rid))
        if not raw:
            raise QueueError(f"{rid}: no such referral in {self.centre}")
        out = {k.decode(): v.decode() for k, v in raw.items()}
        if "body" not in out:  # closed: its summary, whose empty fields are not kept
            out = {**dict.fromkeys(SUMMARY_FIELDS, ""), **out}
        out["answers"] = json.loads(out.get("answers") or "[]")
        out["notes"] = json.loads(out.get("notes") or "[]")
        if "body" in out:
            out["body"] = json.loads(out["body"])
        else:  # the body while the referral stream still holds its entry, else the summary's
            entry = self.client.xrange(self.keys.stream, out["entry"], out["entry"]) if out["entry"] else []
            out["summary_only"] = not entry
            out["body"] = json.loads(entry[0][1][b"body"]) if entry else summary_body(out)
        return out

    def page(self, mode: str = "", decision: str = "", area: str = "", claimed: str = "",
             older_than_hours: float | None = None, newer_than_hours: float | None = None,
             sort: str = "score", offset: int = 0, count: int = 50, now: float | None = None) -> Page:
        """Open referrals, filtered, highest score first (or oldest first with sort='age').

        Each shape of query takes the cheapest path, so no view copies the whole queue: an index
        read as is (all, unclaimed, oldest first, an age range oldest first), a scan by score that
        checks ages until the page is full (an age range by score), or an intersection that starts
        from the filter sets, which are smaller than the queue (mode, decision, area, claimed)."""
        _check_query(older_than_hours, newer_than_hours, offset, count)
        k, c = self.keys, self.client
        now = now or time.time()
        sets = [k.filter(d, v) for d, v in (("mode", mode), ("decision", decision), ("area", area)) if v]
        if claimed == "yes":
            sets.append(k.base("f:claimed:yes"))
        aged = older_than_hours is not None or newer_than_hours is not None
        low = now - newer_than_hours * 3600 if newer_than_hours is not None else float("-inf")
        high = now - older_than_hours * 3600 if older_than_hours is not None else float("inf")
        by_score = k.base("unclaimed") if claimed == "no" else k.base("open")
        last = offset + count - 1
        if not sets and not aged and sort == "score":
            total, ids = c.zcard(by_score), c.zrevrange(by_score, offset, last)
        elif not sets and claimed == "" and sort == "age":
            total = c.zcount(k.base("age"), low, high)
            ids = c.zrangebyscore(k.base("age"), low, high, start=offset, num=count)
        elif not sets and sort == "score":
            total, *ids = self._aged_by_score(keys=[by_score, k.base("age"), k.base("f:claimed:yes")],
                                              args=[_bound(low), _bound(high), offset, count,
                                                    1 if claimed == "no" else 0])
        else:
            temp = k.base(f"tmp:{secrets.token_hex(8)}")
            pipe = c.pipeline(transaction=False)
            pipe.zinterstore(temp, {by_score: 1, **{s: 0 for s in sets}})
            if aged or sort == "age":
                pipe.zinterstore(temp, {temp: 0, k.base("age"): 1})  # scores become assessed times
                if aged:
                    pipe.zremrangebyscore(temp, "-inf", f"({_bound(low)}")
                    pipe.zremrangebyscore(temp, f"({_bound(high)}", "+inf")
                if sort != "age":
                    pipe.zinterstore(temp, {temp: 0, by_score: 1})  # scores again
            pipe.zcard(temp)
            (pipe.zrange if sort == "age" else pipe.zrevrange)(temp, offset, last)
            pipe.delete(temp)
            total, ids = pipe.execute()[-3:-1]
        total = int(total)
        pipe = c.pipeline(transaction=False)
        fields = ("referral_id", "mrn", "mode", "filing_code", "decision", "score", "risk_level", "areas",
                  "assessed_at", "state", "claimed_by", "filer", "transport_document", "rules")
        for rid in ids:
            pipe.hmget(k.referral(rid.decode()), *fields)
        rows = [{f: (v.decode() if v is not None else "") for f, v in zip(fields, values)} for values in pipe.execute()]
        return Page(total, rows)

    def resolved(self, count: int = 50) -> list[dict]:
        ids = self.client.zrevrange(self.keys.base("resolved"), 0, count - 1)
        pipe = self.client.pipeline(transaction=False)
        fields = ("referral_id", "mrn", "mode", "decision", "score", "state", "outcome", "category",
                  "resolved_by", "resolved_at")
        for rid in ids:
            pipe.hmget(self.keys.referral(rid.decode()), *fields)
        return [{f: (v.decode() if v is not None else "") for f, v in zip(fields, values)} for values in pipe.execute()]

    def holdings(self) -> dict[str, int]:
        """Pending entries per consumer of the group: who holds how many (queue, intake, analysts)."""
        self.ensure_group()
        return {c["name"].decode() if isinstance(c["name"], bytes) else c["name"]: c["pending"]
                for c in self.client.xinfo_consumers(self.keys.stream, GROUP)}


# Every name a risk centre can have (config.RISK_CENTRE: RC- and two letters).
CENTRE_NAMES = tuple(f"RC-{a}{b}" for a in ascii_uppercase for b in ascii_uppercase)


def centres_having(client: redis.Redis, key_of) -> list[str]:
    """The risk centres whose key_of(centre) exists: every name a centre can have asked for at once
    (one pipeline per master of a cluster), not found by SCAN, which walks every key of the store
    (billions at EU volume) to find a few dozen."""
    keys = [key_of(c) for c in CENTRE_NAMES]
    return [c for c, there in zip(CENTRE_NAMES, pipelined(client, [(k, ("EXISTS", k)) for k in keys])) if there]


def centres(client: redis.Redis, key_prefix: str = "cs") -> list[str]:
    """Risk centres that have a referral stream (on every node of a cluster)."""
    keys = StreamKeys(key_prefix)
    return centres_having(client, keys.referrals)
