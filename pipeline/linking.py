"""Multiple filing: house-level and master-level filings of one consignment, linked.

A consignment is what one risk assessment covers. Most filings are one on their own
(straight bills, complete master+house datasets, pre-loading data): their consignment is named
after their MRN and needs no state. Partial filings are linked by transport document: a
partial master (F12, F13, F23) names its own document and, optionally, the house documents it
expects; a house filing (F14-F17, F24, F31) quotes its master document. Their consignment is
`<mode>:<master document>` (express houses quote an airline's master air waybill: `air:`); its
members live in Redis.

Postal items are assessed one by one: a postal dispatch (F42, with its receptacles) is the
master of the items (F43) that quote its transport document, and each item is its own
consignment, `postal:<dispatch document>/<item document>`, assessed with the dispatch's
transport and route as soon as both are there. Items whose dispatch does not come by the
deadline are assessed incomplete, like other modes; so is a dispatch no item is filed for.

    complete    master filed, and every house it lists (or, if it lists none, at least one house)
    assessed    when complete: one record merged from the master's transport, route and
                equipment and the houses' parties and goods (pointers say which filing)
    pending     until then each partial filing's filer is told what is missing (IE3N02)
    deadline    `linking.deadline_seconds` after the first partial filing an incomplete
                consignment is assessed as it stands, with an incompleteness referral
    amended     an amendment replaces its filing's member; the consignment is re-assessed
    invalidated the member leaves; the consignment's decision is withdrawn (and re-made if
                what remains is still complete)

Every assessment names the consignment's *state* (a digest over its members' contents): a
redelivered or re-sent filing leaves the state as it was, so its decision is the same effect
and is written once; a new member or an amendment makes a new state, a new version.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace

import redis

from .domain.filings import HOUSE, PARTIAL_MASTER, POSTAL_MASTER
from .domain.screening import ScreeningRecord, record_from_dict, record_to_dict


@dataclass(frozen=True)
class Member:
    """One registered filing (or its latest amendment) of a consignment."""

    mrn: str
    submission_id: str
    filer: str
    lrn: str
    filing_code: str
    digest: str  # of the content that counts (the amendment's, once amended)
    record: ScreeningRecord

    def to_json(self) -> str:
        return json.dumps({"mrn": self.mrn, "submission_id": self.submission_id, "filer": self.filer,
                           "lrn": self.lrn, "filing_code": self.filing_code, "digest": self.digest,
                           "record": record_to_dict(self.record)}, ensure_ascii=False)

    @staticmethod
    def from_json(text: str | bytes) -> "Member":
        data = json.loads(text)
        return Member(**{**data, "record": record_from_dict(data["record"])})


@dataclass(frozen=True)
class Consignment:
    """What one assessment covers: its members (the lead, whose MRN names the decision, first)."""

    key: str
    state: str
    version: int
    members: tuple[Member, ...]
    record: ScreeningRecord
    missing: tuple[str, ...] = ()  # documents still missing: assessed at its deadline, incomplete
    received_at: str = ""  # when the filing that completed it was submitted ("" for a deadline's)

    @property
    def lead(self) -> Member:
        return self.members[0]


@dataclass(frozen=True)
class Pending:
    """A partial filing registered while its consignment is incomplete: the filer hears what is missing."""

    member: Member
    key: str
    missing: tuple[str, ...]


@dataclass(frozen=True)
class Withdrawal:
    """An invalidated filing: the decision on its consignment (if any) no longer stands."""

    key: str
    mrn: str
    submission_id: str


def member_of(outcome, mrn: str) -> Member:
    """The member a validated filing (a ValidationOutcome) makes under its MRN."""
    s = outcome.summary
    return Member(mrn, outcome.submission.submission_id, outcome.filer, s.lrn, s.filing_code, s.digest, outcome.record)


MASTERS = (PARTIAL_MASTER, POSTAL_MASTER)
POSTAL = "postal:"  # the key prefix of postal dispatches, whose items are assessed one by one


# Express houses travel under an airline's master air waybill: one document family with air.
_DOCUMENT_FAMILY = {"express": "air"}


def linked_key(record: ScreeningRecord) -> str | None:
    """The consignment (for postal: the dispatch) of a partial filing; None for a filing that stands alone."""
    family = _DOCUMENT_FAMILY.get(record.mode, record.mode)
    if record.level in MASTERS and record.transport_document:
        return f"{family}:{record.transport_document}"
    if record.level == HOUSE and record.master_document:
        return f"{family}:{record.master_document}"
    return None


def item_key(dispatch_key: str, item_document: str) -> str:
    """A postal item's own consignment within its dispatch."""
    return f"{dispatch_key}/{item_document}"


def per_item(key: str) -> bool:
    return key.startswith(POSTAL)


def standalone(member: Member, version: int = 1) -> Consignment:
    return Consignment(f"mrn:{member.mrn}", member.digest, version, (member,), member.record)


def state_of(members: list[Member]) -> str:
    text = "|".join(sorted(f"{m.mrn}:{m.digest}" for m in members))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def _master_and_houses(members: list[Member]) -> tuple[Member | None, list[Member]]:
    master = next((m for m in members if m.record.level in MASTERS), None)
    return master, [m for m in members if m is not master]


def missing_documents(key: str, members: list[Member]) -> tuple[str, ...]:
    """What the consignment still lacks, as the filer would name it."""
    master, houses = _master_and_houses(members)
    return missing_of(key, None if master is None else master.record.house_documents,
                      {h.record.transport_document for h in houses})


def missing_of(key: str, expected: tuple[str, ...] | None, present: set[str]) -> tuple[str, ...]:
    """The completeness rule: what is missing, given the houses the master expects (None: no
    master filed yet) and the house documents present. The linking script (_LINK) decides
    complete-or-not by the same rule, atomically; tests hold the two in step."""
    if expected is None:
        what = "postal dispatch (F42) with transport document" if per_item(key) else "master transport document"
        return (f"{what} {key.partition(':')[2].partition('/')[0]}",)
    if not expected:
        return () if present else ("postal item filings" if per_item(key) else "house-level filings",)
    return tuple(f"house transport document {d}" for d in expected if d not in present)


def _in_filing(pointer: str, member: Member) -> str:
    return f"{member.mrn}#{pointer}" if pointer else pointer


def merge(master: Member, houses: list[Member]) -> ScreeningRecord:
    """One record for the consignment: the master's transport, route and equipment, every
    house's parties, goods and equipment; each pointer prefixed with the MRN of its filing."""
    def parts(member: Member, house: int | None):
        r = member.record
        return ([p._replace(pointer=_in_filing(p.pointer, member)) for p in r.parties],
                [g._replace(pointer=_in_filing(g.pointer, member), house=house) for g in r.goods],
                [c._replace(pointer=_in_filing(c.pointer, member)) for c in r.containers])

    parties, goods, containers = parts(master, None)
    seen = {c.container_id for c in containers}
    for number, house in enumerate(houses, start=1):
        p, g, c = parts(house, number)
        parties += p
        goods += g
        containers += [x for x in c if x.container_id not in seen]
        seen.update(x.container_id for x in c)
    m = master.record
    return replace(m, parties=tuple(parties), goods=tuple(goods), containers=tuple(containers),
                   house_documents=tuple(h.record.transport_document for h in houses),
                   total_gross_mass=sum(h.record.total_gross_mass or 0 for h in houses) or m.total_gross_mass,
                   total_packages=sum(h.record.total_packages or 0 for h in houses) or m.total_packages,
                   pointers={k: _in_filing(v, master) for k, v in m.pointers.items()})


def consignment_of(key: str, version: int, state: str, members: list[Member],
                   missing: tuple[str, ...] = ()) -> Consignment:
    """The consignment from its members as stored (master first when there is one; a postal
    item before its dispatch: the assessment is the item's)."""
    master, houses = _master_and_houses(members)
    if per_item(key) and master is not None and len(houses) == 1:
        return Consignment(key, state, version, (houses[0], master), merge(master, houses), missing)
    houses.sort(key=lambda m: m.record.transport_document or "")
    if master is None:  # assessed at its deadline without a master: the first house leads
        lead, rest = houses[0], houses[1:]
        record = merge(lead, rest) if rest else lead.record
        return Consignment(key, state, version, (lead, *rest), record, missing)
    return Consignment(key, state, version, (master, *houses), merge(master, houses), missing)


def assemble(members: list[Member]) -> tuple[list[Consignment], list[Pending]]:
    """Links filings held in memory, for replays and backtests (the pipeline keeps the state in
    Redis): the consignments complete among them, and the partial filings left pending."""
    ready: list[Consignment] = []
    partial: dict[str, list[Member]] = {}
    for m in members:
        key = linked_key(m.record)
        if key is None:
            ready.append(standalone(m))
        else:
            partial.setdefault(key, []).append(m)
    pending: list[Pending] = []
    for key, group in partial.items():
        if per_item(key):
            master, items = _master_and_houses(group)
            if master is not None and items:
                ready += [consignment_of(item_key(key, i.record.transport_document), 1, state_of([master, i]),
                                         [master, i]) for i in items]
            else:
                pending += [Pending(m, key, missing_documents(key, group)) for m in group]
            continue
        missing = missing_documents(key, group)
        if missing:
            pending += [Pending(m, key, missing) for m in group]
        else:
            ready.append(consignment_of(key, 1, state_of(group), group))
    return ready, pending


# -- state in Redis -----------------------------------------------------------------------------
# Per consignment, hash {p}:cons:{key}: m (the master), h:{house document} (each house), x (the
# house documents the master expects, joined by \x1f), v (version), s (state assessed last); a
# postal dispatch keeps v:{item} and s:{item} per item instead.
# {p}:cons-of:{mrn} -> "key\x1ffield"; sorted set {p}:cons:due (due_key): consignments by deadline.
_LINK = """
local p, key, field, blob, mrn, expected, is_master, deadline, remove, ttl, each = unpack(ARGV)
local h = p .. ':cons:' .. key
if remove == '1' then
  redis.call('HDEL', h, field)
  redis.call('DEL', p .. ':cons-of:' .. mrn)
else
  redis.call('HSET', h, field, blob)
  if is_master == '1' then redis.call('HSET', h, 'x', expected) end
  redis.call('EXPIRE', h, ttl)
  redis.call('SET', p .. ':cons-of:' .. mrn, key .. '\\31' .. field, 'EX', ttl)
end
if each == '1' then
  -- Postal: every item is assessed with the dispatch, on its own, as soon as both are there.
  if remove == '1' then return {'E', '0', ''} end
  local master = redis.call('HGET', h, 'm')
  if not master then
    redis.call('ZADD', p .. ':cons:due', 'NX', deadline, key)
    return {'P', '0', '0', ''}
  end
  local items = {}
  if is_master == '1' then
    local all = redis.call('HGETALL', h)
    for i = 1, #all, 2 do
      if string.sub(all[i], 1, 2) == 'h:' then table.insert(items, {all[i], all[i + 1]}) end
    end
  else
    items = {{field, blob}}
  end
  if #items == 0 then  -- a dispatch no item is filed for yet
    redis.call('ZADD', p .. ':cons:due', 'NX', deadline, key)
    return {'P', '0', '1', ''}
  end
  redis.call('ZREM', p .. ':cons:due', key)
  local out = {'I'}
  local m = redis.sha1hex(master)
  for _, item in ipairs(items) do
    local f, body = item[1], item[2]
    local state = redis.sha1hex(m .. '|' .. redis.sha1hex(body))
    local v = tonumber(redis.call('HGET', h, 'v:' .. f) or '0')
    if redis.call('HGET', h, 's:' .. f) ~= state then
      v = v + 1
      redis.call('HSET', h, 'v:' .. f, v, 's:' .. f, state)
    end
    table.insert(out, {string.sub(f, 3), tostring(v), state, master, body})
  end
  return out
end
local all = redis.call('HGETALL', h)
local members, houses, master = {}, {}, false
for i = 1, #all, 2 do
  local f = all[i]
  if f == 'm' then master = true; table.insert(members, all[i + 1])
  elseif string.sub(f, 1, 2) == 'h:' then houses[string.sub(f, 3)] = true; table.insert(members, all[i + 1]) end
end
local complete = master
if master then
  local x = redis.call('HGET', h, 'x') or ''
  if x == '' then
    complete = next(houses) ~= nil
  else
    for doc in string.gmatch(x, '[^\\31]+') do
      if not houses[doc] then complete = false end
    end
  end
end
local v = tonumber(redis.call('HGET', h, 'v') or '0')
if #members == 0 then
  redis.call('ZREM', p .. ':cons:due', key)
  return {'E', tostring(v), ''}
end
if complete then
  redis.call('ZREM', p .. ':cons:due', key)
  local digests = {}
  for _, m in ipairs(members) do table.insert(digests, redis.sha1hex(m)) end
  table.sort(digests)
  local state = redis.sha1hex(table.concat(digests, '|'))
  if redis.call('HGET', h, 's') ~= state then
    v = v + 1
    redis.call('HSET', h, 'v', v, 's', state)
  end
  return {'C', tostring(v), state, unpack(members)}
end
redis.call('ZADD', p .. ':cons:due', 'NX', deadline, key)
-- Incomplete: what is there, not the members themselves (nobody decodes them until complete).
local docs = {}
for doc in pairs(houses) do table.insert(docs, doc) end
return {'P', tostring(v), master and '1' or '0', redis.call('HGET', h, 'x') or '', unpack(docs)}
"""

# Consignments past their deadline, each claimed for `retry` seconds (the incompleteness
# referral's effect removes it for good; a worker that dies before writing it leaves it to come due again).
_SWEEP = """
local p, now, retry, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local due = redis.call('ZRANGEBYSCORE', p .. ':cons:due', '-inf', now, 'LIMIT', 0, limit)
local out = {}
for _, key in ipairs(due) do
  redis.call('ZADD', p .. ':cons:due', now + retry, key)
  local h = p .. ':cons:' .. key
  local members = {}
  local all = redis.call('HGETALL', h)
  for i = 1, #all, 2 do
    if all[i] == 'm' or string.sub(all[i], 1, 2) == 'h:' then table.insert(members, all[i + 1]) end
  end
  table.insert(out, {key, redis.call('HGET', h, 'v') or '0', unpack(members)})
end
return out
"""


def due_key(prefix: str) -> str:
    """The sorted set of incomplete consignments by deadline (the scripts above build the same name)."""
    return f"{prefix}:cons:due"


@dataclass(frozen=True)
class LinkResult:
    key: str
    members: tuple[Member, ...]  # when complete (an incomplete consignment's stay in Redis)
    complete: bool
    version: int
    state: str
    missing: tuple[str, ...] = ()


class ConsignmentStore:
    """The partial filings of each consignment, in Redis; every change is one atomic script."""

    def __init__(self, client: redis.Redis, key_prefix: str = "cs", retention_seconds: int = 400 * 86400):
        self._client, self._prefix = client, key_prefix
        self._retention = retention_seconds
        self._link = client.register_script(_LINK)
        self._sweep = client.register_script(_SWEEP)

    @property
    def due_key(self) -> str:
        return due_key(self._prefix)

    def add(self, key: str, member: Member, deadline: float) -> list[LinkResult]:
        """Adds (or, for an amendment, replaces) a partial filing. One result, complete or not; for a
        postal dispatch, one per item it makes ready (an item, or the dispatch and its waiting items)."""
        is_master = member.record.level in MASTERS
        field = "m" if is_master else f"h:{member.record.transport_document}"
        return self._run(key, field, member.to_json(), member.mrn, "\x1f".join(member.record.house_documents),
                         is_master, deadline, remove=False)

    def remove(self, mrn: str, deadline: float) -> LinkResult | None:
        """Takes an invalidated filing out of its consignment; None if it was not a partial filing.
        A postal item leaves its own consignment: the result names it, with nothing to re-assess."""
        where = self._client.get(f"{self._prefix}:cons-of:{mrn}")
        if where is None:
            return None
        key, _, field = where.decode().partition("\x1f")
        result = self._run(key, field, "", mrn, "", False, deadline, remove=True)[0]
        if per_item(key) and field.startswith("h:"):
            return LinkResult(item_key(key, field[2:]), (), False, result.version, "")
        return result

    def _run(self, key, field, blob, mrn, expected, is_master, deadline, remove) -> list[LinkResult]:
        reply = self._link(args=[self._prefix, key, field, blob, mrn, expected, "1" if is_master else "0",
                                 f"{deadline:.3f}", "1" if remove else "0", self._retention,
                                 "1" if per_item(key) else "0"])
        code = reply[0].decode()
        if code == "I":
            return [LinkResult(item_key(key, item.decode()), (Member.from_json(m), Member.from_json(body)), True,
                               int(v), state.decode()) for item, v, state, m, body in reply[1:]]
        version = int(reply[1])
        if code == "P":
            expected = [d for d in reply[3].decode().split("\x1f") if d] if reply[2] == b"1" else None
            missing = missing_of(key, None if expected is None else tuple(expected), {d.decode() for d in reply[4:]})
            return [LinkResult(key, (), False, version, "", missing)]
        members = tuple(Member.from_json(b) for b in reply[3:])
        return [LinkResult(key, members, code == "C", version, reply[2].decode())]

    def overdue(self, now: float, retry_seconds: int, limit: int = 100) -> list[tuple[str, int, list[Member]]]:
        """Consignments past their deadline: (key, version, members), each claimed for retry_seconds.
        A postal dispatch's items waiting for it come back one by one, under their own keys."""
        replies = self._sweep(args=[self._prefix, f"{now:.3f}", retry_seconds, limit])
        out = []
        for r in replies:
            key, version, members = r[0].decode(), int(r[1]), [Member.from_json(b) for b in r[2:]]
            master, items = _master_and_houses(members)
            if per_item(key) and master is None and items:
                out += [(item_key(key, i.record.transport_document), version, [i]) for i in items]
            else:
                out.append((key, version, members))
        return out
