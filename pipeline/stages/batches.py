"""Batches of a bundle's elements: what every business step takes in and gives out.

Beam's own work per element (its hand-over from one fused DoFn to the next: a windowed value, the
output receivers, the DoFn's invocation) costs about as much as a small step; a filing handed over a
dozen times between the steps cost ~160 µs of a worker's ~880 (bench/round_trips.py). Handed over as
batches, that cost is paid once per batch: the service's source emits one batch per poll, the batch
job's reader is batched once (`Batches`), and each step gives a `Batch` on each of its outputs.

Not Beam's BatchElements, for two measured reasons: its adaptive size starts from batches of one
(it times the fused steps downstream) and so sent a round trip for every few filings; and Beam
estimates the byte size of the first elements of every PCollection in each bundle by encoding
them, which for a plain list means pickling each of its filings (two pickles per filing in the
service, about 4% of a worker's CPU). A `Batch` carries a coder that estimates without encoding.
"""
from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

# What a batch's size is estimated at per element: a filing with its record, roughly (the estimate
# only feeds Beam's byte-count metrics).
ELEMENT_BYTES = 4096


class Batch(list):
    """Elements of one bundle, in order."""


class BatchCoder(beam.coders.Coder):
    """Pickles a batch if it ever crosses a stage boundary (the steps after a batching are fused
    with it); estimates its size from its length."""

    def encode(self, batch: Batch) -> bytes:
        return pickle.dumps(list(batch), pickle.HIGHEST_PROTOCOL)

    def decode(self, encoded: bytes) -> Batch:
        return Batch(pickle.loads(encoded))

    def is_deterministic(self) -> bool:
        return False

    def estimate_size(self, batch: Batch) -> int:
        return ELEMENT_BYTES * len(batch)


beam.coders.registry.register_coder(Batch, BatchCoder)


class _BatchDoFn(beam.DoFn):
    def __init__(self, size: int):
        self._size = size

    def start_bundle(self):
        self._batch = Batch()

    def process(self, element):
        self._batch.append(element)
        if len(self._batch) >= self._size:
            batch, self._batch = self._batch, Batch()
            yield batch

    def finish_bundle(self):
        if self._batch:  # the pipelines that batch run in the global window
            batch, self._batch = self._batch, Batch()
            yield WindowedValue(batch, GlobalWindow().max_timestamp(), [GlobalWindow()])


class Batches(beam.PTransform):
    """Elements in; `Batch`es of up to `size` of them out, never across a bundle (the rest of a
    bundle is flushed at its end), in the global window."""

    def __init__(self, size: int):
        super().__init__()
        self._size = size

    def expand(self, elements):
        return elements | beam.ParDo(_BatchDoFn(self._size)).with_output_types(Batch)


def chunks(batch: list, size: int) -> Iterable[list]:
    """A batch in slices of at most `size` (a step's own limit per Redis round trip)."""
    return (batch[i:i + size] for i in range(0, len(batch), size)) if len(batch) > size else (batch,)


def batched_pardo(fn: beam.DoFn, main: str, *tags: str) -> beam.ParDo:
    """ParDo of a DoFn that gives Batches on its main output and on each of `tags` (typed so, so that
    Beam sizes them with BatchCoder rather than by pickling their elements)."""
    return beam.ParDo(fn).with_output_types(Batch, **dict.fromkeys(tags, Batch)).with_outputs(*tags, main=main)


class TaggedBatches:
    """The outputs of one batch, gathered by tag: `add(tag, x)` for each, then `emit()` yields a
    Batch per tag that got any (the main output untagged), so each output is one hand-over per batch."""

    def __init__(self, main: str):
        self._main, self._out = main, {}

    def add(self, tag: str, element) -> None:
        out = self._out.get(tag)
        if out is None:
            out = self._out[tag] = Batch()
        out.append(element)

    def extend(self, tag: str, elements: Iterable) -> None:
        for e in elements:
            self.add(tag, e)

    def emit(self):
        for tag, batch in self._out.items():
            yield batch if tag == self._main else TaggedOutput(tag, batch)
        self._out = {}


def each(fn: Callable, *args) -> beam.Map:
    """A Map over a Batch: fn(element, *args) of each, as a Batch."""
    return beam.Map(lambda batch: Batch(fn(x, *args) for x in batch)).with_output_types(Batch)
