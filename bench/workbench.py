"""Workbench benchmark: the queue page of a centre with N open referrals (target: < 300 ms at 100,000).

    python bench/workbench.py [--open 100000] [--requests 40] [--redis-url URL]

1. an embedded Redis (or --redis-url, which is flushed) gets N referrals on one centre's stream,
   varied in mode, decision, risk areas, score and age, taken in by the real intake (timed:
   referrals admitted per second);
2. a real `cargoscreen workbench serve` process (uvicorn) serves them; an analyst signs in over HTTP;
3. each queue view (no filter, one filter, two filters, age, unclaimed, oldest first, a deep page)
   is requested --requests times: latency percentiles of the whole HTTP round trip, side by side
   with the baseline of the same view read straight from Redis in this process (ReferralQueue.page,
   no HTTP, no template), and the ratio;
4. Redis memory per open referral, and the server's RSS.
"""
from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psutil
import redis

from cargoscreen.connectors.redis_store import EmbeddedRedis
from cargoscreen.connectors.redis_streams import StreamKeys
from cargoscreen.workbench.accounts import add_analyst
from cargoscreen.workbench.queue import ReferralQueue
from end_to_end import percentile  # bench/ is the script's folder

CENTRE = "RC-NL"
MODES = ("sea", "air", "express", "postal", "road", "rail")
DECISIONS = ("request-for-information", "request-for-screening", "control", "do-not-load")
AREAS = ("security-safety", "financial", "ipr", "health-safety", "drug-precursors", "firearms-explosives", "cash")
VIEWS = {
    "all, by score": {},
    "mode=sea": {"mode": "sea"},
    "decision=control & area=ipr": {"decision": "control", "area": "ipr"},
    "older than 12 h": {"older": "12"},
    "unclaimed": {"claimed": "no"},
    "oldest first": {"sort": "age"},
    "page 200 (offset 10,000)": {"offset": "10000"},
    "sea & older than 12 h & unclaimed": {"mode": "sea", "older": "12", "claimed": "no"},
}


def referral(n: int, rng: random.Random, now: float) -> dict:
    areas = rng.sample(AREAS, rng.choice((1, 1, 2, 3)))
    mode, decision = rng.choice(MODES), rng.choice(DECISIONS)
    assessed = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - rng.uniform(0, 48 * 3600)))
    hits = [{"rule": f"R-{a[:3].upper()}-{rng.randint(1, 9):03d}", "title": f"{a} indicator", "area": a,
             "weight": rng.choice((20, 30, 40, 60)), "decision": decision, "explanation": f"{a} indicator: ...",
             "evidence": [{"pointer": "/IE3F10/Consignment/GoodsItem[1]/Description", "value": "x", "events": []}]}
            for a in areas]
    mrn = f"26NL{n:012d}A{n % 10}"
    return {"referral_id": f"REF-{mrn}", "risk_centre": CENTRE, "mrn": mrn, "lrn": f"LRN{n}", "filer": "NL123456789",
            "mode": mode, "filing_code": "F10", "decision": decision, "score": float(sum(h["weight"] for h in hits)),
            "risk_level": "high", "rule_pack": "ics2-starter@1.0.0+bench", "assessed_at": assessed,
            "consignment": f"{mode}:DOC{n}", "version": 1, "state": "s1", "hits": hits,
            "filings": [{"mrn": mrn, "lrn": f"LRN{n}", "filer": "NL123456789", "filing_code": "F10"}],
            "filing": {"transport_document": f"DOC{n}", "containers": []}}


def start_workbench(redis_url: str, analysts: Path) -> tuple[str, subprocess.Popen]:
    """A real `cargoscreen workbench serve` process (no keeper); its base URL once it answers."""
    port = 18000 + os.getpid() % 1000
    web = subprocess.Popen([sys.executable, "-m", "cargoscreen.cli", "workbench", "serve", "--redis-url", redis_url,
                            "--port", str(port), "--analysts", str(analysts), "--no-keeper"],
                           env={**os.environ, "CARGOSCREEN_SESSION_SECRET": "bench-" + "s" * 32},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=2)
            break
        except OSError:
            time.sleep(0.1)
    return base, web


def stop_all(web: subprocess.Popen | None, client: redis.Redis, server: EmbeddedRedis | None) -> None:
    """Stops the workbench, and the embedded Redis if the script started one."""
    if web:
        web.terminate()
        web.wait(timeout=10)
    if server:
        try:
            client.shutdown(nosave=True)
        except redis.RedisError:
            pass
        server.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--open", type=int, default=100_000, help="open referrals in the centre")
    ap.add_argument("--requests", type=int, default=40, help="requests per view")
    ap.add_argument("--redis-url", default=None)
    ap.add_argument("--report", default=None, help="also write the results as JSON here")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cs-wb-bench-"))
    server = EmbeddedRedis(work / "redis") if args.redis_url is None else None
    url = args.redis_url or server.url
    client = redis.Redis.from_url(url, socket_timeout=120)
    client.flushdb()
    results: dict = {"open": args.open}
    web = None
    try:
        base_memory = client.info("memory")["used_memory"]
        rng, now, stream = random.Random(5), time.time(), StreamKeys().referrals(CENTRE)
        t = time.perf_counter()
        for start in range(0, args.open, 5000):
            pipe = client.pipeline(transaction=False)
            for n in range(start, min(args.open, start + 5000)):
                pipe.xadd(stream, {"effect": f"referral|{n}", "body": json.dumps(referral(n, rng, now))})
            pipe.execute()
        print(f"{args.open} referrals on {stream} in {time.perf_counter() - t:.1f} s")
        queue = ReferralQueue(client, CENTRE)
        t = time.perf_counter()
        while queue.take_in(count=1000):
            pass
        intake = time.perf_counter() - t
        results["intake_per_s"] = round(args.open / intake, 1)
        results["redis_bytes_per_referral"] = round((client.info("memory")["used_memory"] - base_memory) / args.open)
        print(f"intake: {args.open} admitted in {intake:.1f} s = {results['intake_per_s']:.0f} referrals/s; "
              f"Redis {results['redis_bytes_per_referral']} bytes per open referral (stream entry, hash, indexes)")
        for n in range(0, 300):  # some claimed, so 'unclaimed' has something to leave out
            queue.claim(f"REF-26NL{n:012d}A{n % 10}", "alice")

        analysts = work / "analysts"
        add_analyst(analysts, "alice", CENTRE, "bench password 123")
        base, web = start_workbench(url, analysts)
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        page = opener.open(base + "/login", timeout=10).read().decode()
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        opener.open(base + "/login", urllib.parse.urlencode({"name": "alice", "password": "bench password 123",
                                                              "csrf": csrf, "next": "/"}).encode(), timeout=10)
        results["views"] = []
        print(f"{'view':32s} {'rows':>7s}  {'HTTP page p50/p95/p99 ms':>26s}  {'Redis only p50 ms':>17s}  ratio")
        for name, params in VIEWS.items():
            query = {"mode": params.get("mode", ""), "decision": params.get("decision", ""),
                     "area": params.get("area", ""), "claimed": params.get("claimed", ""),
                     "older_than_hours": float(params["older"]) if "older" in params else None,
                     "sort": params.get("sort", "score"), "offset": int(params.get("offset", 0))}
            http_ms, raw_ms = [], []
            for i in range(args.requests):
                if i % 2 == 0:  # alternate, so drift on a noisy machine hits both alike
                    t = time.perf_counter()
                    body = opener.open(base + "/?" + urllib.parse.urlencode(params), timeout=30).read().decode()
                    http_ms.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                shown = queue.page(**query)
                raw_ms.append((time.perf_counter() - t) * 1000)
                if i % 2 == 1:
                    t = time.perf_counter()
                    body = opener.open(base + "/?" + urllib.parse.urlencode(params), timeout=30).read().decode()
                    http_ms.append((time.perf_counter() - t) * 1000)
            total = int(re.search(r'id="total">(\d+)', body).group(1))
            # The page shows what Redis holds (an age filter moves with the clock between the two reads).
            assert abs(total - shown.total) <= (total // 1000 if "older" in params else 0), (name, total, shown.total)
            row = {"view": name, "rows": total, "p50_ms": round(percentile(http_ms, 50), 1),
                   "p95_ms": round(percentile(http_ms, 95), 1), "p99_ms": round(percentile(http_ms, 99), 1),
                   "redis_only_p50_ms": round(percentile(raw_ms, 50), 1)}
            row["ratio"] = round(row["p50_ms"] / max(row["redis_only_p50_ms"], 0.01), 2)
            results["views"].append(row)
            print(f"{name:32s} {total:7d}  {row['p50_ms']:8.1f} / {row['p95_ms']:6.1f} / {row['p99_ms']:6.1f}  "
                  f"{row['redis_only_p50_ms']:17.1f}  {row['ratio']:.2f}x")
        results["server_rss_mb"] = round(psutil.Process(web.pid).memory_info().rss / 2 ** 20, 1)
        worst = max(v["p99_ms"] for v in results["views"])
        print(f"worst p99 over the views: {worst:.0f} ms (target < 300 ms); workbench RSS "
              f"{results['server_rss_mb']:.0f} MB")
        if args.report:
            Path(args.report).write_text(json.dumps(results, indent=2))
    finally:
        stop_all(web, client, server)


if __name__ == "__main__":
    main()
