"""Goods-description classifier: accuracy, facts on traffic, cost. Run by hand:
`python bench/goods_classifier.py [--count 3000] [--outside SET]` (about a minute).

1. Heading accuracy on the labelled descriptions (tests/data/goods-descriptions.csv: written from
   how shippers, forwarders and e-commerce listings name goods, not from the nomenclature), top-1
   and top-3, per split (`dev` was looked at while tuning, `holdout` only measured) and per writer;
   and on those naming controlled goods, how many the controlled-goods fact finds.
2. Cost: training time, memory, per-description latency (p50/p95, cache off) and throughput.
3. Facts on generated traffic (the generator's ordinary filings, planted risks and look-alikes
   apart): the share of clean filings with a description-code-mismatch or a
   description-names-controlled-goods fact (target: at most 2%).
4. With --outside SET: the same on a set written outside the project (a folder with filings/ and a
   manifest.jsonl whose `risky` is null for clean filings, as /work/holdout's make_traffic.py
   writes). Only counts are printed: the set's wordings stay out of the repository.
"""
from __future__ import annotations

import argparse
import csv
import gc
import json
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil

from cargoscreen.backtest import load_traffic
from cargoscreen.config import Settings
from cargoscreen.corpus import write_corpus
from cargoscreen.domain.enrichment import DESCRIPTION_CODE_MISMATCH, DESCRIPTION_NAMES_CONTROLLED, GOODS_FACTS
from cargoscreen.domain.goods_classifier import GoodsClassifier, fold, bundled_goods_classifier, heading_accuracy, load_labelled
from cargoscreen.domain.legal_lists import bundled_legal_lists
from cargoscreen.domain.reference import bundled_reference

LABELLED = Path(__file__).resolve().parent.parent / "tests" / "data" / "goods-descriptions.csv"


def accuracy(classifier: GoodsClassifier, rows: list[dict]) -> None:
    print(f"{'labelled descriptions':30} {'n':>4} {'top-1':>7} {'top-3':>7}")
    groups = {"all": rows, **{f"split {s}": [r for r in rows if r["split"] == s] for s in ("dev", "holdout")},
              **{f"writer {w}": [r for r in rows if r["writer"] == w] for w in sorted({r["writer"] for r in rows})},
              "controlled goods": [r for r in rows if r["controlled"]]}
    # A description that is word for word a term of the vocabulary measures the vocabulary, not the model.
    terms = {t.term for t in classifier.vocabulary}
    groups["not a vocabulary term"] = [r for r in rows if fold(r["description"]).strip() not in terms]
    groups["holdout, not a vocabulary term"] = [r for r in groups["not a vocabulary term"] if r["split"] == "holdout"]
    for name, group in groups.items():
        if group:
            top1, top3 = heading_accuracy(classifier, group)
            print(f"{name:30} {len(group):4} {top1:7.1%} {top3:7.1%}")
    bare = GoodsClassifier.build(bundled_reference(), bundled_legal_lists(), vocabulary=())
    top1, top3 = heading_accuracy(bare, rows)
    print(f"{'without the vocabulary (all)':30} {len(rows):4} {top1:7.1%} {top3:7.1%}")
    controlled = [r for r in rows if r["controlled"]]
    found = [r for r in controlled if classifier.consistency(r["description"], r["declared"]).controlled]
    flagged = [r for r in controlled if classifier.consistency(r["description"], r["declared"]).controlled
               or classifier.consistency(r["description"], r["declared"]).disagrees]
    plain = [r for r in rows if not r["controlled"]]
    false_controlled = [r for r in plain if classifier.consistency(r["description"], r["declared"]).controlled]
    false_mismatch = [r for r in plain if classifier.consistency(r["description"], r["declared"]).disagrees]
    print(f"controlled goods named: {len(found)}/{len(controlled)} found ({len(flagged)} with either fact); "
          f"on the {len(plain)} other descriptions with their own code: {len(false_controlled)} controlled, "
          f"{len(false_mismatch)} mismatch facts")
    for r in false_controlled + false_mismatch:
        v = classifier.consistency(r["description"], r["declared"])
        print(f"   {r['description']!r} {r['declared']}: {v.agreement}, {[c.kind for c in v.controlled]}, {v.why}")
    for r in controlled:
        if r not in flagged:
            print(f"   missed: {r['description']!r} ({r['controlled']}, declared {r['declared']})")


def cost(rows: list[dict], descriptions: list[str]) -> GoodsClassifier:
    gc.collect()
    rss = psutil.Process().memory_info().rss
    t = time.perf_counter()
    classifier = GoodsClassifier.build(bundled_reference(), bundled_legal_lists())
    train = time.perf_counter() - t
    classifier.consistency("warm up: steel bolts", "731815")
    grown = psutil.Process().memory_info().rss - rss
    texts = [r["description"] for r in rows] + descriptions
    latencies = []
    for text in texts:
        classifier.forget()  # each one computed, as a description first seen
        t = time.perf_counter()
        classifier.consistency(text, "847130")
        latencies.append(time.perf_counter() - t)
    q = statistics.quantiles(latencies, n=100)
    for text in texts:
        classifier.consistency(text, "847130")
    t = time.perf_counter()
    for text in texts:
        classifier.consistency(text, "847130")
    cached = (time.perf_counter() - t) / len(texts)
    print(f"\ntraining {train:.2f} s over {len(classifier.doc_codes):,} documents; memory +{grown / 2**20:.0f} MiB; "
          f"{len(texts):,} descriptions first seen: p50 {q[49] * 1e6:.0f} µs, p95 {q[94] * 1e6:.0f} µs, "
          f"{len(texts) / sum(latencies):,.0f}/s; seen before (cache): {cached * 1e6:.1f} µs")
    return classifier


def fact_rates(title: str, filings, clean_of, show: bool = True) -> None:
    """Share of filings (clean, and the rest by their label) with a goods fact."""
    counts: dict[str, Counter] = {}
    examples: list[str] = []
    for f in filings:
        label = clean_of(f.submission_id)
        if label is None:
            continue
        kinds = {x.kind for x in f.facts if x.kind in GOODS_FACTS}
        c = counts.setdefault(label, Counter())
        c["filings"] += 1
        c["any"] += bool(kinds)
        for kind in kinds:
            c[kind] += 1
        if label == "clean" and kinds and len(examples) < 8:
            examples += [f"   {x.kind}: {x.detail}" for x in f.facts if x.kind in GOODS_FACTS][:1]
    print(f"\n{title}\n{'filings':24} {'n':>6} {'mismatch':>9} {'controlled':>11} {'either':>8}")
    for label, c in sorted(counts.items(), key=lambda kv: (kv[0] != "clean", kv[0])):
        n = c["filings"]
        print(f"{label:24} {n:6} {c[DESCRIPTION_CODE_MISMATCH] / n:9.2%} {c[DESCRIPTION_NAMES_CONTROLLED] / n:11.2%} "
              f"{c['any'] / n:8.2%}")
    if examples and show:
        print("clean filings with a fact (first few):", *examples, sep="\n")


def generated(count: int, seed: int) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_corpus(root, count, seed, defect_rate=0.0, envelope_rate=0.0, resubmission_rate=0.0, risk_rate=0.05,
                     decoy_rate=0.1)
        labels = {(x := json.loads(line))["file"]: x for line in (root / "labels.jsonl").open()}
        traffic = load_traffic(root / "filings", Settings())

    def kind(name: str) -> str | None:
        label = labels.get(name)
        if label is None:
            return None
        return f"risk {label['risk']}" if label["risk"] else "look-alike (clean)" if label["decoy"] else "clean"
    fact_rates(f"generated traffic ({count:,} filings, seed {seed}):", traffic.filings, kind)
    return [g.description for f in traffic.filings if f.record for g in f.record.goods]


def outside(folder: Path) -> None:
    manifest = {(x := json.loads(line))["file"]: x for line in (folder / "manifest.jsonl").open()}
    traffic = load_traffic(folder / "filings", Settings())

    def kind(name: str) -> str | None:
        m = manifest.get(name)
        return None if m is None else "clean" if not m.get("risky") else f"risky {m['risky']}"
    fact_rates(f"outside set {folder} ({traffic.read:,} filings read, {traffic.rejected} rejected):",
               traffic.filings, kind, show=False)
    # The outside writer's clean filings declare codes for their own descriptions: how often the classifier
    # proposes the declared heading (each distinct description and heading once).
    pairs = {(g.description, g.hs_code[:4]) for f in traffic.filings if f.record and kind(f.submission_id) == "clean"
             for g in f.record.goods if g.hs_code}
    top1, top3 = heading_accuracy(bundled_goods_classifier(), [{"description": d, "heading": h} for d, h in pairs])
    print(f"declared heading proposed, over {len(pairs)} distinct descriptions of clean filings: top-1 {top1:.1%}, "
          f"top-3 {top3:.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=3000, help="generated filings")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--outside", type=Path, help="a set written outside the project (filings/, manifest.jsonl)")
    args = ap.parse_args()
    rows = load_labelled(LABELLED)
    descriptions = generated(args.count, args.seed)
    classifier = cost(rows, sorted(set(descriptions)))
    print()
    accuracy(classifier, rows)
    if args.outside:
        outside(args.outside)


if __name__ == "__main__":
    main()
