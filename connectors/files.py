"""File connectors for batch runs: filings from a folder in; answers and dead letters out as JSON lines."""
from __future__ import annotations

import json
import os
from pathlib import Path

import apache_beam as beam

from cargoscreen.answering import DeadLetter, dead_letter_body
from cargoscreen.decisions import Decision, decision_record
from cargoscreen.domain.answers import Answer
from cargoscreen.enrichment import EnrichedFiling
from cargoscreen.validation import Submission
from cargoscreen.counters import CountsPerBundle, counter
from cargoscreen.stages.batches import Batches, TaggedBatches, batched_pardo
from cargoscreen.folders import list_filings, read_filing

SUBMISSIONS, DEAD_LETTER = "submissions", "dead_letter"


class _ReadFileDoFn(CountsPerBundle, beam.DoFn):
    def __init__(self, folder: str, max_bytes: int):
        self._folder, self._max_bytes = folder, max_bytes
        self._inputs = counter("inputs")

    def process(self, batch: list[str]):
        self._inputs.inc(len(batch))
        out = TaggedBatches(SUBMISSIONS)
        for relative in batch:
            try:
                payload = read_filing(os.path.join(self._folder, relative), self._max_bytes)
            except OSError as exc:
                out.add(DEAD_LETTER, DeadLetter(relative, "read", f"unreadable: {exc}", b""))
                continue
            out.add(SUBMISSIONS, Submission(relative, payload))
        yield from out.emit()


class ReadFilingsFromFolder(beam.PTransform):
    """A folder of XML files (searched recursively) in; Batches of Submissions out (stages/batches.py),
    one Submission per file, its id the relative path. Output `dead_letter`: Batches of DeadLetters,
    for files that cannot be read."""

    def __init__(self, folder: Path, max_bytes: int, batch: int = 256):
        super().__init__()
        self._folder, self._max_bytes, self._batch = str(folder), max_bytes, batch

    def expand(self, pbegin):
        return (pbegin
                | "Impulse" >> beam.Impulse()
                | "List" >> beam.FlatMap(lambda _: list_filings(Path(self._folder)))
                | "Spread" >> beam.Reshuffle()  # file names only: lets workers share the reading
                | "Batch" >> Batches(self._batch)
                | "Read" >> batched_pardo(_ReadFileDoFn(self._folder, self._max_bytes), SUBMISSIONS, DEAD_LETTER))


def answer_record(answer: Answer) -> str:
    return json.dumps({"submission_id": answer.submission_id, "message_type": answer.message_type,
                       "recipient": answer.recipient, "lrn": answer.lrn, "mrn": answer.mrn,
                       "xml": answer.xml.decode("utf-8")}, ensure_ascii=False)


def enriched_record(e: EnrichedFiling) -> str:
    return json.dumps({
        "submission_id": e.submission_id, "mrn": e.mrn, "filing_code": e.filing_code, "mode": e.mode, "lrn": e.lrn,
        "filer": e.filer, "consignment": e.consignment, "filings": [m.submission_id for m in e.members],
        "containers": list(e.containers), "container_status": e.container_status,
        "facts": [{"kind": f.kind, "container": f.container, "detail": f.detail, "events": list(f.events),
                   **({"values": f.values} if f.values else {})} for f in e.facts]}, ensure_ascii=False)


def decision_json(decision: Decision) -> str:
    return json.dumps(decision_record(decision), ensure_ascii=False)


def dead_letter_record(dead: DeadLetter) -> str:
    return json.dumps(dead_letter_body(dead))


def read_json_lines(folder: Path) -> list[dict]:
    """Every record of the JSON-lines shards WriteJsonLines wrote into a folder, shard by shard."""
    return [json.loads(line) for f in sorted(Path(folder).glob("*.jsonl")) for line in f.open(encoding="utf-8")]


class WriteJsonLines(beam.PTransform):
    """Batches of records in; JSON-lines files `<prefix>-SSSSS-of-NNNNN.jsonl` out (Beam's text sink: files
    appear whole)."""

    def __init__(self, prefix: Path, to_json):
        super().__init__()
        self._prefix, self._to_json = str(prefix), to_json

    def expand(self, records):
        return (records
                | "ToJson" >> beam.FlatMap(lambda batch, to_json: [to_json(r) for r in batch], self._to_json)
                | "Write" >> beam.io.WriteToText(self._prefix, file_name_suffix=".jsonl"))
