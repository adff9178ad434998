"""`cargoscreen rules learn-statistics`: a pack's unit-value and mass-per-package reference, learned from traffic."""
from __future__ import annotations

from pathlib import Path

import click

from .config import Settings
from .exits import InputError


@click.command("learn-statistics")
@click.argument("source", type=click.Path(exists=True, file_okay=False))
@click.option("--labels", "labels_path", default=None, type=click.Path(exists=True, dir_okay=False),
              help="labels.jsonl of labelled traffic: filings of consignments labelled risky are left out.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="The table to write, e.g. rules/risk/ics2-starter/reference/unit-statistics.csv.")
@click.option("--min-count", default=20, show_default=True, type=click.IntRange(min=1),
              help="Observations a cell needs to be kept; below it the pack falls back to the heading, then the chapter.")
def learn_statistics_command(source, labels_path, out_path, min_count) -> None:
    """Learn unit values (EUR per kg, EUR per piece) and kilograms per package per HS subheading, heading and
    chapter from SOURCE: a run's Parquet archive (OUTPUT/latest/archive) or a folder of filings. Robust
    statistics (median, MAD of the logarithms, quantiles); the table's header says what it was learned from."""
    from .statistics_learn import learn_statistics, read_labels

    labels = read_labels(Path(labels_path)) if labels_path else None
    learned = learn_statistics(Path(source), Settings(), labels, min_count)
    if not learned.used:
        raise InputError(f"{source} holds no accepted filings to learn from (read {learned.read})")
    command = " ".join(["cargoscreen rules learn-statistics", source, *(["--labels", labels_path] if labels_path else []),
                        "--min-count", str(min_count), "--out", out_path])
    Path(out_path).write_text(learned.csv(command), encoding="utf-8")
    click.echo(f"{len(learned.cells)} cells from {learned.used} filings ({learned.goods} goods items; "
               f"{learned.risky} in risky consignments left out, {learned.rejected} rejected) written to {out_path}")
