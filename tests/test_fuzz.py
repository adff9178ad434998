"""Hostile input, generated: each surface that reads from outside (XML validation, DCSA events, rule
packs and conditions, the HTTP intake) under property-based fuzzing (hypothesis, a fixed number of
inputs per surface) and a short coverage-guided run (atheris, a fixed number of runs). The promise
checked is the targets' (tests/fuzz/targets.py): never a crash, every bad input refused with a reason.
The long runs (a million inputs per surface) are by hand: python tests/fuzz/run.py SURFACE."""
from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .fuzz.targets import DCSA_EXAMPLES, HOSTILE, Dcsa, Intake, Rules, Validation, filing_seeds

@functools.cache
def target(name: str):
    """One instance per surface for the whole run (each compiles schemas or a pack once)."""
    return {"validation": Validation, "dcsa": Dcsa, "rules": Rules}[name]()


CI = settings(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
SEEDS = filing_seeds() + HOSTILE
EVENTS = json.loads(DCSA_EXAMPLES.read_text())
FIELDS = ["parties", "goods", "containers", "hs_code", "description", "gross_mass", "name", "id", "country",
          "loading_country", "routing_countries", "container_id", "ref.precursor_terms", "param.undervaluation_z",
          "facts", "kind", "value_per_kg", "unit_value_z"]
TOKENS = ["any(", "all(", "count(", "sum(", "max(", "min(", ")", ",", " and ", " or ", " not ", " in ", " == ",
          " < ", " >= ", " + ", " / ", "[", "]", "'CN'", "\"x\"", "1", "0.5", "-3", "matches(", "prefixed(",
          "has_fact(", "lookup(", "missing(", "lambda", "__import__", ".", "**", ":=", "f'", "{", "}"]


def mutated(seeds: list[bytes]):
    """A seed with a few byte-level mutations: flips, deletions, insertions, duplications, truncation."""
    @st.composite
    def build(draw):
        data = bytearray(draw(st.sampled_from(seeds)))
        for _ in range(draw(st.integers(1, 5))):
            op = draw(st.sampled_from(["flip", "delete", "insert", "duplicate", "truncate", "hostile"]))
            i = draw(st.integers(0, max(0, len(data) - 1)))
            if op == "flip" and data:
                data[i] ^= draw(st.integers(1, 255))
            elif op == "delete":
                del data[i:i + draw(st.integers(1, 64))]
            elif op == "insert":
                data[i:i] = draw(st.binary(min_size=1, max_size=32))
            elif op == "duplicate":
                data[i:i] = data[i:i + draw(st.integers(1, 256))]
            elif op == "truncate":
                del data[i:]
            else:
                data[i:i] = draw(st.sampled_from(HOSTILE))
        return bytes(data)
    return build()


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                max_size=4),
                    max_leaves=12)


@st.composite
def dcsa_inputs(draw) -> bytes:
    """A real example event with fields replaced or dropped, as JSON; or its text mutated."""
    event = dict(draw(st.sampled_from(EVENTS)))
    for _ in range(draw(st.integers(0, 4))):
        key = draw(st.sampled_from(sorted(event) + ["eventType", "eventDateTime", "equipmentReference", "x"]))
        if draw(st.booleans()):
            event[key] = draw(JSON)
        else:
            event.pop(key, None)
    text = json.dumps(event, allow_nan=True).encode()
    return draw(mutated([text])) if draw(st.booleans()) else text


@st.composite
def rule_inputs(draw) -> bytes:
    condition = "".join(draw(st.lists(st.sampled_from(TOKENS + FIELDS), min_size=1, max_size=14)))
    rules = target("rules").files[target("rules").rule_file].encode()
    rule_text = draw(mutated([rules])).decode("utf-8", "replace") if draw(st.booleans()) else ""
    return (condition + ("\n---\n" + rule_text if rule_text else "")).encode()


@settings(CI, max_examples=400)
@given(st.one_of(mutated(SEEDS), st.binary(max_size=2000), st.sampled_from(SEEDS)))
def test_validation_answers_every_input(data):
    target("validation")(data)


@settings(CI, max_examples=600)
@given(st.one_of(dcsa_inputs(), st.binary(max_size=500)))
def test_dcsa_ingestion_refuses_bad_events_with_reasons(data):
    target("dcsa")(data)


@settings(CI, max_examples=150)
@given(rule_inputs())
def test_rule_loader_refuses_bad_packs_and_conditions_with_reasons(data):
    target("rules")(data)


@pytest.fixture(scope="module")
def intake(redis_server, tmp_path_factory):
    return Intake(redis_server.url, tmp_path_factory.mktemp("intake"))


def test_http_intake_answers_every_request(intake):
    @settings(CI, max_examples=300)
    @given(st.one_of(mutated([bytes([1]) + s for s in SEEDS]), st.binary(max_size=3000)))
    def run(data):
        intake(data)
    run()


@pytest.mark.slow
@pytest.mark.parametrize("surface", ["validation", "dcsa", "rules", "intake"])
def test_coverage_guided_short_run(surface, tmp_path):
    """atheris (libFuzzer) for a fixed number of runs per surface; a crash fails with its input."""
    pytest.importorskip("atheris")
    runner = Path(__file__).parent / "fuzz" / "run.py"
    result = subprocess.run([sys.executable, str(runner), surface, "-runs=3000", f"-artifact_prefix={tmp_path}/"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Done 3000 runs" in result.stderr or "DONE" in result.stderr, result.stderr[-2000:]


@pytest.mark.parametrize("found", sorted((Path(__file__).parent / "data" / "fuzz-regressions").iterdir()),
                         ids=lambda p: p.name)
def test_inputs_fuzzing_once_crashed_on_are_answered(found):
    """Each file is an input a fuzzer found crashing a surface (named by the file's prefix), kept after the fix."""
    target(found.name.split("-", 1)[0])(found.read_bytes())
