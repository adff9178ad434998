"""Batches of a bundle's elements, for the steps whose Redis work goes in one round trip per batch."""
from __future__ import annotations

import apache_beam as beam


def batches(size: int) -> beam.PTransform:
    """Element in; lists of up to `size` elements out, never across a bundle (the rest of a bundle is
    flushed at its end). A fixed size, not BatchElements' adaptive one: that one times the fused
    steps downstream and, starting from batches of one, sends a round trip for every few filings."""
    return beam.BatchElements(min_batch_size=size, max_batch_size=size)
