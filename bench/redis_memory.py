"""Redis memory per filing, by key family, measured on a real run (MEMORY USAGE, every element).

    python bench/redis_memory.py [--count 3000] [--write rules/sizing/redis-bytes.json]

Generates traffic of every mode (5% planted risk) with its containers' DCSA histories, loads the
histories into an embedded Redis, runs the streaming service over the filings (one worker,
FnApiRunner, until the stream is empty), takes every referral into the workbench's queues and
resolves them all (the keeper's intake and an analyst's resolution, as in production: at steady
state nearly every referral Redis holds is one closed in the last 90 days; the bytes of the open
ones, whole, are printed apart), then reads every key's size and sorts it into its family
(pipeline/sizing.py). Prints bytes per filing, keys and keys without a TTL per family, and the
steady state at EU volume with the default retentions (12.6 M filings a day); --write keeps the
table `cargoscreen sizing` uses.

Registrations are kept in small hashes per bucket, period and sub-bucket (pipeline/registration.py),
sized to hold about 60 filings each at EU volume. A run of a few thousand filings with the default
16,384 sub-buckets would leave one filing per hash and measure the per-key overhead that EU volume
spreads over 60: the bench runs with --registration-index-buckets 1 (about count/128 filings a
hash, 23 at 3,000: if anything, more overhead per filing than at EU volume). A registration is
about 90 bytes: Redis keeps such hashes compact only with `hash-max-listpack-value 128` (the
default, 64, turns them into hash tables at twice the memory): ops/REDIS-KEYS.md asks deployments
for it, and the bench sets it (--hash-max-listpack-value).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from cargoscreen.cli import load_feed
from cargoscreen.config import Settings
from cargoscreen.connectors.redis_store import EmbeddedRedis, connect
from cargoscreen.connectors.redis_streams import StreamKeys
from cargoscreen.corpus import write_container_status
from cargoscreen.generator import GeneratorSpec, generate
from cargoscreen.service import run_service
from cargoscreen.sizing import measure, per_filing, steady_state
from cargoscreen.workbench.keeper import Keeper

EU_FILINGS_PER_DAY = 12_600_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--write", type=Path, default=None, help="write the measured table here (JSON)")
    parser.add_argument("--registration-index-buckets", type=int, default=1,
                        help="sub-buckets per registration bucket and period (see above)")
    parser.add_argument("--hash-max-listpack-value", type=int, default=128,
                        help="the Redis setting the deployment is asked for (see above)")
    args = parser.parse_args()
    spec = dict(resubmission_rate=0.02, risk_rate=0.05)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as server:
        client = connect(server.url)
        client.config_set("hash-max-ziplist-value", args.hash_max_listpack_value)  # the 6.2 name; 7 takes both
        write_container_status(Path(tmp), args.count, args.seed, anomaly_rate=0.05, **spec)
        load_feed([Path(tmp) / "container-events.jsonl"], server.url, Path(tmp) / "rejected.jsonl")
        pipe = client.pipeline(transaction=False)
        for f in generate(GeneratorSpec(count=args.count, seed=args.seed, **spec)):
            pipe.xadd(StreamKeys().filings, {"filing": f.data, "id": f.name})
        pipe.execute()
        settings = replace(Settings().with_redis_url(server.url),
                           registration_index_buckets=args.registration_index_buckets)
        run_service(replace(settings, streams=replace(settings.streams, once=True)), ["bench-0"])
        keeper = Keeper(client, settings)
        while any(v for k, v in keeper.once().items() if k != "forgotten"):
            pass
        open_referrals = measure(client)["workbench referrals"]
        resolved = 0
        for centre, queue in keeper._queues.items():
            for row in queue.page(count=100_000).rows:
                queue.claim(row["referral_id"], "bench")
                queue.resolve(row["referral_id"], "bench", "no-finding")
                resolved += 1
        measured = measure(client)
        version = client.info("server")["redis_version"]
    filings = args.count
    table = per_filing(measured, filings)
    print(f"{filings} filings screened, {resolved} referrals resolved; Redis {version}")
    print(f"an open referral, whole: {open_referrals['bytes'] / max(open_referrals['keys'], 1):,.0f} B "
          f"({open_referrals['bytes'] / filings:.1f} B per filing screened while all are open)")
    print(f"{'family':24} {'keys':>7} {'no TTL':>7} {'bytes/filing':>13}")
    for name, row in measured.items():
        if row["keys"]:
            print(f"{name:24} {row['keys']:7d} {row['without_ttl']:7d} {table[name]:13.1f}")
    total = 0.0
    print(f"\nsteady state at {EU_FILINGS_PER_DAY:,} filings a day, default retentions:")
    for f in steady_state(table, EU_FILINGS_PER_DAY, Settings()):
        if f.steady_bytes is not None and f.bytes_per_filing:
            total += f.steady_bytes
            print(f"{f.name:24} {f.bytes_per_filing:8.1f} B x {f.days:5.0f} days = {f.steady_bytes / 1e9:9.1f} GB")
    print(f"{'total per filing':24} {total / 1e9:31.1f} GB")
    if args.write:
        args.write.write_text(json.dumps({
            "source": f"bench/redis_memory.py --count {filings} --seed {args.seed} --registration-index-buckets "
                      f"{args.registration_index_buckets} --hash-max-listpack-value {args.hash_max_listpack_value}, "
                      f"Redis {version}, "
                      f"{datetime.now(timezone.utc):%Y-%m-%d}",
            "filings": filings, "bytes_per_filing": {k: round(v, 1) for k, v in table.items()},
            "keys": {k: v["keys"] for k, v in measured.items() if v["keys"]},
            "open_referral_bytes": round(open_referrals["bytes"] / max(open_referrals["keys"], 1))}, indent=2) + "\n")
        print(f"written to {args.write}")


if __name__ == "__main__":
    sys.exit(main())
