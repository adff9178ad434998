"""The screening record as archive columns, and back: what a decision was made on, queryable.

    columns = record_columns(record, facts)          # flat values and nested lists of structs
    record, facts = record_from_columns(columns)     # what the scorer reads, again

The columns hold the record as the rules saw it (a linked consignment's merged record), its
facts (container status, goods descriptions, party history, ...), and, beside each part, the
values the condition language derives from it without a rule pack (a party's name_key,
address_key, person, filings and first_seen_days; the onward countries): SQL reads them
as columns (rule_sql.py, the analysts' views) without Python. Pack-dependent values
(unit-value statistics) are not stored: a backtest computes them with the candidate's own.
"""
from __future__ import annotations

import json
from typing import Any, Iterable

import pyarrow as pa

from .conditions import NUMBER, LIST, SCOPES, onward_countries
from .enrichment import Fact
from .screening import DataQualityWarning, Equipment, GoodsLine, Party, ScreeningRecord

_TEXT, _FLOAT, _INT, _TEXTS = pa.string(), pa.float64(), pa.int64(), pa.list_(pa.string())

# The typed fact values conditions read (facts scope of conditions.SCOPES); the rest stays in `values` (JSON).
FACT_VALUES = tuple((name, spec.type) for name, spec in SCOPES["facts"].items()
                    if name not in ("kind", "container", "detail"))
_PARTY_DERIVED = ("name_key", "address_key", "person", "filings", "first_seen_days")

PARTY = pa.struct([("role", _TEXT), ("id", _TEXT), ("name", _TEXT), ("street", _TEXT), ("city", _TEXT),
                   ("postcode", _TEXT), ("country", _TEXT), ("pointer", _TEXT), ("name_key", _TEXT),
                   ("address_key", _TEXT), ("person", _TEXT), ("filings", _FLOAT), ("first_seen_days", _FLOAT)])
GOODS = pa.struct([("number", _INT), ("description", _TEXT), ("hs_code", _TEXT), ("undg", _TEXT),
                   ("gross_mass", _FLOAT), ("packages", _INT), ("package_types", _TEXTS), ("value", _FLOAT),
                   ("currency", _TEXT), ("containers", _TEXTS), ("house", _INT), ("pointer", _TEXT),
                   ("converted_value", _FLOAT)])
CONTAINER = pa.struct([("container_id", _TEXT), ("packed_status", _TEXT), ("size_type", _TEXT), ("seals", _TEXTS),
                       ("pointer", _TEXT)])
FACT = pa.struct([("kind", _TEXT), ("container", _TEXT), ("detail", _TEXT), ("events", _TEXTS),
                  *((name, _FLOAT if kind == NUMBER else _TEXTS if kind == LIST else _TEXT)
                    for name, kind in FACT_VALUES), ("values", _TEXT)])
WARNING = pa.struct([("code", _TEXT), ("pointer", _TEXT), ("value", _TEXT), ("message", _TEXT)])

# The record's own columns (prefixed record_ where the decision's columns already say it of the lead filing).
FIELDS: list[tuple[str, pa.DataType]] = [
    ("record_filing_code", _TEXT), ("level", _TEXT), ("record_lrn", _TEXT), ("issued_at", pa.timestamp("us", tz="UTC")),
    ("record_office_of_first_entry", _TEXT), ("place_of_loading", _TEXT), ("loading_country", _TEXT),
    ("place_of_unloading", _TEXT), ("unloading_country", _TEXT), ("routing_countries", _TEXTS),
    ("onward_countries", _TEXTS), ("vessel_imo", _TEXT), ("voyage", _TEXT), ("conveyance", _TEXT),
    ("means_nationality", _TEXT), ("transport_document", _TEXT), ("master_document", _TEXT),
    ("house_documents", _TEXTS), ("house_filers", _TEXTS), ("total_gross_mass", _FLOAT), ("total_packages", _INT),
    ("receptacles", _INT), ("declarant", _TEXT), ("record_filer", _TEXT),
    ("parties", pa.list_(PARTY)), ("goods", pa.list_(GOODS)), ("containers", pa.list_(CONTAINER)),
    ("facts", pa.list_(FACT)), ("warnings", pa.list_(WARNING)), ("record_pointers", _TEXT),
]
_RENAMED = {"record_filing_code": "filing_code", "record_lrn": "lrn",
            "record_office_of_first_entry": "office_of_first_entry", "record_filer": "filer"}
_PLAIN = ("level", "place_of_loading", "loading_country", "place_of_unloading", "unloading_country", "vessel_imo",
          "voyage", "conveyance", "means_nationality", "transport_document", "master_document", "total_gross_mass",
          "total_packages", "receptacles")


class _Subject:
    """Just enough of a scoring subject for the fields that read the facts (party history)."""

    def __init__(self, record: ScreeningRecord, facts):
        self.record, self.facts = record, tuple(facts)


def _typed(value: Any, kind: str):
    """A fact value as its column holds it: what the condition language would compare."""
    if kind == NUMBER:
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if kind == LIST:
        return [str(v) for v in value] if isinstance(value, (list, tuple)) else None
    return value if isinstance(value, str) else None


def _fact_row(fact: Fact) -> dict:
    values = fact.values or {}
    return {"kind": fact.kind, "container": fact.container, "detail": fact.detail, "events": list(fact.events),
            **{name: _typed(values.get(name), kind) for name, kind in FACT_VALUES},
            "values": json.dumps(values, sort_keys=True, default=str) if values else None}


def record_columns(record: ScreeningRecord | None, facts: Iterable[Fact] = ()) -> dict:
    """The archive's record columns of a decision (all null without a record)."""
    if record is None:
        return {name: None for name, _ in FIELDS}
    facts = tuple(facts)
    subject = _Subject(record, facts)
    party_fields = SCOPES["parties"]

    def derived(p: Party) -> dict:
        spec = {n: party_fields[n] for n in _PARTY_DERIVED}
        return {n: (s.of_subject(subject, p) if s.of_subject else s.get(p)) for n, s in spec.items()}

    row = {name: getattr(record, name) for name in _PLAIN}
    row.update({
        "record_filing_code": record.filing_code, "record_lrn": record.lrn,
        "issued_at": round(record.issued_at * 1_000_000) if record.issued_at else None,
        "record_office_of_first_entry": record.office_of_first_entry,
        "routing_countries": list(record.routing_countries),
        "onward_countries": list(onward_countries(record.routing_countries)),
        "house_documents": list(record.house_documents), "house_filers": list(record.house_filers),
        "declarant": record.declarant, "record_filer": record.filer,
        "parties": [{**p._asdict(), **derived(p)} for p in record.parties],
        "goods": [{**g._asdict(), "package_types": list(g.package_types), "containers": list(g.containers)}
                  for g in record.goods],
        "containers": [{**c._asdict(), "seals": list(c.seals)} for c in record.containers],
        "facts": [_fact_row(f) for f in facts],
        "warnings": [w._asdict() for w in record.warnings],
        "record_pointers": json.dumps(record.pointers, sort_keys=True) if record.pointers else None,
    })
    return row


def _part(cls, row: dict):
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in row.items() if k in cls._fields}
    return cls(**values)


def record_from_columns(row: dict) -> tuple[ScreeningRecord | None, tuple[Fact, ...]]:
    """The record and facts back from a decision row of the archive (None for a row without them:
    an archive written before the record columns, or a decision without a record)."""
    if row.get("record_filing_code") is None:
        return None, ()
    from .filings import BY_CODE

    code = row["record_filing_code"]
    issued = row.get("issued_at")
    values = {name: row.get(name) for name in _PLAIN}
    values.update({_RENAMED[k]: row.get(k) for k in ("record_filing_code", "record_lrn", "record_office_of_first_entry")})
    record = ScreeningRecord(
        **values, mode=BY_CODE["F" + code[1:]].mode,
        issued_at=issued.timestamp() if hasattr(issued, "timestamp") else float(issued or 0) / 1_000_000,
        routing_countries=tuple(row.get("routing_countries") or ()),
        house_documents=tuple(row.get("house_documents") or ()), house_filers=tuple(row.get("house_filers") or ()),
        parties=tuple(_part(Party, p) for p in row.get("parties") or ()),
        goods=tuple(_part(GoodsLine, g) for g in row.get("goods") or ()),
        containers=tuple(_part(Equipment, c) for c in row.get("containers") or ()),
        warnings=tuple(_part(DataQualityWarning, w) for w in row.get("warnings") or ()),
        pointers=json.loads(row["record_pointers"]) if row.get("record_pointers") else {})
    facts = tuple(Fact(f["kind"], f["container"], f["detail"], tuple(f.get("events") or ()),
                       json.loads(f["values"]) if f.get("values") else {}) for f in row.get("facts") or ())
    return record, facts
