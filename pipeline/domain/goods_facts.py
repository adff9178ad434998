"""Facts about what a filing's goods descriptions say against their declared codes.

    goods_facts(record, classifier) -> (Fact, ...)

For each goods item (every house's, in a consolidation), from the goods classifier's verdict
(goods_classifier.py):
  - `description-code-mismatch`: the declared HS code disagrees strongly with the description
    ("pistol slide and barrel" declared 8466, parts of machine tools);
  - `description-names-controlled-goods`: the description names controlled goods that the declared
    code does not declare (another code, or none: see `hidden`): explosives and pyrotechnics, firearms, their parts, other arms and ammunition, scheduled
    drug precursors (by name or CAS number), Common High Priority (dual-use) items, cultural
    goods, cash. One fact per kind (per substance for precursors). Also pyrotechnic articles by
    their fuse on goods declared as what fireworks are disguised as (`fused_festive_goods`).

Each fact points at the data element it is about (the item's HSCode for a mismatch, its
Description for controlled goods) and carries the evidence: the declared code, the proposed
headings with their scores and nomenclature text, the words that matched. Pure functions.
"""
from __future__ import annotations

import re

from .enrichment import DESCRIPTION_CODE_MISMATCH, DESCRIPTION_NAMES_CONTROLLED, Fact
from .goods_classifier import Controlled, GoodsClassifier, Verdict
from .screening import GoodsLine, ScreeningRecord

SHOWN = 3  # proposed headings a fact carries
TEXT_CHARS = 90  # of a heading's nomenclature text


def goods_facts(record: ScreeningRecord, classifier: GoodsClassifier) -> tuple[Fact, ...]:
    facts: list[Fact] = []
    for item in record.goods:
        if not item.description or not item.description.strip():
            continue
        verdict = classifier.consistency(item.description, item.hs_code)
        if verdict.disagrees:
            facts.append(_mismatch(item, verdict, classifier))
        named = [c for c in verdict.controlled if hidden(item.hs_code or "", c, classifier)]
        fused = fused_festive_goods(item.description, item.hs_code)
        if fused and not any(c.kind in ("pyrotechnic", "explosive") for c in named):
            named.append(fused)
        facts += [_controlled(item, verdict, c, classifier) for c in named]
    return tuple(facts)


# Fireworks travel declared as what they look like: Christmas and party decorations, toys, paper tubes
# (firecrackers seized before New Year declared as toys or decorations: EU customs and Europol reports on
# illegal pyrotechnics; Directive 2013/29/EU). On goods of these headings a fuse has no business of its
# own, so "paper tubes with fuse" is a firecracker whatever else the words say. An electrical fuse of a
# light set, fused glass and fuse beads (a children's craft) are what they say.
FIREWORK_DISGUISES = frozenset({"9503", "9505", "4822", "4823"})
_FUSE = re.compile(r"\b(?:fuses?|fuzes?|quick ?match)\b", re.IGNORECASE)
_NOT_A_FIREWORK_FUSE = re.compile(
    r"\b(?:electric\w*|leds?|lights?|lamps?|bulbs?|plugs?|batter(?:y|ies)|mains|wired|circuits?|usb|spare|"
    r"beads?|fusing|fused|glass)\b|\b\d+(?:[.,]\d+)?\s*(?:v|a|ma|w)\b", re.IGNORECASE)


def fused_festive_goods(description: str, hs_code: str | None) -> Controlled | None:
    """A pyrotechnic article named by its fuse on goods declared as festive articles, toys or paper
    tubes (FIREWORK_DISGUISES), or None."""
    if (hs_code or "")[:4] not in FIREWORK_DISGUISES:
        return None
    fuse = _FUSE.search(description)
    if fuse is None or _NOT_A_FIREWORK_FUSE.search(description):
        return None
    return Controlled("pyrotechnic", "360410", (fuse.group(0),),
                      f"Directive 2013/29/EU (pyrotechnic articles); HS 3604: a fuse on goods declared {hs_code[:4]}")


def hidden(declared: str, c: Controlled, classifier: GoodsClassifier) -> bool:
    """Whether the declared code hides the controlled goods the description names. Goods declared
    under a code of their own kind (fireworks under 3604, processors under a Common High Priority
    code) are what the code says: the rules on codes see them, and a fact would only repeat it on
    ordinary trade. Without a code, the description is all there is, except for dual-use items
    (integrated circuits, bearings: everyday electronics and machinery without a code in express
    and postal traffic), which count only when declared under another code."""
    if not declared:
        return c.kind != "chp"
    return not _declared_as(declared, c, classifier)


def _headings(verdict: Verdict, classifier: GoodsClassifier) -> list[dict]:
    return [{"heading": h, "score": s, "text": _text(classifier, h), "terms": list(verdict.terms.get(h, ()))}
            for h, s in verdict.proposed[:SHOWN]]


def _text(classifier: GoodsClassifier, code: str) -> str:
    text = classifier.hs.get(code, "") or classifier.hs.get(code[:4], "")
    return text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS - 1].rstrip() + "…"


def _common(item: GoodsLine, verdict: Verdict, classifier: GoodsClassifier, element: str) -> dict:
    return {"pointer": f"{item.pointer}/{element}" if item.pointer else element, "item": item.number,
            "house": item.house, "description": item.description[:200], "declared": item.hs_code,
            "declared_text": _text(classifier, item.hs_code or ""), "declared_score": verdict.declared_score,
            "proposed": [h for h, _ in verdict.proposed[:SHOWN]], "headings": _headings(verdict, classifier)}


def _mismatch(item: GoodsLine, verdict: Verdict, classifier: GoodsClassifier) -> Fact:
    top, score = verdict.proposed[0]
    terms = list(verdict.terms.get(top, ()))
    others = ", ".join(f"{h} ({s:.2f})" for h, s in verdict.proposed[1:SHOWN])
    detail = (f"goods item {item.number}: declared {item.hs_code} ({_text(classifier, item.hs_code or '')}), but "
              f"“{_short(item.description)}” reads as {top} ({_text(classifier, top)}) {score:.2f}"
              f"{', then ' + others if others else ''}; the declared heading scores {verdict.declared_score or 0:.2f}"
              f"{'; matched: ' + ', '.join(terms) if terms else ''}")
    return Fact(DESCRIPTION_CODE_MISMATCH, "", detail, (),
                {**_common(item, verdict, classifier, "HSCode"), "terms": terms, "why": verdict.why})


def _controlled(item: GoodsLine, verdict: Verdict, c: Controlled, classifier: GoodsClassifier) -> Fact:
    declared = item.hs_code or ""
    what = _text(classifier, c.code) if c.code else ""
    detail = (f"goods item {item.number}: “{_short(item.description)}” names {c.kind} goods"
              f"{f' ({c.code}: {what})' if c.code else ''} by {', '.join(c.terms)}"
              f"{f', category {c.category}' if c.category and c.kind == 'drug-precursor' else ''}"
              f"{f', CHP tier {c.category}' if c.kind == 'chp' else ''}; declared {declared or 'without a code'}")
    return Fact(DESCRIPTION_NAMES_CONTROLLED, "", detail, (),
                {**_common(item, verdict, classifier, "Description"), "controlled": c.kind, "controlled_code": c.code,
                 "category": c.category, "basis": c.basis, "terms": list(c.terms), "ambiguous": c.ambiguous})


def _declared_as(declared: str, c: Controlled, classifier: GoodsClassifier) -> bool:
    """Whether the declared code is itself one of the named kind (fireworks declared as 3604)."""
    if not declared:
        return False
    lists = classifier.lists
    if c.kind == "drug-precursor":
        return bool(lists.precursors_for_code(declared)) and declared[:4] == c.code[:4]
    if c.kind == "chp":
        return lists.chp_tier(declared) is not None
    return c.kind in lists.is_controlled(declared) or any(
        kind in lists.is_controlled(declared) for kind in _SAME_FAMILY.get(c.kind, ()))


_SAME_FAMILY = {"firearm": ("firearm-part", "weapon"), "firearm-part": ("firearm",), "weapon": ("firearm",),
                "explosive": ("pyrotechnic",), "pyrotechnic": ("explosive",)}


def _short(text: str, n: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n - 1].rstrip() + "…"
