"""Scale-out of the streaming service: 1, 2 and 4 workers on a 3-master Redis Cluster (3 replicas)
and on a single Redis, side by side in one run.

    python bench/cluster_scale.py [--filings 2000] [--workers 1,2,4] [--rounds 3]

Both Redis are Debian's redis-server (the same binary; the cluster as the test suite starts it).
For each Redis and worker count: the Redis emptied, the workers started (`python -m
cargoscreen.service`, one consumer each) and warmed up on 100 filings, then `--filings` new filings
queued at once in their consignments' partitions (as the ingress routes them); throughput is how
fast the workers finish them (read, screened, every effect written, acknowledged). CPU per filing
is the workers' and the Redis servers' CPU time over the run (psutil), divided by the filings.
Each configuration runs --rounds times, single and cluster alternating; prints the median (and
the range) of each, and the cluster's throughput as a ratio of the single Redis's at each
worker count (the issue's target: within 15%). The machine's cores bound it all: the CPU columns
say who used them.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psutil
import redis
from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.conftest import free_port, redis_cluster, stop, wait_answering  # noqa: E402  the suite's cluster, not a copy

from cargoscreen.connectors.redis_store import connect  # noqa: E402
from cargoscreen.connectors.redis_streams import StreamKeys  # noqa: E402
from cargoscreen.generator import GeneratorSpec, generate  # noqa: E402
from cargoscreen.health import stream_backlog  # noqa: E402
from cargoscreen.linking import routing_name  # noqa: E402


@contextmanager
def single_redis(folder: Path):
    port = free_port()
    server = subprocess.Popen([shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port),
                               "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_answering(port)
        yield [f"redis://127.0.0.1:{port}/0"]
    finally:
        stop(server)


def servers(urls: list[str]) -> list[psutil.Process]:
    return [psutil.Process(redis.Redis.from_url(u).info("server")["process_id"]) for u in urls]


def cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for p in processes:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def flush(urls: list[str]) -> None:
    for u in urls:
        client = redis.Redis.from_url(u)
        if client.info("replication")["role"] == "master":
            client.flushall()


def routed(filings, keys: StreamKeys) -> list[tuple[str, dict]]:
    out = []
    for f in filings:
        try:
            route = routing_name(etree.fromstring(f.data))
        except etree.XMLSyntaxError:
            route = None
        out.append((keys.filings_for(route or f.name), {"filing": f.data, "id": f.name}))
    return out


def queue(client, entries) -> None:
    pipe = client.pipeline(transaction=False)
    for stream, fields in entries:
        pipe.xadd(stream, fields)
    pipe.execute()


def wait_done(client, keys: StreamKeys, workers, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert all(w.poll() is None for w in workers), "a worker exited"
        unread, pending, _ = stream_backlog(client, keys, "screening", int(time.time() * 1000))
        if not unread and not pending:
            return
        time.sleep(0.1)
    raise RuntimeError("the workers did not finish")


def run(urls: list[str], workers: int, warm, measured, keys: StreamKeys, log) -> dict:
    flush(urls)
    client = connect(urls[0])
    procs = [subprocess.Popen([sys.executable, "-m", "cargoscreen.service", f"--redis_url={urls[0]}",
                               f"--consumer=w{n}", "--metrics_port=0", "--read_batch=200"],
                              stdout=log, stderr=subprocess.STDOUT) for n in range(workers)]
    try:
        deadline = time.monotonic() + 120
        while not all(client.exists(keys.heartbeat(f"w{n}")) for n in range(workers)):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "workers did not start"
            time.sleep(0.1)
        queue(client, warm)
        wait_done(client, keys, procs)
        watched = [psutil.Process(p.pid) for p in procs]
        redis_servers = servers(urls)
        cpu_workers, cpu_redis = cpu(watched), cpu(redis_servers)
        started = time.perf_counter()
        queue(client, measured)
        wait_done(client, keys, procs)
        elapsed = time.perf_counter() - started
        n = len(measured)
        return {"throughput": n / elapsed, "seconds": elapsed,
                "worker_ms": (cpu(watched) - cpu_workers) * 1000 / n,
                "redis_ms": (cpu(redis_servers) - cpu_redis) * 1000 / n}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            stop(p, timeout=60)


def _interleaved(targets: dict, rounds: int, measure) -> dict[str, list[dict]]:
    """Each target measured `rounds` times, alternating (single, cluster, single, ...): drifts of the
    machine's load fall on both alike."""
    out: dict[str, list[dict]] = {name: [] for name in targets}
    for _ in range(rounds):
        for name, urls in targets.items():
            out[name].append(measure(urls))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--filings", type=int, default=2000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each configuration; the median is reported")
    args = parser.parse_args()
    keys = StreamKeys()
    pool = list(generate(GeneratorSpec(count=args.filings + 100, seed=args.seed, resubmission_rate=0,
                                       risk_rate=0.05)))
    warm, measured = routed(pool[:100], keys), routed(pool[100:], keys)
    counts = [int(w) for w in args.workers.split(",")]
    results: dict[tuple[str, int], dict] = {}
    print(f"{len(measured)} filings, {os.cpu_count()} cores, {keys.partitions} partitions; "
          f"load average before: {os.getloadavg()[0]:.2f}")
    print(f"median of {args.rounds} rounds")
    print(f"{'redis':8} {'workers':>7} {'filings/s':>10} {'range':>11} {'worker ms/filing':>17} {'redis ms/filing':>16}")
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        log = stack.enter_context((Path(tmp) / "workers.log").open("wb"))
        (Path(tmp) / "single").mkdir()
        targets = {"single": stack.enter_context(single_redis(Path(tmp) / "single")),
                   "cluster": stack.enter_context(redis_cluster(Path(tmp) / "cluster"))}
        for workers in counts:  # single and cluster side by side at each count, rounds interleaved: the same machine state
            rounds = _interleaved(targets, args.rounds, lambda urls: run(urls, workers, warm, measured, keys, log))
            for name, runs in rounds.items():
                r = results[name, workers] = {k: statistics.median(x[k] for x in runs) for k in runs[0]}
                spread = f"{min(x['throughput'] for x in runs):.0f}-{max(x['throughput'] for x in runs):.0f}"
                print(f"{name:8} {workers:7d} {r['throughput']:10.1f} {spread:>11} {r['worker_ms']:17.2f} "
                      f"{r['redis_ms']:16.2f}")
    print("\ncluster / single throughput:", ", ".join(
        f"{w} worker{'s' if w > 1 else ''} {results['cluster', w]['throughput'] / results['single', w]['throughput']:.2f}"
        for w in counts))
    for name in ("single", "cluster"):
        print(f"{name}: {counts[-1]} workers / 1 worker = "
              f"{results[name, counts[-1]]['throughput'] / results[name, counts[0]]['throughput']:.2f}x")


if __name__ == "__main__":
    main()
