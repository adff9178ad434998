"""Beam counters of cargoscreen, one namespace, for stages and connectors alike (the run summary
and, later, Prometheus read them from here)."""
from __future__ import annotations

from apache_beam.metrics import Metrics

COUNTER_NAMESPACE = "cargoscreen"


def counter(name: str):
    return Metrics.counter(COUNTER_NAMESPACE, name)


class CounterFamily:
    """Beam counters named prefix + key, made on first use. Keys come from small fixed sets
    (message types, fact kinds), so each stays one bounded metric."""

    def __init__(self, prefix: str):
        self._prefix, self._counters = prefix, {}

    def inc(self, key: str) -> None:
        c = self._counters.get(key)
        if c is None:
            c = self._counters[key] = counter(self._prefix + key)
        c.inc()
