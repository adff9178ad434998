"""Redis Streams connectors: filings in through a consumer group; answers, referrals, decisions
and dead letters out, each effect written exactly once.

Keys (prefix cs by default; `StreamKeys` is the one place that names them):
    {p}:{p<n>}:filings              filings to screen, one stream per partition (settings.streams.partitions;
                                    fields: filing, and optionally id, filer, received_at), each filing in its
                                    consignment's partition (routed at the door: filings_for); trimmed as
                                    every consumer group finishes them (trim_finished)
    {p}:answers:{filer}             every answer for one filer (IE3R01, IE3N99, IE3N03, ...)
    {p}:referrals:{risk centre}     referrals (and their withdrawals) for one risk centre
    {p}:decisions                   every decision, referral or not
    {p}:{p<n>}:decision-of:{consignment}  its latest decision (what a withdrawal withdraws), kept for the
                                    amendment window, in its consignment's partition (linking.ConsignmentKeys)
    {p}:dead-letters                what no answer could be made for, with the reason
    {p}:fx:{{stream}}:{effect key}  marker that an effect was written to that stream (its slot: the
                                    stream's name, or its tag, as the tag)
    {p}:fx:{p<n>}:{effect key}      marker that an effect's changes to its consignment's state were made
                                    (both expire after `effect_retention`)
    {p}:drain:{consumer}            set to ask a running consumer to stop reading and finish
    {p}:heartbeat:{consumer}        when the consumer last polled (ms since the epoch; the health endpoint)

Reading: `ReadFilingsFromStream` is a splittable DoFn, one restriction per consumer name; every
consumer reads every partition, in one consumer group per partition's stream (Redis hands each
entry to one consumer; a dead consumer's entries are claimed by the others, below). Each call reads
one batch (on one Redis XREADGROUP ... BLOCK poll_ms over all partitions: waiting costs nothing;
on a cluster, where one command cannot span slots, one read per partition in one pipeline and a
short sleep when all were empty), emits it and defers; the entries are acknowledged at the reader's
next call (`AfterBundle`). The runner resumes a deferred restriction only from the residual the finished bundle returned, and
every step after the reader is fused into that bundle and writes its effects before the bundle
ends (DeliverEffects flushes in finish_bundle): so an entry is acknowledged only after all its
effects are in Redis, without Beam's bundle finalization, which runners such as portable Flink
do not offer (ops/runners/). A crash before that leaves them pending: on restart the consumer
reads its own pending entries first, and takes over entries other consumers left idle for
`claim_idle_ms` (XAUTOCLAIM); their effects are idempotent (below). A residual resumed on
another worker, whose reader never emitted them, leaves them to that takeover too.

Writing: every effect carries a key naming what it is (the door answer to submission x; the
decision on consignment y in state z; see answering.answer_key). An effect writes its stream entry
once, guarded by a marker beside the stream (same slot), and, for a decision, changes its
consignment's state once, guarded by a marker in the consignment's partition: each part atomic in
its slot, each written once however often the effect comes (a crash between the two parts leaves
the other to the redelivery). One script call per slot for a whole batch, all in one pipeline (one
call in all on a single Redis): a redelivered filing yields no second answer, decision or referral
(a re-sent one is another submission: its own door answer, a repeat, and nothing more, see
stages/register.py).
"""
from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import apache_beam as beam
import redis
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.transforms.core import RestrictionProvider
from apache_beam.utils.timestamp import Duration, Timestamp

from cargoscreen.answering import DeadLetter
from cargoscreen.config import Settings, StreamSettings
from cargoscreen.connectors.redis_slots import SlotScript, partition_of, partition_tag, pipelined
from cargoscreen.connectors.redis_store import OUTAGE, connect, hash_tag, is_cluster, with_retries
from cargoscreen.domain import compact_json
from cargoscreen.linking import ConsignmentKeys
from cargoscreen.validation import Submission, utc_iso
from cargoscreen import metrics
from cargoscreen.counters import CounterFamily, CountsPerBundle, counter
from cargoscreen.stages.batches import TaggedBatches, batched_pardo

DEAD_LETTER, SUBMISSIONS = "dead_letter", "submissions"
_OPEN_END = 2 ** 62  # an unbounded stream: positions are poll counts, never reached
BACKLOG_EVERY_SECONDS = 5.0  # how often a reader updates the lag gauges
OUTAGE_POLL_SECONDS = 0.5  # how often a reader tries again while Redis is away
HEARTBEAT_TTL_SECONDS = 60  # a reader silent this long has no heartbeat left at all
CLUSTER_IDLE_MS = 20  # on a cluster, how long a reader waits after finding every partition empty
TRIM_EVERY_SECONDS = 1.0  # how often a reader trims a partition's stream of what is finished


@dataclass(frozen=True)
class StreamKeys:
    prefix: str = "cs"
    partitions: int = StreamSettings().partitions

    @classmethod
    def for_settings(cls, settings: Settings) -> "StreamKeys":
        return cls(settings.redis.key_prefix, settings.streams.partitions)

    def filing_stream(self, partition: int) -> str:
        return f"{self.prefix}:{partition_tag(partition)}:filings"

    @property
    def filing_streams(self) -> tuple[str, ...]:
        return tuple(self.filing_stream(p) for p in range(self.partitions))

    @property
    def filings(self) -> str:
        """The first partition's stream: where a filing with no routing name goes (tests queue there)."""
        return self.filing_stream(0)

    def filings_for(self, routing_name: str) -> str:
        """The stream of a filing's partition, by its routing name (linking.routing_name)."""
        return self.filing_stream(partition_of(routing_name, self.partitions))

    @property
    def consignments(self) -> ConsignmentKeys:
        return ConsignmentKeys(self.prefix, self.partitions)

    def answers(self, filer: str | None) -> str:
        return f"{self.prefix}:answers:{filer or 'unknown'}"

    def referrals(self, risk_centre: str) -> str:
        """Tagged by centre: a Redis Cluster keeps it in one slot with the centre's workbench keys."""
        return f"{self.prefix}:referrals:{{{risk_centre}}}"

    @property
    def decisions(self) -> str:
        return f"{self.prefix}:decisions"

    def decision_of(self, consignment: str) -> str:
        return self.consignments.decision_of(consignment)

    @property
    def rfi_answers(self) -> str:
        """Filers' answers to requests for information (the ingress writes, the workbench reads)."""
        return f"{self.prefix}:rfi-answers"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}:dead-letters"

    @property
    def rejudge(self) -> str:
        """Watched containers with new status events (the container store writes, rejudge.py reads)."""
        return f"{self.prefix}:rejudge"

    def marker(self, beside: str, effect: str) -> str:
        """That `effect` was written, in the slot of the key `beside` (its stream, or its consignment's
        keys): under that key's hash tag, or the key's whole name as the tag if it has none."""
        return f"{self.prefix}:fx:{{{hash_tag(beside)}}}:{effect}"

    def drain(self, consumer: str) -> str:
        return f"{self.prefix}:drain:{consumer}"

    def heartbeat(self, consumer: str) -> str:
        return f"{self.prefix}:heartbeat:{consumer}"


def ensure_group(client: redis.Redis, stream: str, group: str) -> None:
    """The consumer group on `stream`, reading from its start (created with the stream if need be)."""
    try:
        client.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def read_group(client: redis.Redis, stream: str, group: str, consumer: str, count: int) -> list:
    """(entry id, fields) for `consumer`: first its own pending entries (what it read before a crash
    and did not finish), then new ones; at most `count` of each, without blocking."""
    out = []
    for start in ("0", ">"):
        try:
            reply = client.xreadgroup(group, consumer, {stream: start}, count=count)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            ensure_group(client, stream, group)  # first read of a new stream or group: no round trip each time
            reply = client.xreadgroup(group, consumer, {stream: start}, count=count)
        for _, entries in reply or ():
            out.extend(entries)
    return out


def default_consumer(index: int = 0) -> str:
    """Stable across restarts on one host, so a restarted worker finds its own pending entries."""
    return f"{socket.gethostname()}-{index}"


def entry_key(entry_id: bytes | str) -> tuple[int, int]:
    """A stream entry id as (milliseconds since the epoch when Redis took it, sequence): it sorts
    as Redis orders entries, and its first part is the entry's age."""
    ms, _, seq = (entry_id.decode() if isinstance(entry_id, bytes) else entry_id).partition("-")
    return int(ms), int(seq or 0)


def entry_submission(stream: str, entry_id: bytes, fields: dict, first: bool = True) -> Submission | DeadLetter:
    """A stream entry as a Submission; an entry without a filing is a dead letter, not an error.
    first: the stream is the first partition's, whose entry ids name submissions that carry no id of
    their own (as with one stream); another partition's carry its stream's name too (ids repeat across streams)."""
    entry = entry_id.decode()
    if not fields:  # XREADGROUP returns pending entries the stream has trimmed away as empty
        return DeadLetter(f"{stream}/{entry}", "read", "entry trimmed from the stream before it was screened", b"")
    payload = fields.get(b"filing")
    if payload is None:
        return DeadLetter(f"{stream}/{entry}", "read", "stream entry has no 'filing' field",
                          json.dumps({k.decode(errors="replace"): v.decode(errors="replace")
                                      for k, v in fields.items()}).encode(),
                          filer=fields.get(b"filer", b"").decode(errors="replace"))
    submission_id = fields[b"id"].decode(errors="replace") if b"id" in fields else entry if first \
        else f"{entry}@{stream}"
    received = fields.get(b"received_at")
    if received is None:  # the entry id is the time Redis took it
        ms = entry_key(entry)[0]
        received_at = utc_iso(datetime.fromtimestamp(ms // 1000, timezone.utc).replace(microsecond=ms % 1000 * 1000))
    else:
        received_at = received.decode()
    filer = fields.get(b"filer")
    return Submission(submission_id, payload, received_at, filer.decode() if filer else None)


class _OpenEndedTracker(OffsetRestrictionTracker):
    """Positions are polls. Only checkpoints split it (a consumer is one reader, not divisible)."""

    def try_split(self, fraction_of_remainder):
        return super().try_split(0) if fraction_of_remainder == 0 else None

    def is_bounded(self):
        return False


class ReaderControl:
    """A reader's line to the operator, one round trip per poll: it leaves the reader's
    heartbeat (which the health endpoint reads) and says whether a drain was asked. Picklable;
    `connect` in DoFn.setup."""

    def __init__(self, url: str, prefix: str):
        self._url, self._keys = url, StreamKeys(prefix)

    def connect(self) -> None:
        self._client = connect(self._url)

    def should_stop(self, reader: str) -> bool:
        pipe = self._client.pipeline(transaction=False)
        pipe.set(self._keys.heartbeat(reader), int(time.time() * 1000), ex=HEARTBEAT_TTL_SECONDS)
        pipe.exists(self._keys.drain(reader))
        return bool(pipe.execute()[1])


def claim_poll(tracker, watermark, stop) -> int | None:
    """Claims a reader's next poll and moves its watermark to now; None when there is nothing to
    do: the restriction was split away, or stop() asks the reader to end (it is then finished)."""
    position = tracker.current_restriction().start
    if not tracker.try_claim(position):
        return None
    watermark.set_watermark(Timestamp.now())
    if stop():
        finish(tracker)
        return None
    return position


def finish(tracker) -> None:
    """Ends a reader's restriction here: the source stops (drained, or once with nothing left)."""
    tracker.try_claim(tracker.current_restriction().stop - 1)


class AfterBundle:
    """What a reader does with its last batch once the bundle that carried it has finished, and so
    every effect of the batch is written (the module's docstring): per reader, the action of its
    previous call, run at the start of its next. An action that fails stays held for the next try."""

    def __init__(self):
        self._held: dict[str, object] = {}

    def hold(self, reader: str, action) -> None:
        self._held[reader] = action

    def settle(self, reader: str) -> None:
        action = self._held.pop(reader, None)
        if action is not None:
            try:
                action()
            except BaseException:
                self._held.setdefault(reader, action)
                raise


class ConsumerRestrictions(RestrictionProvider):
    """One open-ended restriction per reader (a consumer name, a folder): positions are polls."""

    def initial_restriction(self, consumer):
        return OffsetRange(0, _OPEN_END)

    def create_tracker(self, restriction):
        return _OpenEndedTracker(restriction)

    def restriction_size(self, consumer, restriction):
        return 1

    def split(self, consumer, restriction):
        yield restriction

    def truncate(self, consumer, restriction):
        return None  # a runner draining the job: stop reading, what was read is finished


class _ReadStreamDoFn(beam.DoFn):
    def __init__(self, settings: Settings):
        self._url, self._retry = settings.redis.url, settings.redis
        self._keys, self._reading = StreamKeys.for_settings(settings), settings.streams
        self._control = ReaderControl(settings.redis.url, settings.redis.key_prefix)
        self._read = counter("inputs")
        self._claimed = counter("stream_entries_claimed")

    def setup(self):
        self._client = connect(self._url)
        self._control.connect()
        self._streams = self._keys.filing_streams
        # A worker (re)starting while a master fails over waits for the new one, as every read does
        with_retries(self._retry, lambda: [ensure_group(self._client, s, self._reading.group) for s in self._streams],
                     "read")
        self._per_stream = max(1, -(-self._reading.read_batch // len(self._streams)))
        self._backlog_due = 0.0
        self._caught_up: set[str] = set()
        self._claim_due = 0.0
        self._trim_due: dict[str, float] = {}
        self._untrimmed: set[str] = set()
        self._finished = AfterBundle()

    def process(self, consumer: str, tracker=beam.DoFn.RestrictionParam(ConsumerRestrictions()),
                watermark=beam.DoFn.WatermarkEstimatorParam(ManualWatermarkEstimator.default_provider())):
        r = self._reading
        try:
            self._finished.settle(consumer)  # the previous batch's bundle is done: acknowledged now
            position = claim_poll(tracker, watermark, lambda: self._control.should_stop(consumer))
            if position is None:
                return
            caught_up = consumer in self._caught_up
            if not caught_up:  # (re)started, or back from an outage: its own unacknowledged entries first
                entries = self._pending_entries(consumer)
                self._caught_up.add(consumer)
            else:
                entries = self._claim_stale(consumer) if time.monotonic() >= self._claim_due else []
                entries = entries or self._read_entries(consumer, ">", r.poll_ms)
                if not entries:
                    self._trim()
        except OUTAGE:  # Redis away: wait and poll again; what was read and not acknowledged stays pending
            metrics.REDIS_ERRORS.labels("read").inc()
            self._caught_up.discard(consumer)
            time.sleep(OUTAGE_POLL_SECONDS)
            tracker.defer_remainder(Duration(0))
            return
        if not entries and r.once and caught_up:
            self._trim(at_once=True)  # the run ends: what it finished leaves the stream now, not in a second
            finish(tracker)
            return
        if time.monotonic() >= self._backlog_due:
            self._show_backlog()
        first = self._streams[0]
        self._read.inc(len(entries))
        out = TaggedBatches(SUBMISSIONS)  # one hand-over per poll, not per entry (stages/batches.py)
        for stream, entry_id, fields in entries:
            item = entry_submission(stream, entry_id, fields, stream == first)
            out.add(DEAD_LETTER if isinstance(item, DeadLetter) else SUBMISSIONS, item)
        yield from out.emit()
        if entries:
            done = [(stream, entry_id) for stream, entry_id, _ in entries]
            self._finished.hold(consumer, lambda: self._acknowledge(done))
        tracker.defer_remainder(Duration(0))

    def _show_backlog(self) -> None:
        """The source's lag and pending entries as gauges, every few seconds (three Redis calls a partition)."""
        from cargoscreen.health import stream_backlog  # health reads this module's keys

        self._backlog_due = time.monotonic() + BACKLOG_EVERY_SECONDS
        try:
            unread_age, pending, pending_age = stream_backlog(self._client, self._keys, self._reading.group,
                                                              int(time.time() * 1000))
        except redis.RedisError:
            return  # the next reads will say more
        metrics.SOURCE_LAG.labels("stream").set(max(unread_age, pending_age))
        metrics.SOURCE_BACKLOG.labels("stream", "pending").set(pending)

    def _read_entries(self, consumer: str, start: str | dict, block_ms: int | None) -> list:
        """(stream, entry id, fields) from every partition: `start` for all, or per stream."""
        starts = start if isinstance(start, dict) else dict.fromkeys(self._streams, start)
        group, count = self._reading.group, self._per_stream
        if not is_cluster(self._client):  # one command over every stream, blocking in Redis while all are empty
            replies = self._client.xreadgroup(group, consumer, starts, count=count, block=block_ms) or []
        else:  # a command per slot, every master at once, and a short wait of ours when nothing came
            replies = [reply[0] for reply in pipelined(self._client, [
                (stream, ("XREADGROUP", "GROUP", group, consumer, "COUNT", count, "STREAMS", stream, at))
                for stream, at in starts.items()]) if reply]
            if block_ms and not any(entries for _, entries in replies):
                time.sleep(min(block_ms, CLUSTER_IDLE_MS) / 1000)
        return [(stream.decode() if isinstance(stream, bytes) else stream, entry_id, fields)
                for stream, entries in replies for entry_id, fields in entries]

    def _pending_entries(self, consumer: str) -> list:
        entries, starts = [], dict.fromkeys(self._streams, "0")
        while starts:
            page = self._read_entries(consumer, starts, None)
            entries += page
            last = {stream: entry_id for stream, entry_id, _ in page}  # in order: each stream's last
            starts = {stream: entry_id.decode() for stream, entry_id in last.items()}
        return entries

    def _claim_stale(self, consumer: str) -> list:
        # Looked for twice per idle period: a stalled consumer's entries move within 1.5 x claim_idle_ms.
        self._claim_due = time.monotonic() + self._reading.claim_idle_ms / 2000
        r = self._reading
        replies = pipelined(self._client, [(stream, ("XAUTOCLAIM", stream, r.group, consumer, r.claim_idle_ms, "0-0",
                                                     "COUNT", self._per_stream)) for stream in self._streams])
        entries = [(stream, entry_id, fields) for stream, reply in zip(self._streams, replies)
                   for entry_id, fields in reply[1]]
        self._claimed.inc(len(entries))
        return entries

    def _acknowledge(self, done: list) -> None:
        by_stream: dict[str, list] = {}
        for stream, entry_id in done:
            by_stream.setdefault(stream, []).append(entry_id)

        def ack():
            pipelined(self._client, [(stream, ("XACK", stream, self._reading.group, *ids))
                                     for stream, ids in by_stream.items()])

        with_retries(self._retry, ack, "ack")
        self._untrimmed.update(by_stream)
        self._trim()

    def _trim(self, at_once: bool = False) -> None:
        """Trims the streams acknowledged in since their last trim: three calls a stream, so at most
        once a second each, not after every bundle (an idle poll trims what is left)."""
        now = time.monotonic()
        for stream in [s for s in self._untrimmed if at_once or now >= self._trim_due.get(s, 0.0)]:
            self._trim_due[stream] = now + TRIM_EVERY_SECONDS
            with_retries(self._retry, lambda: trim_finished(self._client, stream), "ack")
            self._untrimmed.discard(stream)


def trim_finished(client: redis.Redis, stream: str) -> None:
    """Drops the entries every consumer group of the stream has finished (delivered and
    acknowledged), so the stream of filings stays as long as the work in hand. Writers add
    without MAXLEN: a length cap would drop filings nobody has read yet when a backlog grows."""
    floors = []
    for g in client.xinfo_groups(stream):
        floors.append(entry_key(g["last-delivered-id"]))  # kept itself: MINID drops only older ids
        if g["pending"]:
            pending = client.xpending(stream, g["name"])  # another worker may have finished them meanwhile
            if pending["pending"]:
                floors.append(entry_key(pending["min"]))
    if floors:
        ms, seq = min(floors)
        client.xtrim(stream, minid=f"{ms}-{seq}", approximate=False)


class ReadFilingsFromStream(beam.PTransform):
    """Nothing in (a pipeline root); a Batch of Submissions out for each read of the filings stream (one
    per entry), read by the consumers named (one reader each: several names, several readers in one group).
    Output `dead_letter`: Batches of DeadLetters, for entries without a filing. Unbounded unless
    settings.streams.once."""

    def __init__(self, settings: Settings, consumers: list[str]):
        super().__init__()
        self._settings, self._consumers = settings, list(consumers)

    def expand(self, pbegin):
        return (pbegin
                | "Consumers" >> beam.Create(self._consumers)
                | "Read" >> batched_pardo(_ReadStreamDoFn(self._settings), SUBMISSIONS, DEAD_LETTER))


# -- effects -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Effect:
    """One thing to write once: an entry on `stream`, unless `key` was written before.

    And once, in its consignment's slot (the keys of all three share the tag of its partition:
    linking.ConsignmentKeys): `latest` (key, value) is set, kept for the amendment window (the
    current decision of a consignment); `unschedule` (sorted set, member) is removed (a deadline
    it answers); the keys of `expire` are kept only for the amendment window from now (a decided
    consignment's members: linking.decided_keys)."""

    kind: str  # answer, decision, referral, dead-letter: for counting
    key: str
    stream: str
    fields: dict = field(hash=False)
    latest: tuple[str, str] | None = None
    unschedule: tuple[str, str] | None = None
    expire: tuple[str, ...] = ()


# Per part, KEYS: its marker, then for a stream entry (S) the stream, for a consignment's state (T)
# the keys of `latest` and `unschedule` (each only if given) and those to `expire`. ARGV: the
# retentions, then per part: S or T, its key count, and for S the effect's key and body; for T
# whether it sets latest (1/0) and the value, whether it unschedules and the member. Output streams
# are trimmed by length (MAXLEN ~) and by age (MINID ~: entries older than the retention), both
# approximate: Redis drops whole nodes of the stream, cheaply.
_DELIVER = """
local ttl, maxlen, minid, kept = tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4])
local out, written = {}, {}
local a, k, i = 5, 1, 0
while a <= #ARGV do
  local op, n, marker = ARGV[a], tonumber(ARGV[a + 1]), KEYS[k]
  local new = redis.call('SET', marker, '1', 'NX', 'EX', ttl)
  i = i + 1
  out[i] = new and 1 or 0
  if op == 'S' then
    if new then
      redis.call('XADD', KEYS[k + 1], 'MAXLEN', '~', maxlen, '*', 'effect', ARGV[a + 2], 'body', ARGV[a + 3])
      written[KEYS[k + 1]] = true
    end
  elseif new then
    local at = k + 1
    if ARGV[a + 2] == '1' then redis.call('SET', KEYS[at], ARGV[a + 3], 'EX', kept); at = at + 1 end
    if ARGV[a + 4] == '1' then redis.call('ZREM', KEYS[at], ARGV[a + 5]); at = at + 1 end
    for e = at, k + n - 1 do redis.call('EXPIRE', KEYS[e], kept) end
  end
  k = k + n
  a = a + (op == 'S' and 4 or 6)
end
for stream in pairs(written) do redis.call('XTRIM', stream, 'MINID', '~', minid) end  -- once per stream a call wrote
return out
"""


class EffectWriter:
    """Writes effects in batches, each once (see the module's docstring)."""

    def __init__(self, client: redis.Redis, keys: StreamKeys, streams: StreamSettings, kept_seconds: int):
        self._client, self._keys, self._streams, self._kept = client, keys, streams, kept_seconds
        self._script = SlotScript(client, _DELIVER)
        self._cluster = is_cluster(client)

    @classmethod
    def for_settings(cls, client: redis.Redis, settings: Settings) -> "EffectWriter":
        return cls(client, StreamKeys.for_settings(settings), settings.streams,
                   settings.linking.amendment_window_seconds)

    def _slot(self, key: str) -> int:
        """The call a part goes in: its key's slot on a cluster; one call for everything on one Redis."""
        return self._client.keyslot(key) if self._cluster else 0

    def write(self, effects: list[Effect]) -> list[bool]:
        """Whether each effect's stream entry was new (False: written before, by an earlier delivery)."""
        if not effects:
            return []
        s = self._streams
        head = [s.effect_retention_seconds, s.maxlen, int((time.time() - s.output_retention_seconds) * 1000),
                self._kept]
        calls: dict[int, tuple[list, list, list]] = {}  # slot -> keys, args, (effect, is the stream part)

        def part(slot_key: str, keys: list, args: list, index: int, entry: bool) -> None:
            call = calls.setdefault(self._slot(slot_key), ([], list(head), []))
            call[0].extend(keys)
            call[1].extend(args)
            call[2].append((index, entry))

        for n, e in enumerate(effects):
            body = compact_json.dumps(e.fields)  # orjson: a decision's 3 KB at a third of json's cost
            part(e.stream, [self._keys.marker(e.stream, e.key), e.stream], ["S", 2, e.key, body], n, True)
            state = [k for k in ((e.latest or ("",))[0], (e.unschedule or ("",))[0]) if k] + list(e.expire)
            if state:
                part(state[0], [self._keys.marker(state[0], e.key), *state],
                     ["T", len(state) + 1, "1" if e.latest else "0", e.latest[1] if e.latest else "",
                      "1" if e.unschedule else "0", e.unschedule[1] if e.unschedule else ""], n, False)
        written = [False] * len(effects)
        for (_, _, parts), replies in zip(calls.values(), self._script.run([(k, a) for k, a, _ in calls.values()])):
            for (index, entry), new in zip(parts, replies):
                if entry:
                    written[index] = bool(new)
        return written


class _DeliverDoFn(CountsPerBundle, beam.DoFn):
    def __init__(self, settings: Settings, batch: int, effects_of):
        self._settings, self._batch, self._effects_of = settings, batch, effects_of

    def setup(self):
        self._writer = EffectWriter.for_settings(connect(self._settings.redis.url), self._settings)
        self._counts = CounterFamily("effects_")

    def start_bundle(self):
        super().start_bundle()
        self._pending: list[Effect] = []

    def process(self, batch: list):
        for element in batch:
            made = self._effects_of(element)
            if isinstance(made, Effect):
                self._pending.append(made)
            else:
                self._pending.extend(made)
        if len(self._pending) >= self._batch:
            self._flush()

    def finish_bundle(self):
        self._flush()  # before the bundle commits: the source acknowledges only after this
        super().finish_bundle()

    def _flush(self):
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        written = with_retries(self._settings.redis, lambda: self._writer.write(pending), "deliver")
        for effect, new in zip(pending, written):
            self._counts.inc(f"{'written' if new else 'suppressed'}_{effect.kind}")


def _as_effects(element):
    return element


class DeliverEffects(beam.PTransform):
    """Batches of outcomes in (answers, decisions, ...); nothing out. `effects_of` makes the Effect (or
    the list of them) of each outcome: by default the outcomes are Effects already. Each effect written
    to its Redis stream once, in batches of `batch` per round trip, all of a bundle's before the bundle
    ends. Redis unreachable after retries fails the bundle: the runner retries it, nothing is acknowledged."""

    def __init__(self, settings: Settings, effects_of=_as_effects, batch: int = 256):
        super().__init__()
        self._settings, self._effects_of, self._batch = settings, effects_of, batch

    def expand(self, outcomes):
        return outcomes | "Write" >> beam.ParDo(_DeliverDoFn(self._settings, self._batch, self._effects_of))
