"""Redis round trips and commands per filing, by step of the streaming service.

    python bench/round_trips.py [--count 3000] [--seed 17]

Generates traffic of every mode (linked consignments, amendments, 5% planted risk) with its
containers' DCSA histories in an embedded Redis, queues the filings in their partitions as the
ingress does, and runs the service in this process (one worker, FnApiRunner, until the streams
are empty). Every request written to Redis (a command, or a whole pipeline: one round trip) is
counted by the step whose DoFn sent it; the commands Redis executed come from INFO commandstats.
Prints round trips and commands per filing, per step and in all. On a single Redis a pipeline is
one round trip; on a cluster (not measured here) a batch is one per master it touches.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import redis.connection
from lxml import etree

from cargoscreen.cli import load_feed
from cargoscreen.config import Settings
from cargoscreen.connectors.redis_store import EmbeddedRedis, connect
from cargoscreen.connectors.redis_streams import StreamKeys
from cargoscreen.corpus import write_container_status
from cargoscreen.generator import GeneratorSpec, generate
from cargoscreen.linking import routing_name
from cargoscreen.service import run_service

import cargoscreen

PACKAGE = str(Path(cargoscreen.__file__).resolve().parents[1])  # the checkout the package runs from


def step_of(frame) -> str:
    """The DoFn (or other class of ours) nearest the caller that sent a request: `_LinkDoFn`, say."""
    while frame is not None:
        code = frame.f_code
        if code.co_filename.startswith(PACKAGE) and "DoFn." in code.co_qualname:
            return code.co_qualname.split(".", 1)[0]
        frame = frame.f_back
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    spec = dict(resubmission_rate=0.02, risk_rate=0.05)
    keys = StreamKeys()
    trips: Counter = Counter()
    original = redis.connection.AbstractConnection.send_packed_command

    def counted(self, command, check_health=True):
        trips[step_of(sys._getframe(1))] += 1
        return original(self, command, check_health)

    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as server:
        client = connect(server.url)
        write_container_status(Path(tmp), args.count, args.seed, anomaly_rate=0.05, **spec)
        load_feed([Path(tmp) / "container-events.jsonl"], server.url, Path(tmp) / "rejected.jsonl")
        parser_ = etree.XMLParser(resolve_entities=False, no_network=True)
        pipe = client.pipeline(transaction=False)
        for f in generate(GeneratorSpec(count=args.count, seed=args.seed, **spec)):
            try:
                route = routing_name(etree.fromstring(f.data, parser_))
            except etree.XMLSyntaxError:
                route = None
            pipe.xadd(keys.filings_for(route or f.name), {"filing": f.data, "id": f.name})
        pipe.execute()
        client.config_resetstat()
        settings = Settings().with_redis_url(server.url)
        redis.connection.AbstractConnection.send_packed_command = counted
        started = time.perf_counter()
        try:
            run_service(replace(settings, streams=replace(settings.streams, once=True)), ["bench-0"])
        finally:
            redis.connection.AbstractConnection.send_packed_command = original
        elapsed = time.perf_counter() - started
        commands = {k[len("cmdstat_"):]: v["calls"] for k, v in client.info("commandstats").items()}
    n = args.count
    print(f"{n} filings through the service (one worker, FnApiRunner, embedded Redis) in {elapsed:.1f} s")
    print(f"{'step':28} {'round trips/filing':>19}")
    for step, count in trips.most_common():
        print(f"{step:28} {count / n:19.3f}")
    print(f"{'all':28} {sum(trips.values()) / n:19.3f}")
    print(f"\nRedis commands per filing: {sum(commands.values()) / n:.2f}; the most frequent:")
    for name, calls in sorted(commands.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  {name:16} {calls / n:7.3f}")


if __name__ == "__main__":
    sys.exit(main())
