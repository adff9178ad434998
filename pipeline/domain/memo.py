"""Bounded memos: answers kept per key, all forgotten at once when there are too many.

A worker meets an endless stream of distinct values (descriptions, HS codes, addresses), so every
memo needs a bound. Emptying the whole dict at the bound, rather than evicting the least recently
used entry as `functools.lru_cache` does, keeps a hit to one plain dict look-up with no
bookkeeping; the answers are the same whoever computes them, so forgetting costs only their
recomputation.
"""
from __future__ import annotations

from typing import Callable


class BoundedMemo(dict):
    """A dict of at most `limit` entries: read it as a dict, add with `remember`."""

    __slots__ = ("limit",)

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def remember(self, key, value):
        """Keeps value under key (first emptying the memo if it is full); returns value."""
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value

    def __reduce__(self):  # a worker's memo travels empty: its answers are remade where it runs
        return type(self), (self.limit,)


class Memo(BoundedMemo):
    """key -> compute(key), computed once while remembered: read it as `memo[key]`."""

    __slots__ = ("compute",)

    def __init__(self, compute: Callable, limit: int):
        super().__init__(limit)
        self.compute = compute

    def __missing__(self, key):
        return self.remember(key, self.compute(key))

    def __reduce__(self):
        return type(self), (self.compute, self.limit)
