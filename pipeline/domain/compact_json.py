"""JSON for what is written many times a second: effect bodies, consignment members, container
watches. orjson, compact: a sixth of json's cost on a filing's 4 KB record. json where orjson
refuses (keys other than strings, integers past 64 bits) or, reading, where json wrote what JSON
has not (Infinity, NaN). What `dumps` writes, json.loads reads as what json.dumps(default=str)
wrote, but for infinite and NaN numbers, which become null."""
from __future__ import annotations

import json

import orjson

# As json.dumps(default=str) wrote them: dataclasses and datetimes as their str(), not orjson's own forms.
_AS_JSON_WROTE = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME


def dumps(value) -> bytes:
    try:
        return orjson.dumps(value, default=str, option=_AS_JSON_WROTE)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, default=str).encode()


def loads(text: bytes | str):
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
