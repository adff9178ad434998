"""Batches of a bundle's elements (pipeline/stages/batches.py), on a real Beam runner."""
from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that

from cargoscreen.stages.batches import Batch, BatchCoder, Batches


def test_every_element_goes_in_exactly_one_batch_of_at_most_the_size():
    def check(batches):
        assert all(isinstance(b, Batch) and 0 < len(b) <= 4 for b in batches), batches
        assert sorted(x for b in batches for x in b) == list(range(10))

    with beam.Pipeline() as p:
        assert_that(p | beam.Create(list(range(10))) | Batches(4), check)


def test_a_batch_is_sized_without_being_encoded_and_still_encodes_when_it_must():
    """Beam samples every PCollection's element sizes; a batch's estimate reads its length only
    (a plain list would be pickled element by element to be measured)."""
    coder = beam.coders.registry.get_coder(Batch)
    assert isinstance(coder, BatchCoder)
    unpicklable = Batch([lambda: None, lambda: None])
    assert coder.estimate_size(unpicklable) == 2 * coder.estimate_size(Batch([1]))
    with pytest.raises(Exception):
        coder.encode(unpicklable)
    assert coder.decode(coder.encode(Batch([1, "two", (3,)]))) == [1, "two", (3,)]
