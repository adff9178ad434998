"""What compact_json writes (effect bodies, consignment members, watches: orjson) reads back, with
json.loads as every reader does, as what json.dumps(default=str) wrote before: whatever the values
hold, but for infinite and NaN numbers, which JSON has not (json wrote Infinity and NaN, orjson
writes null). compact_json.loads reads both."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cargoscreen.domain.compact_json import dumps, loads

CI = settings(deadline=None, derandomize=True, max_examples=300, suppress_health_check=list(HealthCheck))


def _as_json_wrote(fields: dict):
    return json.loads(json.dumps(fields, ensure_ascii=False, default=str))


@dataclass(frozen=True)
class _Odd:
    name: str


_SCALARS = (st.none() | st.booleans() | st.integers(-2 ** 63, 2 ** 63 - 1)
            | st.floats(allow_nan=False, allow_infinity=False) | st.text(st.characters(codec="utf-8")))
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=5) | st.tuples(inner, inner)
                       | st.dictionaries(st.text(max_size=8), inner, max_size=5), max_leaves=30)


@CI
@given(st.dictionaries(st.text(max_size=12), _VALUES, max_size=8))
def test_any_fields_read_back_as_json_wrote_them(fields):
    assert json.loads(dumps(fields)) == _as_json_wrote(fields) == loads(dumps(fields))


def test_what_orjson_would_write_otherwise_reads_back_as_json_wrote_it():
    """Dataclasses and datetimes as their str(), keys other than strings and integers past 64 bits
    (which orjson refuses) too."""
    fields = {"answer": _Odd("IE3N03"), "at": datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc),
              "xml": "<?xml version='1.0'?>\n<a>é \U0001F4E6 \"q\"</a>"}
    assert json.loads(dumps(fields)) == _as_json_wrote(fields)
    for odd in ({"counts": {1: "one", 2.5: "x", None: "n"}}, {"big": 2 ** 70}):
        assert json.loads(dumps(odd)) == _as_json_wrote(odd)
    assert json.loads(dumps({"score": float("inf"), "x": float("nan")})) == {"score": None, "x": None}


def test_what_json_wrote_reads_back_even_what_json_alone_reads():
    fields = {"mass": float("inf"), "value": float("nan"), "name": "é", "n": 2 ** 70}
    written = json.dumps(fields, ensure_ascii=False)
    read = loads(written)
    assert read["mass"] == float("inf") and read["value"] != read["value"] and read["n"] == 2 ** 70
