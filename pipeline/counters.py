"""Counters of cargoscreen, one namespace, for stages and connectors alike. Each count is told twice:
as a Beam counter (the run summary reads those, on any runner) and in this process's Prometheus
registry (metrics.py), under the metric and labels the table below gives the name. In a DoFn that
counts per bundle (CountsPerBundle) the counts add up during the bundle and are told once at its end."""
from __future__ import annotations

from apache_beam.metrics import Metrics

from . import metrics as m

COUNTER_NAMESPACE = "cargoscreen"

# Beam counter name -> the Prometheus metric (and labels) it also counts in.
_STAGE_OUTCOMES = {
    "inputs": ("read", "in"), "stream_entries_claimed": ("read", "claimed"),
    "validated_accepted": ("validate", "accepted"), "validated_rejected": ("validate", "rejected"),
    "filings_linked": ("link", "linked"), "consignments_overdue": ("link", "overdue"),
    "claims_refused": ("link", "refused"),
    "enriched": ("enrich", "enriched"), "container_status_unavailable": ("enrich", "unavailable"),
    "assessed": ("score", "assessed"), "referrals": ("score", "referral"),
}
_SINGLES = {"rule_errors": m.RULE_ERRORS, "rule_pack_reload_failures": m.RULE_PACK_RELOAD_FAILURES}
_FAMILIES = {  # CounterFamily prefix -> the labelled child for a key
    "answers_": m.ANSWERS.labels, "decision_": m.DECISIONS.labels, "rule_hit_": m.RULE_HITS.labels,
    "fact_": m.CONTAINER_FACTS.labels, "dq_warning_": m.DATA_QUALITY_WARNINGS.labels,
    "registration_": lambda status: m.STAGE_MESSAGES.labels("register", status),
    "effects_": lambda key: m.EFFECTS.labels(*reversed(key.split("_", 1))),  # written_answer: (answer, written)
}


def _prometheus(name: str):
    if name in _STAGE_OUTCOMES:
        return m.STAGE_MESSAGES.labels(*_STAGE_OUTCOMES[name])
    if name in _SINGLES:
        return _SINGLES[name]
    prefix = next((p for p in _FAMILIES if name.startswith(p)), None)
    # None: Beam only (counts the run summary needs and operators do not)
    return _FAMILIES[prefix](name[len(prefix):]) if prefix else None


_UNRESOLVED = object()


class _Counter:
    """Made where a DoFn is built and pickled to the workers: the Prometheus side (which holds a
    lock) is looked up on first use, in the worker process whose registry it belongs to."""

    def __init__(self, name: str):
        self._name, self._beam, self._prometheus = name, Metrics.counter(COUNTER_NAMESPACE, name), _UNRESOLVED
        self._bundle: int | None = None  # the count of the bundle under way (CountsPerBundle); None: told at once

    def __getstate__(self):
        return {"_name": self._name, "_beam": self._beam, "_prometheus": _UNRESOLVED, "_bundle": None}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._prometheus = _UNRESOLVED

    def inc(self, n: int = 1) -> None:
        if self._bundle is not None:
            self._bundle += n
            return
        self._tell(n)

    def begin_bundle(self) -> None:
        self._bundle = 0  # a failed bundle's counts are dropped here, as Beam drops its metrics

    def end_bundle(self) -> None:
        n, self._bundle = self._bundle, None
        if n:
            self._tell(n)

    def _tell(self, n: int) -> None:
        self._beam.inc(n)
        if self._prometheus is _UNRESOLVED:
            self._prometheus = _prometheus(self._name)
        if self._prometheus is not None:
            self._prometheus.inc(n)


def counter(name: str) -> _Counter:
    return _Counter(name)


class CounterFamily:
    """Counters named prefix + key, made on first use. Keys come from small fixed sets (message
    types, fact kinds, the pack's rules), so each stays one bounded metric."""

    def __init__(self, prefix: str):
        self._prefix, self._counters, self._in_bundle = prefix, {}, False

    def inc(self, key: str) -> None:
        c = self._counters.get(key)
        if c is None:
            c = self._counters[key] = counter(self._prefix + key)
            if self._in_bundle:
                c.begin_bundle()
        c.inc()

    def begin_bundle(self) -> None:
        self._in_bundle = True
        for c in self._counters.values():
            c.begin_bundle()

    def end_bundle(self) -> None:
        self._in_bundle = False
        for c in self._counters.values():
            c.end_bundle()


class CountsPerBundle:
    """For a DoFn: the counters it holds (counter(), CounterFamily, as its attributes) add up during
    a bundle and are told to Beam and Prometheus once per name at its end, not once per element (a
    Beam counter's inc looks up the bundle's metrics container every time). A DoFn that has its own
    start_bundle or finish_bundle calls this one's first, respectively last."""

    def start_bundle(self):
        for c in self._held_counters():
            c.begin_bundle()

    def finish_bundle(self):
        for c in self._held_counters():
            c.end_bundle()

    def _held_counters(self):
        return [v for v in vars(self).values() if isinstance(v, (_Counter, CounterFamily))]
