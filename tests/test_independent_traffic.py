"""Realistic clean traffic the product's own generator did not make: none of it may be refused.

tests/independent/build.py writes 1,200 clean ENS filings of every mode and level (sea straight,
master+house, partial master with its house filings; air pre-loading, complete, direct, partial
with houses; express; postal dispatches with their items; road; rail) and the DCSA Track & Trace
histories of their containers, from the published message specification and public knowledge of
real trade (tests/independent/data/README.md), not from the product's generator or reference data.

The set goes through the real batch job, as an operator runs it: `cargoscreen csm load` for the
container events, `cargoscreen run` for the filings (embedded Redis). Then, from its output:
no filing is rejected, each gets exactly one door answer and nothing is dead-lettered, every
consignment is assessed (postal items once their dispatch is there), and the container facts of
these clean histories are informational only (no anomaly).
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from lxml import etree

from cargoscreen.domain.enrichment import INFORMATIONAL_FACTS

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent / "independent"


def _module(name: str, file: str):
    """tests/independent/<file> under a name of its own (a bare `import build` could find another package)."""
    import importlib.util

    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


independent = _module("cargoscreen_independent_build", "build.py")
set_audit = _module("cargoscreen_independent_audit", "audit.py")

ANSWERS_NS = "{urn:cargoscreen:ics2:answers:v1}"
DOORS = {"IE3R01", "IE3N10", "IE3R04", "IE3N99", "IE3N01"}  # accepting or rejecting: one per submission
REJECTING = {"IE3N99", "IE3N01"}
KINDS = ("F10 F11 F12 F15 F16 F20 F21 F22 F23 F24 F30 F31 F32 F42 F43 F45 F50 F51").split()

pytestmark = pytest.mark.slow


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("cargoscreen")
    command = [str(exe)] if exe.exists() else [sys.executable, "-c", "from cargoscreen.cli import main; main()"]
    return subprocess.run(command + list(args), cwd=cwd, capture_output=True, text=True, timeout=600)


def _jsonl(folder: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(folder.glob("*.jsonl")) for line in f.open(encoding="utf-8")
            if line.strip()]


@pytest.fixture(scope="module")
def traffic(tmp_path_factory):
    """The set built, its container events loaded, the batch job run once; its outputs read."""
    base = tmp_path_factory.mktemp("independent")
    corpus, out = base / "set", base / "out"
    manifest = independent.build(corpus, count=1200, seed=2026)
    out.mkdir()
    load = _cli("csm", "load", str(corpus / "container-events.jsonl"), "--data-dir", str(out),
                "--rejected", str(out / "csm-rejected.jsonl"), cwd=base)
    run = _cli("run", "--input", str(corpus / "filings"), "--output", str(out), cwd=base)
    results = out / "latest"  # the run's own folder
    return {"manifest": manifest, "corpus": corpus, "out": out, "load": load, "run": run,
            "answers": _jsonl(results / "answers"), "enriched": _jsonl(results / "enriched"),
            "decisions": _jsonl(results / "decisions"), "dead": _jsonl(results / "dead-letters"),
            "summary": json.loads((results / "summary.json").read_text()) if (results / "summary.json").exists() else {}}


def test_the_set_is_large_complete_and_valid_against_the_schema(traffic):
    m = traffic["manifest"]
    assert m["filings"] >= 1000
    missing = [k for k in KINDS if not m["kinds"].get(k)]
    assert not missing, f"kinds not in the set: {missing}"
    schema = etree.XMLSchema(etree.parse(str(ROOT / "xsd" / "ics2-v1" / "ens.xsd")))
    invalid = []
    for f in m["files"]:
        doc = etree.parse(str(traffic["corpus"] / f["file"]))
        if not schema.validate(doc):
            invalid.append(f"{f['file']}: {schema.error_log.last_error}")
    assert not invalid, "filings invalid against the XSD:\n" + "\n".join(invalid)
    problems = set_audit.audit(traffic["corpus"])  # totals, routing, check digits, event times...
    assert not problems, "the set is not honest:\n" + "\n".join(problems[:100])
    # multi-filing consignments are whole: a master and every house it lists
    by_consignment = defaultdict(set)
    for f in m["files"]:
        by_consignment[f["consignment"]].add(f["kind"])
    for kinds in by_consignment.values():
        if kinds & {"F15", "F16", "F17"}:
            assert "F12" in kinds
        if "F24" in kinds or "F31" in kinds:
            assert "F23" in kinds
        if "F43" in kinds:
            assert "F42" in kinds
        if "F14" in kinds:
            assert "F13" in kinds


def test_the_carriers_container_events_are_all_accepted(traffic):
    load = traffic["load"]
    assert load.returncode == 0, load.stdout + load.stderr
    rejected = traffic["out"] / "csm-rejected.jsonl"
    assert not rejected.exists() or not rejected.read_text().strip(), rejected.read_text()[:4000]


def _rejections(answers) -> dict[str, list[tuple[str, str, str]]]:
    """submission id -> [(code, pointer, original value)] of each rejecting answer."""
    out = {}
    for a in answers:
        if a["message_type"] in REJECTING:
            x = etree.fromstring(a["xml"].encode("utf-8"))
            out[a["submission_id"]] = [(e.findtext(f"{ANSWERS_NS}Code"), e.findtext(f"{ANSWERS_NS}Pointer"),
                                        e.findtext(f"{ANSWERS_NS}OriginalValue") or "")
                                       for e in x.iter(f"{ANSWERS_NS}Error")]
    return out


def test_no_clean_filing_is_rejected(traffic):
    run = traffic["run"]
    assert traffic["summary"], f"the run wrote no summary:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    rejected = _rejections(traffic["answers"])
    codes = Counter(code for errors in rejected.values() for code, _, _ in errors)
    lines = [f"{sid}: " + "; ".join(f"{code} {pointer} '{value}'" for code, pointer, value in errors)
             for sid, errors in sorted(rejected.items())]
    assert not rejected, (f"{len(rejected)} of {traffic['manifest']['filings']} clean filings rejected; errors by "
                          f"code: {dict(codes.most_common())}\n" + "\n".join(lines))


def test_every_filing_gets_exactly_one_door_answer_and_nothing_is_dead_lettered(traffic):
    doors = Counter(a["submission_id"] for a in traffic["answers"] if a["message_type"] in DOORS)
    files = {f["file"].removeprefix("filings/") for f in traffic["manifest"]["files"]}
    wrong = {sid: doors.get(sid, 0) for sid in files | set(doors) if doors.get(sid, 0) != 1}
    assert not wrong, f"submissions without exactly one door answer: {wrong}"
    assert not traffic["dead"], [(d["submission_id"], d["stage"], d["reason"]) for d in traffic["dead"]]
    assert traffic["summary"]["balanced"] and traffic["summary"]["dead_lettered"] == 0


def test_every_consignment_is_assessed(traffic):
    """Each filing ends in an assessment of its consignment: postal items once their dispatch is
    there, house filings once their master is, express houses on an airline's master included."""
    assessed = {sid for e in traffic["enriched"] for sid in e["filings"]}
    rejected = set(_rejections(traffic["answers"]))
    not_assessed = defaultdict(list)
    for f in traffic["manifest"]["files"]:
        sid = f["file"].removeprefix("filings/")
        if sid not in assessed:
            why = "rejected" if sid in rejected else "registered, never assessed"
            not_assessed[(f["kind"], why)].append(sid)
    summary = {f"{kind} ({why})": len(sids) for (kind, why), sids in sorted(not_assessed.items())}
    assert not not_assessed, f"filings whose consignment was never assessed: {summary}; e.g. " + \
        "; ".join(sids[0] for sids in not_assessed.values())


def test_clean_container_histories_give_no_anomaly(traffic):
    anomalies = defaultdict(list)
    for e in traffic["enriched"]:
        for fact in e["facts"]:
            if fact["kind"] not in INFORMATIONAL_FACTS:
                anomalies[fact["kind"]].append(f"{e['submission_id']} {fact['container']}: {fact['detail']}")
    assert not anomalies, "anomalies on clean histories: " + "; ".join(
        f"{kind} x{len(found)} (e.g. {found[0]})" for kind, found in sorted(anomalies.items()))
