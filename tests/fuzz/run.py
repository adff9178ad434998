"""Coverage-guided fuzzing of one surface with atheris (libFuzzer), by hand or with a fixed budget:

    python tests/fuzz/run.py validation -runs=1000000          # a million inputs
    python tests/fuzz/run.py intake -max_total_time=600 corpus/  # ten minutes, keeping a corpus

Surfaces: validation, dcsa, rules, intake (see targets.py). Seeds: generated filings and hostile
XML, the DCSA example events, the starter pack's conditions and rule file. Exit 0 when no input
broke the target's promise; otherwise libFuzzer writes the input (crash-*) and exits non-zero.
"""
from __future__ import annotations

import atexit
import json
import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout, for tests.fuzz

with atheris.instrument_imports(include=["cargoscreen"]):
    import cargoscreen.connectors.http_ingress  # noqa: F401  (imported lazily by the intake target)
    from tests.fuzz import targets


def seeds(surface: str, rules) -> list[bytes]:
    if surface in ("validation", "intake"):
        return [(b"\x01" if surface == "intake" else b"") + s for s in targets.filing_seeds() + targets.HOSTILE]
    if surface == "dcsa":
        return [json.dumps(e).encode() for e in json.loads(targets.DCSA_EXAMPLES.read_text())]
    return [r.condition.text.encode() for r in rules.pack.rules] + [rules.files[rules.rule_file].encode()]


def main() -> None:
    surface, args = sys.argv[1], sys.argv[2:]
    if surface == "intake":
        from cargoscreen.connectors.redis_store import EmbeddedRedis

        work = Path(tempfile.mkdtemp(prefix="cs-fuzz-"))
        server = EmbeddedRedis(work / "redis")
        atexit.register(server.close)  # libFuzzer ends the process itself
        target = targets.Intake(server.url, work)
    else:
        target = {"validation": targets.Validation, "dcsa": targets.Dcsa, "rules": targets.Rules}[surface]()
    corpus = [a for a in args if not a.startswith("-")]
    if not corpus:  # start from the seeds
        seed_dir = Path(tempfile.mkdtemp(prefix=f"cs-fuzz-{surface}-"))
        for i, s in enumerate(seeds(surface, target if surface == "rules" else None)):
            (seed_dir / f"seed-{i}").write_bytes(s)
        args.append(str(seed_dir))
    atheris.Setup([sys.argv[0], *args], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
