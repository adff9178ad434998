"""The linking step on its own: CPU, Redis round trips, script calls and bytes per filing.

    python bench/link_step.py [--count 3000] [--seed 17] [--rounds 5] [--setup-only]

Generates traffic of every mode (linked consignments, 2% re-sent), validates and registers it in
an embedded Redis as the service does, then runs the linking step's DoFn (pipeline/stages/link.py)
over the registered filings in its batches, --rounds times, each round on consignment keys of its
own (a fresh state, as the first round found it). Prints the best round's CPU per filing (the
first round left out: it counts), and per filing what went to Redis and back and the CPU the
Redis server spent. Run it with the old code's Python beside the new one's to
compare them back to back. Instruction counts of the linking alone (the rounds run inside
functools.reduce, so callgrind counts only there):

    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=functools_reduce \
        python bench/link_step.py --count 1500 --rounds 1

--setup-only does everything but the linking (to subtract it, counting everything).
"""
from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import redis.connection

from cargoscreen.answering import registration_request, repeats
from cargoscreen.config import Settings
from cargoscreen.connectors.redis_store import EmbeddedRedis, connect
from cargoscreen.generator import GeneratorSpec, generate
from cargoscreen.registration import AMENDED, INVALIDATED, REGISTERED, RegistrationStore
from cargoscreen.stages.link import _LinkDoFn
from cargoscreen.validation import FilingValidator, Submission, utc_now


def registered(settings: Settings, client, count: int, seed: int) -> list:
    """(ValidationOutcome, RegistrationResult) of the generated filings that go on to linking."""
    validator = FilingValidator(settings)
    outcomes = [o for f in generate(GeneratorSpec(count=count, seed=seed, resubmission_rate=0.02, risk_rate=0.05))
                for o in [validator.validate(Submission(f.name, f.data))] if o.accepted]
    store = RegistrationStore(client, settings.redis.key_prefix, settings.registration_retention_seconds,
                              settings.registration_index_buckets)
    year = datetime.now(timezone.utc).year
    results = store.register([registration_request(o, year) for o in outcomes], utc_now())
    return [(o, r) for o, r in zip(outcomes, results)
            if r.status in (REGISTERED, AMENDED, INVALIDATED) and not repeats(r, o.submission.submission_id)]


def redis_cpu(client) -> float:
    """CPU seconds the Redis server has used (its main thread and the others)."""
    info = client.info("cpu")
    return info["used_cpu_user"] + info["used_cpu_sys"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--setup-only", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as server:
        settings = Settings().with_redis_url(server.url)
        client = connect(server.url)
        elements = registered(settings, client, args.count, args.seed)
        size = settings.linking.batch_size
        batches = [elements[i:i + size] for i in range(0, len(elements), size)]
        if args.setup_only:
            return
        trips, scripts, sent = [0], [0], [0]
        original = redis.connection.AbstractConnection.send_packed_command

        def counted(self, command, check_health=True):
            chunks = [command] if isinstance(command, (bytes, str)) else command
            trips[0] += 1
            sent[0] += sum(len(c) for c in chunks)
            scripts[0] += sum(bytes(c).count(b"\r\nEVALSHA\r\n") for c in chunks if not isinstance(c, str))
            return original(self, command, check_health)

        best, outputs = float("inf"), 0
        for n in range(args.rounds):
            step = _LinkDoFn(replace(settings, redis=replace(settings.redis, key_prefix=f"round{n}")))
            step.setup()
            step._next_sweep = float("inf")  # deadlines are not what is measured
            counting = n == 0  # the first round counts what goes to Redis, the others are timed only
            if counting:
                client.config_resetstat()
                server_cpu = redis_cpu(client)
                redis.connection.AbstractConnection.send_packed_command = counted
            started = time.process_time()
            try:  # through functools.reduce, a C function callgrind can switch its counting on at (docstring)
                outputs = functools.reduce(lambda count, batch: count + sum(1 for _ in step.process(batch)),
                                           batches, 0)
            finally:
                redis.connection.AbstractConnection.send_packed_command = original
            seconds = time.process_time() - started
            if counting:
                net, server_cpu = client.info("stats"), redis_cpu(client) - server_cpu
                script = client.info("commandstats").get("cmdstat_evalsha", {})
            else:
                best = min(best, seconds)
        if args.rounds == 1:
            best = seconds
    n = len(elements)
    print(f"linking step: {n} registered filings in {len(batches)} batches of up to {size}, {outputs} outputs")
    print(f"CPU per filing (best of {max(args.rounds - 1, 1)} rounds): {best / n * 1e6:.1f} µs")
    print(f"per filing: {trips[0] / n:.4f} round trips, {scripts[0] / n:.4f} script calls, "
          f"{sent[0] / n:,.0f} bytes sent, {net['total_net_output_bytes'] / n:,.0f} bytes back; "
          f"Redis's CPU {server_cpu / n * 1e6:.1f} µs")
    print(f"a script call runs {script.get('usec_per_call', 0) / 1000:.1f} ms in Redis on average (Redis serves "
          f"nothing else meanwhile)")


if __name__ == "__main__":
    sys.exit(main())
