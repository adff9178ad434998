"""Benchmark of the validation stage (issue: foundation). Run by hand: `make bench` or
`python bench/validation.py --count 20000`.

Side by side, in one run, on one generated corpus of mixed sizes:
  raw lxml       parse + XSD validate with lxml, nothing else (the baseline)
  stage          FilingValidator.validate: envelope guards, parse, XSD, data-quality rules, summary
  xmlschema      xmlschema's is_valid (on a subset: it is slow)
  beam validate  FnApiRunner, one worker: read folder -> ValidateFilings
  beam batch     FnApiRunner, one worker: the whole batch job, with Redis registration and answers written
Prints filings/s (per core: every loop runs on one thread), latency percentiles, the ratios
to the baseline, a cost breakdown of the stage, and peak memory.
"""
from __future__ import annotations

import argparse
import gc
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lxml import etree

from cargoscreen.config import Settings
from cargoscreen.domain.filings import ENS_NS
from cargoscreen.generator import GeneratorSpec, generate
from cargoscreen.validation import FilingValidator, Submission


def percentiles(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return f"p50 {q[49] * 1e6:7.0f} µs  p95 {q[94] * 1e6:7.0f} µs  p99 {q[98] * 1e6:7.0f} µs"


def timed_loop(items, fn) -> tuple[float, list[float]]:
    """Returns (CPU seconds for all, per-item wall latencies)."""
    latencies = []
    gc.collect()
    cpu = time.process_time()
    for item in items:
        t = time.perf_counter()
        fn(item)
        latencies.append(time.perf_counter() - t)
    return time.process_time() - cpu, latencies


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=10_000, help="filings in the corpus")
    ap.add_argument("--xmlschema-count", type=int, default=300, help="filings given to xmlschema")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--defect-rate", type=float, default=0.05, help="share with content defects (realistic: a few %%)")
    ap.add_argument("--envelope-rate", type=float, default=0.005, help="share of broken or hostile XML")
    ap.add_argument("--skip-beam", action="store_true")
    args = ap.parse_args()

    spec = GeneratorSpec(count=args.count, seed=args.seed, defect_rate=args.defect_rate, envelope_rate=args.envelope_rate)
    corpus = list(generate(spec))
    sizes = sorted(len(f.data) for f in corpus)
    print(f"corpus: {len(corpus)} filings, {sum(sizes) / 1e6:.1f} MB, sizes {sizes[0]:,}..{sizes[-1]:,} B, "
          f"median {sizes[len(sizes) // 2]:,} B, {sum(f.label['expected'] == 'rejected' for f in corpus)} to reject")
    print(f"python {sys.version.split()[0]}, lxml {etree.__version__}, libxml2 {'.'.join(map(str, etree.LIBXML_VERSION))}")

    settings = Settings()
    validator = FilingValidator(settings)
    schema = etree.XMLSchema(etree.parse(str(settings.schema_dirs[-1] / "ics2-v1" / "ens.xsd")))
    raw_parser = etree.XMLParser(resolve_entities=False, no_network=True)
    payloads = [f.data for f in corpus]
    submissions = [Submission(f.name, f.data) for f in corpus]

    def raw(data: bytes) -> None:
        try:
            schema.validate(etree.fromstring(data, raw_parser))
        except etree.XMLSyntaxError:
            pass

    # The corpus is the harness's, not the stage's: keep the garbage collector from rescanning it.
    gc.collect()
    gc.freeze()
    # Warm both paths (caches, allocator) on the first 500, then measure alternately, four times,
    # keeping each one's best: this VM's speed drifts by tens of percent within a run.
    for s in submissions[:500]:
        validator.validate(s)
        raw(s.payload)
    rows = {}
    for _ in range(4):
        for name, items, fn in (("raw lxml", payloads, raw), ("stage", submissions, validator.validate)):
            cpu, lat = timed_loop(items, fn)
            if name not in rows or cpu < rows[name][0]:
                rows[name] = (cpu, lat)
    subset = payloads[: args.xmlschema_count]
    import xmlschema

    xs = xmlschema.XMLSchema10(str(settings.schema_dirs[-1] / "ics2-v1" / "ens.xsd"))

    def xmlschema_valid(data: bytes) -> bool | None:
        if b"DOCTYPE" in data:
            return None
        try:
            return xs.is_valid(data.decode("utf-8", "replace"))
        except xmlschema.XMLResourceError:  # is_valid raises on XML it cannot parse: the corpus has broken filings
            return False

    cpu, lat = timed_loop(subset, xmlschema_valid)
    rows["xmlschema"] = (cpu * len(payloads) / len(subset), lat)

    # Where the stage's time goes, on the first 3,000 filings.
    payloads = payloads[:3000]
    trees = []
    for d in payloads:
        try:
            trees.append(validator.parser.parse(d))
        except Exception:
            pass
    ens_schema = validator.registry.lookup(ENS_NS, "IE3F10")
    t = time.process_time()
    for d in payloads:
        try:
            validator.parser.parse(d)
        except Exception:
            pass
    t_parse = time.process_time() - t
    t = time.process_time()
    for tr in trees:
        ens_schema._schema.validate(tr)
    t_xsd = time.process_time() - t
    t = time.process_time()
    for tr in trees:
        validator.data_quality.check(tr.getroot())
    t_dq = time.process_time() - t

    base = rows["raw lxml"][0]
    n = len(submissions)
    print(f"\n{'':14s} {'filings/s':>10s} {'ratio':>7s}   latency")
    for name, (cpu, lat) in rows.items():
        print(f"{name:14s} {n / cpu:10,.0f} {cpu / base:6.2f}x   {percentiles(lat)}")
    m = len(payloads)
    print(f"\nstage breakdown (µs per filing, first {m}): guards+parse {t_parse / m * 1e6:.0f}, "
          f"XSD {t_xsd / m * 1e6:.0f}, data quality {t_dq / m * 1e6:.0f}; whole stage {rows['stage'][0] / n * 1e6:.0f}")
    print(f"peak memory so far: {peak_rss_mib():.0f} MiB")

    if not args.skip_beam:
        beam_rows(corpus, settings)


def beam_rows(corpus, settings: Settings) -> None:
    import apache_beam as beam
    from apache_beam.metrics import Metrics

    from cargoscreen.connectors.files import ReadFilingsFromFolder
    from cargoscreen.connectors.redis_store import EmbeddedRedis
    from cargoscreen.job import make_pipeline, run_batch
    from cargoscreen.stages.validate import ValidateFilings

    work = Path(tempfile.mkdtemp(prefix="cargoscreen-bench-"))
    try:
        folder = work / "filings"
        folder.mkdir()
        for f in corpus:
            (folder / f.name).write_bytes(f.data)
        n = len(corpus)

        counted = Metrics.counter("bench", "validated")

        def count(_):
            counted.inc()

        p = make_pipeline()
        read = p | ReadFilingsFromFolder(folder, settings.limits.max_bytes)
        checked = read.submissions | ValidateFilings(settings)
        (checked.valid, checked.rejected) | beam.Flatten() | beam.Map(count)
        t, cpu = time.perf_counter(), time.process_time()
        p.run().wait_until_finish()
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        print(f"\nbeam validate  {n / wall:10,.0f} filings/s wall, {n / cpu:,.0f} per CPU-second (FnApiRunner, one worker)")

        with EmbeddedRedis(work / "redis") as server:
            t, cpu = time.perf_counter(), time.process_time()
            summary = run_batch(settings.with_redis_url(server.url), folder, work / "out")
            wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        print(f"beam batch     {n / wall:10,.0f} filings/s wall, {n / cpu:,.0f} per CPU-second of this process "
              f"(Redis in its own process), balanced={summary.balanced}")
        print(f"peak memory: {peak_rss_mib():.0f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
