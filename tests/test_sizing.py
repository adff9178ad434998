"""Redis memory by key family (pipeline/sizing.py, `cargoscreen sizing`): every key the service writes
belongs to a family with a bound, and the steady state is bytes per filing x filings a day x days kept."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from cargoscreen.config import Settings
from cargoscreen.connectors.redis_streams import StreamKeys
from cargoscreen.generator import GeneratorSpec, generate
from cargoscreen.service import run_service
from cargoscreen.sizing import FAMILIES, family_of, measure, measured_table, per_filing, steady_state

CARGOSCREEN = str(Path(sys.executable).parent / "cargoscreen")


def test_every_key_of_a_run_is_measured_in_a_family_with_its_bound(redis_client, redis_server):
    filings = list(generate(GeneratorSpec(count=200, seed=41, resubmission_rate=0, risk_rate=0.1)))
    pipe = redis_client.pipeline(transaction=False)
    for f in filings:
        pipe.xadd(StreamKeys().filings, {"filing": f.data, "id": f.name})
    pipe.execute()
    settings = Settings().with_redis_url(redis_server.url)
    run_service(replace(settings, streams=replace(settings.streams, once=True)), ["w0"])
    measured = measure(redis_client)
    everything = sum(redis_client.memory_usage(k, samples=0) for k in redis_client.scan_iter("cs:*"))
    assert sum(row["bytes"] for row in measured.values()) == everything  # no key left out
    for name in ("registration", "consignment members", "latest decisions", "effect markers", "answers",
                 "decisions", "referral streams"):
        assert measured[name]["keys"] > 0, name
    others = {re.sub(r"\{[pr]\d+\}", "{n}", k.decode()) for k in redis_client.scan_iter("cs:*")
              if family_of(k.decode(), "cs").name == "other"}
    assert len(others) < 10, others  # single keys (one per partition or bucket) only: all else has a family
    kept = {f.name for f in FAMILIES if f.kept}
    assert not [n for n, row in measured.items() if n in kept and row["without_ttl"]
                and n not in ("answers", "decisions", "referral streams", "dead letters", "audit")]  # streams: trimmed
    table = per_filing(measured, len(filings))
    assert table["registration"] == measured["registration"]["bytes"] / len(filings)


def test_the_sizing_command_multiplies_the_measured_bytes_by_the_days_each_family_is_kept():
    result = subprocess.run([CARGOSCREEN, "sizing", "--filings-per-day", "12600000"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    expected = sum(f.steady_bytes for f in steady_state(measured_table()["bytes_per_filing"], 12_600_000, Settings())
                   if f.steady_bytes is not None)
    total = float(re.search(r"^total ([\d,.]+) GB", result.stdout, re.M)[1].replace(",", ""))
    assert abs(total - expected / 1e9) < 0.1 and "consignment members" in result.stdout
    bundled = json.loads((Path(__file__).parents[1] / "rules" / "sizing" / "redis-bytes.json").read_text())
    assert bundled["source"].startswith("bench/redis_memory.py") and bundled["bytes_per_filing"]["registration"] > 0
    missing = subprocess.run([CARGOSCREEN, "sizing", "--filings-per-day", "1", "--redis-url", "redis://127.0.0.1:1"],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 3 and "--filings" in missing.stderr
