"""A rule pack's reference data drawn from the bundled legal lists (rules/reference/), not copied.

A pack names a legal list instead of a file of its own:

    precursor_cat1_codes: {legal: drug-precursors, kind: set, column: code, where: {category: "1"}}
    chp_destination_countries: {legal: restrictive-measures, kind: set, column: country,
                                where: {scope: country, applies: destination, restricts: [chp, dual-use]}}

Each list is offered as rows of columns (`LEGAL_COLUMNS`); a column may hold several values (a
precursor's names, a heading's UN numbers), and a `where` value (or any of a list of values)
matches a row when the column holds it. The lists stay where the legal text put them: one
refresh of rules/reference/ changes every pack that draws on them, and the pack's digest
covers the lists it read (`legal_texts`), so a decision still names the content it came from.
"""
from __future__ import annotations

from functools import lru_cache

from .. import resources
from .legal_lists import FILES, LegalLists


def _precursor_codes(p) -> tuple[str, ...]:
    """The codes that name this substance and nothing else: its CN codes unless the annex marks
    them "ex" (shared with other substances), and their HS subheadings unless residual (HS
    subheadings ending in 9 are the "other" ones: 2933.39, 2939.79)."""
    if p.cn_partial:
        return ()
    return (*p.cn, *(h for h in p.hs if not h.endswith("9")))


def _rows_precursors(lists: LegalLists) -> list[dict]:
    return [{"category": p.category_111, "category_273": p.category_273 or "", "substance": p.substance,
             "code": _precursor_codes(p), "any_code": (*p.cn, *p.hs), "cas": (p.cas,) if p.cas else (),
             "name": p.names} for p in lists.precursors]


def _rows_measures(lists: LegalLists) -> list[dict]:
    return [{"key": m.key, "country": m.country, "scope": "area" if m.area else "country", "locode": m.locodes,
             "restricts": tuple(sorted(m.restricts)), "applies": tuple(sorted(m.applies))} for m in lists.measures]


ROWS = {
    "drug-precursors": _rows_precursors,
    "chp-items": lambda lists: [{"hs": i.hs, "tier": i.tier} for i in lists.chp.values()],
    "restrictive-measures": _rows_measures,
    "controlled-goods": lambda lists: [{"kind": c.kind, "hs": c.hs, "un_number": c.un_numbers}
                                       for c in lists.controlled],
    "cultural-goods": lambda lists: [{"category": c.key, "hs": c.headings, "origin": c.origin or ""}
                                     for c in lists.cultural],
    "cash-instruments": lambda lists: [{"kind": c.kind, "hs": c.hs} for c in lists.cash],
    "cash-terms": lambda lists: [{"term": t, "kind": k} for t, k in lists.cash_terms.items()],
    "lithium-batteries": lambda lists: [{"un_number": b.un_number, "hs": b.hs, "packaging": b.packaging,
                                         "passenger_aircraft": b.passenger_aircraft} for b in lists.lithium],
}
LEGAL_FILES = {name: f"{name}.csv" for name in ROWS}
assert set(LEGAL_FILES.values()) <= set(FILES.values())  # noqa: S101 - one list, two names would drift apart


@lru_cache(maxsize=1)
def _lists() -> LegalLists:
    return LegalLists.load()  # without the UN/LOCODE table: packs need no area lookups


def legal_rows(name: str) -> list[dict] | None:
    """The rows of a bundled legal list by name (None for an unknown name)."""
    make = ROWS.get(name)
    return None if make is None else make(_lists())


@lru_cache(maxsize=16)
def legal_text(name: str) -> str:
    """The file a legal list is read from, as text (for the digest of the packs that draw on it)."""
    return (resources.rules_dir() / "reference" / LEGAL_FILES[name]).read_text(encoding="utf-8")


def cells(value) -> tuple[str, ...]:
    """A column's values: several for a multi-valued column, one for a plain one, none when empty."""
    if isinstance(value, tuple):
        return value
    return (value,) if value else ()


def row_matches(row: dict, where: dict) -> bool:
    """Whether a row holds, in every named column, the value (or one of the values) asked for.
    An empty string asks for an empty column."""
    for column, wanted in where.items():
        held = cells(row.get(column))
        options = [str(w) for w in (wanted if isinstance(wanted, list) else [wanted])]
        if not any((o in held) if o else not held for o in options):
            return False
    return True
