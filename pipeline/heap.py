"""A worker's long-lived objects out of the cycle collector's way.

A screening worker builds a lot to last (compiled schemas, the rule pack's generated code, the
goods classifier, the reference data, Beam's plan of the pipeline) and then makes short-lived
objects per filing. CPython's collector walks every tracked object at each full collection and
the young ones far more often than a worker needs: measured in the service run by
bench/round_trips.py in its own process (3,000 filings, one worker, gc callbacks; that process
also holds the bench's corpus), the collector took 10.8% of the CPU; with what was built moved to
the permanent generation 6.6%, and with young collections every 10,000 allocations instead of
700, 3.0-3.3%. A filing's objects are freed by reference counting as before; only reference
cycles wait longer.
"""
from __future__ import annotations

import gc


def settle(young_threshold: int) -> None:
    """At the end of a step's setup: what was built so far goes to the permanent generation, which
    full collections no longer walk (gc.freeze; a pack replaced later is collected as usual, being
    made after it), and young collections come every `young_threshold` allocations (0: Python's).
    Garbage is collected first, so that none is kept for good; after the first time in a process
    that collection walks only what was made since."""
    gc.collect()
    gc.freeze()
    if young_threshold:
        _, middle, old = gc.get_threshold()
        gc.set_threshold(young_threshold, middle, old)
