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

Who may file what. A transport document number is no secret (it is on the paperwork of every
party in the chain), so quoting one proves nothing: a house joins its master's consignment only
on the master filer's word. The master lists each house document with the filer expected to
file it (`HouseTransportDocument/Filer`); a house it lists without a filer, or does not list at
all (a postal dispatch lists none), only the master's own filer may file. The filer is the
authenticated one (the channel's, else the filing's declared filer). So:

    claim       a house whose master is filed joins only if the master allows its filer; one
                filed before its master waits, beside any other filer's house of that number,
                until the master decides. A second master for the document from another filer
                is refused (the first one keeps it). A refused claim changes nothing of the
                consignment: its filer gets an IE3N01 naming what is wrong (nothing of the other
                filer's), the audit trail records it, and the filing is assessed on its own with a
                `consignment-claim-refused` fact (a risk rule scores it), referred to the risk
                centre of the consignment it claimed. A house its master lists without naming a
                filer is refused the same way (HOUSE_FILER_NOT_NAMED): no evidence for it, and
                none against, so the starter pack scores it as a weak indicator only. A master
                amended to list its houses
                otherwise refuses, the same way, a house it no longer allows.
    members     are kept per filer: a filing replaces, amends or invalidates only its own member
                (and an invalidation only the member of its own MRN)
    answers     name only what the recipient may know: a master's filer reads every house it
                listed; a house's filer reads the houses listed for it, and a count of the others
    no master   until the master is there, nothing binds one filer's houses to another's: at the
                deadline each filer's houses (each postal item) are assessed apart, under a name of
                their own, `<mode>@<filer>:<master document>` (no document number can make it)

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
from dataclasses import dataclass, replace
from typing import NamedTuple, Sequence

import redis

from lxml import etree

from .domain import compact_json, stored_bodies
from .domain.filings import BY_ROOT, ENS_NS, HOUSE, PARTIAL_MASTER, POSTAL_MASTER
from .connectors.redis_slots import SlotScript, by_slot, partition_of, partition_tag, pipelined
from .domain.screening import ScreeningRecord, record_from_dict, record_to_dict, screening_record

# Refusals: why a claim on a consignment was refused (the IE3N01 code the claimant reads).
HOUSE_NOT_LISTED = "HOUSE_NOT_LISTED"  # the master's filer does not list this house, or lists it for another filer
# The master lists this house without naming its filer (as filings made before masters named them
# do): no evidence for anyone but the master's filer, yet no other filer's word against this one.
# Refused all the same, but no other filer's word contradicts it: a weak risk indicator, not a strong one.
HOUSE_FILER_NOT_NAMED = "HOUSE_FILER_NOT_NAMED"
MASTER_FILED = "MASTER_FILED_BY_ANOTHER_FILER"  # another filer filed this master document first


# A member's body in Redis starts with its MRN and this byte, so a script reads whose it is without
# decoding it (a byte no MRN or JSON text holds).
_MRN_END = b"\x1f"


class Refusal(NamedTuple):
    """A claim on a consignment that its master's filer did not give."""

    code: str  # HOUSE_NOT_LISTED, HOUSE_FILER_NOT_NAMED, MASTER_FILED
    consignment: str  # the consignment claimed
    document: str  # the document the claim was about (the house's own, or the master's)
    centre: str  # the risk centre of the consignment claimed (of the claimant's entry if it has none yet)


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
    refused: Refusal | None = None  # set on a filing assessed on its own because its claim was refused

    def to_json(self) -> str:
        return compact_json.dumps({"mrn": self.mrn, "submission_id": self.submission_id, "filer": self.filer,
                                   "lrn": self.lrn, "filing_code": self.filing_code, "digest": self.digest,
                                   "record": record_to_dict(self.record),
                                   **({"refused": list(self.refused)} if self.refused else {})}).decode()

    def to_body(self) -> bytes:
        """As kept in the consignment's hash: the MRN, then the compressed JSON (stored_bodies)."""
        return self.mrn.encode() + _MRN_END + stored_bodies.pack(self.to_json())

    @staticmethod
    def from_body(body: bytes | str) -> "Member":
        """A member as kept: compressed after its MRN, or plain JSON (written by an earlier version)."""
        if isinstance(body, bytes) and body[:1] != b"{":
            return Member.from_json(stored_bodies.unpack(body.split(_MRN_END, 1)[1]))
        return Member.from_json(body)

    @staticmethod
    def from_json(text: str | bytes) -> "Member":
        data = compact_json.loads(text)
        refused = data.pop("refused", None)
        return Member(**{**data, "record": record_from_dict(data["record"]),
                         "refused": Refusal(*refused) if refused else None})


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
POSTAL = "postal"  # the family of postal dispatches, whose items are assessed one by one
HOUSE_DOCUMENT = "house transport document"


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


def routing_name(root) -> str | None:
    """A filing's linking key from its parsed tree, read at the door to queue it in its
    consignment's partition (so its state's slot is the one its worker mostly touches); None for a
    filing that stands alone, an invalidation, another message or one too broken to read (any
    partition will do: the linking step finds a consignment's state by its key, wherever it came in)."""
    found = BY_ROOT.get(etree.QName(root).localname) if etree.QName(root).namespace == ENS_NS else None
    if found is None or found[0].level not in (*MASTERS, HOUSE):
        return None
    kind, amendment = found
    try:
        return linked_key(screening_record(root, ("A" + kind.code[1:]) if amendment else kind.code))
    except Exception:  # not valid: the pipeline rejects it, wherever it is queued
        return None


def group_key(key: str, filer: str) -> str:
    """One filer's houses quoting a master that is not filed: `sea@DE123:MB1` for `sea:MB1`. The
    filer stands before the first colon, where a document number (after it) cannot reach, and
    filer identities hold no colon (types.xsd EORI)."""
    family, _, document = key.partition(":")
    return f"{family}@{filer}:{document}"


def item_key(dispatch_key: str, item_document: str) -> str:
    """A postal item's own consignment within its dispatch."""
    return f"{dispatch_key}/{item_document}"


def per_item(key: str) -> bool:
    return key.partition(":")[0].partition("@")[0] == POSTAL


def standalone(member: Member, version: int = 1) -> Consignment:
    return Consignment(f"mrn:{member.mrn}", member.digest, version, (member,), member.record)


def state_of(members: list[Member]) -> str:
    text = "|".join(sorted(f"{m.mrn}:{m.digest}" for m in members))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def listing(record: ScreeningRecord) -> tuple[tuple[str, str], ...]:
    """The houses a master expects: (document, filer expected to file it; "" where it names none)."""
    filers = record.house_filers or ("",) * len(record.house_documents)
    return tuple(zip(record.house_documents, filers))


def house_refusal(filer: str, document: str, expected: tuple[tuple[str, str], ...], master_filer: str) -> str | None:
    """The ownership rule: why `filer` may not file house `document` of a master filed by
    `master_filer` that lists `expected` (None: it may). A listed house by the filer listed with
    it, or by the master's filer where none is; a house it does not list by the master's filer
    only. The linking script (_LINK) applies the same rule atomically; tests hold the two in step."""
    listed = dict(expected)
    if filer == (listed.get(document) or master_filer):
        return None
    return HOUSE_FILER_NOT_NAMED if listed.get(document) == "" else HOUSE_NOT_LISTED



def _master_and_houses(members: list[Member]) -> tuple[Member | None, list[Member]]:
    master = next((m for m in members if m.record.level in MASTERS), None)
    return master, [m for m in members if m is not master]


def missing_documents(key: str, members: list[Member], recipient: str | None = None) -> tuple[str, ...]:
    """What the consignment still lacks, as the filer would name it (recipient: as that filer may read it)."""
    master, houses = _master_and_houses(members)
    return missing_of(key, None if master is None else listing(master.record),
                      {(h.filer, h.record.transport_document) for h in houses},
                      master.filer if master else "", recipient)


def missing_of(key: str, expected: tuple[tuple[str, str], ...] | None, present: set[tuple[str, str]],
               master_filer: str = "", recipient: str | None = None) -> tuple[str, ...]:
    """The completeness rule: what is missing, given the houses the master expects (document and
    filer; None: no master filed yet), the houses present (filer, document) and the master's filer.
    The linking script (_LINK) decides complete-or-not by the same rule, atomically; tests hold the
    two in step. recipient: a filer, who reads only the houses expected from it by number (the
    master's filer listed them all), the others as a count; None: everything (the risk centre's view)."""
    if expected is None:
        what = "postal dispatch (F42) with transport document" if per_item(key) else "master transport document"
        return (f"{what} {key.partition(':')[2].partition('/')[0]}",)
    if not expected:
        return () if present else ("postal item filings" if per_item(key) else "house-level filings",)
    due = [(d, f or master_filer) for d, f in expected if (f or master_filer, d) not in present]
    mine = [d for d, f in due if recipient in (None, master_filer, f)]
    others = len(due) - len(mine)
    return tuple(f"{HOUSE_DOCUMENT} {d}" for d in mine) + (
        (f"{others} house filing{'s' if others > 1 else ''} expected from other filers",) if others else ())


def filer_view(missing: tuple[str, ...]) -> tuple[str, ...]:
    """What is missing as every filer of the consignment may read it (an assessment's answer goes to
    each): the documents they quote themselves, and the missing houses counted, not named."""
    houses = sum(1 for m in missing if m.startswith(HOUSE_DOCUMENT))
    return tuple(m for m in missing if not m.startswith(HOUSE_DOCUMENT)) + (
        (f"{houses} house filing{'s' if houses > 1 else ''} the master filing lists",) if houses else ())


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
                   house_filers=tuple(h.filer for h in houses),
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
    Redis), by the same rules: the consignments complete among them, the filings refused from
    another filer's consignment (each on its own, as the pipeline assesses them), and the partial
    filings left pending."""
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
        master, houses = _master_and_houses(group)
        if master is not None:  # the first master filed keeps the document; it says who files its houses
            claims = [(m, MASTER_FILED, m.record.transport_document) for m in houses
                      if m.record.level in MASTERS and m.filer != master.filer]
            claims += [(h, code, h.record.transport_document) for h in houses if h.record.level not in MASTERS
                       for code in [house_refusal(h.filer, h.record.transport_document, listing(master.record),
                                                  master.filer)] if code]
            ready += [standalone(replace(m, refused=Refusal(code, key, doc, ""))) for m, code, doc in claims]
            refused = {m.mrn for m, _, _ in claims}
            group = [master] + [h for h in houses if h.mrn not in refused and h.record.level not in MASTERS]
        elif len({m.filer for m in group}) > 1:  # no master's word: each filer's houses apart
            by_filer: dict[str, list[Member]] = {}
            for m in group:
                by_filer.setdefault(m.filer, []).append(m)
            pending += [Pending(m, group_key(key, f), missing_documents(key, ms)) for f, ms in by_filer.items()
                        for m in ms]
            continue
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
# Per consignment, hash {p}:cons:{key}: m (the master), mf (its filer), x (the houses it lists:
# document \x1e filer, joined by \x1f), c (its risk centre), h:{filer}\x1e{house document} (each
# house, under its filer: another filer's house of that number is another field), v (version),
# s (state assessed last), r:{mrn} (a refused claim, audited once); a postal dispatch keeps
# v:{field} and s:{field} per item instead; o:{mrn} (each member's field, for its invalidation).
# Sorted set {p}:{partition}:cons:due (due_key), by deadline: a consignment whose master is filed,
# under its key; one filer's houses whose master is not, under group_key (each waits on its own
# deadline). Both carry the hash tag of the consignment's partition (partition_of its linking key):
# one slot of a Redis Cluster holds a consignment's whole state.
# (\x1e and \x1f cannot occur in XML text, so no document number or filer can forge a field.)
# The script takes a batch's changes at once (ConsignmentStore.link): ARGV is the retention, then 13
# values per change (ConsignmentStore._call), KEYS the hashes and due sets they name, each change
# giving the numbers of its two. Each change sees what those before it did, as if sent one by one.
# A body sent in the call comes back as the number of the change that sent it (the caller holds
# it): only bodies filed in earlier calls travel back, and only where a decision needs them (a
# consignment complete, a claim refused).
_LINK = """
local ttl = ARGV[1]
local held = {}  -- the bodies sent in this call so far: the number of the change that sent each

local function ref(body)  -- a member as the reply carries it
  return held[body] or body
end
local function mrn_of(body)  -- Member.to_body: the MRN before \\031; plain JSON from an earlier version
  if string.sub(body, 1, 1) == '{' then return cjson.decode(body)['mrn'] end
  return string.match(body, '^([^\\031]*)')
end
local function house(f)  -- a house field: its filer and document (nil, nil for other fields)
  return string.match(f, '^h:([^\\30]*)\\30(.*)$')
end
local function refusal(who, doc, x, mf)  -- linking.house_refusal: nil when `who` may file `doc`
  for entry in string.gmatch(x or '', '[^\\31]+') do
    local d, listed = string.match(entry, '^([^\\30]*)\\30(.*)$')
    if d == doc then
      if who == (listed ~= '' and listed or mf) then return nil end
      return listed == '' and 'HOUSE_FILER_NOT_NAMED' or 'HOUSE_NOT_LISTED'
    end
  end
  if who == mf then return nil end
  return 'HOUSE_NOT_LISTED'
end

-- One change of consignment `key` (hash h, due set due): {reply, claims refused, member field}.
local function change(h, due, key, field, blob, mrn, expected, is_master, deadline, remove, each, filer, centre)
local family, document = string.match(key, '^([^:]*):(.*)$')
local refused = {}
local function group(who)  -- linking.group_key
  return family .. '@' .. who .. ':' .. document
end
local function refuse(code, who, m, doc, body)
  local c = redis.call('HGET', h, 'c') or centre
  local mark, new = redis.sha1hex(body), '0'
  if redis.call('HGET', h, 'r:' .. m) ~= mark then  -- audited once per claim (by the caller), however often delivered
    redis.call('HSET', h, 'r:' .. m, mark)
    new = '1'
  end
  table.insert(refused, {code, doc, c, ref(body), new})
end
local function link()
  redis.call('HSET', h, field, blob)
  redis.call('EXPIRE', h, ttl)
  redis.call('HSET', h, 'o:' .. mrn, field)
end

local present = redis.call('HEXISTS', h, 'm') == 1
if remove == '1' then
  field = redis.call('HGET', h, 'o:' .. mrn)
  if not field then return {{'N'}, refused, ''} end  -- not a member
  local body = redis.call('HGET', h, field)
  redis.call('HDEL', h, 'o:' .. mrn)
  if not body or mrn_of(body) ~= mrn then  -- replaced since by its filer's later filing
    return {{'N'}, refused, field}
  end
  redis.call('HDEL', h, field)
  if field == 'm' then  -- the master left: each filer's houses wait on a deadline of their own again
    redis.call('ZREM', due, key)
    for _, f in ipairs(redis.call('HKEYS', h)) do
      local who = house(f)
      if who then redis.call('ZADD', due, 'NX', deadline, group(who)) end
    end
    present = false
  elseif not present then  -- a filer's last house without its master takes its deadline along
    local who, left = house(field), false
    for _, f in ipairs(redis.call('HKEYS', h)) do left = left or house(f) == who end
    if who and not left then redis.call('ZREM', due, group(who)) end
  end
elseif is_master == '1' then
  if present and redis.call('HGET', h, 'mf') ~= filer then
    refuse('MASTER_FILED_BY_ANOTHER_FILER', filer, mrn, document, blob)
    return {{'R'}, refused, field}
  end
  link()
  redis.call('HSET', h, 'mf', filer, 'x', expected, 'c', centre)
  -- Every house filed before it (or allowed by its previous version) stays only if it is allowed now;
  -- the houses' deadlines give way to the consignment's, which the first of them sets.
  local all = redis.call('HGETALL', h)
  for i = 1, #all, 2 do
    local who, doc = house(all[i])
    if who then
      local waiting = redis.call('ZSCORE', due, group(who))
      redis.call('ZREM', due, group(who))
      local code = refusal(who, doc, expected, filer)
      if code then
        local m = mrn_of(all[i + 1])
        redis.call('HDEL', h, all[i])
        redis.call('HDEL', h, 'o:' .. m)
        refuse(code, who, m, doc, all[i + 1])
      elseif waiting and tonumber(waiting) < tonumber(deadline) then
        deadline = waiting
      end
    end
  end
  present = true
else
  local who, doc = house(field)
  if present then
    local mf, x = unpack(redis.call('HMGET', h, 'mf', 'x'))
    local code = refusal(who, doc, x, mf)
    if code then
      refuse(code, who, mrn, doc, blob)
      return {{'R'}, refused, field}
    end
  else
    redis.call('ZADD', due, 'NX', deadline, group(who))
  end
  link()
end
if each == '1' then
  -- Postal: every item is assessed with the dispatch, on its own, as soon as both are there.
  if remove == '1' then return {{'E', '0', present and '1' or '0'}, refused, field} end
  if not present then return {{'P', '0', '0', '', ''}, refused, field} end
  local master = redis.call('HGET', h, 'm')
  local items = {}
  if is_master == '1' then
    local all = redis.call('HGETALL', h)
    for i = 1, #all, 2 do
      if house(all[i]) then table.insert(items, {all[i], all[i + 1]}) end
    end
  else
    items = {{field, blob}}
  end
  if #items == 0 then  -- a dispatch no item is filed for yet
    redis.call('ZADD', due, 'NX', deadline, key)
    return {{'P', '0', '1', '', filer}, refused, field}
  end
  redis.call('ZREM', due, key)
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
    local _, doc = house(f)
    table.insert(out, {doc, tostring(v), state, ref(master), ref(body)})
  end
  return {out, refused, field}
end
local all = redis.call('HGETALL', h)
local members, houses = {}, {}
for i = 1, #all, 2 do
  local f = all[i]
  if f == 'm' then table.insert(members, all[i + 1])
  elseif house(f) then houses[f] = true; table.insert(members, all[i + 1]) end
end
local v = tonumber(redis.call('HGET', h, 'v') or '0')
local fields = {}
for f in pairs(houses) do table.insert(fields, f) end
if not present then  -- no master's word yet: what is there (nobody decodes the members until complete)
  if #members == 0 then redis.call('ZREM', due, key) end
  return {{#members == 0 and 'E' or 'P', tostring(v), '0', '', '', unpack(fields)}, refused, field}
end
local mf, x = unpack(redis.call('HMGET', h, 'mf', 'x'))
local complete, listed = true, false
for entry in string.gmatch(x or '', '[^\\31]+') do
  local d, who = string.match(entry, '^([^\\30]*)\\30(.*)$')
  listed = true
  if not houses['h:' .. (who ~= '' and who or mf) .. '\\30' .. d] then complete = false end
end
if not listed then complete = next(houses) ~= nil end
if complete then
  redis.call('ZREM', due, key)
  local digests, refs = {}, {}
  for _, m in ipairs(members) do
    table.insert(digests, redis.sha1hex(m))
    table.insert(refs, ref(m))
  end
  table.sort(digests)
  local state = redis.sha1hex(table.concat(digests, '|'))
  if redis.call('HGET', h, 's') ~= state then
    v = v + 1
    redis.call('HSET', h, 'v', v, 's', state)
  end
  return {{'C', tostring(v), state, unpack(refs)}, refused, field}
end
redis.call('ZADD', due, 'NX', deadline, key)
return {{'P', tostring(v), '1', x or '', mf, unpack(fields)}, refused, field}
end

local out = {}
for a = 2, #ARGV, 13 do
  local blob = ARGV[a + 4]
  if blob ~= '' and not held[blob] then held[blob] = #out + 1 end
  table.insert(out, change(KEYS[tonumber(ARGV[a])], KEYS[tonumber(ARGV[a + 1])], ARGV[a + 2], ARGV[a + 3], blob,
                           ARGV[a + 5], ARGV[a + 6], ARGV[a + 7], ARGV[a + 8], ARGV[a + 9], ARGV[a + 10],
                           ARGV[a + 11], ARGV[a + 12]))
end
return out
"""

# Consignments past their deadline, each claimed for `retry` seconds (the incompleteness
# referral's effect removes it for good; a worker that dies before writing it leaves it to come due
# again). A consignment's entry brings its master and houses; a filer's entry (group_key) that
# filer's houses, while their master is not filed (once it is, the consignment's own deadline
# rules). An entry with nothing left to assess goes.
# KEYS: the partition's due set, then the hash of each entry named in ARGV (after now, retry). An
# entry another worker claimed meanwhile (no longer due) is left to it.
_SWEEP = """
local now, retry = tonumber(ARGV[1]), tonumber(ARGV[2])
local due = KEYS[1]
local out = {}
for n = 3, #ARGV do
  local name, h = ARGV[n], KEYS[n - 1]
  local family, filer, document = string.match(name, '^([^:@]*)@([^:]*):(.*)$')  -- linking.group_key
  if not filer then family, document = string.match(name, '^([^:]*):(.*)$') end
  local score = redis.call('ZSCORE', due, name)
  if score and tonumber(score) <= now then
    local master = redis.call('HEXISTS', h, 'm') == 1
    local members, filers = {}, {}
    local all = redis.call('HGETALL', h)
    for i = 1, #all, 2 do
      local who = string.match(all[i], '^h:([^\\30]*)\\30')
      if who then filers[who] = true end
      if (all[i] == 'm' and not filer) or (who and (not filer or who == filer)) then
        table.insert(members, all[i + 1])
      end
    end
    local stale = (filer and master) or (not filer and not master)  -- its master came, or left, since
    if #members == 0 or stale then
      redis.call('ZREM', due, name)
      if not filer and not master then  -- its master left: each filer's houses come due on their own
        for who in pairs(filers) do redis.call('ZADD', due, 'NX', now, family .. '@' .. who .. ':' .. document) end
      end
    else
      redis.call('ZADD', due, now + retry, name)
      table.insert(out, {name, redis.call('HGET', h, 'v') or '0', unpack(members)})
    end
  end
end
return out
"""


def due_entry(key: str, members) -> str:
    """The deadline entry a decision on consignment `key` answers: its own; for a postal item assessed
    without its dispatch, the entry its filer's items wait under (else the sweep brings it back)."""
    if per_item(key) and len(members) == 1:
        suffix = "/" + (members[0].record.transport_document or "")
        if key.endswith(suffix):
            return key[:-len(suffix)]
    return key


def linked_of(consignment: str) -> str:
    """The linking key behind a consignment's name (group_key and item_key undone; `mrn:...` as it is):
    what names its hash and its partition."""
    family, _, document = consignment.partition(":")
    if family == "mrn":
        return consignment
    if per_item(consignment):
        document = document.rpartition("/")[0] or document
    return f"{family.partition('@')[0]}:{document}"


@dataclass(frozen=True)
class ConsignmentKeys:
    """Names of a consignment's keys: each under the hash tag of its partition (partition_of its
    linking key), so that its state, its deadline and its latest decision share one slot."""

    prefix: str = "cs"
    partitions: int = 1

    def partition(self, consignment: str) -> int:
        return partition_of(linked_of(consignment), self.partitions)

    def tagged(self, partition: int) -> str:
        return f"{self.prefix}:{partition_tag(partition)}"

    def of(self, consignment: str) -> str:
        """The tagged prefix of the consignment's keys."""
        return self.tagged(self.partition(consignment))

    def hash(self, consignment: str) -> str:
        return f"{self.of(consignment)}:cons:{linked_of(consignment)}"

    def due(self, partition: int) -> str:
        """The sorted set of a partition's incomplete consignments by deadline."""
        return f"{self.tagged(partition)}:cons:due"

    def due_of(self, consignment: str) -> str:
        return self.due(self.partition(consignment))

    def decision_of(self, consignment: str) -> str:
        """Its latest decision (what a withdrawal withdraws), kept for the amendment window."""
        return f"{self.of(consignment)}:decision-of:{consignment}"


def decided_keys(keys: ConsignmentKeys, key: str) -> tuple[str, ...]:
    """The Redis keys a decision on consignment `key` leaves behind: the hash of its partial filings
    (the dispatch's, for a postal item; the master document's, for one filer's houses). Nothing for
    a filing that stood alone (it has none)."""
    return () if key.startswith("mrn:") else (keys.hash(key),)


def house_field(filer: str, document: str) -> str:
    """A house's field in its consignment's hash: under its filer (see _LINK)."""
    return f"h:{filer}\x1e{document}"


def _house_of(field: str) -> tuple[str, str]:
    filer, _, document = field[2:].partition("\x1e")
    return filer, document


def _member(ref: bytes | int, held: list) -> Member:
    """A member in the link script's reply: its body, or the number of the change (in the call) that sent it."""
    return held[ref - 1] if isinstance(ref, int) else Member.from_body(ref)


@dataclass(frozen=True)
class LinkResult:
    key: str
    members: tuple[Member, ...]  # when complete (an incomplete consignment's stay in Redis); the refused filing
    complete: bool
    version: int
    state: str
    missing: tuple[str, ...] = ()
    refused: Refusal | None = None  # a claim refused: `members` holds the refused filing, assessed on its own
    master: bool = True  # whether the consignment's master is filed


class Addition(NamedTuple):
    """A partial filing to add to its consignment (ConsignmentStore.add's arguments)."""
    key: str
    member: Member
    deadline: float
    centre: str = ""
    now: str = ""


class Removal(NamedTuple):
    """An invalidated filing to take out of its consignment (ConsignmentStore.remove's arguments)."""
    mrn: str
    key: str  # its linking key, as registered ("" for a filing that stood alone)
    deadline: float


class ConsignmentStore:
    """The partial filings of each consignment, in Redis; a bundle's changes are one atomic script
    call (one per hash slot they touch on a Redis Cluster)."""

    def __init__(self, client: redis.Redis, key_prefix: str = "cs", retention_seconds: int = 400 * 86400,
                 partitions: int = 1):
        self._client, self._prefix = client, key_prefix
        self.keys = ConsignmentKeys(key_prefix, partitions)
        self._retention = retention_seconds
        self._link = SlotScript(client, _LINK)
        self._sweep = SlotScript(client, _SWEEP)

    def add(self, key: str, member: Member, deadline: float, centre: str = "", now: str = "") -> list[LinkResult]:
        """Adds (or, for an amendment, replaces) a partial filing of `member.filer`. One result, complete
        or not (its `missing` as that filer may read it); for a postal dispatch, one per item it makes
        ready. Besides, one result per claim refused: this filing's, or those of houses a master does
        not allow. centre: the risk centre of the filing's own office of first entry (a master's is
        its consignment's); now: when, for the audit trail."""
        return self.link([Addition(key, member, deadline, centre, now)])[0]

    def remove(self, mrn: str, key: str, deadline: float) -> LinkResult | None:
        """Takes an invalidated filing out of its consignment `key` (its linking key, as registered);
        None if it was not a member. The result names the decision the filing leaves: its
        consignment's, its own filer's houses' while the master is not filed, a postal item's own
        (with nothing to re-assess)."""
        return self.link([Removal(mrn, key, deadline)])[0]

    def link(self, changes: Sequence[Addition | Removal]) -> list:
        """Each change's outcome, in order (an Addition's as add() gives it, a Removal's as remove()),
        as if made one by one. One script call for all of them on a single Redis; on a cluster, whose
        scripts may touch one slot only, one call per slot they touch (a consignment's keys share its
        partition's slot), all in one round trip per master. The bodies of the filings
        sent do not come back: a consignment complete or a claim refused brings only those of
        members filed before."""
        hashes = [self.keys.hash(c.key) if c.key else "" for c in changes]  # "": a filing that stood alone
        held_ones = [n for n, h in enumerate(hashes) if h]
        calls = [[held_ones[i] for i in group] for group in by_slot(self._client, [hashes[n] for n in held_ones])]
        replies = self._link.run([self._call([changes[n] for n in call], [hashes[n] for n in call])
                                  for call in calls]) if calls else []
        out: list = [None] * len(changes)
        refused_now: list = []
        for call, reply in zip(calls, replies):
            held = [changes[n].member if isinstance(changes[n], Addition) else None for n in call]
            for n, change_reply in zip(call, reply):
                out[n] = self._outcome(changes[n], change_reply, held, refused_now)
        self._audit(refused_now)
        return out

    def _call(self, changes: list, hashes: list[str]) -> tuple[list, list]:
        """The link script's (keys, args) for changes of consignments in one slot (see _LINK), given
        their consignments' hash keys."""
        keys: dict[str, int] = {}  # each key once, numbered from 1 as Lua counts

        def number(key: str) -> int:
            return keys.setdefault(key, len(keys) + 1)

        args: list = [self._retention]
        for c, hash_key in zip(changes, hashes):
            where = [number(hash_key), number(self.keys.due_of(c.key)), c.key]
            each = "1" if per_item(c.key) else "0"
            if isinstance(c, Removal):  # the script finds its member's field
                args += [*where, "", "", c.mrn, "", "0", f"{c.deadline:.3f}", "1", each, "", ""]
                continue
            m = c.member
            is_master = m.record.level in MASTERS
            field = "m" if is_master else house_field(m.filer, m.record.transport_document)
            expected = "\x1f".join(f"{d}\x1e{f}" for d, f in listing(m.record))
            args += [*where, field, m.to_body(), m.mrn, expected, "1" if is_master else "0", f"{c.deadline:.3f}", "0",
                     each, m.filer, c.centre]
        return list(keys), args

    def _outcome(self, change: Addition | Removal, script_reply, held: list, refused_now: list):
        """One change's outcome from its part of the script's reply; the claims it refused for the first
        time go to refused_now with the change's time (for the audit trail)."""
        reply, refused, field = script_reply
        if isinstance(change, Removal):
            return self._removed(change.key, reply, field.decode() if field else "")
        key = change.key
        refusals = [(Refusal(code.decode(), key, doc.decode(), c.decode()), _member(ref, held))
                    for code, doc, c, ref, _ in refused]
        refused_now += [(why, m, change.now) for (why, m), (*_, new) in zip(refusals, refused) if new == b"1"]
        return self._results(key, reply, change.member.filer, held) + [
            LinkResult(key, (replace(m, refused=why),), False, 0, "", refused=why) for why, m in refusals]

    def _removed(self, key: str, reply: list, field: str) -> LinkResult | None:
        found = self._results(key, reply, None, [])
        if not found:  # no member, or no longer: a later filing of its filer took its place
            return None
        result = found[0]
        if field == "m":
            return result
        filer, document = _house_of(field)
        left = key if result.master else group_key(key, filer)
        if per_item(key):
            return LinkResult(item_key(left, document), (), False, result.version, "", master=result.master)
        return replace(result, key=left)

    def _audit(self, refusals: list) -> None:
        """The audit trail's entry for each (claim refused for the first time, member, when): the script
        marks it, a redelivery adds none. After the script, not in it: the audit stream lives in a slot
        of its own."""
        if not refusals:
            return
        pipe = self._client.pipeline(transaction=False)
        for why, m, now in refusals:
            pipe.xadd(f"{self._prefix}:audit", {"at": now, "who": m.filer, "centre": why.centre,
                                                "action": "claim-refused", "subject": m.mrn,
                                                "detail": f"{why.code}: {why.document} in consignment {why.consignment}"})
        pipe.execute()

    @staticmethod
    def _results(key: str, reply: list, recipient: str | None, held: list) -> list[LinkResult]:
        code = reply[0].decode()
        if code in ("R", "N"):  # this filing's claim was refused, or it is no member to remove: nothing changed
            return []
        if code == "I":
            return [LinkResult(item_key(key, item.decode()), (_member(m, held), _member(body, held)), True,
                               int(v), state.decode()) for item, v, state, m, body in reply[1:]]
        version = int(reply[1])
        if code == "C":
            return [LinkResult(key, tuple(_member(ref, held) for ref in reply[3:]), True, version, reply[2].decode())]
        master = reply[2] == b"1"
        if code == "E":  # nothing left (a postal item's removal: whether its dispatch is there)
            return [LinkResult(key, (), False, version, "", master=master)]
        expected = tuple(tuple(e.split("\x1e", 1)) for e in reply[3].decode().split("\x1f") if e) if master else None
        present = {_house_of(f.decode()) for f in reply[5:]}
        missing = missing_of(key, expected, present, reply[4].decode(), recipient)
        return [LinkResult(key, (), False, version, "", missing, master=master)]

    def overdue(self, now: float, retry_seconds: int, limit: int = 100) -> list[tuple[str, int, list[Member]]]:
        """Consignments past their deadline: (key, version, members), each claimed for retry_seconds;
        a filer's houses whose master is not filed under their own key (group_key). Postal items
        waiting for their dispatch come back one by one, under their own keys."""
        due = [self.keys.due(p) for p in range(self.keys.partitions)]
        calls = [([due[p], *(self.keys.hash(n.decode()) for n in names)], [f"{now:.3f}", retry_seconds, *names])
                 for p, names in enumerate(pipelined(self._client, [
                     (key, ("ZRANGEBYSCORE", key, "-inf", now, "LIMIT", 0, limit)) for key in due])) if names]
        out = []
        for r in (r for replies in self._sweep.run(calls) for r in replies):
            key, version, members = r[0].decode(), int(r[1]), [Member.from_body(b) for b in r[2:]]
            master, items = _master_and_houses(members)
            if per_item(key) and master is None and items:
                out += [(item_key(key, i.record.transport_document), version, [i]) for i in items]
            else:
                out.append((key, version, members))
        return out
