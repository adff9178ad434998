"""Whatever bytes arrive, validation answers: accepted, or rejected with located reasons. Never an exception."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from cargoscreen.generator import GeneratorSpec, generate
from cargoscreen.validation import Submission

SEEDS = [f.data for f in generate(GeneratorSpec(count=12, seed=99, defect_rate=0, envelope_rate=0,
                                                resubmission_rate=0))]


def _answered(outcome) -> bool:
    if outcome.accepted:
        return outcome.summary is not None and outcome.summary.lrn is not None
    return all(e.code and e.pointer.startswith("/") and e.reason and e.constraint for e in outcome.errors)


@st.composite
def mutated_bytes(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at:]
            if not data:
                break
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=40))
        else:
            del data[at:at + draw(st.integers(1, 200))]
            if not data:
                break
    return bytes(data)


@st.composite
def mutated_trees(draw):
    root = etree.fromstring(draw(st.sampled_from(SEEDS)))
    elements = list(root.iter())
    for _ in range(draw(st.integers(1, 5))):
        el = draw(st.sampled_from(elements))
        action = draw(st.sampled_from(["remove", "duplicate", "text", "empty"]))
        parent = el.getparent()
        if action == "remove" and parent is not None:
            parent.remove(el)
            elements = list(root.iter())
        elif action == "duplicate" and parent is not None:
            parent.insert(parent.index(el), etree.fromstring(etree.tostring(el)))
            elements = list(root.iter())
        elif action == "text":
            el.text = draw(st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=600))
        else:
            el.text = ""
    return etree.tostring(root)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_bytes())
def test_any_bytes_are_answered(validator, payload):
    assert _answered(validator.validate(Submission("fuzz", payload)))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(mutated_trees())
def test_any_well_formed_mutation_is_answered(validator, payload):
    assert _answered(validator.validate(Submission("fuzz", payload)))
