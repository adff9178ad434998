"""A password-guessing attack on the workbench, and what it does to another analyst's queue page.

    python bench/signin_attack.py [--seconds 10] [--attackers 4] [--open 2000]

A real `cargoscreen workbench serve` process on an embedded Redis, one centre with --open
referrals taken in by the real intake. One analyst (bob) loads the queue page again and again,
and its latency (p50/p95) is measured in three phases:

1. idle: nobody else;
2. one address: --attackers clients (another process) guess alice's password as fast as the
   server answers, from one address: what the throttle meets (it locks the account and the
   address, and refuses the rest without a password check);
3. spraying: the same clients, a new address (X-Forwarded-For, as through the proxy) and a new
   name at every attempt: nothing to throttle, every attempt costs a scrypt, which must not
   stop the pages (hashing runs off the event loop, at most two at a time).

For each phase: attempts per second, answers by status, passwords actually checked (the audit's
sign-in-refused records) and locks. Run it against an older checkout (PYTHONPATH) to compare.
"""
from __future__ import annotations

import argparse
import http.cookiejar
import json
import multiprocessing
import random
import re
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

import redis

from cargoscreen import audit
from cargoscreen.connectors.redis_store import EmbeddedRedis
from cargoscreen.connectors.redis_streams import StreamKeys
from cargoscreen.workbench.accounts import add_analyst
from cargoscreen.workbench.queue import ReferralQueue
from end_to_end import percentile  # bench/ is the script's folder
from workbench import CENTRE, referral, start_workbench, stop_all

PASSWORD = "bench password 123"


def actions(client) -> list[str]:
    """Every audit record's action, on every trail (the system's and each centre's)."""
    return [e["action"] for e in audit.entries(client, audit.every_trail(client, "cs"))]


def opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def post(client, url: str, fields: dict, address: str | None = None) -> int:
    headers = {"X-Forwarded-For": address} if address else {}
    try:
        with client.open(urllib.request.Request(url, urllib.parse.urlencode(fields).encode(), headers), timeout=60) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def token(client, base: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.open(base + "/login", timeout=60).read().decode())[1]


def attack(base: str, spray: bool, seconds: float, threads: int, out) -> None:
    """Guesses for `seconds` from `threads` clients; puts a Counter of statuses and the count on `out`."""
    statuses: Counter = Counter()
    lock = threading.Lock()

    def guesser(n: int) -> None:
        client, rng = opener(), random.Random(n)
        csrf, end = token(client, base), time.monotonic() + seconds
        while time.monotonic() < end:
            name = f"user{rng.randrange(10 ** 9)}" if spray else "alice"
            address = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}" if spray else "203.0.113.9"
            status = post(client, base + "/login", {"name": name, "password": f"guess{rng.randrange(10 ** 9)}",
                                                    "csrf": csrf, "next": "/"}, address)
            with lock:
                statuses[status] += 1

    workers = [threading.Thread(target=guesser, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    out.put(dict(statuses))


def queue_latencies(client, base: str, until: float | None = None, count: int = 0) -> list[float]:
    times = []
    while (until is None and len(times) < count) or (until is not None and time.monotonic() < until):
        t = time.perf_counter()
        body = client.open(base + "/", timeout=60).read().decode()
        times.append((time.perf_counter() - t) * 1000)
        assert 'id="total"' in body, "bob is not on the queue page"
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each attack phase")
    ap.add_argument("--attackers", type=int, default=4, help="concurrent guessing clients")
    ap.add_argument("--open", type=int, default=2000, help="open referrals in the centre")
    ap.add_argument("--report", default=None, help="also write the results as JSON here")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cs-signin-bench-"))
    server = EmbeddedRedis(work / "redis")
    client = redis.Redis.from_url(server.url, socket_timeout=120)
    web = None
    try:
        rng, now, stream = random.Random(5), time.time(), StreamKeys().referrals(CENTRE)
        pipe = client.pipeline(transaction=False)
        for n in range(args.open):
            pipe.xadd(stream, {"effect": f"referral|{n}", "body": json.dumps(referral(n, rng, now))})
        pipe.execute()
        queue = ReferralQueue(client, CENTRE)
        while queue.take_in(count=1000):
            pass
        analysts = work / "analysts"
        for name in ("alice", "bob"):
            add_analyst(analysts, name, CENTRE, PASSWORD)
        base, web = start_workbench(server.url, analysts)
        bob = opener()
        assert post(bob, base + "/login", {"name": "bob", "password": PASSWORD, "csrf": token(bob, base), "next": "/"},
                    "192.0.2.1") == 200
        queue_latencies(bob, base, count=20)  # warm up
        results = {"open": args.open, "attackers": args.attackers, "phases": []}
        print(f"{'phase':14s} {'attempts/s':>10s}  {'answers':28s} {'checked':>7s} {'locks':>5s}  "
              f"{'queue page p50 / p95 ms':>24s}")
        for phase in ("idle", "one address", "spraying"):
            refused_before = actions(client).count("sign-in-refused")
            locks_before = actions(client).count("sign-in-locked")
            statuses: dict = {}
            if phase == "idle":
                times = queue_latencies(bob, base, count=100)
            else:
                out = multiprocessing.Queue()
                attacker = multiprocessing.Process(target=attack, args=(base, phase == "spraying", args.seconds,
                                                                        args.attackers, out))
                attacker.start()
                time.sleep(0.5)  # the attack under way
                times = queue_latencies(bob, base, until=time.monotonic() + args.seconds - 1)
                statuses = out.get(timeout=args.seconds + 120)
                attacker.join()
            done = actions(client)
            row = {"phase": phase, "attempts_per_s": round(sum(statuses.values()) / args.seconds, 1),
                   "answers": statuses, "passwords_checked": done.count("sign-in-refused") - refused_before,
                   "locks": done.count("sign-in-locked") - locks_before,
                   "queue_p50_ms": round(percentile(times, 50), 1), "queue_p95_ms": round(percentile(times, 95), 1),
                   "queue_requests": len(times)}
            results["phases"].append(row)
            answers = ", ".join(f"{n} x {s}" for s, n in sorted(statuses.items())) or "-"
            print(f"{phase:14s} {row['attempts_per_s']:10.1f}  {answers:28s} {row['passwords_checked']:7d} "
                  f"{row['locks']:5d}  {row['queue_p50_ms']:11.1f} / {row['queue_p95_ms']:.1f}")
        if args.report:
            Path(args.report).write_text(json.dumps(results, indent=2))
    finally:
        stop_all(web, client, server)


if __name__ == "__main__":
    main()
