"""Goods description versus declared HS code: which headings a description reads as, and whether
it names controlled goods.

    classifier = bundled_goods_classifier()
    classifier.propose("ladies cotton knitted t-shirts")        -> [("6109", 0.71), ("6106", 0.38), ...]
    classifier.consistency("pistol slide and barrel", "846693") -> Verdict(agreement="disagrees-strongly",
                                                                           controlled=(firearm-part ...), ...)

What it learns from (nothing else, and nothing downloaded):
  - the HS 2022 nomenclature's own descriptions (`hs2022.csv`): every heading, with its chapter's
    text, and every subheading, each a document of its heading;
  - the legal lists' names (`legal_lists.py`): drug precursors' names and synonyms under their
    headings, the controlled goods' descriptions and notes, the cultural goods' categories, the
    kinds of cash and their words in eight languages, the lithium battery regimes;
  - a hand-written vocabulary of ~5,900 trade terms where shippers write otherwise than the
    nomenclature ("smartphone", "sneakers", "e-bike"), with the controlled goods' names and their
    honest look-alikes ("water pistol", "exhaust silencer"): `goods-vocabulary.csv` (provenance and
    rules for adding to it in rules/reference/README.md, "Goods vocabulary").

The model: every document is a TF-IDF vector (scikit-learn's TfidfVectorizer) over word stems
and pairs of consecutive stems; a description scores each heading by its best cosine
similarity with one of the heading's documents (nearest neighbour among the heading's
documents, so a one-line trade term weighs as much as a long subheading), blended with its
similarity to the heading's centroid. Trained from the bundled data, which carries its provenance,
by `cargoscreen reference build goods-classifier` (scikit-learn, 1-2 s), and shipped as plain arrays
(`rules/reference/goods-classifier.npz`: features, IDF weights, posting lists, the documents' codes;
nothing to unpickle) under the sha256 of every training input and of the training code. A worker
loads it in under 0.1 s without importing scikit-learn; when an input or the code changed since, the
file is not used and the model is trained when first used, once per process, as before. Scoring a
description does not go through scikit-learn's per-call machinery (about 0.3 ms): the fitted
vocabulary, IDF weights and document matrix are posting lists, and a description is a few
dictionary look-ups and one `numpy.bincount` (0.2-0.3 ms per description with the judgement;
verdicts are cached per description and declared heading).
`tests/test_goods_classifier.py` checks that both give the same scores.

The judgement (`consistency`) is deliberately cautious: the declared code *disagrees strongly*
only when the description is clearly recognised (a high best score), the declared heading
scores next to nothing for it, no heading of the declared chapter is among the close proposals,
the description is not vague and one of its words names goods of few headings: "parts",
"samples", "plastic parts" never contradict a code (low confidence, no fact).
Controlled goods are named by a precursor's name or CAS number (the legal list), an energetic
material's name or CAS number, or a controlled term of the vocabulary that is not part of an
honest look-alike phrase; a term that is ambiguous on its own ("pistol", "cartridges",
"antique") counts only when the classifier also reads the description as goods of a controlled
heading of the same family.
"""
from __future__ import annotations

import csv
import hashlib
import math
import re
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, NamedTuple

import numpy as np

from .. import resources
from .dataquality import VagueDescriptionMatcher
from .folding import without_accents
from .legal_lists import LegalLists, cas_valid
from .reference import ReferenceData

VOCABULARY_FILE = "goods-vocabulary.csv"
MODEL_FILE = "goods-classifier.npz"  # the model trained from the bundled inputs (`cargoscreen reference build goods-classifier`)
MODEL_FORMAT = 1  # the arrays the model file holds; a change of them is a new format
TFIDF = {"sublinear_tf": True, "norm": "l2"}  # TfidfVectorizer's parameters (float32, our analyzer)
AGREES, DISAGREES, UNCERTAIN = "agrees", "disagrees-strongly", "uncertain"

# -- thresholds of the judgement (tuned on the labelled descriptions' dev split: bench/goods_classifier.py) --
RECOGNISED = 0.45  # a best score at least this high: the description is clearly read as some heading
DECLARED_FLOOR = 0.12  # the declared heading scores below this: nothing in the description supports it
MARGIN = 4.0  # ...and the best heading scores at least this many times the declared one
SAME_CHAPTER_TOP = 5  # a heading of the declared chapter among this many proposals: not a strong disagreement
CONTROLLED_TOP = 3  # an ambiguous controlled term counts when a controlled heading is among this many
CONTROLLED_MIN = 0.25  # ...with at least this score
NAMING_HEADINGS = 15  # a word found in at most this many headings' documents names goods (see _naming_words)
SPECIFIC_IDF = 7.0  # a word in fewer than about 1 in 400 documents: specific enough to vouch for a heading
CENTROID_WEIGHT = 0.35  # a heading's score: 0.65 x its best document + 0.35 x its centroid
TYPO_MIN_SHARED = 0.3  # a typo's candidates share at least this share of its letter trigrams
TYPO_CANDIDATES = 40  # ...and only the ones sharing most are compared letter by letter (bounded cost)
PROPOSED = 5  # headings a verdict proposes
CACHE_SIZE = 20_000  # verdicts remembered, per description and declared heading (traffic repeats both)
ANALYSES = 4_096  # descriptions' analyses remembered (each ~6 KB): a new declared heading of a known description

# Families of controlled goods: an ambiguous term of one family needs a heading of the same family.
FAMILIES = {"firearm": "weapons", "firearm-part": "weapons", "weapon": "weapons", "ammunition": "weapons",
            "explosive": "explosives", "pyrotechnic": "explosives", "cultural": "cultural", "cash": "cash",
            "chp": "chp", "drug-precursor": "drug-precursor", "lithium": "lithium"}
# Kinds the facts report (lithium batteries are dangerous goods to declare, not goods to name).
CONTROLLED_KINDS = frozenset(FAMILIES) - {"lithium"}


# -- text ------------------------------------------------------------------------------------------------
_TOKEN = re.compile(r"[a-z0-9]+")
_CLAUSE = re.compile(r"[;,()\[\]/:|]+")
# Packaging and quantity phrases say how goods travel, not what they are ("in 50 kg jute bags").
_PACKAGING = re.compile(
    r"\b(?:in|into|packed in|packed into|packaged in|per|each in)\b[^,;()]*?\b(?:bags?|sacks?|drums?|cartons?|"
    r"boxes|box|ibcs?|pallets?|crates?|cases|bottles|cans|jars|tins|bales|bundles|reels|spools|bulk|totes|"
    r"punnets|trays|containers?|tanks|flexitanks?|big ?bags|jumbo ?bags|fibcs?|blisters?|pouches|cylinders|"
    r"isotanks?|iso ?tanks?|sachets|tubes|carboys|barrels|kegs|buckets|pails)\b\.?")
# Filler words of the nomenclature and of shipping paperwork.
STOP = frozenset("""
a an and or the of for with without in on to by from at as into onto per than other others otherwise
whether not nor n e c nec nes heading headings item items subheading no kind kinds used such similar like
the thereof therefor therein whereof thereto including included include includes excluding excluded exclude
etc ie eg mainly solely principally chiefly wholly partly only also any all each every some their its it
be is are being been this that these those which put up presented
pcs pc piece pieces pce ctn ctns carton cartons pkg pkgs package packages packed pallet pallets plt box boxes
kg kgs g gr gram grams mm cm m mtr meter meters metre metres ml l ltr litre litres liter liters inch inches
x qty quantity units unit nos assorted asstd assortment new brand model type style size sizes colour colours
color colors various mixed mix goods cargo commodity commodities shipment consignment order po hs code
stc said contain contains containing dozen dz lot lots total net gross weight
s t
""".split())
# One spelling for the British and American ones, and for common trade spellings.
SPELLING = {
    "aluminum": "aluminium", "tire": "tyre", "tires": "tyres", "color": "colour", "fiber": "fibre",
    "fibers": "fibres", "jewelry": "jewellery", "jewellry": "jewellery", "sulfur": "sulphur",
    "sulfate": "sulphate", "sulfates": "sulphates", "sulfuric": "sulphuric", "sulfide": "sulphide",
    "sulfonated": "sulphonated", "sulfonic": "sulphonic", "fertilizer": "fertiliser", "fertilizers": "fertilisers",
    "fertilized": "fertilised", "vulcanized": "vulcanised", "vulcanised": "vulcanised", "galvanized": "galvanised",
    "galvanised": "galvanised", "polyester": "polyester", "gray": "grey", "grey": "grey", "mold": "mould",
    "molds": "moulds", "molded": "moulded", "molding": "moulding", "centre": "center", "theatre": "theater",
    "liquor": "liquor", "catalog": "catalogue", "analyzer": "analyser", "analyzers": "analysers",
    "stabilized": "stabilised", "stabiliser": "stabilised", "sterilized": "sterilised", "pajamas": "pyjamas",
    "pajama": "pyjama", "tee": "tshirt", "tees": "tshirts", "favor": "favour", "flavor": "flavour", "flavors": "flavours", "flavored": "flavoured",
    "harbor": "harbour", "odor": "odour", "vapor": "vapour", "armor": "armour", "plow": "plough",
    "ageing": "aging", "whisky": "whiskey", "yoghurt": "yogurt", "yoghurts": "yogurts", "racquet": "racket",
    "racquets": "rackets", "cozy": "cosy", "organization": "organisation", "synthetic": "synthetic",
}
IRREGULAR = {"knives": "knife", "leaves": "leaf", "halves": "half", "shelves": "shelf", "loaves": "loaf",
             "wolves": "wolf", "calves": "calf", "scarves": "scarf", "hooves": "hoof", "wives": "wife",
             "men": "man", "mens": "man", "women": "woman", "womens": "woman", "children": "child",
             "childrens": "child", "kids": "child", "kid": "child", "ladies": "woman", "lady": "woman",
             "gents": "man", "boys": "boy", "girls": "girl", "geese": "goose", "mice": "mouse",
             "teeth": "tooth", "feet": "foot", "dice": "die", "oxen": "ox", "people": "person",
             "glasses": "glass", "gases": "gas", "buses": "bus", "lenses": "lens", "series": "series",
             "species": "species", "apparatus": "apparatus", "asses": "ass", "chassis": "chassis",
             "cloths": "cloth", "clothes": "clothing", "tyres": "tyre", "does": "does", "axes": "axe",
             "indices": "index", "matrices": "matrix", "radii": "radius", "fungi": "fungus",
             "crises": "crisis", "analyses": "analysis", "bases": "base", "vases": "vase", "cases": "case",
             "phases": "phase", "hoses": "hose", "roses": "rose", "noses": "nose", "doses": "dose",
             "purses": "purse", "horses": "horse", "houses": "house", "blouses": "blouse",
             "fuses": "fuse", "canvases": "canvas", "bonuses": "bonus", "viruses": "virus",
             "cactuses": "cactus", "cacti": "cactus", "octopuses": "octopus", "dwarves": "dwarf",
             "potatoes": "potato", "tomatoes": "tomato", "heroes": "hero", "mangoes": "mango",
             "volcanoes": "volcano", "cargoes": "cargo", "echoes": "echo", "torpedoes": "torpedo"}


_JOINED = re.compile(r"\b([a-z])-(?=[a-z])|\b(non)[\s-]+(?=[a-z])|\b([a-z]{1,3})-(?=\d{1,3}\b)")


_TEE = re.compile(r"\bt\s+shirt(?=s?\b)")


def fold(text: str) -> str:
    """Lower case, accents off, apostrophes joined ("men's" -> "mens"), '&' read as 'and', and
    hyphenated short prefixes joined as both the nomenclature and shippers mean them ("T-shirts",
    "e-bike", "non-woven", "AR-15" -> tshirts, ebike, nonwoven, ar15)."""
    text = without_accents(text.replace("ß", "ss")).lower()
    text = text.replace("'", "").replace("\u2019", "").replace("&", " and ")
    return _TEE.sub("tshirt", _JOINED.sub(lambda m: m[1] or m[2] or m[3], text))


def stem(word: str) -> str:
    """A light, conservative English stemmer: plurals only (the nomenclature and shippers differ
    mostly in number: "Smartphones" / "smartphone"), and irregular plurals by table."""
    if word in IRREGULAR:
        return IRREGULAR[word]
    if len(word) <= 3 or word[-1] != "s" or word.endswith(("ss", "us", "is", "os", "ys")) and len(word) < 6:
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes", "zes")):
        return word[:-2]
    if word.endswith("ss"):
        return word
    return word[:-1]


class Word(NamedTuple):
    stem: str
    surface: str  # as written (folded), for the evidence
    clause: int  # words of one clause may pair up


def words(text: str, strip_packaging: bool = True) -> list[Word]:
    """Content words of a description, stemmed, with their clause numbers."""
    text = fold(text)
    if strip_packaging:
        text = _PACKAGING.sub(" , ", text)
    out = []
    for clause, part in enumerate(_CLAUSE.split(text)):
        for token in _TOKEN.findall(part):
            token = SPELLING.get(token, token)
            for piece in token.split():
                if piece in STOP or piece.isdigit() or len(piece) < 2:
                    continue
                if piece[0].isdigit() and not piece.isalpha() and not _KEEP_ALNUM.fullmatch(piece):
                    continue  # 160g, 20ft, 4x4: quantities and sizes
                out.append(Word(stem(piece), piece, clause))
    return out


_KEEP_ALNUM = re.compile(r"\d{4,5}|\d+d|\d+k|\d+g")  # 18650 cells, 3d printers, 4k televisions, 5g phones


def features(ws: list[Word]) -> list[str]:
    """Stems and pairs of consecutive stems within a clause ("detonating cord" -> detonating, cord,
    detonating cord)."""
    out = [w.stem for w in ws]
    out += [f"{a.stem} {b.stem}" for a, b in zip(ws, ws[1:]) if a.clause == b.clause and a.stem != b.stem]
    return out


# HS wording that is about other goods: "other than ...", "excluding ...", "n.e.c. in heading 8471".
_HS_NOISE = re.compile(r"\((?:other than|excluding|not|excl\.?|except)[^()]*\)|\b(?:other than|excluding|except)\b[^;,()]*|"
                       r"n\.e\.c\.[^;,()]*|\bheading(?:s)? no\.?\s*[\d.\s,to-]+|\bitem no\.?\s*[\d.]+|"
                       r"\bof heading\b[^;,()]*|\bchapter \d+\b")


def hs_text(text: str) -> str:
    return _HS_NOISE.sub(" ", text)


# -- the vocabulary --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Term:
    term: str
    code: str  # heading (4 digits) or subheading (6) it names; "" for a neutral look-alike
    controlled: str = ""  # a controlled kind it names, or ""
    alone: bool = False  # names the controlled goods on its own; otherwise only with the classifier's support
    cas: str = ""  # a CAS number (energetic materials)
    basis: str = ""

    @property
    def heading(self) -> str:
        return self.code[:4]


def load_vocabulary(path: Path) -> tuple[Term, ...]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    return tuple(Term(r["term"].strip().lower(), r["code"].strip(), r["controlled"].strip(),
                      r["alone"].strip() == "yes", r["cas"].strip(), r["basis"].strip())
                 for r in rows if r["term"].strip())


# What the kinds of cash of Regulation (EU) 2018/1672 are declared under, for the legal list's words.
CASH_CODES = {"currency": "490700", "bearer-negotiable-instrument": "490700", "commodity": "710812",
              "prepaid-card": "852352"}


# -- results ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Controlled:
    """Controlled goods a description names."""
    kind: str  # explosive, pyrotechnic, firearm, firearm-part, weapon, ammunition, drug-precursor, chp, cultural, cash
    code: str  # the controlled heading or subheading it points to (a precursor's HS subheading)
    terms: tuple[str, ...]  # what in the description names it
    basis: str  # the legal list entry behind it
    category: str = ""  # a precursor's category (Reg. 111/2005), a CHP item's tier
    ambiguous: bool = False  # named by an abbreviation (BMK, MEK) or by a word that needed the classifier's reading


@dataclass(frozen=True)
class Verdict:
    description: str
    declared: str | None  # the declared heading (the code's first four digits), None without a code
    agreement: str  # agrees, disagrees-strongly, uncertain
    proposed: tuple[tuple[str, float], ...]  # (heading, score), best first
    declared_score: float | None  # the declared heading's score (None without a declared code)
    terms: dict = field(default_factory=dict)  # heading -> the description's words that matched it
    controlled: tuple[Controlled, ...] = ()
    why: str = ""

    @property
    def disagrees(self) -> bool:
        return self.agreement == DISAGREES


class _Analysis(NamedTuple):
    text: str  # the description
    words: list[Word]
    idx: np.ndarray  # feature ids of the description
    weights: np.ndarray  # their TF-IDF weights (L2-normalised)
    scores: np.ndarray  # per heading (float32: 5 KB; the per-document scores are recomputed when needed)
    proposed: tuple[tuple[str, float], ...]  # the PROPOSED best headings with their scores
    controlled: tuple["Controlled", ...]  # the controlled goods it names


# -- the classifier --------------------------------------------------------------------------------------
class _Doc(NamedTuple):
    heading: str
    code: str  # the subheading for subheading documents and 6-digit terms, else the heading
    text: str
    source: str  # hs, vocabulary, precursor, controlled, cultural, cash, lithium


class GoodsClassifier:
    """Made by `GoodsClassifier.bundled(reference, legal_lists)` (the shipped model) or `.build(...)` (trained
    now), read-only afterwards (its caches only ever add answers that are the same whoever computes them)."""

    def __init__(self, model: "TrainedModel", reference: ReferenceData, vocabulary: tuple[Term, ...],
                 lists: LegalLists, cache_size: int = CACHE_SIZE):
        self.model, self.lists, self.vocabulary = model, lists, vocabulary
        self.hs = reference.hs
        self.doc_codes = model.doc_codes
        order = sorted({code[:4] for code in model.doc_codes})
        self._heading_ids = {h: i for i, h in enumerate(order)}
        self._heading_of_id = order
        doc_heading = np.array([self._heading_ids[code[:4]] for code in model.doc_codes])
        if np.any(np.diff(doc_heading) < 0):
            raise ValueError("documents must be sorted by heading")
        self._starts = np.flatnonzero(np.r_[True, np.diff(doc_heading) != 0])
        self._ends = np.r_[self._starts[1:], len(doc_heading)]
        self._n_docs, self._n_headings = len(doc_heading), len(order)
        # Posting lists (feature -> documents, weights) and (feature -> headings' centroids, weights).
        self._indptr, self._doc_ids, self._weights = model.postings
        self._c_indptr, self._c_ids, self._c_weights = model.centroid_postings
        # The same entries by document (a document's features, for the evidence): a stable sort keeps
        # each document's features in feature order.
        by_doc = np.argsort(self._doc_ids, kind="stable")
        self._doc_features = np.repeat(np.arange(len(self._indptr) - 1), np.diff(self._indptr))[by_doc]
        self._doc_feature_weights = self._weights[by_doc]
        self._doc_indptr = np.r_[0, np.cumsum(np.bincount(self._doc_ids, minlength=self._n_docs))]
        self._names = model.names
        self._vocab: dict[str, int] = {name: i for i, name in enumerate(model.names)}
        self._idf = model.idf
        self._headings_of = np.diff(self._c_indptr)  # per feature, the number of headings whose documents use it
        self._vague = VagueDescriptionMatcher(reference.vague_terms)
        self._phrases = _PhraseIndex([*vocabulary, *(Term(t, CASH_CODES.get(kind, "490700"), "cash", True, "",
                                                         "Regulation (EU) 2018/1672 (cash)")
                                                    for t, kind in lists.cash_terms.items())])
        self._controlled_headings = {h: lists.is_controlled(h) for h in order}
        self._cache: OrderedDict[str, _Analysis] = OrderedDict()
        self._verdicts: OrderedDict[tuple, Verdict] = OrderedDict()
        self._cache_size = cache_size
        self._corrections: dict[str, str | None] = {}
        self._trigrams: dict[str, list[str]] = {}  # letter trigram -> the known words with it (typos)
        for term in self._vocab:
            if " " not in term and len(term) >= 4 and term.isalpha():
                for g in _grams(term):
                    self._trigrams.setdefault(g, []).append(term)

    @classmethod
    def build(cls, reference: ReferenceData, lists: LegalLists, vocabulary: tuple[Term, ...] | None = None,
              directory: Path | None = None) -> "GoodsClassifier":
        """Trained now (scikit-learn) from the reference data, the legal lists and the vocabulary."""
        directory = directory or resources.rules_dir() / "reference"
        vocabulary = load_vocabulary(directory / VOCABULARY_FILE) if vocabulary is None else vocabulary
        return cls(TrainedModel.train(training_documents(reference, lists, vocabulary)), reference, vocabulary, lists)

    @classmethod
    def bundled(cls, reference: ReferenceData, lists: LegalLists, directory: Path | None = None) -> "GoodsClassifier":
        """Over the bundled inputs: the shipped model (`goods-classifier.npz`) when it was trained from
        these very inputs and this training code, otherwise trained now as `build` does."""
        directory = directory or resources.rules_dir() / "reference"
        vocabulary = load_vocabulary(directory / VOCABULARY_FILE)
        model = TrainedModel.load(directory / MODEL_FILE, training_key(directory))
        if model is None:
            model = TrainedModel.train(training_documents(reference, lists, vocabulary))
        return cls(model, reference, vocabulary, lists)

    # -- scoring ------------------------------------------------------------------------------------------
    def vectorise(self, description: str) -> tuple[list[Word], np.ndarray, np.ndarray]:
        """The description's words (typos of known words corrected), feature ids and TF-IDF weights:
        what the fitted vectorizer's transform gives, without its per-call overhead. A CAS number
        of a listed substance reads as the substance's name."""
        if "-" in description and _CAS.search(description):
            description = f"{description} , {self._cas_names(description)}"
        ws = self._known_words(words(description))
        counts: dict[int, int] = {}
        for f in features(ws):
            i = self._vocab.get(f)
            if i is not None:
                counts[i] = counts.get(i, 0) + 1
        if not counts:
            return ws, np.empty(0, np.int64), np.empty(0)
        idx = np.fromiter(counts, np.int64, len(counts))
        weights = (1.0 + np.log(np.fromiter(counts.values(), np.float64, len(counts)))) * self._idf[idx]
        weights /= math.sqrt(float(weights @ weights))
        return ws, idx, weights

    def _cas_names(self, description: str) -> str:
        names = []
        for cas in _CAS.findall(description):
            p = self.lists.precursor_by_cas(cas)
            names += [p.substance] if p is not None else []
            names += [t.term for t in self._phrases.by_cas.get(cas, ())[:1]]
        return " , ".join(names)

    def _known_words(self, ws: list[Word]) -> list[Word]:
        """A word the training text does not know, replaced by a known word it is a typo of."""
        out = []
        for w in ws:
            if w.stem in self._vocab or len(w.stem) < 5 or not w.stem.isalpha():
                out.append(w)
            else:
                fixed = self._correction(w.stem)
                out.append(w._replace(stem=fixed) if fixed else w)
        return out

    def _correction(self, word: str) -> str | None:
        """The known word `word` is a typo of: one edit away (two for words of eight letters or
        more; an edit inserts, deletes, changes or swaps two letters), among the words sharing
        letter trigrams with it; the closest, then the one sharing most trigrams. Remembered."""
        if word in self._corrections:
            return self._corrections[word]
        grams = _grams(word)
        shared: dict[str, int] = {}
        for g in grams:
            for term in self._trigrams.get(g, ()):
                shared[term] = shared.get(term, 0) + 1
        allowed = 1 if len(word) < 8 else 2
        best, best_key = None, None
        candidates = sorted(((n, term) for term, n in shared.items() if abs(len(term) - len(word)) <= allowed
                             and n >= len(grams) * TYPO_MIN_SHARED), reverse=True)[:TYPO_CANDIDATES]
        for n, term in candidates:
            d = _edits(word, term, allowed)
            if d <= allowed and (best_key is None or (d, -n, term) < best_key):
                best, best_key = term, (d, -n, term)
        if len(self._corrections) < 100_000:
            self._corrections[word] = best
        return best

    def _analyse(self, description: str) -> _Analysis:
        hit = self._cache.get(description)
        if hit is not None:
            return hit
        ws, idx, weights = self.vectorise(description)
        if len(idx):
            centroid = _dot(self._c_indptr, self._c_ids, self._c_weights, idx, weights, self._n_headings)
            best_doc = np.maximum.reduceat(self._doc_scores(idx, weights), self._starts)
            scores = ((1 - CENTROID_WEIGHT) * best_doc + CENTROID_WEIGHT * centroid).astype(np.float32)
        else:
            scores = np.zeros(self._n_headings, np.float32)
        proposed = tuple(self._top(scores, PROPOSED))
        result = self._cache[description] = _Analysis(description, ws, idx, weights, scores, proposed,
                                                      tuple(self.controlled_goods(description, proposed)))
        _evict(self._cache, ANALYSES)
        return result

    def _doc_scores(self, idx: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The description's cosine similarity with every training document."""
        if not len(idx):
            return np.zeros(self._n_docs)
        return _dot(self._indptr, self._doc_ids, self._weights, idx, weights, self._n_docs)

    def forget(self) -> None:
        """Empties the caches (descriptions, verdicts, typo corrections): for measuring first sight."""
        self._cache.clear()
        self._verdicts.clear()
        self._corrections.clear()

    def propose(self, description: str, k: int = 5) -> list[tuple[str, float]]:
        """The k headings the description reads as, best first, with their scores (0 to 1: a blend
        of the best cosine similarity with one of the heading's documents and with their centroid);
        empty when no word of it is known."""
        return self._top(self._analyse(description).scores, k)

    def _top(self, scores: np.ndarray, k: int) -> list[tuple[str, float]]:
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self._heading_of_id[i], round(float(scores[i]), 3)) for i in top if scores[i] > 0]

    def score_of(self, description: str, heading: str) -> float:
        """How well the description reads as `heading` (the first four digits of any HS code)."""
        i = self._heading_ids.get(heading[:4])
        return 0.0 if i is None else round(float(self._analyse(description).scores[i]), 3)

    def subheading(self, description: str, heading: str) -> str | None:
        """The subheading of `heading` whose own text the description matches best, if any does."""
        i = self._heading_ids.get(heading[:4])
        if i is None:
            return None
        a = self._analyse(description)
        doc_scores = self._doc_scores(a.idx, a.weights)
        best, best_score = None, 0.0
        for d in range(self._starts[i], self._ends[i]):
            if len(self.doc_codes[d]) == 6 and doc_scores[d] > best_score:
                best, best_score = self.doc_codes[d], doc_scores[d]
        return best

    def matched_terms(self, description: str, heading: str, n: int = 5) -> tuple[str, ...]:
        """The description's words and word pairs that make it read as `heading`, strongest first
        (as written, folded to lower case)."""
        i = self._heading_ids.get(heading[:4])
        a = self._analyse(description)
        if i is None or not len(a.idx):
            return ()
        start, end = self._starts[i], self._ends[i]
        best = start + int(np.argmax(self._doc_scores(a.idx, a.weights)[start:end]))
        lo, hi = self._doc_indptr[best], self._doc_indptr[best + 1]
        doc_weight = dict(zip(self._doc_features[lo:hi].tolist(), self._doc_feature_weights[lo:hi].tolist()))
        # what the centroid adds: features of the heading's other documents
        found = sorted(((w * doc_weight.get(j, 0.0), self._names[j]) for j, w in zip(a.idx.tolist(),
                                                                                             a.weights.tolist())
                        if j in doc_weight or self._in_heading(j, i)), reverse=True)
        surface = _surfaces(a.words)
        out: list[str] = []
        for _, feature in found:
            text = surface.get(feature, feature)
            if any(text in t for t in out):
                continue
            out = [t for t in out if t not in text] + [text]
            if len(out) >= n:
                break
        return tuple(out)

    def _specific_words(self, a: _Analysis, heading: str) -> list[str]:
        """The description's uncommon words (high IDF) that the heading's documents use too: a
        declared heading that shares one ("sardines" in canned sardines in tomato sauce, 1604)
        is not strongly contradicted by the other words."""
        i = self._heading_ids.get(heading[:4])
        if i is None:
            return []
        surface = _surfaces(a.words)
        return [surface.get(self._names[j], self._names[j]) for j in a.idx.tolist()
                if self._idf[j] >= SPECIFIC_IDF and " " not in self._names[j] and self._in_heading(j, i)]

    def _naming_words(self, a: _Analysis, heading: str) -> list[str]:
        """The description's single words that make it read as `heading` and that few headings use
        ("pistol", "sardines"), as opposed to words of many ("parts", "plastic", "accessories",
        "equipment"): only a description with such a word is specific enough to contradict a code. The
        word must be in the description's head, before "with", "for", "containing": "Turkish delight
        with pistachios" is confectionery, not nuts."""
        i = self._heading_ids[heading]
        head = _head(a.text)
        head = {w.stem for w in self._known_words(words(head))} if head else None
        return [self._names[j] for j in a.idx.tolist()
                if " " not in self._names[j] and self._headings_of[j] <= NAMING_HEADINGS and self._in_heading(j, i)
                and (head is None or self._names[j] in head)]

    def _in_heading(self, feature: int, heading: int) -> bool:
        lo, hi = self._c_indptr[feature], self._c_indptr[feature + 1]
        return heading in self._c_ids[lo:hi]

    # -- the judgement ------------------------------------------------------------------------------------
    def consistency(self, description: str, declared_hs: str | None) -> Verdict:
        """Whether the declared code fits the description (agrees, disagrees strongly, uncertain),
        and the controlled goods the description names whatever the code, with the proposed
        headings and their scores; the words that matched (the evidence) only when there is
        something to show, a disagreement or controlled goods. Remembered per description and
        declared heading: traffic repeats both."""
        code = declared_hs or ""
        heading = code[:4] if code[:4].isdigit() else (re.sub(r"\D", "", code)[:4] or None)
        if heading is not None and len(heading) < 4:
            heading = None
        key = (description, heading)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._verdicts[key] = self._judge(description, heading)
            _evict(self._verdicts, self._cache_size)
        return verdict

    def _judge(self, description: str, heading: str | None) -> Verdict:
        a = self._analyse(description)
        declared_score = self.score_of(description, heading) if heading else None
        agreement, why = self._agreement(a, a.proposed, heading, declared_score)
        terms = {}
        if agreement == DISAGREES or a.controlled:
            terms = {h: self.matched_terms(description, h) for h, _ in a.proposed[:3]}
            if heading and declared_score and heading not in terms:
                terms[heading] = self.matched_terms(description, heading)
        return Verdict(description, heading, agreement, a.proposed, declared_score, terms, a.controlled, why)

    def _agreement(self, a: _Analysis, proposed, heading, declared_score) -> tuple[str, str]:
        if not heading:
            return UNCERTAIN, "no declared code"
        if not proposed:
            return UNCERTAIN, "no word of the description is known"
        top_heading, top = proposed[0]
        # Proposals far below the best one are noise ("frozen chicken" also touches poultry-keeping machinery).
        close = [h for h, score in proposed[:SAME_CHAPTER_TOP] if score * MARGIN >= top]
        if heading in close:
            return AGREES, f"{heading} is among the proposed headings"
        if heading[:2] in {h[:2] for h in close}:
            return AGREES, f"a heading of chapter {heading[:2]} is among the proposed headings"
        declared_score = declared_score or 0.0
        if declared_score >= DECLARED_FLOOR or declared_score * MARGIN > top:
            return UNCERTAIN, f"{heading} scores {declared_score:.2f} (best {top_heading} {top:.2f})"
        if top < RECOGNISED:
            return UNCERTAIN, f"the description is not clearly recognised (best {top_heading} at {top:.2f})"
        if self._vague.is_vague(a.text):
            return UNCERTAIN, "the description is too vague to contradict a code"
        if not self._naming_words(a, top_heading):
            return UNCERTAIN, f"no word of the description names goods of few headings (best {top_heading})"
        shared = self._specific_words(a, heading)
        if shared:
            return UNCERTAIN, f"the declared heading {heading} knows the description's {', '.join(shared)}"
        return DISAGREES, (f"reads as {top_heading} ({top:.2f}); the declared heading {heading} scores "
                           f"{declared_score:.2f} and no heading of chapter {heading[:2]} is proposed")

    # -- controlled goods ---------------------------------------------------------------------------------
    def controlled_goods(self, description: str, proposed: Iterable[tuple[str, float]] | None = None
                         ) -> list[Controlled]:
        """The controlled goods a description names: one entry per kind (per substance for precursors)."""
        proposed = list(proposed if proposed is not None else self.propose(description))
        text = fold(description)
        phrases = self._phrases.find(text)
        neutral = [phrase for term, phrase in phrases if not term.controlled and not term.code]
        found: dict[tuple[str, str], Controlled] = {}

        def add(c: Controlled) -> None:
            key = (c.kind, c.code if c.kind == "drug-precursor" else "")
            if key not in found or found[key].ambiguous and not c.ambiguous:
                found[key] = c

        chemistry = bool(_CHEMISTRY.search(text)) or any(h[:2] in CHEMICAL_CHAPTERS for h, _ in proposed)
        for match in self.lists.precursor_names_in(description):
            if any(match.phrase in phrase and match.phrase != phrase for phrase in neutral) or \
                    match.abbreviation and not chemistry:
                continue
            p = match.precursor
            add(Controlled("drug-precursor", p.hs[0] if p.hs else "", (match.phrase,), p.legal_reference,
                           p.category_111, match.abbreviation))
        for cas in _CAS.findall(text):
            if not cas_valid(cas):
                continue
            p = self.lists.precursor_by_cas(cas)
            if p is not None:
                add(Controlled("drug-precursor", p.hs[0] if p.hs else "", (f"CAS {cas}",), p.legal_reference,
                               p.category_111))
            for term in self._phrases.by_cas.get(cas, ()):
                add(Controlled(term.controlled, term.code, (f"CAS {cas}",), term.basis))
        # Black powder by its composition ("charcoal, saltpetre and sulphur mixture"): each word is innocent alone.
        stems = {w.stem: w.surface for w in words(text, strip_packaging=False)} if "charcoal" in text else {}
        parts = [next((stems[s] for s in part if s in stems), None) for part in BLACK_POWDER]
        if all(parts):
            add(Controlled("explosive", "360100", tuple(parts), "Directive 2014/28/EU (explosives for civil uses); "
                           "black powder: charcoal, a nitrate and sulphur"))
        # The controlled headings the classifier reads the description as, by family.
        supported: dict[str, tuple[str, str]] = {}
        for heading, score in proposed[:CONTROLLED_TOP]:
            if score >= CONTROLLED_MIN:
                for kind in self._controlled_headings.get(heading, ()):
                    supported.setdefault(FAMILIES.get(kind, kind), (kind, heading))
        for term, phrase in phrases:
            if term.controlled not in CONTROLLED_KINDS:
                continue
            if term.controlled == "chp":
                item = self.lists.chp.get(term.code)
                if item is not None and (term.alone or proposed and proposed[0][0] == term.heading):
                    add(Controlled("chp", term.code, (phrase,), f"Common High Priority items, tier {item.tier}: "
                                   f"{item.description}", item.tier, not term.alone))
            elif term.alone:
                kind, heading = supported.get(FAMILIES[term.controlled], ("", ""))
                add(Controlled(term.controlled, heading if kind == term.controlled else term.code, (phrase,),
                               term.basis or self._basis(term.code)))
            elif FAMILIES[term.controlled] in supported:
                kind, heading = supported[FAMILIES[term.controlled]]
                add(Controlled(kind, heading, (phrase,), self._basis(heading) or term.basis, ambiguous=True))
        return list(found.values())

    def _basis(self, code: str) -> str:
        entries = self.lists.controlled_headings(code[:6] if len(code) >= 6 else code[:4])
        return entries[0].legal_basis if entries else ""


# What follows these words says what the goods contain, hold or serve, not what they are.
_MODIFIER = re.compile(r"\b(?:with|w/|containing|contains|incl|including|for|without|plus)\b")


def _head(text: str) -> str:
    """The part of a description before its first modifier ("Turkish delight" of "Turkish delight
    with pistachios"), or "" when there is none or it starts with one."""
    text = fold(text)
    m = _MODIFIER.search(text)
    return text[:m.start()] if m and text[:m.start()].strip() else ""


def _evict(cache: OrderedDict, size: int) -> None:
    """Oldest first; threads of one worker may share a cache, so another may have evicted it already."""
    while len(cache) > size:
        try:
            cache.popitem(last=False)
        except KeyError:
            break


def _dot(indptr, ids, data, idx, weights, size) -> np.ndarray:
    """Sparse (description) times sparse (postings): one bincount over the posting lists touched."""
    starts, ends = indptr[idx], indptr[idx + 1]
    rows = np.concatenate([ids[s:e] for s, e in zip(starts, ends)])
    values = np.concatenate([data[s:e] * w for s, e, w in zip(starts, ends, weights)])
    return np.bincount(rows, weights=values, minlength=size)


class _PhraseIndex:
    """The vocabulary's phrases, matched on word stems, longest first and without overlaps: an honest
    look-alike ("water pistol") takes its words away from the controlled term inside it ("pistol")."""

    def __init__(self, terms: Iterable[Term]):
        self.by_first: dict[str, list[tuple[tuple[str, ...], list[Term]]]] = {}
        self.by_cas: dict[str, list[Term]] = {}
        keyed: dict[tuple[str, ...], list[Term]] = {}
        for term in terms:
            key = tuple(w.stem for w in words(term.term, strip_packaging=False))
            if key:
                keyed.setdefault(key, []).append(term)
            if term.cas:
                self.by_cas.setdefault(term.cas, []).append(term)
        for key, listed in keyed.items():
            self.by_first.setdefault(key[0], []).append((key, listed))
        for entries in self.by_first.values():
            entries.sort(key=lambda e: -len(e[0]))

    def find(self, text: str) -> list[tuple[Term, str]]:
        """(term, the words as written) for each phrase that names what the words are: every
        match at every position, less a controlled phrase that a longer one covers, or that an
        honest phrase covers or carries on from ("silicone sealant cartridges": sealant
        cartridges; "ammunition boxes": boxes, not ammunition)."""
        ws = words(text, strip_packaging=False)
        stems = [w.stem for w in ws]
        spans: list[tuple[int, int, Term]] = []
        for i, stem in enumerate(stems):
            for key, listed in self.by_first.get(stem, ()):
                if tuple(stems[i:i + len(key)]) == key:
                    spans += [(i, i + len(key), term) for term in listed]
        out = []
        for start, end, term in spans:
            if term.controlled:
                if any(s <= start and end <= e and e - s > end - start for s, e, t in spans):
                    continue  # inside a longer phrase, honest or controlled
                if any(not t.controlled and s > start and s < end < e for s, e, t in spans):
                    continue  # an honest phrase takes its last words on: that is what the goods are
            elif any(s <= start and end <= e and e - s > end - start and not t.controlled for s, e, t in spans):
                continue
            out.append((term, " ".join(w.surface for w in ws[start:end])))
        return out


_CAS = re.compile(r"(?<![\d-])(\d{2,7}-\d{2}-\d)(?![\d-])")
# Words that say a description is about a chemical, so that a precursor's abbreviation (BMK, PMK, MEK)
# in it means the substance.
_CHEMISTRY = re.compile(r"\b(?:powder|oil|liquid|chemical|chemicals|reagent|solvent|purity|cas|crystal|crystals|"
                        r"acid|ester|glycidate|glycidic|ketone|intermediate|intermediates|api|pharmaceutical|"
                        r"synthesis|precursor|precursors|grade)\b|\d+\s*%")
# Black powder's three components, each by its words (stems): named together, they are gunpowder.
BLACK_POWDER = (("charcoal",), ("saltpetre", "saltpeter", "nitrate", "nitre", "niter"), ("sulphur",))
CHEMICAL_CHAPTERS = frozenset({"28", "29", "30", "32", "34", "35", "38"})


def _edits(a: str, b: str, limit: int) -> int:
    """Optimal string alignment distance (Damerau-Levenshtein without repeated edits of a
    substring), or limit + 1 once it exceeds limit."""
    previous2, previous = None, list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], previous2[j - 2] + 1)
        if min(row) > limit:
            return limit + 1
        previous2, previous = previous, row
    return previous[-1]


def _grams(word: str) -> set[str]:
    padded = f"^{word}$"
    return {padded[i:i + 3] for i in range(len(padded) - 2)}


def _surfaces(ws: list[Word]) -> dict[str, str]:
    out: dict[str, str] = {}
    for w in ws:
        out.setdefault(w.stem, w.surface)
    for a, b in zip(ws, ws[1:]):
        if a.clause == b.clause:
            out.setdefault(f"{a.stem} {b.stem}", f"{a.surface} {b.surface}")
    return out


def _analyse_doc(text: str) -> list[str]:
    return features(words(text, strip_packaging=False))


def training_documents(reference: ReferenceData, lists: LegalLists, vocabulary: Iterable[Term]) -> list[_Doc]:
    """Every document the model learns from, sorted by heading: the nomenclature's headings (with
    their chapter's text) and subheadings, the vocabulary's terms, and the legal lists' names."""
    hs = reference.hs
    headings = {code for code in hs if len(code) == 4}
    docs: list[_Doc] = []
    for code, text in hs.items():
        if len(code) == 4:
            docs.append(_Doc(code, code, f"{hs_text(text)} ; {hs_text(hs.get(code[:2], ''))}", "hs"))
        elif len(code) == 6 and code[:4] in headings:
            docs.append(_Doc(code[:4], code, hs_text(text), "hs"))
    for term in vocabulary:
        # A controlled word that is ambiguous on its own ("pistol", "antique") must not vouch for itself:
        # the nomenclature and the other terms decide whether the description reads as its heading.
        if term.heading in headings and not (term.controlled and not term.alone and term.controlled != "chp"):
            docs.append(_Doc(term.heading, term.code, term.term, "vocabulary"))
    for p in lists.precursors:
        for code in p.hs:
            if code[:4] in headings:
                docs.append(_Doc(code[:4], code, " ; ".join(p.names), "precursor"))
    for c in lists.controlled:
        if c.kind not in ("cash", "cultural") and c.hs[:4] in headings and c.notes:
            docs.append(_Doc(c.hs[:4], c.hs, c.notes, "controlled"))
    for c in lists.cultural:
        if not c.origin:
            for code in c.headings:
                if code in headings:
                    docs.append(_Doc(code, code, c.description, "cultural"))
    for c in lists.cash:
        for code in dict.fromkeys(c.hs):
            if code[:4] in headings:
                docs.append(_Doc(code[:4], code, c.description, "cash"))
    for term, kind in lists.cash_terms.items():
        code = CASH_CODES.get(kind, "490700")
        docs.append(_Doc(code[:4], code, term, "cash"))
    docs.sort(key=lambda d: d.heading)
    return docs


def load_labelled(path: Path) -> list[dict]:
    """Labelled descriptions (description, heading, declared, controlled, writer, split): the
    measure of the classifier (tests/data/goods-descriptions.csv)."""
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def heading_accuracy(classifier: GoodsClassifier, rows: Iterable[dict]) -> tuple[float, float]:
    """Top-1 and top-3 accuracy: the share of descriptions whose labelled heading is the first, or
    among the first three, proposed."""
    top1 = top3 = n = 0
    for row in rows:
        proposed = [h for h, _ in classifier.propose(row["description"], 3)]
        n += 1
        top1 += proposed[:1] == [row["heading"]]
        top3 += row["heading"] in proposed
    return (top1 / n, top3 / n) if n else (0.0, 0.0)


class TrainedModel(NamedTuple):
    """What scoring needs of the fitted TF-IDF model, as plain arrays: no scikit-learn (nor SciPy) object
    survives training, so a model file holds only numbers and text and loading it runs no code."""
    names: list[str]  # the features (stems and stem pairs), by feature id
    idf: np.ndarray  # per feature (float64)
    doc_codes: list[str]  # per training document, sorted by heading: its subheading or heading (heading: 4 digits)
    postings: tuple[np.ndarray, np.ndarray, np.ndarray]  # feature -> (documents, weights): the matrix by column
    centroid_postings: tuple[np.ndarray, np.ndarray, np.ndarray]  # feature -> (headings, weights of their centroids)

    @classmethod
    def train(cls, docs: list[_Doc]) -> "TrainedModel":
        """Fitted with scikit-learn's TfidfVectorizer; each heading's centroid is the normalised sum of its
        documents (what they say together)."""
        import scipy.sparse as sp

        vectorizer, matrix = fit_tfidf(docs)
        order = sorted({d.heading for d in docs})
        ids = {h: i for i, h in enumerate(order)}
        doc_heading = np.array([ids[d.heading] for d in docs])
        member = sp.csr_matrix((np.ones(len(docs)), (doc_heading, np.arange(len(docs)))), shape=(len(order), len(docs)))
        centroids = (member @ matrix).tocsr()
        norms = np.sqrt(np.asarray(centroids.multiply(centroids).sum(axis=1)).ravel())
        centroids = sp.diags(1 / np.where(norms > 0, norms, 1)) @ centroids
        by_feature, by_feature_c = matrix.tocsc(), centroids.tocsc()
        return cls([str(n) for n in vectorizer.get_feature_names_out()], vectorizer.idf_.astype(np.float64),
                   [d.code for d in docs], (by_feature.indptr, by_feature.indices, by_feature.data),
                   (by_feature_c.indptr, by_feature_c.indices, by_feature_c.data))

    def arrays(self) -> dict[str, np.ndarray]:
        """The model as named arrays (texts as UTF-8 bytes, one item a line)."""
        return {"names": _text_array(self.names), "idf": self.idf, "doc_codes": _text_array(self.doc_codes),
                **{f"postings_{part}": a for part, a in zip(("indptr", "ids", "weights"), self.postings)},
                **{f"centroids_{part}": a for part, a in zip(("indptr", "ids", "weights"), self.centroid_postings)}}

    def save(self, path: Path, key: str) -> Path:
        """Written as a NumPy .npz under the digest of what it was trained from (`training_key`)."""
        with path.open("wb") as f:
            np.savez_compressed(f, key=_text_array([key]), format=np.array([MODEL_FORMAT]), **self.arrays())
        return path

    @classmethod
    def load(cls, path: Path, key: str) -> "TrainedModel | None":
        """The model of the file, or None when there is none, it is of another format or it was trained
        from other inputs than those `key` names (then the caller trains). Arrays only: nothing unpickled."""
        try:
            with np.load(path, allow_pickle=False) as f:
                if _text_of(f["key"]) != [key] or f["format"].tolist() != [MODEL_FORMAT]:
                    return None
                a = {name: f[name] for name in f.files}
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
            return None
        return cls(_text_of(a["names"]), a["idf"], _text_of(a["doc_codes"]),
                   (a["postings_indptr"], a["postings_ids"], a["postings_weights"]),
                   (a["centroids_indptr"], a["centroids_ids"], a["centroids_weights"]))


def fit_tfidf(docs: list[_Doc]):
    """The fitted vectorizer and the documents' TF-IDF matrix (scikit-learn: training only)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(analyzer=_analyse_doc, dtype=np.float32, **TFIDF)
    return vectorizer, vectorizer.fit_transform([d.text for d in docs])


def _text_array(lines: list[str]) -> np.ndarray:
    return np.frombuffer("\n".join(lines).encode("utf-8"), dtype=np.uint8)


def _text_of(array: np.ndarray) -> list[str]:
    return array.tobytes().decode("utf-8").split("\n")


def training_inputs(directory: Path) -> list[Path]:
    """Every file the model is made from: the bundled data it learns from, and the code that reads
    it into documents and features (this module, the legal lists' reader, the folding of accents)."""
    from . import folding, legal_lists

    return [*(directory / name for name in sorted({"hs2022.csv", VOCABULARY_FILE, *legal_lists.FILES.values()})),
            Path(__file__), Path(legal_lists.__file__), Path(folding.__file__)]


def training_key(directory: Path) -> str:
    """The sha256 of the training inputs' bytes, the model format and the vectorizer's parameters: a
    model file under another key was made from something else and is not used."""
    digest = hashlib.sha256(f"format {MODEL_FORMAT}; TfidfVectorizer {sorted(TFIDF.items())} float32\n".encode())
    for path in training_inputs(directory):
        data = path.read_bytes()
        digest.update(f"{path.name} {len(data)}\n".encode())
        digest.update(data)
    return digest.hexdigest()


def build_model_file(directory: Path) -> tuple[Path, int]:
    """Trains the model from the inputs in `directory` and writes it there (`reference build goods-classifier`):
    the file and its number of training documents."""
    from .legal_lists import LegalLists
    from .reference import ReferenceData

    docs = training_documents(ReferenceData.load(directory), LegalLists.load(directory),
                              load_vocabulary(directory / VOCABULARY_FILE))
    return TrainedModel.train(docs).save(directory / MODEL_FILE, training_key(directory)), len(docs)


@lru_cache(maxsize=2)
def bundled_goods_classifier() -> GoodsClassifier:
    """The classifier over the bundled reference data and legal lists, once per process: the shipped
    model when it is current, else trained now."""
    from .legal_lists import bundled_legal_lists
    from .reference import bundled_reference

    return GoodsClassifier.bundled(bundled_reference(), bundled_legal_lists())
