"""Where commands write, so that no command writes over what an earlier one left.

A batch run writes into a folder of its own under --output, `run-YYYYMMDDTHHMMSSZ` (UTC, when
it started), and `latest` points at the last run that finished. Beam's file sinks replace the
files of their prefix, so a second run into the same folder would silently empty the first
one's decisions; a folder per run makes that impossible. The commands that write a corpus
(generate, demo) refuse a folder that already holds one unless told to replace it.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Iterable

from .exits import InputError

LATEST = "latest"
CORPUS_FILES = ("filings", "labels.jsonl", "container-events.jsonl", "container-labels.jsonl")


def new_run_folder(output: Path) -> Path:
    """OUTPUT/run-YYYYMMDDTHHMMSSZ, made here and only here (mkdir fails on an existing folder, so
    two runs started in the same second get -2, -3, ... instead of sharing one), readable by its
    owner only: its dead letters and archive hold filings."""
    output.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for n in range(1, 1000):
        folder = output / (f"run-{stamp}" if n == 1 else f"run-{stamp}-{n}")
        try:
            folder.mkdir(mode=0o700)
            return folder
        except FileExistsError:
            continue
    raise InputError(f"{output}: a thousand runs started in the same second?")


def point_latest(output: Path, run: Path) -> None:
    """OUTPUT/latest -> the run's folder (relative, so the output folder can be moved), swapped in
    whole: a reader finds the previous run or this one, never nothing."""
    staged = output / f".{LATEST}-{os.getpid()}"
    staged.unlink(missing_ok=True)
    staged.symlink_to(run.name, target_is_directory=True)
    os.replace(staged, output / LATEST)


def refuse_to_write_over(folder: Path, names: Iterable[str], replace: bool) -> None:
    """Stops a command before it writes any of `names` into `folder` where one already is, unless
    it was asked to replace them; then it removes them first (a corpus half old and half new,
    1,000 filings under 100 labels, is worse than either)."""
    present = [folder / name for name in names if _holds(folder / name)]
    if not present:
        return
    if not replace:
        raise InputError(f"{folder} already holds {', '.join(p.name for p in present)}; choose another folder, "
                         "or add --replace to write over it")
    for path in present:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _holds(path: Path) -> bool:
    if path.is_dir() and not path.is_symlink():
        return any(path.iterdir())
    return path.exists() or path.is_symlink()
