"""The Parquet archive: every filing as it came in, and every decision, for analysts and replays.

    ARCHIVE/filings/date=2026-11-23/mode=sea/part-<unique>.parquet
    ARCHIVE/decisions/date=2026-11-23/mode=sea/part-<unique>.parquet

Hive-style partitions by the UTC day a filing was received (filings) or decided (decisions)
and by mode (`unknown` for messages that are not readable ENS filings), so pyarrow.dataset,
DuckDB or Spark read `date` and `mode` as columns. Each file is written under a hidden
temporary name (`.part-...`, which those readers skip) and renamed when complete: a reader
never sees half a file. Files are small: one per partition per bundle (at most `max_rows`
rows). They hold filings: files are made 0600 and folders 0700, whatever the umask. The columns
are documented in `connectors/ARCHIVE.md`; the schemas below are the contract, and a test keeps
the two in step.
"""
from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import apache_beam as beam
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from cargoscreen import metrics
from cargoscreen.decisions import Decision
from cargoscreen.domain.container_events import utc_epoch
from cargoscreen.domain.record_columns import CONTAINER, FACT, FIELDS as RECORD_FIELDS, GOODS as GOODS_ITEM, PARTY, \
    record_columns
from cargoscreen.validation import ValidationOutcome

FILINGS, DECISIONS, OUTCOMES = "filings", "decisions", "outcomes"
# Version 2: the record's items again, one row each (flat columns read many times faster than the
# decisions' nested lists: what questions over goods and parties read).
ITEMS = {"goods": GOODS_ITEM, "parties": PARTY, "containers": CONTAINER, "facts": FACT}
# The archive's schema version (ARCHIVE.md): 1, filings and decisions; 2, the screening record in the
# decisions' columns and the outcomes table. Readers take every version: columns a file lacks read as null.
VERSION = 2
_TIME = pa.timestamp("us", tz="UTC")
SCHEMAS = {
    FILINGS: pa.schema([
        ("submission_id", pa.string()), ("received_at", _TIME), ("message_type", pa.string()),
        ("filing_code", pa.string()), ("lrn", pa.string()), ("filer", pa.string()),
        ("office_of_first_entry", pa.string()), ("referenced_mrn", pa.string()), ("accepted", pa.bool_()),
        ("error_codes", pa.list_(pa.string())), ("digest", pa.string()), ("size_bytes", pa.int64()),
        ("payload", pa.binary()),
    ]),
    DECISIONS: pa.schema([
        ("submission_id", pa.string()), ("mrn", pa.string()), ("lrn", pa.string()), ("filer", pa.string()),
        ("filing_code", pa.string()), ("office_of_first_entry", pa.string()), ("risk_centre", pa.string()),
        ("assessed_at", _TIME), ("decision", pa.string()), ("referral_id", pa.string()), ("score", pa.float64()),
        ("risk_level", pa.string()), ("rule_pack", pa.string()),
        ("hits", pa.list_(pa.struct([("rule", pa.string()), ("area", pa.string()), ("weight", pa.float64()),
                                     ("decision", pa.string())]))),
        ("rule_errors", pa.list_(pa.string())), ("container_status", pa.string()),
        ("fact_kinds", pa.list_(pa.string())), ("explanation", pa.string()),
        ("consignment", pa.string()), ("version", pa.int64()), ("state", pa.string()),
        ("member_mrns", pa.list_(pa.string())), ("missing", pa.list_(pa.string())),
        # version 2: the members' submissions (labels name them) and the screening record as scored
        ("member_submissions", pa.list_(pa.string())), ("received_at", _TIME), *RECORD_FIELDS,
    ]),
    # version 2: what became of referrals, from the workbench (`cargoscreen archive-outcomes`)
    OUTCOMES: pa.schema([
        ("referral_id", pa.string()), ("mrn", pa.string()), ("risk_centre", pa.string()),
        ("decision", pa.string()), ("outcome", pa.string()), ("category", pa.string()),
        ("resolved_by", pa.string()), ("resolved_at", _TIME),
    ]),
}
_ITEM_KEYS = [("submission_id", pa.string()), ("mrn", pa.string()), ("consignment", pa.string()),
              ("version", pa.int64()), ("state", pa.string()), ("risk_centre", pa.string()), ("decision", pa.string()),
              ("assessed_at", _TIME), ("item", pa.int64())]
SCHEMAS.update({table: pa.schema(_ITEM_KEYS + list(struct)) for table, struct in ITEMS.items()})
SCHEMAS = {name: schema.with_metadata({"cargoscreen.archive.version": str(VERSION)})
           for name, schema in SCHEMAS.items()}


def _utc(text: str) -> datetime:
    return datetime.fromtimestamp(utc_epoch(text), timezone.utc)


def filing_row(o: ValidationOutcome) -> tuple[str, str, dict]:
    """(day, mode, row) of a validated submission, accepted or rejected."""
    s, received = o.summary, _utc(o.submission.received_at)
    row = {"submission_id": o.submission.submission_id, "received_at": received,
           "message_type": s.message_type if s else None, "filing_code": s.filing_code if s else None,
           "lrn": s.lrn if s else None, "filer": o.filer, "office_of_first_entry": s.office_of_first_entry if s else None,
           "referenced_mrn": s.referenced_mrn if s else None, "accepted": o.accepted,
           "error_codes": [e.code for e in o.errors], "digest": s.digest if s else None,
           "size_bytes": len(o.submission.payload), "payload": o.submission.payload}
    return f"{received:%Y-%m-%d}", (s.mode if s and s.mode else "unknown"), row


def decision_row(d: Decision) -> tuple[str, str, dict]:
    """(day, mode, row) of a decision; the explanation (evidence of referrals) as JSON text."""
    f, a, assessed = d.filing, d.assessment, _utc(d.assessed_at)
    row = {"submission_id": f.submission_id, "mrn": f.mrn, "lrn": f.lrn, "filer": f.filer,
           "filing_code": f.filing_code, "office_of_first_entry": f.office_of_first_entry,
           "risk_centre": d.risk_centre, "assessed_at": assessed, "decision": a.decision,
           "referral_id": d.referral_id if d.referral else None, "score": a.score, "risk_level": a.level,
           "rule_pack": a.pack,
           "hits": [{"rule": h.rule, "area": h.area, "weight": h.weight, "decision": h.decision} for h in a.hits],
           "rule_errors": list(a.errors), "container_status": f.container_status,
           "fact_kinds": sorted({x.kind for x in f.facts}),
           "explanation": json.dumps([{"rule": h.rule, "evidence": [e._asdict() for e in h.evidence]}
                                      for h in a.hits if h.evidence]) if d.referral else None,
           "consignment": d.consignment, "version": f.version, "state": f.state,
           "member_mrns": [m.mrn for m in f.members], "missing": list(f.missing),
           "member_submissions": [m.submission_id for m in f.members],
           "received_at": _utc(f.received_at) if f.received_at else None, **record_columns(f.record, f.facts)}
    return f"{assessed:%Y-%m-%d}", f.mode or "unknown", row


def item_rows(decision: tuple[str, str, dict], table: str) -> Iterator[tuple[str, str, dict]]:
    """(day, mode, row) of each item of one of a decision's record lists (ITEMS), with the decision's keys."""
    day, mode, row = decision
    keys = {k: row[k] for k, _ in _ITEM_KEYS if k != "item"}
    for number, item in enumerate(row[table] or (), start=1):
        yield day, mode, {**keys, "item": number, **item}


def private_folder(folder: Path) -> None:
    """mkdir -p, each folder it makes readable by the owner only (Path.mkdir gives its parents the
    umask's mode): the archive holds filings. Folders that exist are left as they are."""
    if folder.is_dir():
        return
    private_folder(folder.parent)
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:  # another worker made it meanwhile
        pass


def write_part(root: Path, table: str, day: str, mode: str, rows: list[dict], compression: str = "zstd") -> Path:
    """One Parquet file in the partition of (day, mode)."""
    folder = Path(root) / table / f"date={day}" / f"mode={mode}"
    private_folder(folder)
    path = _write_whole(folder, table, rows, compression)
    metrics.ARCHIVE_FILES.labels(table).inc()
    metrics.ARCHIVE_ROWS.labels(table).inc(len(rows))
    return path


def _write_whole(folder: Path, table: str, rows: list[dict], compression: str) -> Path:
    """A Parquet file complete or not at all: written under a hidden name, then renamed into place."""
    name = f"part-{uuid.uuid4().hex}.parquet"
    temporary = folder / f".{name}.tmp"
    try:
        # Created 0600 whatever the umask: the rows are filings and decisions.
        with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMAS[table]), out, compression=compression)
        os.replace(temporary, folder / name)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return folder / name


# What makes two rows one: a streaming run that crashed between writing a bundle's files and
# acknowledging its entries archives that bundle again (see ARCHIVE.md).
_IDENTITY = {FILINGS: ("submission_id",), DECISIONS: ("consignment", "state"), OUTCOMES: ("referral_id", "resolved_at"),
             **{table: ("consignment", "state", "item") for table in ITEMS}}


def compact_partition(folder: Path, table: str, compression: str = "zstd") -> tuple[int, int]:
    """Rewrites one partition's small files as one, without duplicate rows; returns (files
    before, rows after). The new file appears whole before the old ones go, so a reader sees
    every row at every moment (some twice for an instant, which readers dedupe anyway)."""
    parts = sorted(folder.glob("part-*.parquet"))
    if len(parts) < 2:
        return len(parts), sum(pq.read_metadata(p).num_rows for p in parts)
    keep, seen = [], set()
    for part in parts:
        # through a dataset: a file of an earlier version reads with the columns it lacks as null
        for row in ds.dataset(part, format="parquet", schema=SCHEMAS[table]).to_table().to_pylist():
            identity = tuple(row[c] for c in _IDENTITY[table])
            if identity not in seen:
                seen.add(identity)
                keep.append(row)
    _write_whole(folder, table, keep, compression)
    for part in parts:
        part.unlink()
    return len(parts), len(keep)


def compact(root: Path, before_day: str) -> list[tuple[Path, int, int]]:
    """Compacts every partition of both tables whose day is before `before_day` (YYYY-MM-DD):
    days still being written are left alone. Returns (partition, files before, rows after)."""
    done = []
    for table in SCHEMAS:
        for folder in sorted((Path(root) / table).glob("date=*/mode=*")):
            if folder.parent.name.removeprefix("date=") < before_day:
                done.append((folder, *compact_partition(folder, table)))
    return done


def read_archive(root: Path, table: str) -> pa.Table:
    """The whole table with its partition columns (date, mode)."""
    return ds.dataset(Path(root) / table, format="parquet", partitioning="hive",
                      schema=SCHEMAS[table].append(pa.field("date", pa.string())).append(
                          pa.field("mode", pa.string()))).to_table()


def archived_filings(root: Path, batch_rows: int = 1024) -> Iterator[list[tuple[str, bytes]]]:
    """(submission id, bytes) of the accepted filings of an archive, in batches (payloads are large)."""
    dataset = ds.dataset(Path(root) / FILINGS, format="parquet", partitioning="hive")
    for batch in dataset.to_batches(columns=["submission_id", "payload"], filter=ds.field("accepted"),
                                    batch_size=batch_rows):
        yield list(zip(batch.column(0).to_pylist(), batch.column(1).to_pylist()))


class _WriteArchiveDoFn(beam.DoFn):
    def __init__(self, root: str, table: str, max_rows: int):
        self._root, self._table, self._max_rows = root, table, max_rows

    def start_bundle(self):
        self._rows: dict[tuple[str, str], list[dict]] = {}

    def process(self, batch: list[tuple[str, str, dict]]):
        for day, mode, row in batch:
            rows = self._rows.setdefault((day, mode), [])
            rows.append(row)
            if len(rows) >= self._max_rows:
                yield str(write_part(Path(self._root), self._table, day, mode, rows))
                self._rows[(day, mode)] = []

    def finish_bundle(self):
        for (day, mode), rows in self._rows.items():
            if rows:
                path = write_part(Path(self._root), self._table, day, mode, rows)
                yield WindowedValue(str(path), GlobalWindow().max_timestamp(), [GlobalWindow()])
        self._rows = {}


class WriteArchive(beam.PTransform):
    """Batches of (day, mode, row) in, as made by filing_row or decision_row; the paths of the Parquet
    files written out. One file per partition per bundle, at most max_rows rows each."""

    def __init__(self, root: Path, table: str, max_rows: int = 50_000):
        super().__init__()
        if table not in SCHEMAS:
            raise ValueError(f"unknown archive table {table!r}")
        self._root, self._table, self._max_rows = str(root), table, max_rows

    def expand(self, rows):
        return rows | "Write" >> beam.ParDo(_WriteArchiveDoFn(self._root, self._table, self._max_rows))
