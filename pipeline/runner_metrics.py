"""FnApiRunner's fold of each bundle's metrics, bounded and incremental.

Beam 2.77's FnApiRunner folds each bundle's metrics into the stage's with
`consolidate(chain(new, previous))`, a generator it never consumes until the job ends: one more link
per bundle, each holding its bundle's monitoring protos. A batch job does not notice; a service
making ten bundles a second grew by ~3 MB/s (measured, bench/end_to_end.py). Folding eagerly keeps
one entry per metric; folding only the new bundle's entries into an index kept from the last fold
(rather than keying and merging every entry again) makes each bundle's fold cost its own metrics,
about 300 in the service's fused stage: the fold had been the largest part of Beam's work per
bundle (bench/round_trips.py --read-batch 32).
"""
from __future__ import annotations

from apache_beam.metrics import monitoring_infos
from apache_beam.portability.api import metrics_pb2


def _folder(key=monitoring_infos.to_key, combiners=monitoring_infos._KNOWN_COMBINERS):
    """The fold, with the index of each list it returned, found again by that list's first entry
    (which the runner passes back at the head of `previous`)."""
    indexes: dict[int, tuple[object, dict]] = {}  # id(first entry) -> (that entry, key -> [entries])

    def fold(metrics, key=key):
        new, index = [], None
        for m in metrics:
            mine = indexes.get(id(m))
            if mine is not None and mine[0] is m:  # the rest is what the last fold returned: in the index
                index = indexes.pop(id(m))[1]
                break
            new.append(m)
        if index is None:  # a first fold, or a list not ours: everything is new
            index = {}
        for m in new:
            k = key(m)
            held = index.get(k)
            combine = combiners.get(m.type)
            if held is None:
                copy = metrics_pb2.MonitoringInfo()  # ours to merge into: the runner's stays as it came
                copy.CopyFrom(m)
                index[k] = [copy]
            elif combine:  # same key: same urn and labels, so only the payloads merge
                held[0].payload = combine(held[0].payload, m.payload)
            else:  # as consolidate does: kept side by side
                held.append(m)
        out = [m for held in index.values() for m in held]
        if out:
            indexes[id(out[0])] = (out[0], index)
        return out
    return fold


def bound_fn_api_runner_metrics() -> None:
    """Installs the fold in FnApiRunner. Checked, not assumed: if Beam renames what it replaces,
    this fails loudly rather than leaking silently."""
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    if getattr(fn_runner.consolidate_monitoring_infos, "eager", False):
        return
    assert fn_runner.consolidate_monitoring_infos is monitoring_infos.consolidate, "Beam changed: re-check the leak"
    fold = _folder()
    fold.eager = True
    fn_runner.consolidate_monitoring_infos = fold
