"""DCSA Track & Trace 2.2 events in: read, checked against the standard's OpenAPI definition.

The definition (dcsa-tnt/TNT_v2.2.0-resolved.yaml) lists events as anyOf transportEvent,
shipmentEvent, equipmentEvent, with eventType as the discriminator; we pick the schema by
eventType, so a rejection says what is wrong with the event it claims to be. fastjsonschema
compiles the schemas for the happy path; a rejected event is explained by jsonschema, which
lists every error with its path. Both read the same definition: nothing is copied by hand.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Iterator

import fastjsonschema
import jsonschema
import yaml

DEFINITION = Path(__file__).resolve().parent / "dcsa-tnt" / "TNT_v2.2.0-resolved.yaml"
EXAMPLES = DEFINITION.parent / "tnt-220-example-events.json"
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


class DcsaEventChecker:
    """Tells whether a dict is a valid DCSA T&T 2.2 event, and if not, every reason why."""

    def __init__(self, definition: Path = DEFINITION):
        doc = yaml.safe_load(definition.read_text("utf-8"))
        self.version = doc["info"]["version"]
        components = _as_json_schema(doc["components"])
        self._fast, self._full = {}, {}
        for event_type, name in EVENT_SCHEMAS.items():
            schema = {"$ref": f"#/components/schemas/{name}", "components": copy.deepcopy(components)}
            self._fast[event_type] = fastjsonschema.compile(schema, formats={"uuid": r"^[0-9a-fA-F-]{36}$"})
            self._full[event_type] = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())

    def problems(self, event: Any) -> list[tuple[str, str, str]]:
        """Empty for a valid event; otherwise each problem as (path, kind of check, message)."""
        if not isinstance(event, dict):
            return [("/", "type", f"an event is a JSON object, not {type(event).__name__}")]
        event_type = event.get("eventType")
        if event_type not in EVENT_SCHEMAS:
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
