"""The `cargoscreen` command: validate, generate, run, demo."""
from __future__ import annotations

import json
import logging
import sys
import threading
import time
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .config import Settings

console = Console(stderr=True)


def _settings(schemas: tuple[str, ...]) -> Settings:
    return Settings(extra_schema_dirs=tuple(Path(s) for s in schemas))


def _files(paths: tuple[str, ...]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        out.extend(sorted(p.rglob("*.xml")) if p.is_dir() else [p])
    return out


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log what the pipeline does.")
@click.version_option(package_name="cargoscreen")
def main(verbose: bool) -> None:
    """cargoscreen: advance cargo screening of Entry Summary Declarations (ICS2-style)."""
    # Importing Beam installs a root handler; force ours.
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Beam's GCP modules complain about a Google client we do not use.
    logging.getLogger().handlers[0].addFilter(lambda record: "apitools not found" not in record.getMessage())


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--schemas", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="A folder of XSD sets to add to the registry (searched before the bundled set). Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout instead of the report.")
def validate(files, schemas, as_json) -> None:
    """Validate filings (files, or folders of *.xml) as the pipeline would. Exit status 1 if any is rejected."""
    from .validation import FilingValidator, Submission

    validator = FilingValidator(_settings(schemas))
    results, rejected = [], 0
    out = Console()
    for path in _files(files):
        outcome = validator.validate(Submission(str(path), path.read_bytes()))
        rejected += not outcome.accepted
        s = outcome.summary
        results.append({
            "file": str(path), "accepted": outcome.accepted,
            "message_type": s.message_type if s else None, "lrn": s.lrn if s else None,
            "errors": [{"code": e.code, "pointer": e.pointer, "line": e.line, "constraint": e.constraint,
                        "reason": e.reason, "value": e.value} for e in outcome.errors]})
        if as_json:
            continue
        if outcome.accepted:
            out.print(f"[green]ACCEPTED[/green] {path}  {s.message_type} LRN {s.lrn}")
            continue
        out.print(f"[red]REJECTED[/red] {path}  {len(outcome.errors)} error(s)")
        table = Table(show_header=True, header_style="bold", expand=False)
        for column in ("line", "where", "code", "what is wrong"):
            table.add_column(column, overflow="fold")
        for e in outcome.errors:
            table.add_row(str(e.line or ""), e.pointer, e.code, e.reason)
        out.print(table)
    if as_json:
        click.echo(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        out.print(f"{len(results)} file(s): {len(results) - rejected} accepted, {rejected} rejected")
    sys.exit(1 if rejected else 0)


@main.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder to write into.")
@click.option("--count", default=1000, show_default=True, help="How many filings.")
@click.option("--seed", default=1, show_default=True, help="Same seed, same filings.")
@click.option("--defect-rate", default=0.1, show_default=True, help="Share of filings with content defects.")
@click.option("--envelope-rate", default=0.02, show_default=True, help="Share of broken or hostile XML.")
@click.option("--resubmission-rate", default=0.02, show_default=True, help="Share re-sending an earlier filing.")
@click.option("--size", type=click.Choice(["mixed", "small", "large"]), default="mixed", show_default=True)
@click.option("--modes", default="sea,air,express,postal,road,rail", show_default=True)
@click.option("--defects", default=None, help="Which content defects to plant, comma-separated (default: all); "
              "each defective filing gets one to three of them. Kinds: see `cargoscreen.generator.DEFECTS`.")
@click.option("--container-status/--no-container-status", default=False,
              help="Also write the containers' DCSA event histories (container-events.jsonl) and their labels.")
@click.option("--anomaly-rate", default=0.1, show_default=True, help="Share of containers with a planted anomaly.")
def generate(out_dir, count, seed, defect_rate, envelope_rate, resubmission_rate, size, modes, defects,
             container_status, anomaly_rate) -> None:
    """Write realistic filings to OUT/filings and their ground truth to OUT/labels.jsonl."""
    from .corpus import write_container_status, write_corpus
    from .generator import CONTENT_DEFECTS

    kinds = tuple(d.strip() for d in defects.split(",") if d.strip()) if defects else None
    unknown = set(kinds or ()) - set(CONTENT_DEFECTS)
    if unknown:
        raise click.BadParameter(f"unknown defect(s) {', '.join(sorted(unknown))}; known: {', '.join(CONTENT_DEFECTS)}",
                                 param_hint="--defects")
    corpus = dict(defect_rate=defect_rate, envelope_rate=envelope_rate, resubmission_rate=resubmission_rate,
                  size=size, modes=tuple(m.strip() for m in modes.split(",") if m.strip()), defects=kinds)
    with _progress() as progress:
        task = progress.add_task("generating", total=count)
        written = write_corpus(Path(out_dir), count, seed, **corpus,
                               on_progress=lambda n: progress.update(task, completed=n))
    console.print(f"wrote {written} filings to {Path(out_dir) / 'filings'} and labels to {Path(out_dir) / 'labels.jsonl'}")
    if container_status:
        events = write_container_status(Path(out_dir), count, seed, anomaly_rate, **corpus)
        console.print(f"wrote {events} container events to {Path(out_dir) / 'container-events.jsonl'}")


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True, disable=not console.is_terminal)


@main.command()
@click.option("--input", "input_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of filings (*.xml, searched recursively).")
@click.option("--output", "output_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for answers/, dead-letters/ and summary.json.")
@click.option("--redis-url", default=None, help="Redis for registrations; default: an embedded server under OUTPUT/redis.")
@click.option("--schemas", multiple=True, type=click.Path(exists=True, file_okay=False), help="Extra XSD sets.")
@click.option("--runner", default="FnApiRunner", show_default=True,
              help="Beam runner; any other than FnApiRunner takes its options from --beam-option.")
@click.option("--beam-option", "beam_options", multiple=True, help="A Beam pipeline option, e.g. --beam-option=--direct_num_workers=2")
def run(input_dir, output_dir, redis_url, schemas, runner, beam_options) -> None:
    """Run the batch pipeline over a folder of filings and print the summary (inputs = accepted + rejected + dead-lettered)."""
    summary = run_and_report(Path(input_dir), Path(output_dir), _settings(schemas), redis_url, runner, list(beam_options))
    sys.exit(0 if summary.balanced else 2)


def run_and_report(input_dir: Path, output_dir: Path, settings: Settings, redis_url: str | None = None,
                   runner: str = "FnApiRunner", beam_options: list[str] | None = None):
    from .connectors.files import list_filings
    from .connectors.redis_store import EmbeddedRedis, connect, progress_key
    from .job import new_run_id, run_batch

    embedded = None
    if redis_url is None:
        embedded = EmbeddedRedis(output_dir / "redis")
        redis_url = embedded.url
    settings = settings.with_redis_url(redis_url)
    try:
        total = len(list_filings(input_dir))
        run_id = new_run_id()
        outcome: dict = {}

        def work():
            try:
                outcome["summary"] = run_batch(settings, input_dir, output_dir, runner, beam_options, run_id)
            except BaseException as exc:  # reported below, in the main thread
                outcome["error"] = exc

        started = time.perf_counter()
        worker = threading.Thread(target=work, name="pipeline")
        worker.start()
        client, key = connect(redis_url), progress_key(settings.redis.key_prefix, run_id)
        with _progress() as progress:
            task = progress.add_task("screening", total=total)
            while worker.is_alive():
                worker.join(0.25)
                progress.update(task, completed=int(client.get(key) or 0))
        if "error" in outcome:
            raise outcome["error"]
        summary = outcome["summary"]
        elapsed = time.perf_counter() - started
    finally:
        if embedded is not None:
            embedded.close()
    _print_summary(summary, elapsed)
    (output_dir / "summary.json").write_text(json.dumps({
        "inputs": summary.inputs, "accepted": summary.accepted, "rejected": summary.rejected,
        "dead_lettered": summary.dead_lettered, "answers": summary.answers, "balanced": summary.balanced,
        "enriched": summary.enriched, "container_status_unavailable": summary.container_status_unavailable,
        "facts": summary.facts,
        "seconds": round(elapsed, 3)}, indent=2))
    return summary


def _print_summary(summary, elapsed: float) -> None:
    out = Console()
    table = Table(title="cargoscreen run", show_header=True, header_style="bold")
    table.add_column("door")
    table.add_column("answer")
    table.add_column("count", justify="right")
    names = {"IE3R01": "registration", "IE3N10": "amendment accepted", "IE3R04": "invalidation accepted",
             "IE3N99": "error notification", "IE3N01": "lifecycle error"}
    for door, types in (("accepted", ("IE3R01", "IE3N10", "IE3R04")), ("rejected", ("IE3N99", "IE3N01"))):
        for t in types:
            if summary.answers.get(t):
                table.add_row(door, f"{t} {names[t]}", str(summary.answers[t]))
    table.add_row("dead-lettered", "", str(summary.dead_lettered))
    out.print(table)
    if summary.enriched:
        facts = ", ".join(f"{k} {v}" for k, v in sorted(summary.facts.items())) or "none"
        out.print(f"enriched {summary.enriched} new registrations with container status "
                  f"({summary.container_status_unavailable} with the status unavailable); anomaly facts: {facts}",
                  soft_wrap=True)
    verdict = "[green]balanced[/green]" if summary.balanced else "[red]NOT BALANCED: something was lost[/red]"
    out.print(f"inputs {summary.inputs} = accepted {summary.accepted} + rejected {summary.rejected} + "
              f"dead-lettered {summary.dead_lettered}: {verdict}   ({elapsed:.1f} s, "
              f"{summary.inputs / elapsed if elapsed else 0:.0f} filings/s)")


@main.group()
def csm() -> None:
    """Container status messages: the DCSA Track & Trace 2.2 feed."""


@csm.command("load")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--redis-url", default=None, help="Redis of the pipeline; default: the embedded one in --data-dir.")
@click.option("--data-dir", default=".cargoscreen", show_default=True, type=click.Path(file_okay=False),
              help="Where the embedded Redis keeps its data between runs.")
@click.option("--rejected", "rejected_path", default="csm-rejected.jsonl", show_default=True,
              type=click.Path(dir_okay=False), help="JSON lines of rejected events, each with its reasons.")
def csm_load(paths, redis_url, data_dir, rejected_path) -> None:
    """Load DCSA events from files or folders (*.json lists, *.jsonl lines) into the container store."""
    from .connectors.redis_store import EmbeddedRedis

    embedded = EmbeddedRedis(Path(data_dir) / "redis") if redis_url is None else None
    try:
        summary, elapsed, version = load_feed([Path(p) for p in paths], redis_url or embedded.url, Path(rejected_path))
    finally:
        if embedded is not None:
            embedded.close()
    out = Console()
    table = Table(title=f"DCSA T&T {version} feed", show_header=True, header_style="bold")
    table.add_column("events")
    table.add_column("count", justify="right")
    table.add_row("read", str(summary.read))
    table.add_row("loaded", str(summary.loaded))
    table.add_row("  of which with a container id failing ISO 6346", str(summary.unchecked_container_ids))
    table.add_row("duplicates (eventID seen before)", str(summary.duplicates))
    for reason, count in summary.rejected.most_common():
        table.add_row(f"rejected: {reason}", str(count))
    out.print(table)
    out.print(f"{summary.balance()}   ({summary.read / elapsed if elapsed else 0:,.0f} events/s); "
              f"rejected events with reasons: {rejected_path}", soft_wrap=True)
    sys.exit(0 if summary.balanced else 2)


@csm.command("follow")
@click.option("--redis-url", required=True, help="The Redis holding the stream and the container store.")
@click.option("--stream", default="cs:csm:events", show_default=True, help="Stream of DCSA events (field: event).")
@click.option("--group", default="csm-loader", show_default=True, help="Consumer group: run several loaders in one.")
@click.option("--consumer", default=None, help="This loader's name in the group (default: host and pid).")
@click.option("--once", is_flag=True, help="Stop when the stream has nothing new.")
def csm_follow(redis_url, stream, group, consumer, once) -> None:
    """Load a live feed from a Redis Stream until stopped (Ctrl-C, SIGTERM); rejected events go to STREAM:rejected."""
    import os
    import signal
    import socket

    from .connectors.dcsa import DcsaEventChecker
    from .connectors.redis_store import connect
    from .container_feed import follow_stream, rejected_to_stream
    from .container_store import ContainerEventStore

    settings, stopping = Settings(), []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    client = connect(redis_url)
    try:
        summary = follow_stream(client, stream, group, consumer or f"{socket.gethostname()}-{os.getpid()}",
                                DcsaEventChecker(),
                                ContainerEventStore.for_settings(client, settings),
                                rejected_to_stream(client, stream), once=once, stop=lambda: bool(stopping))
    except KeyboardInterrupt:
        return
    Console().print(summary.balance(), soft_wrap=True)


def load_feed(paths: list[Path], redis_url: str, rejected_path: Path, settings: Settings | None = None):
    """Loads DCSA event files into the container store, with a progress display; returns
    (LoadSummary, seconds, DCSA version)."""
    from .connectors.redis_store import connect
    from .container_feed import load_files
    from .container_store import ContainerEventStore

    settings = settings or Settings()
    store = ContainerEventStore.for_settings(connect(redis_url), settings)
    with _progress() as progress:
        task = progress.add_task("loading events", total=None)
        return load_files(paths, store, rejected_path, on_progress=lambda n: progress.update(task, completed=n))


@main.command()
@click.option("--out", "out_dir", default="out/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--count", default=500, show_default=True)
@click.option("--seed", default=7, show_default=True)
def demo(out_dir, count, seed) -> None:
    """The whole flow on generated sample data with an embedded Redis: generate, screen, answer."""
    from .connectors.redis_store import EmbeddedRedis
    from .corpus import write_container_status, write_corpus

    out_dir = Path(out_dir)
    console.print(f"1. generating {count} filings (all modes, 10% with defects, a few hostile) and their "
                  f"containers' histories (10% with an anomaly) into {out_dir}")
    write_corpus(out_dir, count, seed)
    write_container_status(out_dir, count, seed)  # same arguments: the same filings' containers
    with EmbeddedRedis(out_dir / "results" / "redis") as server:
        loaded, _, _ = load_feed([out_dir / "container-events.jsonl"], server.url, out_dir / "csm-rejected.jsonl")
        console.print(f"2. loaded {loaded.loaded} container events ({loaded.unchecked_container_ids} with a container "
                      f"id failing ISO 6346) into the embedded Redis")
        console.print("3. running the pipeline (FnApiRunner)")
        summary = run_and_report(out_dir / "filings", out_dir / "results", Settings(), redis_url=server.url)
    _demo_checks(out_dir)
    sys.exit(0 if summary.balanced else 2)


def _demo_checks(out_dir: Path) -> None:
    """Compares the answers with the generator's ground truth and shows one answer of each kind."""
    from .connectors.files import read_json_lines

    labels = {json.loads(line)["file"]: json.loads(line) for line in (out_dir / "labels.jsonl").open()}
    answers = read_json_lines(out_dir / "results" / "answers")
    agree = sum((a["message_type"] == "IE3R01") == (labels[a["submission_id"]]["expected"] == "registered")
                for a in answers)
    out = Console()
    out.print(f"4. answers agree with the ground truth for {agree} of {len(answers)} filings")
    _demo_facts(out_dir, out)
    shown = set()
    for a in answers:
        if a["message_type"] not in shown and a["message_type"] in ("IE3R01", "IE3N99"):
            shown.add(a["message_type"])
            out.print(f"\n[bold]{a['message_type']}[/bold] for {a['submission_id']}:")
            out.print(_pretty(a["xml"]), markup=False, highlight=False)
    out.print(f"\nAll answers: {out_dir / 'results' / 'answers'}; summary: {out_dir / 'results' / 'summary.json'}")


def _demo_facts(out_dir: Path, out: Console) -> None:
    """Compares the container facts with the planted anomalies, and shows one enriched filing."""
    from .connectors.files import read_json_lines
    from .domain.enrichment import INFORMATIONAL_FACTS

    planted = {(x["file"], x["container"]): x["anomaly"] for x in map(json.loads, (out_dir / "container-labels.jsonl").open())}
    enriched = read_json_lines(out_dir / "results" / "enriched")
    found = missed = false = 0
    for e in enriched:
        for c in e["containers"]:
            if (e["submission_id"], c) not in planted:
                continue
            kinds = {f["kind"] for f in e["facts"] if f["container"] == c} - INFORMATIONAL_FACTS
            anomaly = planted[(e["submission_id"], c)]
            if anomaly is None:
                false += bool(kinds)
            elif anomaly in kinds:
                found += 1
            else:
                missed += 1
    out.print(f"5. container status: {found} planted anomalies found, {missed} missed, {false} clean containers "
              f"with an anomaly fact")
    sample = next((e for e in enriched if any(f["kind"] not in INFORMATIONAL_FACTS for f in e["facts"])), None)
    if sample:
        out.print(json.dumps(sample, indent=1)[:2500], markup=False, highlight=False)


def _pretty(xml: str) -> str:
    from lxml import etree
    return etree.tostring(etree.fromstring(xml.encode()), pretty_print=True).decode()[:3000]


if __name__ == "__main__":
    main()
