"""Frozen dataclasses made per filing without their generated __init__.

A frozen dataclass's __init__ sets each field with an object.__setattr__ of its own: 3.3 µs for
the 29 fields of a screening record, 2 µs for a filing's summary, where filling the instance's
__dict__ at once takes a fifth of that. Every filing makes a handful of these, so the hot path
uses fast_init; everything else keeps calling the class. The object is the same either way.
"""
from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Callable, TypeVar

T = TypeVar("T")


def fast_init(cls: type[T]) -> Callable[[dict], T]:
    """A maker of cls(**values) for a frozen dataclass without __post_init__ or slots: defaults
    and default factories filled in, a field unknown or missing refused as __init__ would."""
    if hasattr(cls, "__post_init__") or hasattr(cls, "__slots__"):
        raise TypeError(f"{cls.__name__} needs its own __init__")
    names = frozenset(f.name for f in fields(cls))
    defaults = {f.name: f.default for f in fields(cls) if f.default is not MISSING}
    factories = tuple((f.name, f.default_factory) for f in fields(cls) if f.default_factory is not MISSING)
    new = object.__new__

    def make(values: dict) -> T:
        obj = new(cls)
        state = obj.__dict__
        state.update(defaults)
        state.update(values)
        for name, factory in factories:
            if name not in values:
                state[name] = factory()
        if len(state) != len(names) or not names.issuperset(values):
            raise TypeError(f"{cls.__name__} needs {sorted(names - set(state))} and has no "
                            f"{sorted(set(values) - names)}")
        return obj

    make.__doc__ = f"{cls.__name__}(**values), made without the frozen dataclass's __init__ (frozen.fast_init)."
    return make
