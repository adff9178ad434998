"""Benchmark of container status (issue: container status). Run by hand:
`python bench/container_status.py` (1,000,000 events over 100,000 containers; ~3 minutes).

1. Loading: DCSA events checked against the definition, normalized and stored (Lua, batches
   of 500), in events/s. The events are the histories of the corpus's containers plus filler
   histories up to the requested size.
2. Enrichment over the mixed corpus (every mode: filings without containers cost little):
   µs per filing and filings/s for several batch sizes, against the same look-ups done one
   container at a time (ZRANGE then MGET, two round trips each), which is the raw cost.
Redis runs on the same machine (embedded, or --redis-url).
"""
from __future__ import annotations

import argparse
import gc
import random
import sys
import time
import uuid
from datetime import datetime, timezone

from stdnum import iso6346

from cargoscreen.config import Settings
from cargoscreen.connectors.dcsa import DcsaEventChecker
from cargoscreen.connectors.redis_store import EmbeddedRedis, connect
from cargoscreen.container_feed import load_events
from cargoscreen.container_store import ContainerEventStore
from cargoscreen.domain.container_events import ContainerEvent
from cargoscreen.domain.reference import bundled_reference
from cargoscreen.enrichment import enrich
from cargoscreen.generator import GeneratorSpec, generate
from cargoscreen.linking import member_of, standalone
from cargoscreen.status_generator import StatusSpec, generate_status
from cargoscreen.validation import FilingValidator, Submission

PORTS = ("CNSHA", "CNNGB", "SGSIN", "MYPKG", "AEJEA", "EGPSD", "NLRTM", "BEANR", "DEHAM", "ESVLC", "USLAX", "KRPUS")


def filler_events(containers: int, per_container: int, rng: random.Random):
    """Plausible ACT equipment events for containers nobody in the corpus declares."""
    base = datetime(2026, 8, 1, tzinfo=timezone.utc).timestamp()
    codes = ("GTIN", "LOAD", "DISC", "GTOT", "STUF", "STRP")
    for _ in range(containers):
        body = rng.choice(("MSCU", "MAEU", "CMAU", "HLXU")) + f"{rng.randint(0, 999999):06d}"
        cid = body + iso6346.calc_check_digit(body)
        t = base + rng.uniform(0, 60) * 86400
        for _ in range(per_container):
            t += rng.uniform(6, 120) * 3600
            stamp = datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            yield {"eventID": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "eventCreatedDateTime": stamp,
                   "eventType": "EQUIPMENT", "eventClassifierCode": "ACT", "eventDateTime": stamp,
                   "equipmentEventTypeCode": rng.choice(codes), "equipmentReference": cid,
                   "emptyIndicatorCode": rng.choice(("LADEN", "EMPTY")),
                   "eventLocation": {"UNLocationCode": rng.choice(PORTS)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--containers", type=int, default=100_000)
    ap.add_argument("--filings", type=int, default=10_000)
    ap.add_argument("--redis-url", default=None)
    args = ap.parse_args()

    embedded = None if args.redis_url else EmbeddedRedis(__import__("pathlib").Path(__import__("tempfile").mkdtemp()))
    url = args.redis_url or embedded.url
    client = connect(url)
    client.flushall()
    store = ContainerEventStore(client)

    filings = list(generate(GeneratorSpec(count=args.filings, seed=5, defect_rate=0.05)))
    corpus_events = [e for events, _ in generate_status(filings, StatusSpec(seed=5, anomaly_rate=0.1)) for e in events]
    corpus_containers = len({e["equipmentReference"] for e in corpus_events})
    remaining = max(0, args.containers - corpus_containers)
    per = max(1, (args.events - len(corpus_events)) // max(remaining, 1))
    rng = random.Random(5)
    print(f"building {len(corpus_events):,} corpus events + {remaining:,} filler containers x {per} events ...",
          flush=True)
    items = [("corpus", e) for e in corpus_events] + [("filler", e) for e in filler_events(remaining, per, rng)]

    checker = DcsaEventChecker()
    t = time.perf_counter()
    summary = load_events(items, checker, store, on_rejected=lambda *a: None)
    load_s = time.perf_counter() - t
    info = client.info("memory")
    print(f"\nloading: {summary.read:,} events ({summary.loaded:,} stored, {summary.duplicates} duplicates, "
          f"{sum(summary.rejected.values())} rejected) in {load_s:.1f} s = {summary.read / load_s:,.0f} events/s "
          f"(check + normalize + store); Redis memory {info['used_memory'] / 2**20:,.0f} MiB")
    t = time.perf_counter()
    for _, e in items[:50_000]:
        checker.problems(e)
    print(f"  of which the DCSA check alone: {(time.perf_counter() - t) / 50_000 * 1e6:.1f} µs/event")
    del items

    validator = FilingValidator(Settings())
    accepted = [standalone(member_of(o, f"MRN{i}")) for i, o in
                enumerate(validator.validate(Submission(f.name, f.data)) for f in filings) if o.accepted]
    with_containers = sum(1 for c in accepted if c.record.containers)
    ref = bundled_reference()
    n = len(accepted)
    # The corpus and outcomes are the harness's: keep the garbage collector from rescanning them
    # on every batch (a pipeline worker holds one batch at a time, not the whole corpus).
    gc.collect()
    gc.freeze()
    print(f"\nenrichment over {n:,} accepted filings of the mixed corpus ({with_containers:,} declare containers)")

    def one_by_one() -> float:
        t0 = time.perf_counter()
        for consignment in accepted:
            for c in consignment.record.containers:
                tag = "{" + c.container_id + "}"  # the store's layout: the container's hash tag
                ids = client.zrange(f"cs:eq:{tag}:ACT", -500, -1)
                if ids:
                    [ContainerEvent.from_json(b) for b in client.mget([f"cs:ev:{tag}:{i.decode()}" for i in ids]) if b]
        return time.perf_counter() - t0

    raw = min(one_by_one() for _ in range(2))
    print(f"{'one by one (raw)':22s} {raw / n * 1e6:8.1f} µs/filing {n / raw:10,.0f} filings/s   (look-ups only)")
    for size in (1, 16, 64, 256, 1024):
        def run(size: int = size) -> float:
            t0 = time.perf_counter()
            for i in range(0, n, size):
                enrich(accepted[i:i + size], store.histories, ref)
            return time.perf_counter() - t0
        best = min(run() for _ in range(2))
        print(f"{'batch of ' + str(size):22s} {best / n * 1e6:8.1f} µs/filing {n / best:10,.0f} filings/s   "
              f"{raw / best:5.1f}x faster than one by one (look-ups and facts)")
    if embedded:
        embedded.close()


if __name__ == "__main__":
    sys.exit(main())
