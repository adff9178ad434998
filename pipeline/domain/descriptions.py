"""What a goods description says by its words alone: a brand and how many articles, or nothing at all.

    wording = DescriptionWording.load(reference.vague_terms)  # or bundled_wording()
    description_facts(record, wording) -> (Fact, ...)

Two facts per goods item, for the rules to weigh:
  - `branded-goods-underpriced`: the description names a brand for goods of that brand's heading
    (rules/reference/brands.csv: "Rolex" for watches, not for a bracelet's clasp; "Apple" only with
    iPhone, AirPods, ...) and the declared value of one article -- the euro value over the count the
    description gives ("50 pcs", "40 pairs", "2,000 boxes"), else over one article -- is below the
    cheapest genuine article of the brand. Counterfeits travel declared at what they cost, a few euros
    a piece; a genuine article cannot. Without a count the whole line is taken as one article, so a
    line worth less than one genuine article is underpriced whatever its count.
  - `goods-description-says-nothing`: nothing is left of the description once the regime's list of
    unacceptable terms (vague-goods-descriptions.txt, which validation refuses on its own) and the
    general wording that passes validation but names no goods (general-goods-wording.txt:
    "components", "commercial", "technical", "for industrial use") are taken out, or nothing of the
    words before a purpose ("replacement parts for production line"). Informational on its own: the
    rules weigh it with the value declared.
Pure functions over the screening record; the lists are read once per process.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from .. import resources
from .dataquality import VagueDescriptionMatcher
from .enrichment import BRANDED_UNDERPRICED, SAYS_NOTHING, Fact
from .reference import bundled_reference
from .screening import GoodsLine, ScreeningRecord

BRANDS_FILE, GENERAL_FILE = "brands.csv", "general-goods-wording.txt"

# "50 pcs", "40 pairs", "2,000 boxes", "12 x", "x12", "qty 60", "a dozen": the count of articles a line holds.
_UNITS = r"(?:pcs|pc|pces|pieces|piece|pairs|pair|prs|units|unit|bottles|bottle|sets|set|boxes|box|items|item|" \
         r"nos|ea|each|watches|phones|jerseys|belts|bags)"
_COUNT = re.compile(rf"(?<![\w.,])(\d{{1,3}}(?:[ ,.]\d{{3}})+|\d+)\s*(?:x\s*)?{_UNITS}\b|"
                    rf"\b(?:qty|quantity|pcs)\s*[:.]?\s*(\d{{1,3}}(?:[ ,.]\d{{3}})+|\d+)\b|"
                    rf"(?<![\w.,])(\d+)\s*x\b(?!\s*\d)|(?<![\w.,])x\s?(\d+)\b(?!\s*(?:x|mm|cm|m|ml|g|kg)\b)",
                    re.IGNORECASE)
_DOZEN = re.compile(r"\b(\d+|a|one)\s+dozens?\b", re.IGNORECASE)
_WORD = re.compile(r"[\w']+")
_PURPOSE = re.compile(r"\s*,?\s+(?:for|intended for|to be used|used in|used for)\s+", re.IGNORECASE)


def described_count(description: str) -> int | None:
    """How many articles the description says the line holds, or None when it does not say."""
    dozen = _DOZEN.search(description)
    if dozen:
        n = dozen.group(1).lower()
        return 12 * (1 if n in ("a", "one") else int(n))
    found = _COUNT.search(description)
    if not found:
        return None
    digits = re.sub(r"\D", "", next(g for g in found.groups() if g))
    count = int(digits)
    return count if count > 0 else None


@dataclass(frozen=True)
class BrandEntry:
    brand: str
    names: tuple[tuple[str, ...], ...]  # each a sequence of words
    headings: frozenset[str]
    min_article_eur: float
    article: str


class DescriptionWording:
    """The brand list and the wording lists, read-only after loading."""

    def __init__(self, brands: list[BrandEntry], vague_terms: list[str], general_terms: list[str]):
        self.brands = brands
        self._by_first: dict[str, list[tuple[tuple[str, ...], BrandEntry]]] = {}
        for entry in brands:
            for name in entry.names:
                self._by_first.setdefault(name[0], []).append((name, entry))
        self._says_nothing = VagueDescriptionMatcher([*vague_terms, *general_terms])
        # before a purpose, only the general wording: "machines for packaging food" names its goods
        self._head_says_nothing = VagueDescriptionMatcher(general_terms)

    @classmethod
    def load(cls, vague_terms: Iterable[str], directory: Path | None = None) -> "DescriptionWording":
        """vague_terms: the regime's unacceptable terms, as validation holds them (ReferenceData.vague_terms)."""
        directory = directory or resources.rules_dir() / "reference"
        with open(directory / BRANDS_FILE, encoding="utf-8", newline="") as f:
            brands = [BrandEntry(r["brand"], tuple(tuple(_WORD.findall(n.lower())) for n in r["names"].split("|")),
                                 frozenset(r["headings"].split("|")), float(r["min_article_eur"]), r["article"])
                      for r in csv.DictReader(f)]
        with open(directory / GENERAL_FILE, encoding="utf-8") as f:
            general = [line.strip() for line in f if line.strip() and not line.startswith("#")]
        return cls(brands, list(vague_terms), general)

    def brand(self, description: str, hs_code: str | None) -> BrandEntry | None:
        """The brand the description names for goods of the declared heading, or None."""
        if not hs_code:
            return None
        words = _WORD.findall(description.lower().replace("-", " "))
        heading = hs_code[:4]
        for i, word in enumerate(words):
            for name, entry in self._by_first.get(word, ()):
                if heading in entry.headings and tuple(words[i:i + len(name)]) == name:
                    return entry
        return None

    def says_nothing(self, description: str) -> bool:
        """Whether the description names no goods: neither in all its words nor in its head, the words
        before a purpose ("replacement parts for production line", "goods for sale in our shops": what
        the goods serve is not what they are). A head of a category ("machines for packaging food",
        "cases for smartphones") says enough with its purpose: only the general wording counts there."""
        if not description.strip():
            return False
        head = _PURPOSE.split(description, 1)[0]
        return self._says_nothing.is_vague(description) or (head != description and bool(head.strip())
                                                             and self._head_says_nothing.is_vague(head))


@lru_cache(maxsize=1)
def bundled_wording() -> DescriptionWording:
    return DescriptionWording.load(bundled_reference().vague_terms)


def description_facts(record: ScreeningRecord, wording: DescriptionWording) -> tuple[Fact, ...]:
    facts: list[Fact] = []
    for item in record.goods:
        text = item.description or ""
        if not text.strip():
            continue
        underpriced = _underpriced(item, wording)
        if underpriced:
            facts.append(underpriced)
        if wording.says_nothing(text):
            facts.append(Fact(SAYS_NOTHING, "", f"goods item {item.number}: “{text[:80]}” names no goods"
                              + (f" (declared EUR {item.value_eur:,.0f})" if item.value_eur is not None else ""),
                              (), {**_where(item), "value_eur": item.value_eur}))
    return tuple(facts)


def _underpriced(item: GoodsLine, wording: DescriptionWording) -> Fact | None:
    euros = item.value_eur
    if euros is None or euros < 0:
        return None
    entry = wording.brand(item.description, item.hs_code)
    if entry is None:
        return None
    count = described_count(item.description)
    per_article = euros / (count or 1)
    ratio = per_article / entry.min_article_eur
    if ratio >= 1:
        return None
    said = f"{count} articles" if count else "no count (taken as one article)"
    return Fact(BRANDED_UNDERPRICED, "", (
        f"goods item {item.number}: {entry.brand} {entry.article} declared at EUR {per_article:,.2f} each "
        f"({said}, EUR {euros:,.2f} in all); a genuine one costs at least EUR {entry.min_article_eur:,.0f}"),
        (), {**_where(item), "brand": entry.brand, "count": count, "value_eur": euros,
             "article_eur": round(per_article, 2), "genuine_min_eur": entry.min_article_eur,
             "ratio": round(ratio, 4)})


def _where(item: GoodsLine) -> dict:
    return {"pointer": f"{item.pointer}/Description" if item.pointer else "Description", "item": item.number,
            "house": item.house, "description": item.description[:200], "declared": item.hs_code}
