"""DCSA Track & Trace 2.2 events in: read, checked against the standard's OpenAPI definition.

The definition (dcsa-tnt/TNT_v2.2.0-resolved.yaml) lists events as anyOf transportEvent,
shipmentEvent, equipmentEvent, with eventType as the discriminator; we pick the schema by
eventType, so a rejection says what is wrong with the event it claims to be.

The happy path is fastjsonschema on a flattened form of each event schema: `$ref`s inlined
and `allOf`s of plain object schemas merged into one (same meaning, eight times faster: the
definition nests allOf several levels deep). A rejected event is explained by jsonschema on
the definition as written, which lists every error with its path. Both are derived from the
definition at start-up, nothing is copied by hand, and a test checks that the two agree.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

import fastjsonschema
import jsonschema
import yaml

from cargoscreen.domain.container_events import utc_epoch

DEFINITION = Path(__file__).resolve().parent / "dcsa-tnt" / "TNT_v2.2.0-resolved.yaml"
EXAMPLES = DEFINITION.parent / "tnt-220-example-events.json"
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def is_date_time(value: Any) -> bool:
    """RFC 3339 date-time (as OpenAPI's format means it) that is also a real calendar instant."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        return not isinstance(value, str)  # formats apply to strings only
    try:
        utc_epoch(value)
        return True
    except ValueError:
        return False


EVENT_SCHEMAS = {"TRANSPORT": "transportEvent", "SHIPMENT": "shipmentEvent", "EQUIPMENT": "equipmentEvent"}


def _as_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema objects -> JSON Schema: `nullable: true` becomes a null type."""
    if isinstance(node, dict):
        out = {k: _as_json_schema(v) for k, v in node.items() if k not in ("nullable", "example", "discriminator")}
        if node.get("nullable") and "type" in out:
            out["type"] = [out["type"], "null"]
        return out
    if isinstance(node, list):
        return [_as_json_schema(v) for v in node]
    return node


_MERGEABLE = {"type", "properties", "required", "description", "deprecated"}


def flatten(node: Any, schemas: dict, seen: tuple = ()) -> Any:
    """Inlines `$ref`s and merges allOf parts that are plain object schemas (properties and
    required only): the same constraints, far fewer nested checks for the compiled validator."""
    if isinstance(node, list):
        return [flatten(v, schemas, seen) for v in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"$ref"}:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            raise ValueError(f"recursive schema {name}: cannot inline")
        return flatten(schemas[name], schemas, seen + (name,))
    node = {k: flatten(v, schemas, seen) for k, v in node.items()}
    parts = node.get("allOf")
    if parts and node.get("type", "object") == "object" and all(
            isinstance(p, dict) and set(p) <= _MERGEABLE and p.get("type", "object") == "object" for p in parts):
        del node["allOf"]
        properties, required = dict(node.get("properties", {})), set(node.get("required", ()))
        for part in parts:
            for name, schema in part.get("properties", {}).items():
                properties[name] = {"allOf": [properties[name], schema]} if name in properties else schema
            required.update(part.get("required", ()))
        node.update(type="object", properties=properties, required=sorted(required))
    return node


class DcsaEventChecker:
    """Tells whether a dict is a valid DCSA T&T 2.2 event, and if not, every reason why."""

    def __init__(self, definition: Path = DEFINITION):
        doc = yaml.safe_load(definition.read_text("utf-8"))
        self.version = doc["info"]["version"]
        components = _as_json_schema(doc["components"])
        self._fast, self._full = {}, {}
        # One meaning of each format for both validators (jsonschema checks date-time only with extras).
        formats = jsonschema.FormatChecker()
        formats.checks("date-time")(is_date_time)
        for event_type, name in EVENT_SCHEMAS.items():
            as_written = {"$ref": f"#/components/schemas/{name}", "components": components}
            flat = flatten({"$ref": f"#/components/schemas/{name}"}, components["schemas"])
            self._fast[event_type] = fastjsonschema.compile(flat, formats={"uuid": UUID_PATTERN,
                                                                           "date-time": is_date_time})
            self._full[event_type] = jsonschema.Draft7Validator(as_written, format_checker=formats)

    def problems(self, event: Any) -> list[tuple[str, str, str]]:
        """Empty for a valid event; otherwise each problem as (path, kind of check, message)."""
        if not isinstance(event, dict):
            return [("/", "type", f"an event is a JSON object, not {type(event).__name__}")]
        event_type = event.get("eventType")
        if not isinstance(event_type, str) or event_type not in EVENT_SCHEMAS:  # [] or {} would not even hash
            return [("/eventType", "enum", f"{event_type!r} is not one of TRANSPORT, SHIPMENT, EQUIPMENT")]
        try:
            self._fast[event_type](event)
            return []
        except fastjsonschema.JsonSchemaException as fast_error:
            found = [("/" + "/".join(map(str, e.absolute_path)), str(e.validator), e.message)
                     for e in self._full[event_type].iter_errors(event)]
            return found or [("/", fast_error.rule or "schema", fast_error.message)]


def read_events(path: Path) -> Iterator[tuple[str, Any]]:
    """(where, event) from a file: a JSON list (the GET /v2/events response) or JSON lines.
    An unparsable line yields (where, JsonError) so the caller can reject it with a reason."""
    text = path.read_text("utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            events = json.loads(text)
        except json.JSONDecodeError as exc:
            yield f"{path}", JsonError(f"not valid JSON: {exc}")
            return
        for i, event in enumerate(events):
            yield f"{path}[{i}]", event
        return
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield f"{path}:{n}", json.loads(line)
        except json.JSONDecodeError as exc:
            yield f"{path}:{n}", JsonError(f"not valid JSON: {exc.msg}")


class JsonError(str):
    """A line or file that is not JSON; the text says why."""


def event_files(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        out.extend(sorted(q for q in p.rglob("*") if q.suffix in (".json", ".jsonl")) if p.is_dir() else [p])
    return out
