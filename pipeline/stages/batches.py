"""Batches of a bundle's elements, for the steps whose Redis work goes in one round trip per batch.

Not Beam's BatchElements, for two measured reasons: its adaptive size starts from batches of one
(it times the fused steps downstream) and so sent a round trip for every few filings; and Beam
estimates the byte size of the first elements of every PCollection in each bundle by encoding
them, which for a plain list means pickling each of its filings (two pickles per filing in the
service, about 4% of a worker's CPU). A `Batch` carries a coder that estimates without encoding.
"""
from __future__ import annotations

import pickle

import apache_beam as beam
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
