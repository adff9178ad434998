"""A drop folder as an unbounded source: files put there are screened, then moved aside.

    FOLDER/            writers put `*.xml` here, written elsewhere (or under a hidden or
                       non-.xml name) and renamed in: a file is only read once it is whole
    FOLDER/.processing taken by a reader (the rename is the claim: two readers never share one)
    FOLDER/done/DAY/   screened: moved here at the reader's next call, once the bundle that carried
                       the file, and so every effect of it, is done (redis_streams.AfterBundle)

A reader started after a crash takes `.processing` first (those files were read, maybe not
finished): their effects are idempotent. As a guard against writers that write in place,
a file is taken only once it has not changed for `settle_seconds`.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import apache_beam as beam
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.utils.timestamp import Duration

from cargoscreen.answering import DeadLetter
from cargoscreen.connectors.redis_streams import (DEAD_LETTER, SUBMISSIONS, AfterBundle, ConsumerRestrictions,
                                                  ReaderControl, claim_poll, finish)
from cargoscreen.stages.batches import TaggedBatches, batched_pardo
from cargoscreen.validation import Submission
from cargoscreen.counters import counter

PROCESSING, DONE = ".processing", "done"


def ready_files(folder: Path, settle_seconds: float, now: float, limit: int) -> list[Path]:
    """Whole `.xml` files in the folder itself (not hidden, unchanged for settle_seconds), oldest first."""
    found = []
    with os.scandir(folder) as entries:
        for e in entries:
            if e.name.startswith(".") or not e.name.endswith(".xml") or not e.is_file():
                continue
            mtime = e.stat().st_mtime
            if now - mtime >= settle_seconds:
                found.append((mtime, e.name))
    return [folder / name for _, name in sorted(found)[:limit]]


class _WatchFolderDoFn(beam.DoFn):
    def __init__(self, max_bytes: int, settle_seconds: float, poll_seconds: float, batch: int, once: bool,
                 control: tuple[ReaderControl, str] | None):
        self._max_bytes, self._settle, self._poll = max_bytes, settle_seconds, poll_seconds
        self._batch, self._once, self._control = batch, once, control
        self._inputs = counter("inputs")

    def setup(self):
        if self._control:
            self._control[0].connect()
        self._finished = AfterBundle()

    def process(self, folder: str, tracker=beam.DoFn.RestrictionParam(ConsumerRestrictions()),
                watermark=beam.DoFn.WatermarkEstimatorParam(ManualWatermarkEstimator.default_provider())):
        self._finished.settle(folder)  # the previous files' bundle is done: moved to done/ now
        position = claim_poll(tracker, watermark,
                              lambda: self._control is not None and self._control[0].should_stop(self._control[1]))
        if position is None:
            return
        root = Path(folder)
        processing = root / PROCESSING
        processing.mkdir(parents=True, exist_ok=True)
        if position == 0:  # left by a reader that stopped before finishing them
            taken = sorted(processing.glob("*.xml"))
        else:
            taken = [t for t in (self._take(f, processing) for f in
                                 ready_files(root, self._settle, time.time(), self._batch)) if t]
        if not taken and position > 0:
            if self._once:
                finish(tracker)
                return
            time.sleep(self._poll)  # nothing there: wait before the next look, never spin
        self._inputs.inc(len(taken))
        out = TaggedBatches(SUBMISSIONS)  # one hand-over per poll (stages/batches.py)
        for path in taken:
            try:
                with path.open("rb") as f:
                    payload = f.read(self._max_bytes + 1)  # one byte over: validation refuses it by size
            except OSError as exc:
                out.add(DEAD_LETTER, DeadLetter(path.name, "read", f"unreadable: {exc}", b""))
                continue
            out.add(SUBMISSIONS, Submission(path.name, payload))
        yield from out.emit()
        if taken:
            self._finished.hold(folder, lambda: self._move_done(root, taken))
        tracker.defer_remainder(Duration(0))

    @staticmethod
    def _take(path: Path, processing: Path) -> Path | None:
        target = processing / path.name
        try:
            os.rename(path, target)  # atomic: the reader whose rename succeeds owns the file
        except FileNotFoundError:
            return None
        return target

    @staticmethod
    def _move_done(root: Path, paths: list[Path]) -> None:
        day = root / DONE / time.strftime("%Y-%m-%d", time.gmtime())
        day.mkdir(parents=True, exist_ok=True)
        for p in paths:
            try:
                os.replace(p, day / p.name)
            except FileNotFoundError:
                pass  # finalized twice: already moved


class WatchDropFolder(beam.PTransform):
    """Nothing in (a pipeline root); a Batch of Submissions out for each look into the folder, one for
    each whole `*.xml` file dropped into it, its id the file name. Output `dead_letter`: Batches of
    DeadLetters, for files that cannot be read.
    Unbounded unless once (then it stops when the folder has nothing ready); control: (ReaderControl,
    reader name): heartbeat and drain, as for the stream reader."""

    def __init__(self, folder: Path, max_bytes: int, once: bool = False, settle_seconds: float = 0.5,
                 poll_seconds: float = 0.5, batch: int = 500, control: tuple[ReaderControl, str] | None = None):
        super().__init__()
        self._folder = str(folder)
        self._fn = _WatchFolderDoFn(max_bytes, settle_seconds, poll_seconds, batch, once, control)

    def expand(self, pbegin):
        return (pbegin
                | "Folder" >> beam.Create([self._folder])
                | "Watch" >> batched_pardo(self._fn, SUBMISSIONS, DEAD_LETTER))
