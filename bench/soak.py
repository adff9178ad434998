"""Load and soak: the service under a steady offered rate for a long time, sampled as it goes.

    python bench/soak.py --rate 500 --minutes 30 [--workers 2] [--out soak-output] [-- worker options]

Same set-up as bench/end_to_end.py (embedded Redis loaded with container histories, N worker
processes, a pool of generated filings re-sent as new ones). Every --sample-seconds it records:
offered and achieved throughput, submission-to-decision latency p50/p95/p99 of the decisions made
in that window, the source lag (oldest unfinished filing) and pending entries, each worker's RSS
and Redis memory. At the end it waits for the backlog to drain and checks that every submitted
filing was finished. Writes OUT/soak.csv (one row per sample), OUT/soak.json (summary) and
OUT/soak.png (four panels over time). Flat lines are the point: throughput at the offered rate,
latency and lag not creeping up, memory not growing.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis

from cargoscreen.cli import load_feed
from cargoscreen.connectors.redis_store import EmbeddedRedis
from cargoscreen.connectors.redis_streams import StreamKeys
from cargoscreen.corpus import write_container_status
from cargoscreen.health import stream_backlog
from end_to_end import DecisionWatch, Pool, Producer, Progress, percentile, rss_mb, start_workers, stop_workers

COLUMNS = ["elapsed_s", "offered_per_s", "achieved_per_s", "decisions", "p50_ms", "p95_ms", "p99_ms",
           "lag_s", "pending", "worker_rss_mb", "redis_mb"]


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r["elapsed_s"] / 60 for r in rows]
    fig, axes = plt.subplots(2, 2, figsize=(13, 8), sharex=True)
    (a, b), (c, d) = axes
    a.plot(t, [r["offered_per_s"] for r in rows], "--", label="offered")
    a.plot(t, [r["achieved_per_s"] for r in rows], label="achieved")
    a.set_ylabel("filings/s")
    a.set_title("Throughput")
    a.legend()
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        b.plot(t, [r[key] for r in rows], label=key.removesuffix("_ms"))
    b.set_ylabel("ms")
    b.set_title("Submission to decision")
    b.legend()
    c.plot(t, [r["lag_s"] for r in rows], label="oldest unfinished (s)")
    c2 = c.twinx()
    c2.plot(t, [r["pending"] for r in rows], ":", color="grey", label="pending entries")
    c.set_title("Lag")
    c.set_xlabel("minutes")
    c.legend(loc="upper left")
    c2.legend(loc="upper right")
    d.plot(t, [r["worker_rss_mb"] for r in rows], label="workers' RSS (sum)")
    d.plot(t, [r["redis_mb"] for r in rows], label="Redis used memory")
    d.set_ylabel("MB")
    d.set_title("Memory")
    d.set_xlabel("minutes")
    d.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=500, help="offered filings/s")
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sample-seconds", type=float, default=10)
    ap.add_argument("--pool", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--out", default="soak-output")
    args = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="cs-soak-"))
    server = EmbeddedRedis(work / "redis")
    client, keys = redis.Redis.from_url(server.url, socket_timeout=120), StreamKeys()
    client.config_set("save", "")
    procs = []
    try:
        pool = Pool(args.pool, args.seed)
        write_container_status(work, args.pool, seed=args.seed)
        load_feed([work / "container-events.jsonl"], server.url, work / "rejected.jsonl")
        producer = Producer(client, keys, pool)
        progress = Progress(client, keys, "screening", producer)
        procs = start_workers(args.workers, server.url, extra, work)
        watch = DecisionWatch(client, keys, producer)
        watch.start()
        warm = min(args.pool // 2, 1000)
        producer.offer(1000, warm, track=False)
        progress.wait(warm, 300)
        total = int(args.rate * args.minutes * 60)
        print(f"soak: {args.rate:.0f} filings/s for {args.minutes} min ({total} filings), {args.workers} workers")
        feeder = threading.Thread(target=producer.offer, args=(args.rate, total), daemon=True)
        started = time.perf_counter()
        feeder.start()
        rows, last_done, last_t = [], progress.done(), started
        while feeder.is_alive() or progress.done() < warm + total:
            time.sleep(args.sample_seconds)
            now = time.perf_counter()
            done = progress.done()
            lat = watch.take()
            unread_age, pending, pending_age = stream_backlog(client, keys, "screening", int(time.time() * 1000))
            row = {"elapsed_s": round(now - started, 1), "offered_per_s": args.rate if feeder.is_alive() else 0,
                   "achieved_per_s": round((done - last_done) / (now - last_t), 1), "decisions": len(lat),
                   "p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95), "p99_ms": percentile(lat, 99),
                   "lag_s": round(max(unread_age, pending_age), 2), "pending": pending,
                   "worker_rss_mb": round(sum(rss_mb(procs)), 1),
                   "redis_mb": round(client.info("memory")["used_memory"] / 2 ** 20, 1)}
            rows.append(row)
            last_done, last_t = done, now
            print("  ".join(f"{k} {row[k]}" for k in COLUMNS))
            if not feeder.is_alive() and now - started > args.minutes * 60 + 600:
                break  # a backlog that does not drain in 10 minutes is the finding
        finished = progress.done() - warm
        dead_letters = client.xlen(keys.dead_letters)
        steady = [r for r in rows if r["offered_per_s"]]
        summary = {"rate": args.rate, "minutes": args.minutes, "workers": args.workers, "submitted": total,
                   "finished": finished, "lost_or_unfinished": total - finished, "dead_letters": dead_letters,
                   "achieved_per_s_median": percentile([r["achieved_per_s"] for r in steady], 50),
                   "p99_ms_worst_window": max((r["p99_ms"] for r in steady if r["decisions"]), default=None),
                   "lag_s_max": max((r["lag_s"] for r in steady), default=None),
                   "worker_rss_mb_first_last": [r["worker_rss_mb"] for r in steady[:1] + steady[-1:]],
                   "redis_mb_first_last": [r["redis_mb"] for r in steady[:1] + steady[-1:]]}
        with open(out / "soak.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        (out / "soak.json").write_text(json.dumps(summary, indent=2))
        plot(rows, out / "soak.png", f"cargoscreen soak: {args.rate:.0f} filings/s offered, {args.workers} workers")
        print(json.dumps(summary))
        print(f"wrote {out / 'soak.csv'}, {out / 'soak.json'}, {out / 'soak.png'}")
        watch.stop()
    finally:
        if procs:
            stop_workers(client, keys, procs)
        try:
            client.shutdown(nosave=True)
        except redis.RedisError:
            pass
        server.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
