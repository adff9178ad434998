"""Loading a container-status feed: events in, the store filled, every rejection kept with its reasons."""
from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable


from .connectors.dcsa import DcsaEventChecker, JsonError, event_files, read_events
from .container_store import ContainerEventStore
from .connectors.redis_streams import ensure_group
from .domain.container_events import ContainerEvent, normalize


@dataclass
class LoadSummary:
    read: int = 0
    loaded: int = 0
    duplicates: int = 0
    rejected: Counter = field(default_factory=Counter)  # reason -> count
    unchecked_container_ids: int = 0  # loaded, but the container id fails ISO 6346: a data-quality fact

    @property
    def balanced(self) -> bool:
        return self.read == self.loaded + self.duplicates + sum(self.rejected.values())

    def balance(self) -> str:
        return (f"read {self.read} = loaded {self.loaded} + duplicates {self.duplicates} + rejected "
                f"{sum(self.rejected.values())}")

    def add(self, other: "LoadSummary") -> None:
        self.read += other.read
        self.loaded += other.loaded
        self.duplicates += other.duplicates
        self.rejected.update(other.rejected)
        self.unchecked_container_ids += other.unchecked_container_ids


EARLIEST_EVENT = 946684800.0  # 2000-01-01: no container event of interest is older (found by fuzzing: year 192)
LATEST_EVENT_AHEAD = 2 * 365 * 86400  # planned and estimated events lie ahead, not years ahead


def check_event(event: Any, checker) -> tuple[ContainerEvent | None, list[tuple[str, str, str]]]:
    """One event from a feed (parsed JSON, or a JsonError): normalized, or refused with each problem
    as (path, kind of check, message). Never raises: a feed's bad event is a rejection, not a crash."""
    if isinstance(event, JsonError):  # the line was not JSON (a JSON string is an event of the wrong type)
        return None, [("/", "json", str(event))]
    problems = checker.problems(event)
    if problems:
        return None, problems
    try:
        checked = normalize(event)
    except (ValueError, KeyError, TypeError, OverflowError) as exc:  # a date-time the schema lets through, etc.
        return None, [("/", "normalize", f"{type(exc).__name__}: {exc}")]
    if not EARLIEST_EVENT <= checked.event_time <= time.time() + LATEST_EVENT_AHEAD:
        return None, [("/eventDateTime", "range", f"{event.get('eventDateTime')} is not a plausible event time "
                                                  "(from 2000 to two years ahead)")]
    return checked, []


def load_events(items: Iterable[tuple[str, Any]], checker, store: ContainerEventStore,
                on_rejected: Callable[[str, Any, list], None], batch_size: int = 500,
                on_progress: Callable[[int], None] | None = None) -> LoadSummary:
    """items: (where it came from, the parsed event, or a connectors.dcsa.JsonError).

    While Redis stores one batch, the next is checked and normalized (one batch in flight):
    the store's work and ours overlap.
    """
    summary, batch = LoadSummary(), []

    def account(stored_batch, stored):
        new = sum(stored)
        summary.loaded += new
        summary.duplicates += len(stored) - new
        summary.unchecked_container_ids += sum(
            1 for e, s in zip(stored_batch, stored) if s and e.equipment_check_digit_ok is False)
        if on_progress:
            on_progress(summary.loaded + summary.duplicates + sum(summary.rejected.values()))

    with ThreadPoolExecutor(max_workers=1) as writer:
        in_flight = None
        for where, event in items:
            summary.read += 1
            checked, problems = check_event(event, checker)
            if checked is not None:
                batch.append(checked)
            else:
                summary.rejected[f"{problems[0][0]} ({problems[0][1]})"] += 1
                on_rejected(where, event, problems)
            if len(batch) >= batch_size:
                if in_flight:
                    account(in_flight[0], in_flight[1].result())
                in_flight = (batch, writer.submit(store.add, batch))
                batch = []
        if in_flight:
            account(in_flight[0], in_flight[1].result())
        if batch:
            account(batch, store.add(batch))
    return summary


def load_files(paths: list[Path], store: ContainerEventStore, rejected_path: Path,
               on_progress: Callable[[int], None] | None = None) -> tuple[LoadSummary, float, str]:
    """Loads DCSA event files (JSON lists, JSON lines, folders of them); rejected events with their
    reasons are appended to rejected_path as JSON lines (a second load keeps the first one's). Returns
    (summary, seconds, the DCSA version checked)."""
    checker = DcsaEventChecker()
    started = time.perf_counter()
    with rejected_path.open("a", encoding="utf-8") as rejected:
        items = ((where, event) for f in event_files(paths) for where, event in read_events(f))
        summary = load_events(items, checker, store,
                              on_rejected=lambda w, e, p: rejected.write(rejected_record(w, e, p) + "\n"),
                              on_progress=on_progress)
    return summary, time.perf_counter() - started, checker.version


def rejected_record(where: str, event: Any, problems: list) -> str:
    return json.dumps({"source": where, "reasons": [f"{p}: {m}" for p, _, m in problems], "event": event},
                      ensure_ascii=False, default=str)


def follow_stream(client, stream: str, group: str, consumer: str, checker, store: ContainerEventStore,
                  on_rejected: Callable[[str, Any, list], None], batch_size: int = 500, block_ms: int = 1000,
                  once: bool = False, stop: Callable[[], bool] = lambda: False) -> LoadSummary:
    """Loads events arriving on a Redis Stream (field `event`: one DCSA event as JSON).

    Read through a consumer group; an entry is acknowledged only once its event is stored
    (or rejected with its reasons), so a crash loses nothing: on start, the consumer first
    re-reads its own entries that were delivered but not acknowledged. The store is
    idempotent on eventID, so a redelivered event counts as a duplicate, never twice.
    once: stop when the stream has nothing new (for batch jobs and tests).
    """
    ensure_group(client, stream, group)
    total = LoadSummary()
    start_id = "0"  # our own pending entries first, then new ones
    while not stop():
        reply = client.xreadgroup(group, consumer, {stream: start_id}, count=batch_size,
                                  block=None if start_id == "0" else block_ms)
        entries = reply[0][1] if reply else []
        if not entries:
            if start_id == "0":
                start_id = ">"
                continue
            if once:
                break
            continue
        items = []
        for entry_id, fields in entries:
            raw = fields.get(b"event", b"")
            try:
                items.append((f"{stream}/{entry_id.decode()}", json.loads(raw)))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                items.append((f"{stream}/{entry_id.decode()}", JsonError(f"not valid JSON: {exc}")))
        part = load_events(items, checker, store, on_rejected, batch_size=batch_size)
        client.xack(stream, group, *[entry_id for entry_id, _ in entries])
        total.add(part)
    return total


def rejected_to_stream(client, stream: str) -> Callable[[str, Any, list], None]:
    """Dead letters for a live feed: each rejected event, with its reasons, on `<stream>:rejected`."""
    def write(where: str, event: Any, problems: list) -> None:
        client.xadd(f"{stream}:rejected", {"source": where, "record": rejected_record(where, event, problems)},
                    maxlen=1_000_000, approximate=True)
    return write
