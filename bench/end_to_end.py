"""End-to-end benchmark of the streaming service, Redis in the loop.

    python bench/end_to_end.py [--workers 2] [--rates 250,500,1000] [--seconds 20] [--saturate 20000]
                               [--long 1000000 --long-rate 600] [--redis-url URL] [-- worker options...]

What it does, in one run:
1. an embedded Redis (or --redis-url), loaded with the DCSA histories of the containers of a
   pool of generated filings (mixed modes, defects, hostile envelopes, linked consignments);
2. `--workers` service processes (`python -m cargoscreen.service`, one consumer each: the way
   a deployment scales a consumer group), started and warmed up before anything is measured;
3. at each offered rate: filings put on the filing stream at that rate for `--seconds`;
   latency from submission to decision (Redis stream entry times on both ends, one clock),
   p50/p95/p99 of the decisions whose last filing was submitted in that phase (a linked
   consignment is decided when its last filing arrives);
4. saturation: `--saturate` filings put on the stream at once, sustained throughput = how fast
   the workers finish them (acknowledged: every effect written);
   with the workbench's keeper running (`cargoscreen workbench keep`), also the latency from
   submission to the referral's admission into its risk centre's queue (what the queue page
   shows from then on; bench/workbench.py measures the page itself);
5. with --long N: N filings at --long-rate, the workers' memory (RSS) sampled as it goes;
   flat means the slope after warm-up is ~0.

Each filing of the pool is re-sent under a new LRN and new transport document numbers per
round, so every submission is a new filing (a re-sent one would take the cheap path) and
consignments never grow across rounds. Worker options after `--` (e.g. --answer_check_every=1)
go to every worker.
"""
from __future__ import annotations

import argparse
import bisect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import redis

from cargoscreen.cli import load_feed
from cargoscreen.connectors.redis_store import EmbeddedRedis, hash_tag
from cargoscreen.connectors.redis_streams import StreamKeys, entry_key
from cargoscreen.corpus import corpus_spec, write_container_status
from cargoscreen.generator import generate
from cargoscreen.workbench.queue import QueueKeys

_LRN = re.compile(rb"<ens:LRN>LRN\d{3}")
_DOC = re.compile(rb"<ens:Number>([MH]B)")


def entry_ms(entry_id: bytes | str) -> int:
    return entry_key(entry_id)[0]


class Pool:
    """Generated filings, re-sent round after round as new filings."""

    def __init__(self, size: int, seed: int):
        # A filer only where the generator knows one (an unreadable envelope has none): a channel
        # filer is an authenticated EORI, never a placeholder.
        self.filings = [(f.data, f.label.get("filer")) for f in generate(corpus_spec(size, seed=seed))]
        self.sent = 0

    def next(self) -> tuple[str, bytes, str | None, str]:
        """(submission id, bytes, filer, lrn prefix of this round)"""
        n = self.sent
        self.sent += 1
        round_, i = divmod(n, len(self.filings))
        data, filer = self.filings[i]
        tag = b"R%06d" % round_
        data = _DOC.sub(rb"<ens:Number>\1" + tag, _LRN.sub(b"<ens:LRN>" + tag, data, count=1))
        return f"bench-{n}", data, filer, tag.decode()


class Producer:
    """Puts filings on the stream at an offered rate; remembers each one's entry id."""

    def __init__(self, client: redis.Redis, keys: StreamKeys, pool: Pool):
        self._client, self._keys, self._pool = client, keys, pool
        self.ids: list[tuple[int, int]] = []  # every entry, in stream order
        self.submitted: dict[str, int] = {}  # lrn -> entry time (ms), for latency

    def offer(self, rate: float, count: int, track: bool = True) -> float:
        """Sends `count` filings at `rate` per second (in 10 ms ticks); returns the seconds it took."""
        started, sent, tick = time.perf_counter(), 0, 0.01
        while sent < count:
            due = min(count, int((time.perf_counter() - started) * rate) + 1)
            if due > sent:
                self._send(due - sent, track)
                sent = due
            else:
                time.sleep(tick)
        return time.perf_counter() - started

    def _send(self, n: int, track: bool) -> None:
        pipe = self._client.pipeline(transaction=False)
        lrns = []
        for _ in range(n):
            sid, data, filer, tag = self._pool.next()
            m = re.search(rb"<ens:LRN>([^<]{1,40})<", data)
            lrns.append(m.group(1).decode(errors="replace") if m else None)
            pipe.xadd(self._keys.filings, {"filing": data, "id": sid, **({"filer": filer} if filer else {})})
        for lrn, entry_id in zip(lrns, pipe.execute()):
            self.ids.append(entry_key(entry_id))
            if track and lrn:
                self.submitted[lrn] = entry_ms(entry_id)


class Progress:
    """How many submissions the workers have finished (read and acknowledged), from the group."""

    def __init__(self, client: redis.Redis, keys: StreamKeys, group: str, producer: Producer):
        self._client, self._keys, self._group, self._producer = client, keys, group, producer

    def done(self) -> int:
        groups = self._client.xinfo_groups(self._keys.filings)
        g = next((g for g in groups if g["name"].decode() == self._group), None)
        if g is None:
            return 0
        delivered = bisect.bisect_right(self._producer.ids, entry_key(g["last-delivered-id"]))
        return delivered - int(g["pending"])

    def wait(self, target: int, timeout: float) -> float:
        started = time.perf_counter()
        while self.done() < target and time.perf_counter() - started < timeout:
            time.sleep(0.05)
        return time.perf_counter() - started


class DecisionWatch(threading.Thread):
    """Reads the decisions stream; latency = decision entry time - last member's submission time."""

    def __init__(self, client: redis.Redis, keys: StreamKeys, producer: Producer):
        super().__init__(daemon=True)
        self._client, self._keys, self._producer = client, keys, producer
        self.latencies_ms: list[int] = []
        self.decisions = 0
        self._stop = threading.Event()

    def run(self) -> None:
        last = "$"
        while not self._stop.is_set():
            reply = self._client.xread({self._keys.decisions: last}, count=2000, block=200)
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    last = entry_id
                    self._record(entry_ms(entry_id), json.loads(fields[b"body"]))

    def _record(self, decided_ms: int, body: dict) -> None:
        if "filings" not in body:  # a withdrawal
            return
        self.decisions += 1
        times = [self._producer.submitted.get(f["lrn"]) for f in body["filings"]]
        if times and None not in times:
            self.latencies_ms.append(decided_ms - max(times))

    def take(self) -> list[int]:
        out, self.latencies_ms = self.latencies_ms, []
        return out

    def stop(self) -> None:
        self._stop.set()


def raw_lxml_rate(pool: Pool) -> float:
    """The baseline, measured in the same run: lxml parse + XSD validation of the pool, one core,
    nothing else (best of three passes; this VM drifts)."""
    from lxml import etree

    from cargoscreen.config import Settings

    schema = etree.XMLSchema(etree.parse(str(Settings().schema_dirs[-1] / "ics2-v1" / "ens.xsd")))
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        for data, _ in pool.filings:
            try:
                schema.validate(etree.fromstring(data, parser))
            except etree.XMLSyntaxError:
                pass
        best = max(best, len(pool.filings) / (time.perf_counter() - started))
    return best


def percentile(values: list[int], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))])


def rss_mb(procs: list[subprocess.Popen]) -> list[float]:
    out = []
    for p in procs:
        proc = psutil.Process(p.pid)
        out.append(sum(q.memory_info().rss for q in [proc, *proc.children(recursive=True)]) / 2 ** 20)
    return out


def start_workers(n: int, url: str, extra: list[str], logs: Path) -> list[subprocess.Popen]:
    procs = []
    for k in range(n):
        log = (logs / f"worker-{k}.log").open("w")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "cargoscreen.service", f"--redis_url={url}", f"--consumer=bench-{k}",
             "--output_maxlen=50000", *extra], stdout=log, stderr=subprocess.STDOUT))
    return procs


def start_keeper(url: str, logs: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cargoscreen.cli", "workbench", "keep", "--redis-url", url],
                            stdout=(logs / "keeper.log").open("w"), stderr=subprocess.STDOUT)


def queue_latencies(client: redis.Redis, producer: "Producer", since: float) -> list[int]:
    """Per referral assessed since `since` (epoch s): its last filing's submission -> its admission
    into the centre's queue (both on the Redis clock), in ms."""
    out = []
    for key in client.scan_iter(match="cs:wb:*:age"):
        keys = QueueKeys("cs", hash_tag(key.decode()))
        pipe = client.pipeline(transaction=False)
        for rid in client.zrangebyscore(key, since, "+inf"):
            pipe.hmget(keys.referral(rid.decode()), "admitted_ms", "body")
        for admitted, body in pipe.execute():
            times = [producer.submitted.get(f["lrn"]) for f in json.loads(body)["filings"]]
            if admitted and times and None not in times:
                out.append(int(admitted) - max(times))
    return out


def stop_workers(client: redis.Redis, keys: StreamKeys, procs: list[subprocess.Popen]) -> None:
    for k in range(len(procs)):
        client.set(keys.drain(f"bench-{k}"), "1", ex=600)
    for p in procs:
        try:
            p.wait(120)
        except subprocess.TimeoutExpired:
            p.kill()


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # progress of a long run shows as it goes, also in a log file
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rates", default="250,500,1000", help="offered rates, filings/s")
    ap.add_argument("--seconds", type=float, default=20, help="length of each offered-rate phase")
    ap.add_argument("--saturate", type=int, default=20_000, help="filings put at once for the throughput phase")
    ap.add_argument("--long", type=int, default=0, help="filings in the memory run (0: none)")
    ap.add_argument("--long-rate", type=float, default=600)
    ap.add_argument("--pool", type=int, default=4000, help="distinct generated filings, re-sent per round")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--redis-url", default=None)
    ap.add_argument("--report", default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)

    work = Path(tempfile.mkdtemp(prefix="cs-bench-"))
    server = None
    if args.redis_url is None:
        server = EmbeddedRedis(work / "redis")
    url = args.redis_url or server.url
    client, keys = redis.Redis.from_url(url, socket_timeout=120), StreamKeys()
    client.flushdb()
    if server:
        client.config_set("save", "")  # no snapshots of a throw-away store in the middle of the measurement
    results: dict = {"workers": args.workers, "worker_options": extra, "cpus": os.cpu_count()}
    try:
        t = time.perf_counter()
        pool = Pool(args.pool, args.seed)
        write_container_status(work, args.pool, seed=args.seed)
        load_feed([work / "container-events.jsonl"], url, work / "rejected.jsonl")
        print(f"pool: {args.pool} filings and their container histories in {time.perf_counter() - t:.1f} s")

        results["baseline_raw_lxml_per_s"] = round(raw_lxml_rate(pool), 1)
        print(f"baseline: raw lxml parse + XSD validation, one core, no Redis: "
              f"{results['baseline_raw_lxml_per_s']:.0f} filings/s")
        producer = Producer(client, keys, pool)
        progress = Progress(client, keys, "screening", producer)
        procs = start_workers(args.workers, url, extra, work)
        keeper = start_keeper(url, work)
        watch = DecisionWatch(client, keys, producer)
        watch.start()
        warm = args.pool // 2
        producer.offer(2000, warm, track=False)  # warm-up: start-up, rule pack, schema caches
        progress.wait(warm, 300)
        print(f"workers up and warm after {time.perf_counter() - t:.1f} s; rss MB {rss_mb(procs)}")
        results["rates"] = []
        for rate in [float(r) for r in args.rates.split(",") if r]:
            watch.take()
            phase_start = time.time()
            base = progress.done()
            offered = producer.offer(rate, int(rate * args.seconds))
            drained = offered + progress.wait(base + int(rate * args.seconds), 300)
            time.sleep(0.5)  # the last decisions reach the watcher
            lat = watch.take()
            row = {"offered_per_s": rate, "achieved_per_s": round(int(rate * args.seconds) / drained, 1),
                   "decisions": len(lat), "p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95),
                   "p99_ms": percentile(lat, 99), "max_ms": float(max(lat, default=0))}
            time.sleep(1.0)  # the keeper's last round
            queued = queue_latencies(client, producer, phase_start)
            row.update({"referrals_queued": len(queued), "queue_p50_ms": percentile(queued, 50),
                        "queue_p95_ms": percentile(queued, 95), "queue_p99_ms": percentile(queued, 99),
                        "queue_max_ms": float(max(queued, default=0))})
            results["rates"].append(row)
            print(f"offered {rate:7.0f}/s  achieved {row['achieved_per_s']:7.1f}/s  decisions {len(lat):6d}  "
                  f"p50 {row['p50_ms']:6.0f} ms  p95 {row['p95_ms']:6.0f} ms  p99 {row['p99_ms']:6.0f} ms  "
                  f"max {row['max_ms']:6.0f} ms")
            print(f"        referrals in their queue: {len(queued):6d}  p50 {row['queue_p50_ms']:6.0f} ms  "
                  f"p95 {row['queue_p95_ms']:6.0f} ms  p99 {row['queue_p99_ms']:6.0f} ms  "
                  f"max {row['queue_max_ms']:6.0f} ms (submission -> in the queue)")
        if args.saturate:
            base = progress.done()
            started = time.perf_counter()
            producer.offer(1e9, args.saturate, track=False)
            progress.wait(base + args.saturate, 1800)
            elapsed = time.perf_counter() - started
            results["sustained_per_s"] = round(args.saturate / elapsed, 1)
            print(f"sustained: {args.saturate} filings in {elapsed:.1f} s = {results['sustained_per_s']:.0f}/s "
                  f"({args.workers} workers), {results['sustained_per_s'] / results['baseline_raw_lxml_per_s']:.2f}"
                  f" x the baseline")
        if args.long:
            results["memory"] = long_run(args, producer, progress, procs, client)
        watch.stop()
        keeper.terminate()
        stop_workers(client, keys, procs)
        results["redis_used_memory_mb"] = round(client.info("memory")["used_memory"] / 2 ** 20, 1)
        print(f"redis memory at the end: {results['redis_used_memory_mb']:.0f} MB (state kept for its retention "
              f"periods, output streams up to their cap)")
        if args.report:
            Path(args.report).write_text(json.dumps(results, indent=2))
    finally:
        if server:
            try:
                client.shutdown(nosave=True)  # a throw-away store: no snapshot of gigabytes on the way out
            except redis.RedisError:
                pass  # the server closes the connection as it exits
            server.close()
        shutil.rmtree(work, ignore_errors=True)


def long_run(args, producer: Producer, progress: Progress, procs, client: redis.Redis) -> list[dict]:
    """N filings at the long rate in chunks, memory sampled after each chunk."""
    samples, chunk = [], max(1000, int(args.long_rate * 10))
    producer.submitted.clear()
    base, started, sent = progress.done(), time.perf_counter(), 0
    print(f"memory run: {args.long} filings at {args.long_rate:.0f}/s offered")
    print(f"{'filings':>9} {'elapsed s':>9} {'rate/s':>7} {'backlog':>8} {'worker rss MB':>24} {'redis MB':>9}")
    while sent < args.long:
        n = min(chunk, args.long - sent)
        producer.offer(args.long_rate, n, track=False)
        sent += n
        done = progress.done() - base
        elapsed = time.perf_counter() - started
        row = {"filings": done, "elapsed_s": round(elapsed, 1), "rss_mb": [round(r, 1) for r in rss_mb(procs)],
               "redis_mb": round(client.info("memory")["used_memory"] / 2 ** 20, 1), "backlog": sent - done}
        samples.append(row)
        if len(samples) % 6 == 1 or sent >= args.long:
            print(f"{done:9d} {elapsed:9.0f} {done / elapsed:7.0f} {sent - done:8d} "
                  f"{str(row['rss_mb']):>24} {row['redis_mb']:9.0f}")
    progress.wait(base + args.long, 600)
    warm = [s for s in samples if s["filings"] >= args.long // 10]
    if len(warm) >= 2:
        first, last = warm[0], warm[-1]
        per_100k = [(b - a) / max(1, last["filings"] - first["filings"]) * 100_000
                    for a, b in zip(first["rss_mb"], last["rss_mb"])]
        print(f"worker rss after 10%: {first['rss_mb']} MB, at the end: {last['rss_mb']} MB "
              f"(slope {[round(x, 2) for x in per_100k]} MB per 100k filings)")
    return samples


if __name__ == "__main__":
    main()
