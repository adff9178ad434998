"""What a goods description says by its words alone: a brand and how many articles, cash-like cards, an
antiquity, or nothing at all.

    wording = DescriptionWording.load(reference.vague_terms)  # or bundled_wording()
    description_facts(record, wording) -> (Fact, ...)

Facts per goods item, for the rules to weigh:
  - `branded-goods-underpriced`: the description names a brand for goods of that brand's heading
    (rules/reference/brands.csv: "Rolex" for watches, not for a bracelet's clasp; "Apple" only with
    iPhone, AirPods, ...) and the declared value of one article -- the euro value over the count the
    description gives ("50 pcs", "40 pairs", "2,000 boxes"), else over one article -- is below the
    cheapest genuine article of the brand. Counterfeits travel declared at what they cost, a few euros
    a piece; a genuine article cannot. Without a count the whole line is taken as one article, so a
    line worth less than one genuine article is underpriced whatever its count.
  - `branded-goods-unvalued`: the same brand, several articles by the description's count, and no value
    declared at all (the pre-loading datasets carry none): what a genuine reseller's stock and a
    counterfeiter's parcel look like alike, for the rules to weigh with the consignor's country
    (its `countries` are the consignors').
  - `stored-value-cards`: prepaid, gift or debit cards the description says carry value ("loaded",
    "activated", "with balance"): value that moves with the card like banknotes (FATF, Money laundering
    using new payment methods, 2010); Regulation (EU) 2018/1672 counts prepaid cards as cash once a
    delegated act lists them. SIM cards are not payment cards.
  - `archaeological-object`: the description dates an object to antiquity or an excavation
    ("archaeological", "excavated", "cuneiform", "pre-Columbian", "Roman period"), or calls an object
    of chapter 97 or a named kind of artefact (figurine, relief, amphora, coins, ...) "ancient",
    "Roman", "Byzantine", ... -- not a replica or a style. Archaeological objects and elements of
    monuments over 250 years old need an import licence whatever their value (Regulation (EU)
    2019/880, Art. 4 and Annex Part B; rules/reference/cultural-goods.csv categories c and d).
  - `package-mass-contradicts-description`: the kilograms per package cannot be these goods: less than
    the net weight the description gives each package ("18.14 kg cartons", "in 25 kg bags": a gross
    mass cannot be below the net; under a third of it, no partly filled carton explains it), or more
    than any package of goods this light can weigh (rules/reference/light-goods-packing.csv: a carton
    of foam cups or plush toys, whose materials' densities cap it). Declared mass that the goods cannot have is what concealment in a cover load
    looks like (WCO, Customs Risk Management Compendium: weight inconsistent with the goods) or a
    description of other goods.
  - `goods-description-says-nothing`: nothing is left of the description once the regime's list of
    unacceptable terms (vague-goods-descriptions.txt, which validation refuses on its own) and the
    general wording that passes validation but names no goods (general-goods-wording.txt:
    "components", "commercial", "technical", "for industrial use") are taken out, or nothing of the
    words before a purpose ("replacement parts for production line"). Informational on its own: the
    rules weigh it with the value declared.
Pure functions over the screening record; the lists are read once per process. What a description's
words say (its Reading) is the same whatever item carries it, and traffic repeats descriptions: each is
read once and remembered (a bounded cache); the item's code, values and packages are judged per item.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, NamedTuple

from .. import resources
from .dataquality import VagueDescriptionMatcher
from .enrichment import (ARCHAEOLOGICAL_OBJECT, BRANDED_UNDERPRICED, BRANDED_UNVALUED, PACKAGE_MASS_CONTRADICTS,
                         SAYS_NOTHING, STORED_VALUE_CARDS, Fact)
from .reference import bundled_reference
from .screening import GoodsLine, ScreeningRecord

BRANDS_FILE, GENERAL_FILE, LIGHT_GOODS_FILE = "brands.csv", "general-goods-wording.txt", "light-goods-packing.csv"

# "50 pcs", "40 pairs", "2,000 boxes", "12 x", "x12", "qty 60", "a dozen": the count of articles a line holds.
_UNITS = r"(?:pcs|pc|pces|pieces|piece|pairs|pair|prs|units|unit|bottles|bottle|sets|set|boxes|box|items|item|" \
         r"nos|ea|each|watches|phones|jerseys|belts|bags)"
_COUNT = re.compile(rf"(?<![\w.,])(\d{{1,3}}(?:[ ,.]\d{{3}})+|\d+)\s*(?:x\s*)?{_UNITS}\b|"
                    rf"\b(?:qty|quantity|pcs)\s*[:.]?\s*(\d{{1,3}}(?:[ ,.]\d{{3}})+|\d+)\b|"
                    rf"(?<![\w.,])(\d+)\s*x\b(?!\s*\d)|(?<![\w.,])x\s?(\d+)\b(?!\s*(?:x|mm|cm|m|ml|g|kg)\b)",
                    re.IGNORECASE)
_DOZEN = re.compile(r"\b(\d+|a|one)\s+dozens?\b", re.IGNORECASE)
_WORD = re.compile(r"[\w']+")
_CARDS = re.compile(r"\b(?:pre-?paid|gift|debit|payment|stored[- ]value|cash)(?:\s+[a-z]+){0,2}?\s+cards?\b|"
                    r"\bcards?\b(?:\s+[a-z]+){0,2}?\s+pre-?paid\b", re.IGNORECASE)
_CARRY_VALUE = re.compile(r"\b(?:loaded|pre-?loaded|activated|active|funded|topped[- ]up|charged|credited|"
                          r"with (?:a |their )?(?:balance|credit|value))\b", re.IGNORECASE)
_SIM = re.compile(r"\b(?:sim|e-?sim)\b", re.IGNORECASE)
# Dated to antiquity or an excavation by these words alone ...
_ARCHAEOLOGY = re.compile(
    r"\b(?:archa?eolog\w*|antiquities|excavated|excavation|cuneiform|pre-?columbian|neolithic|pal(?:a)?eolithic|"
    r"bronze age|iron age|roman (?:period|era|empire|imperial)|ancient (?:roman|greek|egyptian)|hellenistic|"
    r"pharaonic|sumerian|akkadian|assyrian|babylonian|mesopotamian|palmyrene|nabat(?:a)?ean|etruscan|gandhar(?:a|an)|"
    r"scythian|(?:han|tang|shang|zhou) dynasty)\b", re.IGNORECASE)
# ... or these, said of an object of chapter 97 or of a kind of artefact; never of a replica or a style.
_ANTIQUE = re.compile(r"\b(?:ancient|roman|greek|byzantine|egyptian|phoenician|persian empire|dynastic)\b", re.IGNORECASE)
_ARTEFACT = re.compile(r"\b(?:figurines?|statues?|statuettes?|reliefs?|amphora[e]?|vases?|pottery|tablets?|mosaics?|"
                       r"fragments?|sculptures?|artefacts?|artifacts?|idols?|steles?|stelae|sarcophag\w*|busts?|"
                       r"capitals?|columns?|coins?|oil lamps?|seals?|jars?|manuscripts?|inscriptions?)\b", re.IGNORECASE)
_NOT_ANTIQUE = re.compile(r"\b(?:replicas?|reproductions?|style|inspired|imitations?|copy|copies|modern|souvenirs?)\b",
                          re.IGNORECASE)
# The net weight the description gives each package: "18.14 kg cartons", "bags of 25 kg", "25kg/bag", "40 lb boxes".
_PACKAGE_WORDS = r"(?:bags?|sacks?|cartons?|ctns?|boxes|box|cases?|drums?|pails?|buckets?|tins?|cans?|jars?|bales?|blocks?|" \
                 r"bottles?|jerrycans?|packs?)"
_WEIGHT = r"(\d+(?:[.,]\d+)?)\s*(kgs?|kilos?|kilograms?|lbs?|pounds?)"
_STATED_NET = re.compile(rf"(?<![\w.,]){_WEIGHT}\s*(?:net\s+)?(?:per\s+|each\s+|a\s+|/\s*)?{_PACKAGE_WORDS}\b|"
                         rf"\b{_PACKAGE_WORDS}\s+(?:of|@|at|a)\s+{_WEIGHT}\b", re.IGNORECASE)
# ... not of packaging itself ("empty 1000 kg bags": what the bags hold, not weigh) or a capacity.
_PACKAGING_GOODS = ("3923", "4415", "4819", "4821", "6305", "7310", "7311", "7612", "7613")
_NOT_CONTENTS = re.compile(r"\b(?:empty|capacity|max|maximum|swl|holds?|up to)\b", re.IGNORECASE)
# A gross mass below the net is impossible; a package under this share of the stated net is no partly filled
# last carton, rounding or a net stated loosely ("25 kg cartons" of instant coffee filled to 12-14 kg).
STATED_NET_SHARE = 1 / 3
READINGS = 20_000  # descriptions' readings remembered (a few hundred bytes each; traffic repeats descriptions)
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
class LightGoods:
    goods: str
    names: re.Pattern
    package_types: frozenset[str]
    max_kg: float


def stated_net_kg(description: str) -> float | None:
    """The net weight the description gives each package, in kg ("18.14 kg cartons"), or None."""
    found = _STATED_NET.search(description)
    if not found or _NOT_CONTENTS.search(description):
        return None
    number, unit = (found.group(1), found.group(2)) if found.group(1) else (found.group(3), found.group(4))
    kg = float(number.replace(",", "."))
    return kg * 0.45359237 if unit.lower().startswith(("lb", "pound")) else kg


@dataclass(frozen=True)
class BrandEntry:
    brand: str
    names: tuple[tuple[str, ...], ...]  # each a sequence of words
    headings: frozenset[str]
    min_article_eur: float
    article: str


class Reading(NamedTuple):
    """What a description says by its words alone, whatever the item's code, value or packages:
    DescriptionWording.reading. Each question answers as the function it stands for would."""
    brands: tuple[BrandEntry, ...]  # every brand name it contains, in the order `brand` tries them
    count: int | None  # described_count (when a brand is named: only then is it asked)
    cards: bool  # payment cards said to carry value, and no SIM card
    dated: bool  # dated to antiquity or an excavation by its words alone (is_archaeological's first test)
    antique_artefact: bool | None  # an antiquity's adjective: True with a named artefact, False without one
    stated_net: float | None  # stated_net_kg
    light: tuple[LightGoods, ...]  # the light goods it names, in the order `light` tries them
    says_nothing: bool

    @property
    def quiet(self) -> bool:
        """Nothing in the words that a fact could come from, whatever the item's code, value or packages."""
        return not (self.brands or self.cards or self.dated or self.antique_artefact is not None or self.stated_net
                    or self.light or self.says_nothing)

    def brand(self, hs_code: str | None) -> BrandEntry | None:
        """DescriptionWording.brand(description, hs_code)."""
        if not hs_code:
            return None
        heading = hs_code[:4]
        return next((entry for entry in self.brands if heading in entry.headings), None)

    def archaeological(self, hs_code: str | None) -> bool:
        """is_archaeological(description, hs_code)."""
        return self.dated or self.antique_artefact is True or (
            self.antique_artefact is False and (hs_code or "").startswith("97"))

    def light_goods(self, package_type: str) -> LightGoods | None:
        """DescriptionWording.light(description, package_type)."""
        return next((g for g in self.light if package_type in g.package_types), None)


class DescriptionWording:
    """The brand list and the wording lists, read-only after loading (its cache of readings only ever
    adds answers that are the same whoever computes them)."""

    def __init__(self, brands: list[BrandEntry], vague_terms: list[str], general_terms: list[str],
                 light_goods: list[LightGoods] = ()):
        self.brands = brands
        self.light_goods = list(light_goods)
        self._by_first: dict[str, list[tuple[tuple[str, ...], BrandEntry]]] = {}
        for entry in brands:
            for name in entry.names:
                self._by_first.setdefault(name[0], []).append((name, entry))
        self._says_nothing = VagueDescriptionMatcher([*vague_terms, *general_terms])
        # before a purpose, only the general wording: "machines for packaging food" names its goods
        self._head_says_nothing = VagueDescriptionMatcher(general_terms)
        self.reading = lru_cache(maxsize=READINGS)(self.read)  # per instance: no process-wide state

    def read(self, description: str) -> Reading:
        """What the description says by its words alone (Reading), read afresh; `reading` remembers it."""
        words = _WORD.findall(description.lower().replace("-", " "))
        brands = tuple(entry for i, word in enumerate(words) for name, entry in self._by_first.get(word, ())
                       if tuple(words[i:i + len(name)]) == name)
        if _NOT_ANTIQUE.search(description):
            dated, antique_artefact = False, None
        else:
            dated = bool(_ARCHAEOLOGY.search(description))
            antique_artefact = (bool(_ARTEFACT.search(description)) if _ANTIQUE.search(description) else None) \
                if not dated else None
        return Reading(brands, described_count(description) if brands else None,
                       bool(_CARDS.search(description) and _CARRY_VALUE.search(description)
                            and not _SIM.search(description)),
                       dated, antique_artefact, stated_net_kg(description),
                       tuple(g for g in self.light_goods if g.names.search(description)),
                       self.says_nothing(description))

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
        with open(directory / LIGHT_GOODS_FILE, encoding="utf-8", newline="") as f:
            light = [LightGoods(r["goods"], re.compile(r"\b(?:" + "|".join(
                         r"[\s-]+".join(map(re.escape, n.split())) for n in r["names"].split("|")) + r")\b", re.IGNORECASE),
                         frozenset(r["package_types"].split("|")), float(r["max_kg"])) for r in csv.DictReader(f)]
        return cls(brands, list(vague_terms), general, light)

    def light(self, description: str, package_type: str) -> LightGoods | None:
        """The light goods the description names, packed in a package type their ceiling is for, or None."""
        return next((g for g in self.light_goods if package_type in g.package_types and g.names.search(description)),
                    None)

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
    consignors = sorted({p.country for p in record.parties if p.role == "consignor" and p.country})
    for item in record.goods:
        text = item.description or ""
        if not text.strip():
            continue
        reading = wording.reading(text)
        if reading.quiet:  # most descriptions: no brand, no antiquity, nothing to weigh
            continue
        branded = _underpriced(item, reading) or _unvalued(item, reading, consignors)
        if branded:
            facts.append(branded)
        if reading.cards:
            facts.append(Fact(STORED_VALUE_CARDS, "", f"goods item {item.number}: “{text[:80]}”: payment cards said to "
                              "carry value, which moves with them like banknotes", (), _where(item)))
        if reading.archaeological(item.hs_code):
            facts.append(Fact(ARCHAEOLOGICAL_OBJECT, "", f"goods item {item.number}: “{text[:80]}” dates the object to "
                              "antiquity or an excavation: an import licence is needed whatever its value", (),
                              _where(item)))
        contradicted = _package_mass_contradicts(item, reading)
        if contradicted:
            facts.append(contradicted)
        if reading.says_nothing:
            facts.append(Fact(SAYS_NOTHING, "", f"goods item {item.number}: “{text[:80]}” names no goods"
                              + (f" (declared EUR {item.value_eur:,.0f})" if item.value_eur is not None else ""),
                              (), {**_where(item), "value_eur": item.value_eur}))
    return tuple(facts)


def is_archaeological(description: str, hs_code: str | None) -> bool:
    """Whether the description dates an object to antiquity or an excavation (see the module's doc)."""
    if _NOT_ANTIQUE.search(description):
        return False
    return bool(_ARCHAEOLOGY.search(description)) or bool(
        _ANTIQUE.search(description) and ((hs_code or "").startswith("97") or _ARTEFACT.search(description)))


def _underpriced(item: GoodsLine, reading: Reading) -> Fact | None:
    euros = item.value_eur
    if euros is None or euros < 0:
        return None
    entry = reading.brand(item.hs_code)
    if entry is None:
        return None
    count = reading.count
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


def _unvalued(item: GoodsLine, reading: Reading, consignors: list[str]) -> Fact | None:
    if item.value is not None:
        return None
    entry = reading.brand(item.hs_code)
    count = reading.count if entry else None
    if entry is None or not count or count < 2:
        return None
    return Fact(BRANDED_UNVALUED, "", (
        f"goods item {item.number}: {count} {entry.brand} articles ({entry.article}), no value declared; sent by a "
        f"consignor in {', '.join(consignors) or 'an undeclared country'}"),
        (), {**_where(item), "brand": entry.brand, "count": count, "genuine_min_eur": entry.min_article_eur,
             "countries": consignors})


def _package_mass_contradicts(item: GoodsLine, reading: Reading) -> Fact | None:
    """Kilograms per package the described goods cannot have (see the module's doc); one package type only."""
    if item.gross_mass is None or item.gross_mass <= 0 or not item.packages or len(item.package_types) != 1:
        return None
    per_package = item.gross_mass / item.packages
    values = {**_where(item), "kg_per_package": round(per_package, 3)}
    net = None if (item.hs_code or "").startswith(_PACKAGING_GOODS) else reading.stated_net
    if net and per_package < STATED_NET_SHARE * net:
        return Fact(PACKAGE_MASS_CONTRADICTS, "", (
            f"goods item {item.number}: {per_package:,.2f} kg per package ({item.gross_mass:,.1f} kg in {item.packages:,} "
            f"{item.package_types[0]}), but the description gives each package {net:,.2f} kg net"), (),
            {**values, "stated_kg": round(net, 3), "ratio": round(per_package / net, 4)})
    light = reading.light_goods(item.package_types[0])
    if light and per_package > light.max_kg:
        return Fact(PACKAGE_MASS_CONTRADICTS, "", (
            f"goods item {item.number}: {per_package:,.2f} kg per package ({item.gross_mass:,.1f} kg in {item.packages:,} "
            f"{item.package_types[0]}), but a package of {light.goods} weighs at most {light.max_kg:g} kg"), (),
            {**values, "max_kg": light.max_kg, "goods": light.goods, "ratio": round(per_package / light.max_kg, 4)})
    return None


def _where(item: GoodsLine) -> dict:
    return {"pointer": f"{item.pointer}/Description" if item.pointer else "Description", "item": item.number,
            "house": item.house, "description": item.description[:200], "declared": item.hs_code}
