"""Generalisation measured on a scenario set written independently of the generator, beside the demo's
generated traffic, through the same report (`cargoscreen rules backtest`).

    python bench/scenarios.py [--seed 2026] [--clean 2000] [--scale 1] [--pack DIR] [--demo-count 500]
                              [--keep DIR] [--json FILE]
    make scenarios

Builds tests/scenarios/ (150 risky consignments over 15 patterns written from public typologies,
honest-but-unusual decoys, ordinary clean traffic, their containers' DCSA histories) into a temporary
folder, then runs the product's backtest on it as an operator would: container events loaded into an
embedded Redis, every filing validated, linked, enriched, scored and decided. Then the same for the
demo's traffic (`cargoscreen demo`: 500 generated filings, seed 7, 5% planted risk, 5% container
anomalies). For each it prints recall per pattern, overall recall of the accepted risky consignments,
the referral rate of the accepted clean ones, each rule's share of clean referrals, and the rules whose
referrals are mostly clean. No target is asserted: this measures.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS_AS_OF = "2026-10-20T00:00:00"  # after the scenario set's calendar (August to October 2026)
DEMO = {"count": 500, "seed": 7}  # what `cargoscreen demo` generates by default (pipeline/cli.py)
CONTAINER = "container:"  # the demo's container anomalies, as patterns


def scenario_builder():
    """tests/scenarios/build.py under a name of its own (a bare `import build` could find another module)."""
    name = "cargoscreen_scenarios_build"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "scenarios" / "build.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def backtest(corpus: Path, pack: Path | None, as_of: str | None) -> dict:
    """`cargoscreen rules backtest` on a folder the builders wrote; its JSON report."""
    exe = Path(sys.executable).with_name("cargoscreen")
    command = [str(exe)] if exe.exists() else [sys.executable, "-c", "from cargoscreen.cli import main; main()"]
    report = corpus / "report.json"
    pack = pack or ROOT / "rules" / "risk" / "ics2-starter"
    args = ["rules", "backtest", str(corpus / "filings"), "--candidate", str(pack), "--active", str(pack),
            "--labels", str(corpus / "labels.jsonl"), "--container-status", str(corpus / "container-events.jsonl"),
            "--json", str(report)] + (["--as-of", as_of] if as_of else [])
    done = subprocess.run(command + args, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the backtest failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    result = json.loads(report.read_text())
    result["read"] = next((line for line in done.stdout.splitlines() if " filings read, " in line), "")
    return result


def demo_traffic(out: Path, count: int) -> None:
    """The demo's sample data, written as `cargoscreen demo` writes it. The container anomalies it plants
    are labelled apart (container-labels.jsonl): a filing with one is labelled risky here, pattern
    `container:<anomaly>`, so that referring it does not count as a clean referral."""
    from cargoscreen.corpus import write_container_status, write_corpus

    out.mkdir(parents=True)
    write_corpus(out, count, DEMO["seed"], risk_rate=0.05)
    write_container_status(out, count, DEMO["seed"], anomaly_rate=0.05, risk_rate=0.05)
    anomalies = {x["file"]: x["anomaly"] for x in map(json.loads, (out / "container-labels.jsonl").open()) if x["anomaly"]}
    labels = [json.loads(line) for line in (out / "labels.jsonl").open()]
    with (out / "labels.jsonl").open("w") as f:
        for x in labels:
            if not x.get("risk") and x["file"] in anomalies:
                x["risk"] = f"{CONTAINER}{anomalies[x['file']]}"
            f.write(json.dumps(x) + "\n")


def summary(name: str, report: dict) -> dict:
    """What the report says about detection: the figures this bench prints and returns."""
    q = report["quality"]["candidate"]
    rules = [{"rule": r["rule"], "title": r["title"], "referrals": r["referrals_candidate"],
              "clean": r["clean_referrals"], "clean_share": r["clean_referral_share"], "mostly_clean": r["mostly_clean"]}
             for r in report["rules"] if r["referrals_candidate"]]
    return {"traffic": name, "pack": report["candidate_pack"], "read": report["read"], "assessed": report["filings"],
            "recall": q["recall"], "risky_assessed": q["planted"], "risky_referred": q["planted_referred"],
            "clean_referral_rate": q["clean_referral_rate"], "clean_assessed": q["clean"],
            "clean_referred": q["clean_referred"], "unusual_referred": q["unusual_referred"], "unusual": q["unusual"],
            "by_pattern": q["by_pattern"], "rules": rules,
            "mostly_clean_rules": [r["rule"] for r in rules if r["mostly_clean"]]}


def show(s: dict) -> None:
    print(f"\n== {s['traffic']}: {s['read']}")
    print(f"{'pattern':36} {'assessed':>8} {'referred':>8} {'recall':>7}")
    for pattern, p in s["by_pattern"].items():
        recall = "-" if p["recall"] is None else f"{p['recall']:.0%}"
        print(f"{pattern:36} {p['planted']:8} {p['referred']:8} {recall:>7}")
    print(f"recall of accepted risky consignments: {s['recall']:.1%} ({s['risky_referred']}/{s['risky_assessed']})")
    goods = {p: x for p, x in s["by_pattern"].items() if not p.startswith(CONTAINER)}
    if len(goods) < len(s["by_pattern"]):
        planted, referred = sum(x["planted"] for x in goods.values()), sum(x["referred"] for x in goods.values())
        print(f"  of them the planted risk without the container anomalies: "
              f"{referred / planted if planted else 0:.1%} ({referred}/{planted})")
    print(f"clean consignments referred: {s['clean_referral_rate']:.2%} ({s['clean_referred']}/{s['clean_assessed']}; "
          f"honest-but-unusual {s['unusual_referred']}/{s['unusual']})")
    print(f"{'rule':8} {'referrals':>9} {'clean':>6} {'share':>6}  title")
    for r in sorted(s["rules"], key=lambda r: (-r["referrals"], r["rule"])):
        flag = "  MOSTLY CLEAN" if r["mostly_clean"] else ""
        print(f"{r['rule']:8} {r['referrals']:9} {r['clean']:6} {r['clean_share']:6.0%}  {r['title'][:70]}{flag}")
    print("rules whose referrals are mostly clean: " + (", ".join(s["mostly_clean_rules"]) or "none"))


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--clean", type=int, default=2000, help="ordinary clean filings of the scenario set")
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies the clean traffic and the decoys")
    ap.add_argument("--pack", type=Path, default=None, help="the rule pack to measure (default: the bundled starter)")
    ap.add_argument("--demo-count", type=int, default=DEMO["count"], help="filings of the demo's traffic (0: skip it)")
    ap.add_argument("--keep", type=Path, default=None, help="build into this folder (kept) instead of a temporary one")
    ap.add_argument("--json", type=Path, default=None, help="write the summaries as JSON")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        manifest = scenario_builder().build(base / "scenarios", args.seed, clean=args.clean, scale=args.scale)
        print(f"scenario set: {manifest['filings']} filings ({manifest['scenario_filings']} of scenarios, "
              f"{sum(manifest['risky_consignments'].values())} risky consignments over "
              f"{len(manifest['risky_consignments'])} patterns), {manifest['events']} container events")
        results = [summary(f"scenario set (seed {args.seed})", backtest(base / "scenarios", args.pack, SCENARIOS_AS_OF))]
        if args.demo_count:
            demo_traffic(base / "demo", args.demo_count)
            results.append(summary(f"demo traffic (generated, {args.demo_count} filings, seed {DEMO['seed']})",
                                   backtest(base / "demo", args.pack, None)))
    for s in results:
        show(s)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
