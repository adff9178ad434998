"""Counters of cargoscreen, one namespace, for stages and connectors alike. Each `inc` counts twice:
as a Beam counter (the run summary reads those, on any runner) and in this process's Prometheus
registry (metrics.py), under the metric and labels the table below gives the name."""
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

    def __getstate__(self):
        return {"_name": self._name, "_beam": self._beam, "_prometheus": _UNRESOLVED}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._prometheus = _UNRESOLVED

    def inc(self, n: int = 1) -> None:
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
        self._prefix, self._counters = prefix, {}

    def inc(self, key: str) -> None:
        c = self._counters.get(key)
        if c is None:
            c = self._counters[key] = counter(self._prefix + key)
        c.inc()
