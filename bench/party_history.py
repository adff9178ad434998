"""Party history's cost and noise on generated traffic: the batch job on an embedded Redis, then

  - Redis: script calls and round trips per filing, bytes kept per filing and per party (MEMORY USAGE),
    and the time one batch's update takes;
  - how often the facts and rules fire on clean traffic (labelled by the generator): a new consignor
    (by the pack's parameters), a private-person consignee, PH-001 and PH-002, and referrals they make.

    python bench/party_history.py --count 3000 [--seed 7]

Generated traffic draws a new company and filer for every filing, so every party is new there: the
numbers show what "new" costs when nothing else is known (the worst case for noise and for memory).
"""
from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from collections import Counter
from pathlib import Path

from cargoscreen.config import Settings
from cargoscreen.connectors.files import read_json_lines
from cargoscreen.connectors.redis_store import EmbeddedRedis, connect
from cargoscreen.corpus import write_corpus
from cargoscreen.domain.parties import Sighting
from cargoscreen.domain.rulepack import COMPLETE, RulePack
from cargoscreen.job import run_batch
from cargoscreen.party_history import PartyHistoryStore


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    pack = RulePack.load(Settings().rules.pack_dir)
    days, most = pack.environment.parameters["new_party_days"], pack.environment.parameters["new_party_filings"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_corpus(root, args.count, seed=args.seed, defect_rate=0, envelope_rate=0, risk_rate=0.05,
                     decoy_rate=0.1)
        risky = {x["lrn"] for x in map(json.loads, (root / "labels.jsonl").open()) if x.get("risk")}
        with EmbeddedRedis(root / "redis") as server:
            client = connect(server.url)
            client.config_resetstat()
            summary = run_batch(Settings().with_redis_url(server.url), root / "filings", root / "out")
            stats = client.info("commandstats")
            keys = list(client.scan_iter("cs:ph:*", count=1000))
            party_bytes = sum(client.memory_usage(k) or 0 for k in keys)
            other = [k for k in client.scan_iter("*", count=1000) if not k.startswith(b"cs:ph:")]
            other_bytes = sum(client.memory_usage(k) or 0 for k in other)
            # One batch's update on its own (64 filings, three parties each), timed.
            store = PartyHistoryStore(client)
            batch = [Sighting("BE0822036108", f"BENCH{i:05d}{r}", role, f"name:CN:bench {i} {role}", "/p")
                     for i in range(64) for r, role in enumerate(("consignor", "consignee", "notify"))]
            start = time.perf_counter()
            for n in range(20):
                store.record([s._replace(mrn=f"{s.mrn}-{n}") for s in batch])
            per_batch = (time.perf_counter() - start) / 20
        decisions = read_json_lines(root / "out" / "decisions")
    assessed = len(decisions)
    evalsha = stats.get("cmdstat_evalsha", {}).get("calls", 0)
    print(f"filings assessed: {assessed} (accepted {summary.accepted}); party keys: {len(keys)}")
    print(f"party history script calls: {evalsha} ({evalsha / max(assessed, 1):.2f} per filing); round trips: one "
          f"pipeline per enrichment batch of up to {Settings().container_status.batch_size} filings")
    print(f"party history memory: {party_bytes / max(assessed, 1):.0f} bytes per filing, "
          f"{party_bytes / max(len(keys), 1):.0f} per party key; everything else: {other_bytes / max(assessed, 1):.0f} "
          f"bytes per filing")
    print(f"one batch of 64 filings x 3 parties: {per_batch * 1000:.2f} ms ({per_batch / 64 * 1e6:.0f} us per filing)")
    clean = [d for d in decisions if not any(m["lrn"] in risky for m in d["filings"])]
    facts, rules, referred_by, examples = Counter(), Counter(), Counter(), []
    for d in clean:
        kinds = {f["kind"] for f in d["container_facts"]}
        new = [f for f in d["container_facts"] if f["kind"] == "party-history" and "consignor" in f["detail"]
               and _new(f["detail"], days, most)]
        facts["new consignor"] += bool(new)
        facts["natural-person-consignee"] += "natural-person-consignee" in kinds
        hit = {h["rule"]: h["weight"] for h in d["hits"]}
        for rule in PH:
            rules[rule] += rule in hit
        if d["decision"] != "assessment-complete" and any(r in hit for r in PH):
            referred_by["referred, PH rules among the hits"] += 1
            if _without(pack, d, hit) == COMPLETE:
                referred_by["would be assessment-complete without them"] += 1
                goods = (d["filing"] or {}).get("goods", [])[:2]
                examples.append(f"{d['filing_code']} {sorted(hit)} " + "; ".join(
                    f"{g['hs_code']} {g['description']}" for g in goods))
    n = max(len(clean), 1)
    print(f"clean filings: {len(clean)}")
    for name, k in [*facts.items(), *rules.items(), *referred_by.items()]:
        print(f"  {name}: {k} ({100 * k / n:.2f}%)")
    for example in examples[:8]:
        print("    e.g.", example)


PH = ("PH-001", "PH-002")


def _without(pack: RulePack, decision: dict, hit: dict) -> str:
    """The decision the pack's table gives the same hits without the party-history rules."""
    rules = {r.id: r for r in pack.rules}
    others = [rules[r] for r in hit if r not in PH and r in rules]
    score = max(0.0, sum(r.weight for r in others))
    table = pack.table_for(decision["filing_code"])
    return next((d for d, minimum in table.thresholds if score >= minimum and any(r.can_lead_to(d) for r in others)),
                COMPLETE)


def _new(detail: str, days: float, most: int) -> bool:
    if "never seen" in detail:
        return True
    m = re.search(r"first seen (\d+) days before this filing, in (\d+) earlier", detail)
    return bool(m) and int(m[1]) < days and int(m[2]) < most


if __name__ == "__main__":
    main()
