"""Counters told once per bundle (counters.CountsPerBundle): what a bundle counted reaches Beam and
Prometheus at its end, exactly once; a bundle that fails tells nothing, and the next starts from zero."""
from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter

from cargoscreen import metrics
from cargoscreen.counters import COUNTER_NAMESPACE, CounterFamily, CountsPerBundle, counter
from cargoscreen.job import make_pipeline

_ACCEPTED = ("cargoscreen_stage_messages_total", {"stage": "validate", "outcome": "accepted"})
_WARNING = ("cargoscreen_data_quality_warnings_total", {"rule": "DQ_TEST_PER_BUNDLE"})


def _prometheus(sample) -> float:
    return metrics.REGISTRY.get_sample_value(*sample) or 0


def test_a_bundle_tells_its_counts_at_its_end_once():
    accepted, warnings = counter("validated_accepted"), CounterFamily("dq_warning_")
    before = _prometheus(_ACCEPTED), _prometheus(_WARNING)
    for c in (accepted, warnings):
        c.begin_bundle()
    for _ in range(5):
        accepted.inc()
        warnings.inc("DQ_TEST_PER_BUNDLE")  # a family's counter made during the bundle counts per bundle too
    assert (_prometheus(_ACCEPTED), _prometheus(_WARNING)) == before  # nothing told while the bundle runs
    for c in (accepted, warnings):
        c.end_bundle()
    assert (_prometheus(_ACCEPTED) - before[0], _prometheus(_WARNING) - before[1]) == (5, 5)
    accepted.inc()  # outside a bundle: told at once
    assert _prometheus(_ACCEPTED) - before[0] == 6


def test_a_failed_bundle_tells_nothing_and_the_next_starts_from_zero():
    accepted = counter("validated_accepted")
    before = _prometheus(_ACCEPTED)
    accepted.begin_bundle()
    accepted.inc(3)  # the bundle fails here: no end_bundle
    accepted.begin_bundle()  # the runner retries it
    accepted.inc(3)
    accepted.end_bundle()
    assert _prometheus(_ACCEPTED) - before == 3


class _CountEvens(CountsPerBundle, beam.DoFn):
    def __init__(self):
        self._evens = counter("test_evens")

    def process(self, n: int):
        if n % 2 == 0:
            self._evens.inc()
        yield n


def test_beam_sums_the_bundles_counts_on_a_real_runner():
    pipeline = make_pipeline()
    _ = pipeline | beam.Create(list(range(1001)), reshuffle=True) | beam.ParDo(_CountEvens())
    result = pipeline.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_namespace(COUNTER_NAMESPACE).with_name("test_evens"))
    assert sum(c.committed for c in counters["counters"]) == 501
