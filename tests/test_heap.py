"""A worker's set-up objects leave the collector's generations (heap.settle), garbage does not stay."""
from __future__ import annotations

import gc
import weakref

from cargoscreen.heap import settle


class _Cycle:
    def __init__(self):
        self.me = self


def test_settle_freezes_what_lasts_collects_garbage_first_and_sets_the_young_threshold():
    before_threshold = gc.get_threshold()
    try:
        kept = [_Cycle() for _ in range(100)]
        garbage = [_Cycle() for _ in range(100)]
        gone = [weakref.ref(g) for g in garbage]
        del garbage
        frozen_before = gc.get_freeze_count()
        settle(12_345)
        assert gc.get_threshold()[0] == 12_345
        assert gc.get_freeze_count() >= frozen_before + len(kept)  # the living ones frozen ...
        assert all(ref() is None for ref in gone)  # ... the garbage cycles collected, not kept for good
        assert not any(o in kept for o in gc.get_objects(generation=2))  # frozen: no longer walked
        settle(0)
        assert gc.get_threshold()[0] == 12_345  # 0 leaves the threshold as it is
    finally:
        gc.set_threshold(*before_threshold)
