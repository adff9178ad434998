"""FnApiRunner's fold of each bundle's metrics (pipeline/runner_metrics.py), against Beam's own."""
from __future__ import annotations

import random

from apache_beam.metrics import monitoring_infos as mi

from cargoscreen.runner_metrics import _folder


def _bundle(rng: random.Random) -> list:
    """One bundle's metrics: counters and distributions of a few steps, some not reported every time."""
    out = []
    for step in ("Validate", "Register", "Score"):
        if rng.random() < 0.8:
            out.append(mi.int64_user_counter("cargoscreen", f"{step}_done", rng.randint(0, 50), ptransform=step))
        n = rng.randint(1, 9)
        out.append(mi.int64_distribution(mi.SAMPLED_BYTE_SIZE_URN, mi.DistributionData(n * 100, n, 50, 200),
                                         pcollection=f"{step}.out"))
    return out


def _totals(infos) -> dict:
    return {(m.urn, tuple(sorted(m.labels.items()))): (mi.extract_counter_value(m) if mi.is_counter(m)
                                                       else mi.extract_distribution(m)) for m in infos}


def test_the_fold_of_every_bundle_gives_beams_totals_and_keys_each_bundles_entries_only():
    rng = random.Random(5)
    keyed = [0]

    def key(m):
        keyed[0] += 1
        return mi.to_key(m)

    fold, bundles, folded = _folder(key), [], []
    for _ in range(200):
        bundle = _bundle(rng)
        bundles.append(bundle)
        before = keyed[0]
        folded = fold(iter([*bundle, *folded]))  # as the runner calls it: this bundle's, then the last fold
        assert keyed[0] - before == len(bundle)  # what was folded before is not keyed again
    assert len(folded) == len({mi.to_key(m) for b in bundles for m in b}) <= 6
    assert _totals(folded) == _totals(mi.consolidate([m for b in bundles for m in b]))
    assert _totals(bundles[0]) == _totals(_bundle(random.Random(5)))  # the runner's entries are left as they came
