"""Looking at a rendered picture (a chart's PNG, a browser's screenshot) as a person would: which
colours it shows and where their solid rectangles (bars, legend swatches) are."""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Box:
    """A solid rectangle in pixels: x0, y0 its top left, x1, y1 just past its bottom right."""
    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0


def rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4))


def pixels(png) -> np.ndarray:
    """The picture's RGB pixels (rows of columns), from a path or PNG bytes."""
    return np.asarray(Image.open(io.BytesIO(png) if isinstance(png, bytes) else png).convert("RGB")).astype(int)


def is_colour(img: np.ndarray, colour: str, tolerance: int = 2) -> np.ndarray:
    return np.abs(img - rgb(colour)).max(axis=2) <= tolerance


def boxes(img: np.ndarray, colour: str, smallest: int = 5) -> list[Box]:
    """The solid rectangles of one colour, top to bottom: runs of the colour in a row that repeat
    exactly in the rows below. Glyphs and anti-aliased edges are thinner than `smallest`."""
    found, growing = [], {}  # (x0, x1) -> first row
    for y, row in enumerate(is_colour(img, colour)):
        edges = np.flatnonzero(np.diff(np.concatenate(([0], row.astype(np.int8), [0]))))
        runs = {(int(a), int(b)): growing.pop((int(a), int(b)), y) for a, b in zip(edges[::2], edges[1::2])}
        found += [Box(x0, y0, x1, y) for (x0, x1), y0 in growing.items()]
        growing = runs
    found += [Box(x0, y0, x1, len(img)) for (x0, x1), y0 in growing.items()]
    return sorted((b for b in found if b.width >= smallest and b.height >= smallest), key=lambda b: (b.y0, b.x0))


def is_dark(img: np.ndarray, x: int, y: int) -> bool:
    """An axis line or text there, not the white of an empty plot area."""
    return bool(img[y, x].max() < 120)


def outcome_bars(img: np.ndarray) -> dict[str, list[Box]]:
    """A rule-effectiveness chart's bars per outcome, after checking its legend: one swatch per
    outcome, in the palette's colour (the topmost rectangle of that colour), all the same size on
    one row, in the palette's order from left to right; no two outcomes in like colours."""
    from cargoscreen.workbench.palette import OUTCOME_SERIES

    colours = [rgb(colour) for _, _, colour in OUTCOME_SERIES]
    assert min(max(abs(a - b) for a, b in zip(c, d)) for i, c in enumerate(colours) for d in colours[i + 1:]) > 60
    found = {key: boxes(img, colour) for key, _, colour in OUTCOME_SERIES}
    assert all(found.values()), {k: len(v) for k, v in found.items()}  # every outcome has its swatch
    legend = [found[key][0] for key, _, _ in OUTCOME_SERIES]
    assert len({(b.y0, b.y1, b.width) for b in legend}) == 1, legend
    assert [b.x0 for b in legend] == sorted(b.x0 for b in legend), legend
    return {key: found[key][1:] for key in found}


def foreign_colours(img: np.ndarray, least: int = 20) -> list[tuple[int, int, int]]:
    """Strong colours (not greys, not ink) covering `least` pixels or more that are not in the palette:
    a chart's series drawn in matplotlib's default blue, say. Anti-aliased edges cover fewer, and
    the cores of text in a palette colour stay close to it."""
    from cargoscreen.workbench import palette

    colours, counts = np.unique(img.reshape(-1, 3), axis=0, return_counts=True)
    ours = [rgb(c) for c in (palette.CONFIRMED, palette.FALSE_HIT, palette.OPEN, palette.FLAGGED, palette.EVIDENCE)]
    return [tuple(int(v) for v in c) for c, n in zip(colours, counts)
            if n >= least and c.max() - c.min() > 60 and min(np.abs(c - o).max() for o in ours) > 32]
