"""Redis Streams connectors: filings in through a consumer group; answers, referrals, decisions
and dead letters out, each effect written exactly once.

Keys (prefix cs by default; `StreamKeys` is the one place that names them):
    {p}:filings                     filings to screen (fields: filing, and optionally id, filer, received_at);
                                    trimmed as every consumer group finishes them (trim_finished)
    {p}:answers:{filer}             every answer for one filer (IE3R01, IE3N99, IE3N03, ...)
    {p}:referrals:{risk centre}     referrals (and their withdrawals) for one risk centre
    {p}:decisions                   every decision, referral or not
    {p}:decision-of:{consignment}   its latest decision (what a withdrawal withdraws), kept for the amendment window
    {p}:dead-letters                what no answer could be made for, with the reason
    {p}:fx:{effect key}             marker that an effect was written (expires after `effect_retention`)
    {p}:drain:{consumer}            set to ask a running consumer to stop reading and finish
    {p}:heartbeat:{consumer}        when the consumer last polled (ms since the epoch; the health endpoint)

Reading: `ReadFilingsFromStream` is a splittable DoFn, one restriction per consumer name. Each
call reads one batch (XREADGROUP ... BLOCK poll_ms: waiting costs nothing, no busy loop), emits
it and defers; the entries are acknowledged at the reader's next call (`AfterBundle`). The
runner resumes a deferred restriction only from the residual the finished bundle returned, and
every step after the reader is fused into that bundle and writes its effects before the bundle
ends (DeliverEffects flushes in finish_bundle): so an entry is acknowledged only after all its
effects are in Redis, without Beam's bundle finalization, which runners such as portable Flink
do not offer (ops/runners/). A crash before that leaves them pending: on restart the consumer
reads its own pending entries first, and takes over entries other consumers left idle for
`claim_idle_ms` (XAUTOCLAIM); their effects are idempotent (below). A residual resumed on
another worker, whose reader never emitted them, leaves them to that takeover too.

Writing: every effect carries a key naming what it is (the door answer to submission x; the
decision on consignment y in state z; see answering.answer_key). One Lua script per batch writes
the effects whose key is new and skips the others, atomically: a redelivered filing yields no
second answer, decision or referral (a re-sent one is another submission: its own door answer,
a repeat, and nothing more, see stages/register.py).
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
from apache_beam.pvalue import TaggedOutput
from apache_beam.transforms.core import RestrictionProvider
from apache_beam.utils.timestamp import Duration, Timestamp

from cargoscreen.answering import DeadLetter
from cargoscreen.config import Settings, StreamSettings
from cargoscreen.connectors.redis_store import OUTAGE, connect, with_retries
from cargoscreen.validation import Submission, utc_iso
from cargoscreen import metrics
from cargoscreen.counters import CounterFamily, counter

DEAD_LETTER = "dead_letter"
_OPEN_END = 2 ** 62  # an unbounded stream: positions are poll counts, never reached
BACKLOG_EVERY_SECONDS = 5.0  # how often a reader updates the lag gauges
OUTAGE_POLL_SECONDS = 0.5  # how often a reader tries again while Redis is away
HEARTBEAT_TTL_SECONDS = 60  # a reader silent this long has no heartbeat left at all


@dataclass(frozen=True)
class StreamKeys:
    prefix: str = "cs"

    @property
    def filings(self) -> str:
        return f"{self.prefix}:filings"

    def answers(self, filer: str | None) -> str:
        return f"{self.prefix}:answers:{filer or 'unknown'}"

    def referrals(self, risk_centre: str) -> str:
        """Tagged by centre: a Redis Cluster keeps it in one slot with the centre's workbench keys."""
        return f"{self.prefix}:referrals:{{{risk_centre}}}"

    @property
    def decisions(self) -> str:
        return f"{self.prefix}:decisions"

    def decision_of(self, consignment: str) -> str:
        return f"{self.prefix}:decision-of:{consignment}"

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

    def effect(self, key: str) -> str:
        return f"{self.prefix}:fx:{key}"

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


def entry_submission(stream: str, entry_id: bytes, fields: dict) -> Submission | DeadLetter:
    """A stream entry as a Submission; an entry without a filing is a dead letter, not an error."""
    entry = entry_id.decode()
    if not fields:  # XREADGROUP returns pending entries the stream has trimmed away as empty
        return DeadLetter(f"{stream}/{entry}", "read", "entry trimmed from the stream before it was screened", b"")
    payload = fields.get(b"filing")
    if payload is None:
        return DeadLetter(f"{stream}/{entry}", "read", "stream entry has no 'filing' field",
                          json.dumps({k.decode(errors="replace"): v.decode(errors="replace")
                                      for k, v in fields.items()}).encode())
    submission_id = fields.get(b"id", entry_id).decode(errors="replace")
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
        self._keys, self._reading = StreamKeys(settings.redis.key_prefix), settings.streams
        self._control = ReaderControl(settings.redis.url, settings.redis.key_prefix)
        self._read = counter("inputs")
        self._claimed = counter("stream_entries_claimed")

    def setup(self):
        self._client = connect(self._url)
        self._control.connect()
        ensure_group(self._client, self._keys.filings, self._reading.group)
        self._backlog_due = 0.0
        self._caught_up: set[str] = set()
        self._claim_due = 0.0
        self._finished = AfterBundle()

    def process(self, consumer: str, tracker=beam.DoFn.RestrictionParam(ConsumerRestrictions()),
                watermark=beam.DoFn.WatermarkEstimatorParam(ManualWatermarkEstimator.default_provider())):
        r, stream = self._reading, self._keys.filings
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
        except OUTAGE:  # Redis away: wait and poll again; what was read and not acknowledged stays pending
            metrics.REDIS_ERRORS.labels("read").inc()
            self._caught_up.discard(consumer)
            time.sleep(OUTAGE_POLL_SECONDS)
            tracker.defer_remainder(Duration(0))
            return
        if not entries and r.once and caught_up:
            finish(tracker)
            return
        if time.monotonic() >= self._backlog_due:
            self._show_backlog()
        for entry_id, fields in entries:
            self._read.inc()
            item = entry_submission(stream, entry_id, fields)
            yield TaggedOutput(DEAD_LETTER, item) if isinstance(item, DeadLetter) else item
        if entries:
            ids = [entry_id for entry_id, _ in entries]
            self._finished.hold(consumer, lambda: self._acknowledge(ids))
        tracker.defer_remainder(Duration(0))

    def _show_backlog(self) -> None:
        """The source's lag and pending entries as gauges, every few seconds (three Redis calls)."""
        from cargoscreen.health import stream_backlog  # health reads this module's keys

        self._backlog_due = time.monotonic() + BACKLOG_EVERY_SECONDS
        try:
            unread_age, pending, pending_age = stream_backlog(self._client, self._keys, self._reading.group,
                                                              int(time.time() * 1000))
        except redis.RedisError:
            return  # the next reads will say more
        metrics.SOURCE_LAG.labels("stream").set(max(unread_age, pending_age))
        metrics.SOURCE_BACKLOG.labels("stream", "pending").set(pending)

    def _read_entries(self, consumer: str, start: str, block_ms: int | None) -> list:
        reply = self._client.xreadgroup(self._reading.group, consumer, {self._keys.filings: start},
                                        count=self._reading.read_batch, block=block_ms)
        return reply[0][1] if reply else []

    def _pending_entries(self, consumer: str) -> list:
        entries, start = [], "0"
        while True:
            page = self._read_entries(consumer, start, None)
            if not page:
                return entries
            entries += page
            start = page[-1][0].decode()

    def _claim_stale(self, consumer: str) -> list:
        # Looked for twice per idle period: a stalled consumer's entries move within 1.5 x claim_idle_ms.
        self._claim_due = time.monotonic() + self._reading.claim_idle_ms / 2000
        reply = self._client.xautoclaim(self._keys.filings, self._reading.group, consumer,
                                        self._reading.claim_idle_ms, count=self._reading.read_batch)
        entries = reply[1]
        self._claimed.inc(len(entries))
        return entries

    def _acknowledge(self, ids: list) -> None:
        with_retries(self._retry, lambda: self._client.xack(self._keys.filings, self._reading.group, *ids), "ack")
        with_retries(self._retry, lambda: trim_finished(self._client, self._keys.filings), "ack")


def trim_finished(client: redis.Redis, stream: str) -> None:
    """Drops the entries every consumer group of the stream has finished (delivered and
    acknowledged), so the stream of filings stays as long as the work in hand. Writers add
    without MAXLEN: a length cap would drop filings nobody has read yet when a backlog grows."""
    floors = []
    for g in client.xinfo_groups(stream):
        floors.append(entry_key(g["last-delivered-id"]))  # kept itself: MINID drops only older ids
        if g["pending"]:
            floors.append(entry_key(client.xpending(stream, g["name"])["min"]))
    if floors:
        ms, seq = min(floors)
        client.xtrim(stream, minid=f"{ms}-{seq}", approximate=False)


class ReadFilingsFromStream(beam.PTransform):
    """Nothing in (a pipeline root); Submission out for each entry of the filings stream, read by
    the consumers named (one reader each: several names, several readers in one group).
    Output `dead_letter`: DeadLetter for an entry without a filing. Unbounded unless settings.streams.once."""

    def __init__(self, settings: Settings, consumers: list[str]):
        super().__init__()
        self._settings, self._consumers = settings, list(consumers)

    def expand(self, pbegin):
        return (pbegin
                | "Consumers" >> beam.Create(self._consumers)
                | "Read" >> beam.ParDo(_ReadStreamDoFn(self._settings)).with_outputs(
                    DEAD_LETTER, main="submissions"))


# -- effects -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Effect:
    """One thing to write once: an entry on `stream`, unless `key` was written before.

    When it is new, also: `latest` (key, value) is set, kept for the amendment window (the current
    decision of a consignment); `unschedule` (sorted set, member) is removed (a deadline it
    answers); the keys of `expire` are kept only for the amendment window from now (a decided
    consignment's members: linking.decided_keys)."""

    kind: str  # answer, decision, referral, dead-letter: for counting
    key: str
    stream: str
    fields: dict = field(hash=False)
    latest: tuple[str, str] | None = None
    unschedule: tuple[str, str] | None = None
    expire: tuple[str, ...] = ()


# Output streams are trimmed by length (MAXLEN ~) and by age (MINID ~: entries older than the
# retention), both approximate: Redis drops whole nodes of the stream, cheaply.
_DELIVER = """
local ttl, maxlen, minid, kept = tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4])
local n = (#ARGV - 4) / 8
local out, written = {}, {}
for i = 1, n do
  local b = 4 + 8 * (i - 1)
  local fx, stream, body = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  if redis.call('SET', fx, '1', 'NX', 'EX', ttl) then
    redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'effect', ARGV[b + 1], 'body', body)
    written[stream] = true
    if ARGV[b + 4] ~= '' then redis.call('SET', ARGV[b + 4], ARGV[b + 5], 'EX', kept) end
    if ARGV[b + 6] ~= '' then redis.call('ZREM', ARGV[b + 6], ARGV[b + 7]) end
    for key in string.gmatch(ARGV[b + 8], '[^\\31]+') do redis.call('EXPIRE', key, kept) end
    out[i] = 1
  else
    out[i] = 0
  end
end
for stream in pairs(written) do redis.call('XTRIM', stream, 'MINID', '~', minid) end  -- once per stream a batch wrote
return out
"""


class EffectWriter:
    """Writes effects in batches, each once (see the module's docstring)."""

    def __init__(self, client: redis.Redis, keys: StreamKeys, streams: StreamSettings, kept_seconds: int):
        self._client, self._keys, self._streams, self._kept = client, keys, streams, kept_seconds
        self._script = client.register_script(_DELIVER)

    @classmethod
    def for_settings(cls, client: redis.Redis, settings: Settings) -> "EffectWriter":
        return cls(client, StreamKeys(settings.redis.key_prefix), settings.streams,
                   settings.linking.amendment_window_seconds)

    def write(self, effects: list[Effect]) -> list[bool]:
        s = self._streams
        args: list = [s.effect_retention_seconds, s.maxlen,
                      int((time.time() - s.output_retention_seconds) * 1000), self._kept]
        for e in effects:
            args += [self._keys.effect(e.key), e.stream, json.dumps(e.fields, ensure_ascii=False, default=str),
                     *(e.latest or ("", "")), *(e.unschedule or ("", "")), "\x1f".join(e.expire)]
        return [bool(x) for x in self._script(args=args)] if effects else []


class _DeliverDoFn(beam.DoFn):
    def __init__(self, settings: Settings, batch: int):
        self._settings, self._batch = settings, batch

    def setup(self):
        self._writer = EffectWriter.for_settings(connect(self._settings.redis.url), self._settings)
        self._counts = CounterFamily("effects_")

    def start_bundle(self):
        self._pending: list[Effect] = []

    def process(self, effects):
        self._pending.extend(effects if isinstance(effects, (list, tuple)) else [effects])
        if len(self._pending) >= self._batch:
            self._flush()

    def finish_bundle(self):
        self._flush()  # before the bundle commits: the source acknowledges only after this

    def _flush(self):
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        written = with_retries(self._settings.redis, lambda: self._writer.write(pending), "deliver")
        for effect, new in zip(pending, written):
            self._counts.inc(f"{'written' if new else 'suppressed'}_{effect.kind}")


class DeliverEffects(beam.PTransform):
    """Effect (or lists of them) in; nothing out. Each effect written to its Redis stream once,
    in batches of `batch` per round trip, all of a bundle's before the bundle ends. Redis
    unreachable after retries fails the bundle: the runner retries it, nothing is acknowledged."""

    def __init__(self, settings: Settings, batch: int = 256):
        super().__init__()
        self._settings, self._batch = settings, batch

    def expand(self, effects):
        return effects | "Write" >> beam.ParDo(_DeliverDoFn(self._settings, self._batch))
