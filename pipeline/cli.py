"""The `cargoscreen` command: validate, generate, run, demo, csm (container status), rules.

Exit codes and error lines: exits.py; where runs write: outputs.py."""
from __future__ import annotations

import functools
import importlib
import json
import logging
import os
import re
import sys
from collections import Counter
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import click

from . import resources
from .config import Settings
from .exits import DEBUG_ENV, Exit, InputError, explain
from .outputs import CORPUS_FILES, new_run_folder, point_latest, refuse_to_write_over

UNWRAPPED = 100_000  # the width of a file or a pipe: wide enough that nothing wraps


def _console(stderr: bool = False) -> "Console":
    """On a terminal rich wraps at its width and tables fit it. In a file or a pipe nothing is
    wrapped (rich would cut at 80 columns, mid-word: an answer's XML broke inside its tags) and a
    table takes the width it needs. Rich is imported here and in _table, not at start: `validate
    --json` does without it."""
    from rich.console import Console

    terminal = Console(stderr=stderr)
    if terminal.is_terminal:
        return terminal
    return Console(stderr=stderr, width=UNWRAPPED)


@functools.cache
def _stderr() -> "Console":
    """Progress and notes of a command, on stderr (its results go to stdout)."""
    return _console(stderr=True)


def _table(**columns) -> "Table":
    from rich.table import Table

    return Table(**columns)


class PackDir(click.ParamType):
    """A rule pack: a folder, or the name of a pack bundled with cargoscreen (ics2-starter), so the
    commands work from anywhere, not only from a checkout."""

    name = "PACK"

    def convert(self, value, param, ctx):
        path = Path(value)
        if path.is_dir():
            return str(path)
        bundled = resources.rules_dir() / "risk" / str(value)
        if "/" not in str(value) and bundled.is_dir():
            return str(bundled)
        known = ", ".join(sorted(p.name for p in (resources.rules_dir() / "risk").iterdir() if p.is_dir()))
        self.fail(f"{value} is neither a folder nor a bundled pack (bundled: {known})", param, ctx)


def _settings(schemas: tuple[str, ...]) -> Settings:
    for folder in map(Path, schemas):
        if not any(folder.rglob("*.xsd")):
            raise InputError(f"--schemas {folder} holds no XSD files (*.xsd, searched recursively)")
    return Settings(extra_schema_dirs=tuple(Path(s) for s in schemas))


@contextmanager
def _redis(redis_url: str | None, folder: Path) -> Iterator[str]:
    """The given Redis, or an embedded server keeping its data in `folder` while the block runs;
    either answers a ping before the block starts (see _reachable)."""
    if redis_url is not None:
        yield _reachable(redis_url)
        return
    from .connectors.redis_store import EmbeddedRedis

    with EmbeddedRedis(Path(folder)) as server:
        yield server.url


def _reachable(redis_url: str) -> str:
    """One round trip before any work: a wrong address or password stops the command with one line
    (exit 4) instead of failing half-way through it."""
    from .connectors.redis_store import connect

    connect(redis_url).ping()
    return redis_url


def _files(paths: tuple[str, ...]) -> list[Path]:
    from .folders import list_filings

    out: list[Path] = []
    for p in map(Path, paths):
        if not p.is_dir():
            out.append(p)
            continue
        found = list_filings(p)
        if not found:
            raise InputError(f"{p} holds no filings (*.xml, searched recursively)")
        out.extend(p / f for f in found)
    return out


class _LazyGroup(click.Group):
    """A group whose heavier subcommands (the workbench, analytics, reference data builds) are
    imported when named, not at every start: `cargoscreen validate` needs none of them, and their
    imports (DuckDB, Redis, the rule language) were two thirds of its start-up."""

    def __init__(self, *args, lazy: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})  # command name -> "module:attribute", the module relative to this one

    def list_commands(self, ctx) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx, name: str):
        if name in self.lazy and name not in self.commands:
            module, _, attribute = self.lazy[name].partition(":")
            self.add_command(getattr(importlib.import_module(module, __package__), attribute), name)
        return super().get_command(ctx, name)


class _Cargoscreen(_LazyGroup):
    """The root command. An error that reaches it becomes one line on stderr and an exit code
    (exits.Exit): a clerk needs what to fix, not a traceback; --debug or CARGOSCREEN_DEBUG=1
    shows the traceback instead."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        args = list(sys.argv[1:] if args is None else args)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.Abort:  # Ctrl-C, or end of input at a prompt
            click.echo("interrupted", err=True)
            sys.exit(Exit.INTERRUPTED)
        except click.ClickException as exc:
            where = self._command_path(args)
            if isinstance(exc, getattr(click.exceptions, "NoArgsIsHelpError", ())):  # a group alone: its help
                click.echo(exc.format_message(), err=True)
            else:
                hint = f" (see '{where} --help')" if isinstance(exc, click.UsageError) else ""
                click.echo(f"{where}: {exc.format_message()}{hint}", err=True)
            sys.exit(Exit.USAGE)
        except BrokenPipeError:
            # Python would complain once more at exit, flushing into the closed pipe.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(Exit.PIPE_CLOSED)
        except Exception as exc:
            if "--debug" in args or os.environ.get(DEBUG_ENV, "") not in ("", "0"):
                raise
            code, line = explain(exc, _given_redis_url(args))
            click.echo(f"{self._command_path(args)}: {line}", err=True)
            sys.exit(code)
        sys.exit(result if isinstance(result, int) else Exit.OK)

    def _command_path(self, args: list[str]) -> str:
        """`cargoscreen rules check`, from the words of the command line that name commands (the
        groups take flags only, so no option value is taken for a name)."""
        names, command = ["cargoscreen"], self
        for arg in args:
            if arg.startswith("-"):
                continue
            command = command.get_command(None, arg) if isinstance(command, click.Group) else None
            if command is None:
                break
            names.append(arg)
        return " ".join(names)


def _given_redis_url(args: list[str]) -> str | None:
    """The Redis URL on the command line or in the environment, to name the server in an error."""
    from .connectors.redis_store import URL_ENV

    for i, arg in enumerate(args):
        for option in ("--redis-url", "--redis_url"):
            if arg == option and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith(option + "="):
                return arg.split("=", 1)[1]
    return os.environ.get(URL_ENV)


@click.group(cls=_Cargoscreen, lazy={
    "reference": ".reference_cli:reference", "query": ".analytics_cli:query",
    "archive-outcomes": ".analytics_cli:archive_outcomes_command", "workbench": ".workbench.cli:workbench",
    "riskinfo": ".workbench.cli:riskinfo"})
@click.option("-v", "--verbose", is_flag=True, help="Log what the pipeline does.")
@click.option("--debug", is_flag=True, envvar=DEBUG_ENV,
              help=f"Show the traceback of an error instead of one line (or set {DEBUG_ENV}=1).")
@click.version_option(package_name="cargoscreen")
def main(verbose: bool, debug: bool) -> None:
    """cargoscreen: advance cargo screening of Entry Summary Declarations (ICS2-style).

    Exit codes: 0 ok; 1 something refused (filings rejected, a pack refused, unhealthy); 2 a summary
    does not balance; 3 usage or input error; 4 Redis unreachable or refused; 5 a bug."""
    # Importing Beam installs a root handler; force ours.
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--schemas", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="A folder of XSD sets to add to the registry (searched before the bundled set). Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout instead of the report.")
def validate(files, schemas, as_json) -> None:
    """Validate filings (files, or folders of *.xml) as the pipeline would. Exit status 1 if any is
    rejected, 3 if one cannot be read or a folder holds none."""
    from .folders import read_filing
    from .validation import FilingValidator, Submission, utc_now

    settings = _settings(schemas)
    validator = FilingValidator(settings, answers_only=True)
    results, rejected, unreadable = [], 0, 0
    if not as_json:  # the report on a console; JSON goes without rich
        from rich.markup import escape

        out = _console()
    received_at = utc_now()  # the files of one run are received together
    for path in _files(files):
        try:
            payload = read_filing(path, settings.limits.max_bytes)
        except OSError as exc:  # reported with the others: one bad file does not hide the rest's answers
            unreadable += 1
            results.append({"file": str(path), "accepted": False, "unreadable": exc.strerror, "errors": []})
            if not as_json:
                out.print(f"[red]UNREADABLE[/red] {escape(str(path))}  {exc.strerror}")
            continue
        outcome = validator.validate(Submission(str(path), payload, received_at))
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
            out.print(f"[green]ACCEPTED[/green] {escape(str(path))}  {s.message_type} LRN {s.lrn}")
            continue
        out.print(f"[red]REJECTED[/red] {escape(str(path))}  {len(outcome.errors)} error(s)")
        table = _table(show_header=True, header_style="bold", expand=False)
        for column in ("line", "where", "code", "what is wrong"):
            table.add_column(column, overflow="fold")
        for e in outcome.errors:
            table.add_row(str(e.line or ""), e.pointer, e.code, e.reason)
        out.print(table)
    if as_json:
        click.echo(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        out.print(f"{len(results)} file(s): {len(results) - rejected - unreadable} accepted, {rejected} rejected"
                  + (f", {unreadable} unreadable" if unreadable else ""))
    sys.exit(Exit.USAGE if unreadable else Exit.REFUSED if rejected else Exit.OK)


_replace_option = click.option("--replace", "replace_existing", is_flag=True,
                               help="Write over a corpus already in the folder (else the command refuses).")


@main.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder to write into.")
@_replace_option
@click.option("--count", default=1000, show_default=True, type=click.IntRange(min=1), help="How many filings.")
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
@click.option("--risk-rate", default=0.0, show_default=True,
              help="Share of valid filings with a planted risk pattern (label `risk`; see generator.RISK_PATTERNS).")
@click.option("--decoy-rate", default=0.0, show_default=True,
              help="Share of valid filings with an innocent look-alike of a risk (label `decoy`; see generator.DECOYS).")
def generate(out_dir, replace_existing, count, seed, defect_rate, envelope_rate, resubmission_rate, size, modes, defects,
             container_status, anomaly_rate, risk_rate, decoy_rate) -> None:
    """Write realistic filings to OUT/filings and their ground truth to OUT/labels.jsonl (a folder
    already holding a corpus is refused unless --replace)."""
    from .corpus import write_container_status, write_corpus
    from .generator import CONTENT_DEFECTS

    kinds = tuple(d.strip() for d in defects.split(",") if d.strip()) if defects else None
    unknown = set(kinds or ()) - set(CONTENT_DEFECTS)
    if unknown:
        raise click.BadParameter(f"unknown defect(s) {', '.join(sorted(unknown))}; known: {', '.join(CONTENT_DEFECTS)}",
                                 param_hint="--defects")
    corpus = dict(defect_rate=defect_rate, envelope_rate=envelope_rate, resubmission_rate=resubmission_rate,
                  size=size, modes=tuple(m.strip() for m in modes.split(",") if m.strip()), defects=kinds,
                  risk_rate=risk_rate, decoy_rate=decoy_rate)
    refuse_to_write_over(Path(out_dir), CORPUS_FILES, replace_existing)
    with _progress() as progress:
        task = progress.add_task("generating", total=count)
        written = write_corpus(Path(out_dir), count, seed, **corpus,
                               on_progress=lambda n: progress.update(task, completed=n))
    _stderr().print(f"wrote {written} filings to {Path(out_dir) / 'filings'} and labels to {Path(out_dir) / 'labels.jsonl'}")
    if container_status:
        events = write_container_status(Path(out_dir), count, seed, anomaly_rate, **corpus)
        _stderr().print(f"wrote {events} container events to {Path(out_dir) / 'container-events.jsonl'}")


def _progress() -> "Progress":
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=_stderr(), transient=True, disable=not _stderr().is_terminal)


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--input", "input_dir", default=None, type=click.Path(exists=True, file_okay=False),
              help="Batch: folder of filings (*.xml, searched recursively). With --follow/--once: a drop folder "
                   "(default: the Redis stream of filings).")
@click.option("--output", "output_dir", default=None, type=click.Path(file_okay=False),
              help="Folder of the runs: each writes answers/, decisions/, referrals/, enriched/, dead-letters/, "
                   "archive/ and summary.json into OUTPUT/run-<UTC time>/ (OUTPUT/latest: the last finished); "
                   "with --follow/--once only the Parquet archive is written there (answers go to Redis streams).")
@click.option("--follow", is_flag=True, help="Run as a service until SIGTERM/SIGINT (drains, then exits).")
@click.option("--once", is_flag=True, help="Like --follow, but stop when the source has nothing new.")
@click.option("--consumer", default=None, help="This worker's name in the consumer group (default: host name).")
@click.option("--redis-url", default=None, help="Redis for registrations; default: an embedded server under OUTPUT/redis.")
@click.option("--schemas", multiple=True, type=click.Path(exists=True, file_okay=False), help="Extra XSD sets.")
@click.option("--runner", default="FnApiRunner", show_default=True,
              help="Beam runner; any other than FnApiRunner takes its options from --beam-option.")
@click.option("--beam-option", "beam_options", multiple=True, help="A Beam pipeline option, e.g. --beam-option=--direct_num_workers=2")
@click.option("--rules", "rules_dir", default=None, type=PackDir(),
              help="Rule pack folder used until one is published in Redis (default: the bundled starter pack).")
@click.pass_context
def run(ctx, input_dir, output_dir, follow, once, consumer, redis_url, schemas, runner, beam_options,
        rules_dir) -> None:
    """Run the batch pipeline over a folder of filings and print the summary (inputs = accepted + rejected +
    dead-lettered); with --follow or --once, run the streaming service on the Redis stream of filings
    (further service and Beam options may follow: `cargoscreen options` lists them)."""
    if follow or once:
        from .service import serve

        given = {"redis_url": redis_url, "consumer": consumer, "input": input_dir, "output": output_dir,
                 "rules": rules_dir, "runner": None if runner == "FnApiRunner" else runner}
        argv = [f"--{k}={v}" for k, v in given.items() if v] + [f"--schemas={s}" for s in schemas]
        try:
            lost = serve(argv + (["--once"] if once else []) + list(beam_options) + list(ctx.args))
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
        if lost:  # on cs:dead-letters, each with its cause and payload
            from .connectors.redis_store import INFRASTRUCTURE

            why = "; ".join(f"{n} because {INFRASTRUCTURE.get(c, c)}" for c, n in sorted(lost.items()))
            click.echo(f"cargoscreen run: {sum(lost.values())} filings lost to Redis, dead-lettered unanswered or "
                       f"undecided (the dead-letter stream keeps each with its cause): {why}", err=True)
            sys.exit(Exit.LOST)
        return
    if ctx.args:
        raise click.UsageError(f"unknown options for a batch run: {' '.join(ctx.args)}")
    if not input_dir or not output_dir:
        raise click.UsageError("a batch run needs --input and --output (or --follow / --once for the service)")
    from .connectors.files import list_filings
    from .domain.rulepack import RulePack

    settings = _settings(schemas)  # the service builds its own from the same options (options.py)
    if rules_dir:
        RulePack.load(Path(rules_dir))  # refused here, with its first problem, not by every worker
        settings = replace(settings, rules=replace(settings.rules, pack_dir=Path(rules_dir)))
    if not list_filings(Path(input_dir)):
        raise InputError(f"{input_dir} holds no filings (*.xml, searched recursively): nothing to screen")
    output = Path(output_dir)
    with _redis(redis_url, output / "redis") as url:
        run_dir = new_run_folder(output)
        summary = run_and_report(Path(input_dir), run_dir, settings.with_redis_url(url), runner, list(beam_options))
    point_latest(output, run_dir)
    _stderr().print(f"results in {run_dir} ({output / 'latest'} points at it)", soft_wrap=True)
    sys.exit(run_exit(summary))


@main.command()
@click.option("--redis-url", required=True, envvar="CARGOSCREEN_REDIS_URL",
              help="The Redis the service runs on (or CARGOSCREEN_REDIS_URL); any node of a cluster.")
@click.option("--consumer", "consumers", multiple=True, required=True, help="A reader's name (repeatable).")
@click.option("--group", default=Settings().streams.group, show_default=True, help="The readers' consumer group.")
@click.option("--key-prefix", default=Settings().redis.key_prefix, show_default=True)
@click.option("--max-lag-seconds", default=None, type=float, help="Keeping up: no filing waits longer (default 30).")
def health(redis_url, consumers, group, key_prefix, max_lag_seconds) -> None:
    """Is a service up and keeping up? The /healthz check from anywhere that reaches its Redis
    (a probe, a sidecar, a runner whose launcher has exited). Exit 0 when healthy, 1 otherwise."""
    from dataclasses import asdict

    from .connectors.redis_store import connect
    from .connectors.redis_streams import StreamKeys
    from .health import DEFAULT_MAX_LAG_SECONDS, check

    h = check(connect(redis_url), StreamKeys(key_prefix), group, list(consumers), True,
              max_lag_seconds or DEFAULT_MAX_LAG_SECONDS, Settings().streams.poll_ms / 1000)
    click.echo(json.dumps({**asdict(h), "healthy": h.healthy}))
    sys.exit(0 if h.healthy else 1)


@main.group("metrics")
def metrics_group() -> None:
    """Prometheus: where to scrape the worker processes."""


@metrics_group.command("targets")
@click.option("--redis-url", required=True, envvar="CARGOSCREEN_REDIS_URL",
              help="The Redis the workers run on (or CARGOSCREEN_REDIS_URL); any node of a cluster.")
@click.option("--key-prefix", default=Settings().redis.key_prefix, show_default=True)
@click.option("--out", "out_path", default=None, type=click.Path(dir_okay=False),
              help="Write Prometheus file service discovery JSON here (replaced whole); default: print it.")
@click.option("--every", default=0.0, show_default=True, help="Keep refreshing the file every N seconds.")
def metrics_targets(redis_url, key_prefix, out_path, every) -> None:
    """The worker processes that serve /metrics now (each registers itself in Redis), as
    file_sd JSON: point a Prometheus `file_sd_configs` at --out."""
    from .connectors.redis_store import connect
    from .metrics import live_targets

    client = connect(redis_url)
    while True:
        document = json.dumps([{"targets": live_targets(client, key_prefix), "labels": {"job": "cargoscreen"}}],
                              indent=1)
        if out_path is None:
            click.echo(document)
        else:
            partial = Path(out_path).with_name(f".{Path(out_path).name}.tmp")
            partial.write_text(document)
            partial.replace(out_path)  # Prometheus never reads half a file
        if every <= 0:
            return
        time.sleep(every)


@main.command()
@click.option("--filings-per-day", required=True, type=click.FloatRange(min=1), help="Filings a day to size for.")
@click.option("--redis-url", default=None,
              help="Measure this Redis (after a run of --filings filings) instead of the bundled measurement.")
@click.option("--filings", type=click.IntRange(min=1), default=None, help="Filings screened into --redis-url.")
def sizing(filings_per_day, redis_url, filings) -> None:
    """Redis memory at steady state for FILINGS-PER-DAY with the default retentions, family by family,
    from measured bytes per filing (bench/redis_memory.py, or a Redis you ran filings through)."""
    from .connectors.redis_store import connect
    from .sizing import measure, measured_table, per_filing, steady_state

    if redis_url:
        if not filings:
            raise click.UsageError("--redis-url needs --filings: how many filings the measured Redis screened")
        table, source = per_filing(measure(connect(redis_url)), filings), f"measured now, {filings} filings"
    else:
        bundled = measured_table()
        table, source = bundled["bytes_per_filing"], bundled["source"]
    out = _console()
    grid = _table(title=f"Redis at steady state, {filings_per_day:,.0f} filings a day", header_style="bold")
    for name, justify in (("key family", "left"), ("bytes/filing", "right"), ("days kept", "right"),
                          ("GB", "right"), ("bounded by", "left")):
        grid.add_column(name, justify=justify)
    total = 0.0
    for f in steady_state(table, filings_per_day, Settings()):
        if f.steady_bytes is None or not f.bytes_per_filing:
            continue
        total += f.steady_bytes
        grid.add_row(f.name, f"{f.bytes_per_filing:,.0f}", f"{f.days:,.0f}", f"{f.steady_bytes / 1e9:,.1f}", f.bound)
    out.print(grid)
    apart = [f for f in steady_state(table, filings_per_day, Settings()) if f.steady_bytes is None and f.bytes_per_filing]
    out.print(f"total {total / 1e9:,.1f} GB ({total / 1e12:,.2f} TB) for the families kept per filing; sized apart "
              "(bytes per filing of the measured run, not multiplied by days): "
              + "; ".join(f"{f.name} {f.bytes_per_filing:,.0f} B ({f.bound})" for f in apart)
              + f". Source: {source}", soft_wrap=True)


@main.command()
def options() -> None:
    """List the streaming service's options (`run --follow`, `python -m cargoscreen.service`)."""
    from .options import options_help

    click.echo(options_help())


def run_and_report(input_dir: Path, run_dir: Path, settings: Settings, runner: str = "FnApiRunner",
                   beam_options: list[str] | None = None):
    """The batch job from input_dir into run_dir (a folder of its own: outputs.new_run_folder) on the
    Redis of settings, with a progress display; prints the summary and writes run_dir/summary.json."""
    import redis

    from .connectors.files import list_filings
    from .connectors.redis_store import connect, progress_key
    from .job import new_run_id, run_batch

    total = len(list_filings(input_dir))
    run_id = new_run_id()
    outcome: dict = {}

    def work():
        try:
            outcome["summary"] = run_batch(settings, input_dir, run_dir, runner, beam_options, run_id)
        except BaseException as exc:  # reported below, in the main thread
            outcome["error"] = exc

    started = time.perf_counter()
    worker = threading.Thread(target=work, name="pipeline", daemon=True)  # Ctrl-C ends the run, not waits for it
    worker.start()
    client, key, done = connect(settings.redis.url), progress_key(settings.redis.key_prefix, run_id), 0
    with _progress() as progress:
        task = progress.add_task("screening", total=total)
        while worker.is_alive():
            worker.join(0.25)
            try:
                done = int(client.get(key) or 0)
            except redis.RedisError:
                pass  # the display waits; the pipeline retries Redis and dead-letters what it cannot finish
            progress.update(task, completed=done)
    if "error" in outcome:
        raise outcome["error"]
    summary = outcome["summary"]
    elapsed = time.perf_counter() - started
    _print_summary(summary, elapsed, run_dir)
    (run_dir / "summary.json").write_text(json.dumps({
        "inputs": summary.inputs, "accepted": summary.accepted, "rejected": summary.rejected,
        "dead_lettered": summary.dead_lettered, "answers": summary.answers, "balanced": summary.balanced,
        "lost": summary.lost,
        "resent": summary.resent, "enriched": summary.enriched,
        "container_status_unavailable": summary.container_status_unavailable,
        "container_status_not_loaded": summary.container_status_not_loaded,
        "data_quality_warnings": summary.data_quality_warnings, "facts": summary.facts, "assessed": summary.assessed, "decisions": summary.decisions,
        "referrals": summary.referrals, "rule_hits": summary.rule_hits, "rule_errors": summary.rule_errors,
        "seconds": round(elapsed, 3)}, indent=2))
    return summary


def run_exit(summary) -> Exit:
    """A run succeeded only if it balanced: every filing accounted for (else a bug: 2) and none lost to a
    failing Redis (6)."""
    if not summary.accounted:
        return Exit.UNBALANCED
    return Exit.LOST if summary.lost else Exit.OK


def _verdict(summary, run_dir: Path) -> str:
    """The summary line's last words: balanced, or what was lost and why (with one reason as Redis gave it)."""
    if not summary.accounted:
        return "[red]NOT BALANCED: something was lost (a bug)[/red]"
    if not summary.lost:
        return "[green]balanced[/green]"
    from .connectors.files import read_json_lines
    from .connectors.redis_store import INFRASTRUCTURE

    examples: dict[str, str] = {}
    for d in read_json_lines(run_dir / "dead-letters"):
        examples.setdefault(d.get("cause", ""), d["reason"])
    why = "; ".join(f"{n} because {INFRASTRUCTURE.get(cause, cause)} (e.g. {_redis_reply(examples.get(cause, '?'))})"
                    for cause, n in sorted(summary.lost.items(), key=lambda kv: -kv[1]))
    return (f"[red]NOT BALANCED: {sum(summary.lost.values())} filings lost to Redis, dead-lettered unanswered or "
            f"undecided: {why}[/red]; each kept whole in {run_dir / 'dead-letters'}")


def _redis_reply(reason: str) -> str:
    """A dead letter's reason without the wrapping of an error inside a script (the reply is what says why)."""
    return re.sub(r"Error running script \(call to \w+\): (@user_script:? ?\d+: )*-?", "", reason)[:200]


def _print_summary(summary, elapsed: float, run_dir: Path) -> None:
    out = _console()
    table = _table(title="cargoscreen run", show_header=True, header_style="bold")
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
    if summary.resent:
        out.print(f"{summary.resent} of the accepted filings were re-sends of filings already registered (the same "
                  "filer, LRN and content, or the same file again): answered again with their MRN, not assessed again")
    if summary.data_quality_warnings:
        warned = ", ".join(f"{k} {v}" for k, v in sorted(summary.data_quality_warnings.items()))
        out.print(f"accepted with data-quality warnings: {warned}", soft_wrap=True)
    if summary.container_status_not_loaded:
        out.print(f"no container status loaded (cargoscreen csm load): {summary.container_status_not_loaded} "
                  f"consignments with containers assessed without container checks", soft_wrap=True)
    elif summary.enriched:
        facts = ", ".join(f"{k} {v}" for k, v in sorted(summary.facts.items())) or "none"
        out.print(f"enriched {summary.enriched} new registrations with container status "
                  f"({summary.container_status_unavailable} with the status unavailable); anomaly facts: {facts}",
                  soft_wrap=True)
    if summary.assessed:
        decisions = ", ".join(f"{k} {v}" for k, v in sorted(summary.decisions.items(), key=lambda kv: -kv[1]))
        out.print(f"assessed {summary.assessed} new registrations: {decisions}; referrals {summary.referrals}"
                  + (f"; [red]{summary.rule_errors} rule errors[/red]" if summary.rule_errors else ""), soft_wrap=True)
    out.print(f"inputs {summary.inputs} = accepted {summary.accepted} + rejected {summary.rejected} + "
              f"dead-lettered {summary.dead_lettered}: {_verdict(summary, run_dir)}   ({elapsed:.1f} s, "
              f"{summary.inputs / elapsed if elapsed else 0:.0f} filings/s)", soft_wrap=True)


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
    """Load DCSA events from files or folders (*.json lists, *.jsonl lines) into the container store;
    rejected events are appended to --rejected."""
    from .connectors.dcsa import event_files

    for folder in (Path(p) for p in paths if Path(p).is_dir()):
        if not event_files([folder]):
            raise InputError(f"{folder} holds no event files (*.json, *.jsonl, searched recursively)")
    with _redis(redis_url, Path(data_dir) / "redis") as url:
        summary, elapsed, version = load_feed([Path(p) for p in paths], url, Path(rejected_path))
    out = _console()
    table = _table(title=f"DCSA T&T {version} feed", show_header=True, header_style="bold")
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
    sys.exit(Exit.OK if summary.balanced else Exit.UNBALANCED)


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
    _console().print(summary.balance(), soft_wrap=True)


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


DEMO_MARK = "demo.json"  # what a folder the demo wrote holds: the demo may write over its own sample data


@main.command()
@click.option("--out", "out_dir", default="out/demo", show_default=True, type=click.Path(file_okay=False))
@_replace_option
@click.option("--count", default=500, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=7, show_default=True)
def demo(out_dir, replace_existing, count, seed) -> None:
    """The whole flow on generated sample data with an embedded Redis: generate, screen, answer. A rerun
    regenerates the sample data and screens it afresh in a new run folder under OUT/results."""
    from .connectors.redis_store import EmbeddedRedis
    from .corpus import write_container_status, write_corpus

    out_dir = Path(out_dir)
    own = (out_dir / DEMO_MARK).is_file()
    refuse_to_write_over(out_dir, CORPUS_FILES + ("csm-rejected.jsonl",), replace_existing or own)
    _stderr().print(f"1. generating {count} filings (all modes, 10% with defects, a few hostile, 5% with a planted "
                  f"risk) and their containers' histories (5% with an anomaly) into {out_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / DEMO_MARK).write_text(json.dumps({"count": count, "seed": seed}))
    write_corpus(out_dir, count, seed, risk_rate=0.05)
    write_container_status(out_dir, count, seed, anomaly_rate=0.05, risk_rate=0.05)  # the same filings' containers
    run_dir = new_run_folder(out_dir / "results")
    with EmbeddedRedis(run_dir / "redis") as server:  # a registry of its own: same input, same answers
        loaded, _, _ = load_feed([out_dir / "container-events.jsonl"], server.url, out_dir / "csm-rejected.jsonl")
        _stderr().print(f"2. loaded {loaded.loaded} container events ({loaded.unchecked_container_ids} with a container "
                      f"id failing ISO 6346) into the embedded Redis")
        _stderr().print("3. running the pipeline (FnApiRunner)")
        summary = run_and_report(out_dir / "filings", run_dir, Settings().with_redis_url(server.url))
    point_latest(out_dir / "results", run_dir)
    _demo_checks(out_dir, run_dir)
    sys.exit(run_exit(summary))


def _demo_checks(out_dir: Path, run_dir: Path) -> None:
    """Compares the answers with the generator's ground truth, says how the counts fit together, and
    shows one answer of each kind."""
    from .connectors.files import read_json_lines

    from .answering import ACCEPTING_ANSWERS, REJECTING_ANSWERS

    labels = {json.loads(line)["file"]: json.loads(line) for line in (out_dir / "labels.jsonl").open()}
    every_answer = read_json_lines(run_dir / "answers")
    answers = [a for a in every_answer if a["message_type"] in ACCEPTING_ANSWERS + REJECTING_ANSWERS]
    agree = sum((a["message_type"] == "IE3R01") == (labels[a["submission_id"]]["expected"] == "registered")
                for a in answers)
    decisions = read_json_lines(run_dir / "decisions")
    out = _console()
    out.print(f"4. answers agree with the ground truth for {agree} of {len(answers)} filings")
    _demo_counts(every_answer, decisions, out)
    _demo_facts(out_dir, run_dir, out)
    _demo_referrals(out_dir, decisions, every_answer, labels, out)
    shown = set()
    for a in answers:
        if a["message_type"] not in shown and a["message_type"] in ("IE3R01", "IE3N99"):
            shown.add(a["message_type"])
            out.print(f"\n[bold]{a['message_type']}[/bold] for {a['submission_id']}:")
            out.print(_pretty(a["xml"]), markup=False, highlight=False)
    out.print(f"\nAll answers: {run_dir / 'answers'}; summary: {run_dir / 'summary.json'} "
              f"({out_dir / 'results' / 'latest'} points at this run)")


def _demo_counts(answers: list[dict], decisions: list[dict], out: Console) -> None:
    """Why fewer consignments are assessed than filings are accepted: re-sends are not assessed
    again, partial filings are assessed together, and some still wait for the rest of theirs."""
    registrations = [a for a in answers if a["message_type"] == "IE3R01"]
    registered = {a["mrn"] for a in registrations if "Repeat>" not in a["xml"]}
    repeats = len(registrations) - len(registered)
    decided = {f["mrn"] for d in decisions for f in d["filings"]}
    together = sum(1 for d in decisions if len(d["filings"]) > 1)
    postal = sum(1 for d in decisions if d["consignment"].startswith("postal:"))
    waiting = registered - decided
    out.print(f"   {len(registered) + repeats} registrations = {len(registered)} new filings + {repeats} re-sends "
              f"(answered with their MRN, not assessed again). The {len(registered)} new filings make "
              f"{len(decisions)} assessments: {len(decisions) - together} filings on their own, {together} "
              f"consignments of several filings (master and houses; {postal} postal items with their dispatch), "
              f"and {len(waiting)} filings still wait for the rest of their consignment (a filing of it was rejected, or "
              f"it quotes a master filed elsewhere: IE3N02/IE3N11 now, assessed incomplete at its deadline).",
              soft_wrap=True)


def _demo_facts(out_dir: Path, run_dir: Path, out: Console) -> None:
    """Compares the container facts with the planted anomalies, and shows one enriched filing."""
    from .connectors.files import read_json_lines
    from .domain.enrichment import INFORMATIONAL_FACTS

    planted = {(x["file"], x["container"]): x["anomaly"] for x in map(json.loads, (out_dir / "container-labels.jsonl").open())}
    enriched = read_json_lines(run_dir / "enriched")
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
    with_anomaly = [e for e in enriched if any(f["kind"] not in INFORMATIONAL_FACTS for f in e["facts"])]
    sample = next((e for e in with_anomaly if e["mode"] == "sea"), with_anomaly[0] if with_anomaly else None)
    if sample:
        out.print(f"\n[bold]one enriched filing[/bold], {sample['submission_id']} ({sample['filing_code']}): what its "
                  f"containers did, as the risk rules read it:")
        for f in sample["facts"]:
            mark = " " if f["kind"] in INFORMATIONAL_FACTS else "!"
            out.print(f"  {mark} {f['container'] or '-':11} {f['kind']:26} {f['detail']}", markup=False,
                      highlight=False)


def _demo_referrals(out_dir: Path, decisions: list[dict], answers: list[dict], labels: dict, out: Console) -> None:
    """Referrals against the planted risk patterns, the planted container anomalies that were not
    referred and why, and one referral as its risk centre and its filer see it."""
    from .decisions import ASSESSMENT_ANSWERS

    anomalies = {}
    for x in map(json.loads, (out_dir / "container-labels.jsonl").open()):
        if x["anomaly"]:
            anomalies.setdefault(x["file"], []).append(x["anomaly"])
    sid_of = {a["mrn"]: a["submission_id"] for a in answers if a["message_type"] == "IE3R01"}
    groups = {"planted": [], "anomaly": [], "unusual": [], "clean": []}
    for d in decisions:
        sid = d["submission_id"]
        members = [labels[sid_of[f["mrn"]]] for f in d["filings"] if f["mrn"] in sid_of] or [labels[sid]]
        kind = "planted" if any(m.get("risk") for m in members) else "anomaly" if sid in anomalies else \
            "unusual" if any(m.get("decoy") for m in members) else "clean"
        groups[kind].append(d)
    referred = {k: sum(d["decision"] != "assessment-complete" for d in v) for k, v in groups.items()}
    clean = len(groups["clean"])
    out.print(f"\n6. risk ({decisions[0]['rule_pack'] if decisions else 'no decisions'}): {referred['planted']} of "
              f"{len(groups['planted'])} planted high-risk consignments referred; {referred['clean']} of {clean} clean "
              f"ones ({referred['clean'] / clean if clean else 0:.1%}); {referred['unusual']} of "
              f"{len(groups['unusual'])} honest but unusual ones (licensed ammunition, gold, antiques with provenance, "
              f"declared dangerous goods: the false hits of the starter pack's simple rules); {referred['anomaly']} of "
              f"{len(groups['anomaly'])} with a planted container anomaly", soft_wrap=True)
    quiet = [d for d in groups["anomaly"] if d["decision"] == "assessment-complete"]
    if quiet:
        out.print("   A container anomaly is one indicator: alone it refers only when its rule's weight reaches the "
                  "pack's threshold. Not referred:", soft_wrap=True)
        for d in quiet:
            rules = ", ".join(f"{h['rule']} ({h['weight']:+.0f})" for h in d["hits"]) or "no rule acts on it alone"
            out.print(f"   - {d['submission_id']}: {', '.join(anomalies[d['submission_id']])}; score {d['score']:.0f}: "
                      f"{rules}", soft_wrap=True, markup=False, highlight=False)
    sample = next((d for d in decisions if d["referral_id"]), None)
    if sample:
        shown = {k: sample[k] for k in ("referral_id", "risk_centre", "decision", "score", "risk_level", "rule_pack",
                                        "hits", "information_requested", "screening_methods")}
        out.print("\n[bold]referral[/bold], as the risk centre reads it:")
        out.print(json.dumps(shown, indent=1)[:3000], markup=False, highlight=False)
        answer = next(a for a in answers
                      if a["submission_id"] == sample["submission_id"]
                      and a["message_type"] == ASSESSMENT_ANSWERS[sample["decision"]])
        out.print(f"\n[bold]{answer['message_type']}[/bold], what the filer gets (no criteria disclosed):")
        out.print(_pretty(answer["xml"]), markup=False, highlight=False)


def _pretty(xml: str) -> str:
    from lxml import etree
    return etree.tostring(etree.fromstring(xml.encode()), pretty_print=True).decode()[:3000]


@main.command("compact-archive")
@click.argument("archive", type=click.Path(exists=True, file_okay=False))
@click.option("--before", default=None, help="Compact days before this one (YYYY-MM-DD; default: today, UTC).")
def compact_archive(archive, before) -> None:
    """Rewrite each day's small Parquet files (one per bundle in a streaming run) as one file per
    partition, without the duplicate rows a crashed run may have left. Days still being written
    are left alone."""
    from .connectors.archive import SCHEMAS, compact

    if not any((Path(archive) / table).is_dir() for table in SCHEMAS):
        raise InputError(f"{archive} is not an archive: no {' or '.join(f'{t}/' for t in SCHEMAS)} in it "
                         "(a run's archive is OUTPUT/latest/archive, the service's OUTPUT/archive)")
    before = before or time.strftime("%Y-%m-%d", time.gmtime())
    done = compact(Path(archive), before)
    for folder, files, rows in done:
        _stderr().print(f"{folder}: {files} files -> 1 ({rows} rows)" if files > 1 else f"{folder}: already one file")
    _stderr().print(f"{len(done)} partitions before {before}")


# -- the filers' HTTP ingress ----------------------------------------------------------------------
@main.group()
def ingress() -> None:
    """The HTTP endpoint filers submit to and fetch their answers from (connectors/http_ingress.py)."""


def _tokens_path(tokens: str | None) -> Path:
    from .connectors.http_ingress import TOKENS_ENV

    path = tokens or os.environ.get(TOKENS_ENV)
    if not path:
        raise click.UsageError(f"name the filer token file with --tokens or {TOKENS_ENV}")
    return Path(path)


# ingress serve's options for IngressSettings (config.py), each named after its field
_INGRESS_OPTIONS = {
    "requests_per_second": "Requests per second one filer may make (filings, RFI answers, answer pages); "
                           "past it and its burst: 429 with Retry-After.",
    "request_burst": "Requests one filer may make at once after a quiet spell.",
    "bytes_per_second": "Body bytes per second one filer may send (counted from Content-Length before the "
                        "body is read); past it and its burst: 429 with Retry-After.",
    "byte_burst": "Body bytes one filer may send at once after a quiet spell (at least --max-bytes).",
    "in_flight": "Requests of one filer served at once; more: 429.",
    "max_backlog": "Filings waiting on the stream (unread or unfinished) past which filings get 503 with "
                   "Retry-After instead of growing Redis (0: no bound).",
    "max_wait_seconds": "How long the oldest unfinished filing on the stream may have waited before filings get "
                        "503 with Retry-After: the workers are stopped or far behind (0: no bound).",
    "header_timeout_seconds": "A connection whose request headers are not complete this long after it opened "
                              "(or after the previous answer) is closed.",
    "body_timeout_seconds": "A body not complete this long after its headers: 408.",
    "keep_alive_seconds": "An idle connection between requests is closed after this long.",
}


UNBOUNDABLE = ("max_backlog", "max_wait_seconds")  # ingress options where 0 means no bound


def _ingress_options(command):
    defaults = Settings().ingress
    for name, text in reversed(_INGRESS_OPTIONS.items()):
        default = getattr(defaults, name)
        command = click.option(f"--{name.replace('_', '-')}", name, default=default, show_default=True,
                               type=click.FloatRange(min=0, min_open=name not in UNBOUNDABLE)
                               if isinstance(default, float) else click.IntRange(min=0 if name in UNBOUNDABLE else 1),
                               help=text)(command)
    return command


@ingress.command("serve")
@click.option("--redis-url", required=True, envvar="CARGOSCREEN_REDIS_URL",
              help="The Redis whose filing stream the service reads (or CARGOSCREEN_REDIS_URL, which ps does "
                   "not show).")
@click.option("--tokens", default=None, help="Filer token file (default: $CARGOSCREEN_FILER_TOKENS).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True)
@click.option("--max-bytes", default=None, type=int, help="Largest filing accepted (default: the pipeline's limit).")
@_ingress_options
def ingress_serve(redis_url, tokens, host, port, max_bytes, **quotas) -> None:
    """Accept filings over HTTP (TLS belongs to the reverse proxy in front of it), each filer within
    its quotas, slow clients cut off (connectors/http_ingress.py)."""
    from .connectors.http_ingress import FilerTokens, ingress_app, serve

    settings = Settings().with_redis_url(_reachable(redis_url))
    settings = replace(settings, ingress=replace(settings.ingress, **quotas))
    if max_bytes:
        settings = replace(settings, limits=replace(settings.limits, max_bytes=max_bytes))
    try:
        filers = FilerTokens.load(_tokens_path(tokens))
    except ValueError as exc:  # a line of the file that is not FILER sha256:...
        raise InputError(str(exc)) from None
    serve(ingress_app(settings, filers), host, port, settings.ingress)


@ingress.command("token")
@click.argument("filer")
@click.option("--tokens", default=None, help="Filer token file (default: $CARGOSCREEN_FILER_TOKENS).")
def ingress_token(filer, tokens) -> None:
    """Issue a new token for FILER (its EORI): printed once, only its digest is kept."""
    from .connectors.http_ingress import issue_token

    try:
        click.echo(issue_token(_tokens_path(tokens), filer))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


# -- rule packs ---------------------------------------------------------------------------------
@main.group(cls=_LazyGroup, lazy={"report": ".workbench.cli:rules_report",
                                 "learn-statistics": ".statistics_cli:learn_statistics_command"})
def rules() -> None:
    """Risk rule packs: check, publish (hot reload in running pipelines), status, activate, backtest."""


def _problems(exc, title: str) -> None:
    out = _console()
    out.print(f"[red]{title}[/red]: {len(exc.problems)} problem(s)")
    for problem in exc.problems:
        out.print(f"  {problem}", markup=False, highlight=False, soft_wrap=True)


@rules.command("check")
@click.argument("pack_dir", type=PackDir())
def rules_check(pack_dir) -> None:
    """Compile a pack and run every rule's examples. Exit status 1 with every problem located."""
    from .domain.rulepack import PackError, read_pack_files
    from .rule_store import checked_pack

    try:
        pack = checked_pack(read_pack_files(Path(pack_dir)))
    except PackError as exc:
        _problems(exc, f"{pack_dir} refused")
        sys.exit(1)
    areas = Counter(r.area for r in pack.rules)
    examples = sum(len(r.examples) for r in pack.rules)
    _console().print(f"[green]OK[/green] {pack.id}: {len(pack.rules)} rules, {examples} examples pass; areas: "
                     + ", ".join(f"{a} {n}" for a, n in sorted(areas.items())), soft_wrap=True)


@contextmanager
def _rule_store(redis_url: str | None, data_dir: str):
    """The rule store in the pipelines' Redis, or in an embedded one kept in data_dir."""
    from .connectors.redis_store import connect
    from .rule_store import RulePackStore

    with _redis(redis_url, Path(data_dir) / "redis") as url:
        yield RulePackStore(connect(url), Settings().redis.key_prefix)


_redis_option = click.option("--redis-url", default=None, help="Redis of the pipelines; default: the embedded one "
                                                                "in --data-dir.")
_data_dir_option = click.option("--data-dir", default=".cargoscreen", show_default=True,
                                type=click.Path(file_okay=False), help="Where the embedded Redis keeps its data.")


@rules.command("publish")
@click.argument("pack_dir", type=PackDir())
@_redis_option
@_data_dir_option
@click.option("--activate/--no-activate", default=True, show_default=True,
              help="Make it the active pack: running pipelines switch to it within seconds.")
def rules_publish(pack_dir, redis_url, data_dir, activate) -> None:
    """Check a pack (compile + examples) and publish it; refused packs change nothing."""
    from .domain.rulepack import PackError, read_pack_files

    try:
        with _rule_store(redis_url, data_dir) as store:
            publication = store.publish(read_pack_files(Path(pack_dir)), activate=activate)
    except PackError as exc:
        _problems(exc, f"{pack_dir} refused, nothing changed")
        sys.exit(1)
    state = "published and active" if publication.activated else "published (not active)"
    again = " (this version was already published with the same content)" if publication.unchanged else ""
    _console().print(f"[green]{publication.pack_id}[/green] {state}{again}")


@rules.command("status")
@_redis_option
@_data_dir_option
def rules_status(redis_url, data_dir) -> None:
    """The active pack, the published ones, and the latest publications and refusals."""
    with _rule_store(redis_url, data_dir) as store:
        active, published, events = store.active(), store.published(), store.events(20)
    out = _console()
    out.print(f"active: {active or 'none published: pipelines use their --rules folder'}")
    table = _table(title="published packs", header_style="bold")
    for column in ("pack", "digest", "published at", "by"):
        table.add_column(column)
    for p in published:
        table.add_row(p["pack"], p["digest"][:12], p["published_at"], p["published_by"])
    out.print(table)
    for e in events:
        out.print(f"{e.get('event')}: {e.get('pack')} by {e.get('by')}"
                  + (f": {e['reason'][:300]}" if e.get("reason") else ""), markup=False, soft_wrap=True)


@rules.command("activate")
@click.argument("name_version")
@_redis_option
@_data_dir_option
def rules_activate(name_version, redis_url, data_dir) -> None:
    """Make a published version (NAME@VERSION) active again: a rollback."""
    try:
        with _rule_store(redis_url, data_dir) as store:
            store.activate(name_version)
    except KeyError as exc:
        raise click.BadParameter(str(exc.args[0]), param_hint="NAME_VERSION") from None
    _console().print(f"{name_version} is active")


@rules.command("backtest")
@click.argument("filings_dir", metavar="FILINGS", type=click.Path(exists=True, file_okay=False))
@click.option("--candidate", "candidate_dir", required=True, type=PackDir(),
              help="The pack to try.")
@click.option("--active", "active_dir", default=None, type=PackDir(),
              help="The pack to compare with, from a folder (default: the bundled starter pack).")
@click.option("--redis-url", default=None,
              help="Compare with the pack active in this Redis (the one running pipelines use) instead.")
@click.option("--container-status", "status_paths", multiple=True, type=click.Path(exists=True),
              help="DCSA event files for the filings' containers (loaded into a temporary embedded Redis).")
@click.option("--labels", "labels_path", default=None, type=click.Path(exists=True, dir_okay=False),
              help="The generator's labels.jsonl: report recall of planted risk and referrals of clean traffic.")
@click.option("--as-of", default=None, help="Assess as of this UTC date-time (rule validity); default: now.")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False), help="Write the report as JSON.")
@click.option("--row-by-row", is_flag=True,
              help="On an archive with record columns too: re-read, re-enrich and score each filing in Python.")
def rules_backtest(filings_dir, candidate_dir, active_dir, redis_url, status_paths, labels_path, as_of,
                   json_path, row_by_row) -> None:
    """Replay filings (a folder of XML, or a run's Parquet archive, e.g. OUTPUT/archive) against a candidate
    pack: hits and referrals per rule, and what changes against the active pack. On an archive that holds
    the screening records (version 2), each rule runs as one SQL query over them, with the facts each
    filing had when it was decided (--container-status, or --row-by-row, replays the filings instead)."""
    from datetime import datetime, timezone

    from .archive_backtest import has_records
    from .backtest import backtest
    from .connectors.redis_store import connect
    from .domain.rulepack import PackError, RulePack, read_pack_files
    from .domain.scoring import Scorer
    from .rule_store import RulePackStore, checked_pack

    settings = Settings()
    try:
        candidate = Scorer(checked_pack(read_pack_files(Path(candidate_dir))))
        if redis_url:
            store = RulePackStore(connect(redis_url), settings.redis.key_prefix)
            name = store.active()
            if name is None:
                raise click.BadParameter("no pack is active in that Redis", param_hint="--redis-url")
            active = Scorer(RulePack.from_files(store.files(name)))
        else:
            active = Scorer(RulePack.load(Path(active_dir) if active_dir else settings.rules.pack_dir))
    except PackError as exc:
        _problems(exc, "pack refused")
        sys.exit(1)
    now = datetime.fromisoformat(as_of).replace(tzinfo=timezone.utc) if as_of else None
    labels = _labels(labels_path) if labels_path else None
    if not row_by_row and not status_paths and has_records(Path(filings_dir)):
        report, traffic = _backtest_in_sql(Path(filings_dir), active, candidate, labels, now)
    else:
        if (Path(filings_dir) / "filings").is_dir():
            why = "asked for" if row_by_row or status_paths else "the archive has no record columns (version 1)"
            _console().print(f"row by row ({why}): each archived filing validated, enriched and scored again")
        traffic = _labelled_traffic(filings_dir, status_paths, settings)
        report = backtest(traffic.filings, active, candidate, labels, now)
    _print_backtest(report, traffic)
    if json_path:
        Path(json_path).write_text(json.dumps(report.as_dict(), indent=1))


def _backtest_in_sql(archive: Path, active, candidate, labels, now):
    """The fast path: the archive's records, each rule of both packs one SQL query (rule_sql.py)."""
    from datetime import datetime, timezone

    from .archive_backtest import ArchiveReplay
    from .backtest import Traffic

    with _progress() as progress:
        progress.add_task("loading the archive's records; rules in SQL", total=None)
        with ArchiveReplay(archive) as replay:
            report, slow = replay.backtest(active, candidate, labels, (now or datetime.now(timezone.utc)).timestamp())
            traffic = Traffic([], read=replay.count)
    slow_rules = [f"{which} {s.rule} ({s.reason})" for which, rules in slow.items() for s in rules]
    _console().print("fast path: the archive's records (the latest decision of each consignment, with the facts it "
                     "had), " + ("every rule of both packs in set-based SQL" if not slow_rules else
                                 "set-based SQL; row by row, as the compiler cannot express them: "
                                 + "; ".join(slow_rules)), soft_wrap=True)
    return report, traffic


def _labelled_traffic(filings_dir, status_paths, settings: Settings):
    """Filings validated, linked and enriched as the pipeline does, with container status from DCSA
    event files loaded into a Redis of their own (backtest, calibrate), and the parties' history as
    the traffic itself builds it (in issue order, in that Redis)."""
    import tempfile

    from .backtest import load_traffic
    from .connectors.redis_store import connect, with_retries
    from .container_store import ContainerEventStore
    from .party_history import PartyHistoryStore

    history = settings.party_history.enabled
    with tempfile.TemporaryDirectory() as tmp, \
            _redis(None, Path(tmp) / "redis") if status_paths or history else nullcontext() as url:
        fetch, parties = None, None
        if status_paths:  # the events go into a Redis of their own, as the pipeline reads them
            load_feed([Path(p) for p in status_paths], url, Path(tmp) / "rejected.jsonl")
            store = ContainerEventStore.for_settings(connect(url), settings)
            fetch = lambda containers: with_retries(  # noqa: E731
                settings.redis, lambda: store.histories_and_plans(containers), "enrich")
        if history:  # the traffic's own party history, from nothing
            parties = PartyHistoryStore(connect(url), settings.party_history, settings.redis.key_prefix)
        with _progress() as progress:
            progress.add_task("validating and enriching", total=None)
            traffic = load_traffic(Path(filings_dir), settings, fetch, parties=parties)
    if not traffic.read:
        raise InputError(f"{filings_dir} holds no filings (*.xml, searched recursively) and no archived ones")
    return traffic


def _labels(path) -> dict[str, dict]:
    with open(path, encoding="utf-8") as f:
        return {row["file"]: row for row in map(json.loads, f) if row}


def _container_anomalies(path) -> list[tuple[str, str]]:
    with open(path, encoding="utf-8") as f:
        return [(row["file"], row["anomaly"]) for row in map(json.loads, f) if row and row.get("anomaly")]


@rules.command("calibrate")
@click.argument("pack_dir", type=PackDir())
@click.option("--traffic", "filings_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Labelled filings (a folder of XML, e.g. `cargoscreen generate`'s filings/, or an archive).")
@click.option("--labels", "labels_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The labels of that traffic (labels.jsonl: risk pattern or clean per file).")
@click.option("--container-status", "status_paths", multiple=True, type=click.Path(exists=True),
              help="DCSA event files for the filings' containers.")
@click.option("--container-labels", "container_labels_path", default=None, type=click.Path(exists=True, dir_okay=False),
              help="The generator's container-labels.jsonl: a filing whose container history holds a planted "
                   "anomaly counts as risky (pattern container-<anomaly>).")
@click.option("--target-clean-rate", default=0.03, show_default=True, type=click.FloatRange(0, 1),
              help="The most clean consignments the calibrated pack may refer (a share).")
@click.option("--step", default=5, show_default=True, type=click.IntRange(1, 50), help="The weights' grid step.")
@click.option("--seed", default=0, show_default=True, type=int, help="Orders the search: same seed, same result.")
@click.option("--as-of", default=None, help="Assess as of this UTC date-time (rule validity); default: now.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Where the calibrated pack goes (the pack's own folder to calibrate it in place).")
def rules_calibrate(pack_dir, filings_dir, labels_path, status_paths, container_labels_path, target_clean_rate, step,
                    seed, as_of, out_dir) -> None:
    """Calibrate the weights of a pack's weak indicators on labelled traffic: the highest recall of
    planted risk with at most --target-clean-rate of clean consignments referred. Writes the pack with
    a calibration.yaml recording the traffic, labels, date, command and the resulting rates. Exit
    status 1 when no weighting keeps clean referrals within the target (the pack is written anyway)."""
    from datetime import datetime, timezone

    from .calibration import file_digest, labelled_cases, traffic_digest, with_container_anomalies, write_calibrated_pack
    from .domain.calibration import calibrate
    from .domain.rulepack import PackError, read_pack_files
    from .domain.scoring import Scorer
    from .rule_store import checked_pack

    try:
        scorer = Scorer(checked_pack(read_pack_files(Path(pack_dir))))
    except PackError as exc:
        _problems(exc, f"{pack_dir} refused")
        sys.exit(1)
    settings = Settings()
    now = datetime.fromisoformat(as_of).replace(tzinfo=timezone.utc) if as_of else datetime.now(timezone.utc)
    traffic = _labelled_traffic(filings_dir, status_paths, settings)
    labels = _labels(labels_path)
    if container_labels_path:
        labels = with_container_anomalies(labels, _container_anomalies(container_labels_path))
    cases = labelled_cases(traffic.filings, scorer, labels, now)
    if not any(c.risky for c in cases) or all(c.risky for c in cases):
        raise InputError(f"{labels_path} labels no planted risk or no clean consignment of {filings_dir}: "
                         f"nothing to calibrate against")
    result = calibrate(scorer, cases, target_clean_rate, step, seed)
    record = {
        "calibrated_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(["cargoscreen", *sys.argv[1:]]) if sys.argv[1:2] == ["rules"] else
        f"cargoscreen rules calibrate {pack_dir} --traffic {filings_dir} --labels {labels_path} "
        f"--target-clean-rate {target_clean_rate} --step {step} --seed {seed} --out {out_dir}",
        "pack": scorer.pack.id,
        "traffic": {"filings": traffic.read, "consignments": len(cases), "digest": traffic_digest(Path(filings_dir))},
        "labels": {"digest": file_digest(Path(labels_path)),
                   **({"container_labels": file_digest(Path(container_labels_path))} if container_labels_path else {})},
        "container_status": [file_digest(Path(p)) for p in status_paths],
        "assessed_as_of": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "target_clean_rate": target_clean_rate,
        "search": {"method": "coordinate ascent over a grid", "step": step, "max_weight": result.max_weight,
                   "seed": seed, "rounds": result.rounds, "rules": len(result.searched)},
        "before": result.before.as_dict(), "after": result.after.as_dict(),
    }
    written = write_calibrated_pack(Path(pack_dir), Path(out_dir), result, record)
    out = _console()
    for which, o in (("before", result.before), ("after", result.after)):
        out.print(f"{which}: recall {o.recall:.1%} ({o.planted_referred}/{o.planted}), clean referral rate "
                  f"{o.clean_rate:.2%} ({o.clean_referred}/{o.clean})", soft_wrap=True)
    changed = {r: w for r, w in result.weights.items() if w != next(x.weight for x in scorer.pack.rules if x.id == r)}
    out.print(f"{len(changed)} weak rules reweighted ({len(result.searched)} searched on the traffic, the others held "
              f"below the thresholds): "
              + (", ".join(f"{r} {w:g}" for r, w in sorted(changed.items())) or "none"), soft_wrap=True)
    out.print(f"calibrated pack: {written} (calibration.yaml; bump its version before publishing)", soft_wrap=True)
    if result.after.clean_rate > target_clean_rate:
        out.print(f"[red]no weighting keeps clean referrals within {target_clean_rate:.2%}[/red]: strong indicators "
                  f"alone refer {result.after.clean_rate:.2%}")
        sys.exit(1)


def _weight_change(before: float | None, after: float | None) -> str:
    if before is None:
        return f"{after:g} (new)"
    if after is None:
        return f"{before:g} (removed)"
    return f"{after:g}" if before == after else f"{before:g} -> {after:g}"


def _print_backtest(report, traffic) -> None:
    out = _console()
    out.print(f"{traffic.read} filings read, {traffic.rejected} rejected by validation, {report.filings} scored; "
              f"active {report.active_pack}, candidate {report.candidate_pack}", soft_wrap=True)
    table = _table(title="per rule (candidate pack)", header_style="bold")
    labelled = report.quality_candidate is not None
    for column in ("rule", "area", "weight", "hits (active)", "hits", "in referrals", "only because of it",
                   "of them clean" if labelled else "", "clean share" if labelled else "", "title"):
        if column:
            table.add_column(column, overflow="fold")
    for e in report.rules:
        if not (e.hits_active or e.hits_candidate):
            continue
        row = [e.rule, e.area, _weight_change(e.weight_active, e.weight_candidate), str(e.hits_active), str(e.hits_candidate), str(e.referrals_candidate),
               str(e.only_because)]
        if labelled:
            share = e.clean_referral_share
            row += [str(e.clean_referrals), "-" if share is None else f"{share:.0%}" + (" MOSTLY CLEAN" if e.mostly_clean
                                                                                        else "")]
        table.add_row(*row, e.title)
    out.print(table)
    noisy = [e for e in report.rules if labelled and e.mostly_clean]
    if noisy:
        out.print("rules whose referrals are mostly clean (candidate pack): " + ", ".join(
            f"{e.rule} {e.clean_referrals}/{e.referrals_candidate}" for e in noisy), soft_wrap=True)
    for which in ("active", "candidate"):
        decisions = report.decisions_active if which == "active" else report.decisions_candidate
        out.print(f"{which}: referral rate {report.referral_rate(which):.2%}; "
                  + ", ".join(f"{k} {v}" for k, v in sorted(decisions.items())), soft_wrap=True)
    out.print(f"candidate vs active: {len(report.new_referrals)} new referrals, {len(report.dropped_referrals)} "
              f"dropped, {len(report.changed_decisions)} referrals with another decision")
    for which, q in (("active", report.quality_active), ("candidate", report.quality_candidate)):
        if q is not None:
            missed = ", ".join(f"{k} {v}" for k, v in q.missed.most_common()) or "none"
            out.print(f"{which} on labelled traffic: recall {q.recall:.1%} ({q.planted_referred}/{q.planted} planted "
                      f"referred; missed: {missed}); clean referral rate {q.clean_referral_rate:.2%} "
                      f"({q.clean_referred}/{q.clean}), of which honest-but-unusual traffic "
                      f"{q.unusual_referred}/{q.unusual} and ordinary {q.ordinary_referral_rate:.2%}", soft_wrap=True)
    q = report.quality_candidate
    if q is not None and q.planted_by:
        table = _table(title="recall per pattern (candidate pack)", header_style="bold")
        for column in ("pattern", "assessed", "referred", "recall"):
            table.add_column(column, overflow="fold")
        for pattern, recall in q.recall_by_pattern().items():
            table.add_row(pattern, str(q.planted_by[pattern]), str(q.planted_by[pattern] - q.missed[pattern]),
                          "-" if recall is None else f"{recall:.0%}")
        out.print(table)


if __name__ == "__main__":
    main()
