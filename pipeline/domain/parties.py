"""Who a party is, across filings, and whether a consignee is a private person. Pure functions.

    party_identity(party)        -> "id:DE123456789012345" or "name:PL:jan kowalski", or None
    natural_person(party)        -> NaturalPerson (with its reasons) or None
    natural_person_facts(record) -> the `natural-person-consignee` facts of a filing
    commercial_quantity_facts(record, goods) -> the `commercial-quantity-to-private-person` facts
    history_fact(...)            -> a `party-history` fact from what the history store answered

Party history (pipeline/party_history.py) counts filings per party: by its identification
number where the filing gives one, else by its name, normalised (case, accents, punctuation,
legal form), and its country. A private person (no identification number, a name without a
legal form or business word, an address with a flat number) receiving controlled goods or
goods of high value is a pattern of its own (a new shipper sending to a private address), so
it is a fact the rules can combine with the shipper's history.
"""
from __future__ import annotations

import csv
import re
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from .. import resources
from .descriptions import described_count
from .enrichment import NATURAL_PERSON_CONSIGNEE, PARTY_HISTORY, PRIVATE_COMMERCIAL_QUANTITY, Fact
from .folding import without_accents
from .screening import Party, ScreeningRecord

TRACKED_ROLES = ("consignor", "consignee", "notify")
COMMERCIAL_GOODS_FILE = "private-commercial-goods.csv"
# A floor for reporting goods of high value to a private person (EUR, the consignee's goods together):
# the fact carries the value, so a rule pack can demand more.
HIGH_VALUE_EUR = 1000.0
# Controlled kinds (legal_lists.is_controlled) that make a private consignee a fact. Lithium batteries
# and pyrotechnics are left out: spare batteries for phones and bikes, and consumer fireworks, are
# everyday purchases abroad (their own rules cover them).
CONTROLLED_FOR_PERSONS = frozenset({"firearm", "firearm-part", "weapon", "ammunition", "explosive", "cultural",
                                    "cash"})

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?")
_FOLD = str.maketrans({"ß": "ss", "ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th",
                       "ı": "i", "&": " and "})
# Legal forms as they are written in names, normalised the way names are (lower case, no
# punctuation, words apart): "Sp. z o.o." is "sp z o o". Multi-word forms are matched as phrases.
_LEGAL_FORMS = (
    # DE AT CH LI LU
    "gmbh", "ag", "kg", "ohg", "ug", "e k", "ek", "gbr", "kgaa", "eg", "e v", "ev", "mbh", "gesmbh",
    # FR BE LU
    "sa", "sas", "s a s", "sasu", "sarl", "s a r l", "s n c", "se", "eurl", "snc", "sci", "sca", "scs", "sprl",
    "srl", "scrl", "asbl",
    # NL BE
    "bv", "b v", "nv", "n v", "vof", "cv", "bvba", "cvba", "vzw",
    # IT ES PT
    "spa", "s p a", "s r l", "snc", "sas", "sl", "s l", "slu", "s a", "sau", "scoop", "lda", "ltda", "unipessoal",
    # PL CZ SK HU RO BG HR SI
    "sp z o o", "spolka", "sp k", "sp j", "s c", "s r o", "sro", "a s", "k s", "v o s", "kft", "zrt", "nyrt", "bt",
    "s r l", "srl", "s a", "eood", "ood", "ead", "ad", "d o o", "doo", "d d", "dd", "s p",
    # Nordics Baltics
    "ab", "hb", "kb", "as", "asa", "a s", "aps", "i s", "oy", "oyj", "ky", "ehf", "hf", "uab", "sia", "ou", "mtu",
    # IE GB GR CY MT
    "ltd", "limited", "plc", "llp", "lp", "dac", "clg", "uc", "cic", "ike", "epe", "oe", "ee", "ae", "a e",
    # elsewhere
    "inc", "incorporated", "corp", "corporation", "co", "company", "llc", "pte", "pvt", "pty", "bhd", "sdn", "jsc",
    "fze", "fzco", "fzc", "kk", "gk", "sti", "tic", "cia", "sac", "sae", "pjsc", "ojsc", "cjsc", "ooo", "tov",
)
# Words that name a business or an institution rather than a person.
_BUSINESS_WORDS = frozenset("""
    trading trade traders import imports export exports logistics logistic logistik logistique logistica shipping
    freight forwarding cargo transport transports transporte transporti spedition express courier
    international global group groupe gruppo grupo holding holdings industries industry industrie industria
    manufacturing factory fabrik works werk werke company compagnie compania compagnia firma firm enterprise
    enterprises entreprise empresa impresa services service servicios servizi dienstleistungen solutions systems
    technologies technology technik tech electronics elektronik store stores shop shops boutique market markt
    marche mercado supermarket retail wholesale grosshandel handel handels commerce commercial commerciale
    distribution distributie distribuzione vertrieb supply supplies warehouse lager magazijn magasin
    center centre centrum zentrum hospital klinik clinic clinique pharmacy apotheke pharmacie farmacia
    university universitat universite universita universidad school schule ecole scuola institute institut
    instituto istituto laboratory labor laboratoire laboratorio ministry ministerium ministere embassy
    association verein foundation stiftung fondation club hotel restaurant bank
""".split())
# First word -> the legal forms starting with it, longest first ("s a s" before "s a"). A one-letter word
# starts a form only as part of a phrase ('e k', 's a'), never alone.
_FORMS_BY_WORD: dict[str, list[tuple[str, ...]]] = {}
for _form in sorted({tuple(f.split()) for f in _LEGAL_FORMS}, key=len, reverse=True):
    if len(_form) > 1 or len(_form[0]) > 1:
        _FORMS_BY_WORD.setdefault(_form[0], []).append(_form)
_HONORIFICS = frozenset("""mr mrs ms miss dr prof herr frau fr hr m mme mlle monsieur madame sr sra srta don dona
    sig sigra signor signora pan pani dhr mevr mevrouw heer""".split())

# A flat within a building, as addresses across the EU write it (several patterns are of one country's
# custom: "1008/3" in Prague numbers a building, in Warsaw "12/5" is house 12, flat 5).
_FLAT_PATTERNS = tuple(re.compile(p, re.IGNORECASE) for p in (
    r"\b(?:apt|apartment|appartement|appartamento|appt|app|flat|unit|suite)\.?\s*(?:no\.?\s*)?\d+[a-z]?\b",
    r"\b(?:wohnung|whg|top|stiege|tür)\.?\s*\d+[a-z]?\b",  # DE AT: Whg. 5, Top 7, Stiege 2/Tür 14
    r"\b\d+[a-z]?\s*\.?\s*(?:og|etage|stock|obergeschoss)\b",  # DE: 2. OG, 3. Etage
    r"\b(?:lgh|lägenhet)\.?\s*\d{4}\b",  # SE: lgh 1102
    r"\b\d+\s*-?\s*(?:hoog|hg)\b",  # NL: 3-hoog
    r"\b(?:bte|boîte|bus)\s*\d+[a-z]?\b",  # BE: bte 12, bus 3
    r"\b\d+\s*[ºª°]\s*(?:[a-z]{1,4}\b|\d)",  # ES PT: 3º 2ª, 4º izq, 2º Esq
    r"\b(?:piso|puerta|pta|escalera)\b\.?\s*\w*",  # ES
    r"\b(?:r/c|dto|esq)\b",  # PT: R/C Dto
    r"\b(?:int|interno)\.?\s*\d+\b|\bscala\s+[a-z]\b",  # IT: int. 5, scala B
    r"\b(?:bât|bat|bâtiment|batiment|étage|etage|escalier|esc)\b\.?\s*[a-z0-9]",  # FR: bât. B, 3e étage
    r"\b(?:byt|lakás|ajtó|em|fsz)\b\.?\s*\d+",  # CZ SK: byt 12; HU: 2. em. 5, fsz. 1
    r"\b(?:ap|asunto|as|huoneisto|korter|k)\b\.\s*\d+|\bap\s+\d+",  # RO: ap. 12; FI: as. 4; EE: k. 7
    r"\b\d+\s+[a-z]\s+\d{1,3}\b",  # FI SE: Mannerheimintie 12 B 34
))
# House number and flat joined by a mark, in the countries whose custom it is.
_FLAT_BY_COUNTRY = {
    **dict.fromkeys(("PL",), re.compile(r"\b\d+[a-z]?\s*/\s*\d+[a-z]?\b|\b\d+[a-z]?\s+m\.?\s*\d+\b", re.IGNORECASE)),
    **dict.fromkeys(("LT", "LV", "EE", "BG", "UA"), re.compile(r"\b\d+[a-z]?\s*-\s*\d+\b", re.IGNORECASE)),
}
_PO_BOX = re.compile(r"\b(?:p\.?\s*o\.?\s*box|postfach|postbus|boite postale|bp|apartado|casella postale|"
                     r"skrytka pocztowa|box)\s*\d+", re.IGNORECASE)


def fold(text: str) -> str:
    """Lower case, accents and special letters folded, punctuation gone: 'Müller-Lüdenscheidt & Söhne'
    -> 'muller ludenscheidt and sohne'."""
    text = without_accents(text.casefold().translate(_FOLD))
    return " ".join(w.replace("'", "").replace("’", "") for w in _WORD.findall(text))


def _strip_forms(words: list[str]) -> tuple[list[str], list[str]]:
    """The name's words without its legal forms, and the forms found (as written, normalised)."""
    kept, found, i = [], [], 0
    while i < len(words):
        for phrase in _FORMS_BY_WORD.get(words[i], ()):
            if tuple(words[i:i + len(phrase)]) == phrase:
                found.append(" ".join(phrase))
                i += len(phrase)
                break
        else:
            kept.append(words[i])
            i += 1
    return kept, found


@lru_cache(maxsize=65536)
def normalised_name(name: str | None) -> str | None:
    """A name as party history matches it: folded, its legal forms dropped ('Golden Trading Co., Ltd.'
    and 'GOLDEN TRADING CO LTD' are one party), the rest in order."""
    if not name:
        return None
    kept, _ = _strip_forms(fold(name).split())
    return " ".join(kept) or fold(name) or None


def party_identity(party: Party) -> str | None:
    """How party history names a party: its identification number (EORI or other) where the filing gives
    one, else its normalised name and country; None for a party with neither."""
    if party.id and party.id.strip():
        return "id:" + re.sub(r"[\s.\-/]", "", party.id).upper()
    name = normalised_name(party.name)
    if not name:
        return None
    return f"name:{(party.country or '').upper()}:{name}"


class NaturalPerson(NamedTuple):
    """Why a party reads as a private person at a residential address."""

    reasons: tuple[str, ...]


@lru_cache(maxsize=65536)
def business_markers(name: str | None) -> tuple[str, ...]:
    """The legal forms and business words in a name (none for 'Anna Kowalska')."""
    if not name:
        return ()
    words = fold(name).split()
    _, forms = _strip_forms(words)
    return tuple(forms) + tuple(w for w in words if w in _BUSINESS_WORDS)


def flat_marker(street: str | None, country: str | None = None) -> str | None:
    """The part of an address that names a flat within a building ('Apt 4B', 'lgh 1102', in Poland
    '12/5'), if any."""
    if not street:
        return None
    by_country = _FLAT_BY_COUNTRY.get((country or "").upper())
    for pattern in (*_FLAT_PATTERNS, *((by_country,) if by_country else ())):
        m = pattern.search(street)
        if m:
            return m.group(0).strip()
    return None


def _person_like(name: str) -> bool:
    """Two to five words of letters (an honorific allowed), as people's names are written."""
    words = fold(name).split()
    words = [w for w in words if w not in _HONORIFICS] if len(words) > 2 else words
    return 2 <= len(words) <= 5 and all(w.isalpha() for w in words)


@lru_cache(maxsize=65536)
def natural_person(party: Party) -> NaturalPerson | None:
    """Whether a party is a private person at a residential address: no identification number, no legal
    form or business word in its name, and a person's name or a flat in its address (a post-office box
    alone says nothing). None when it reads as a business (or cannot be told)."""
    if (party.id and party.id.strip()) or not party.name:
        return None
    if business_markers(party.name):
        return None
    flat = flat_marker(party.street, party.country)
    person = _person_like(party.name)
    if not person and not flat:
        return None
    reasons = ["no identification number", f"no legal form or business word in the name {party.name!r}"]
    if person:
        reasons.append("the name reads as a person's")
    if flat:
        reasons.append(f"a flat in the address ({flat!r})")
    elif party.street and _PO_BOX.search(party.street):
        return None  # a person's name at a post-office box: the address says nothing of a home
    return NaturalPerson(tuple(reasons))


def person_kind(party: Party) -> str | None:
    """What the rules read as a party's `person`: "natural" (natural_person), "legal" (an identification
    number, a legal form or a business word), None when the name cannot tell."""
    if natural_person(party):
        return "natural"
    return "legal" if (party.id and party.id.strip()) or business_markers(party.name) else None


def _member_of(pointer: str) -> str:
    """The MRN a merged record's pointer names ('24NL...#/IE3F14/...'), '' for a filing of its own."""
    return pointer.partition("#")[0] if "#" in pointer else ""


def natural_person_facts(record: ScreeningRecord, controlled_kinds) -> tuple[Fact, ...]:
    """`natural-person-consignee` facts: a consignee that reads as a private person (natural_person)
    receiving controlled goods (controlled_kinds: HS code -> kinds, legal_lists.is_controlled) or goods
    worth HIGH_VALUE_EUR or more. A consignee receives the goods of the element it belongs to: its house
    consignment (in a filing, or in a merged consignment its own filing's), else the whole consignment."""
    facts = []
    for party in record.parties:
        if party.role != "consignee":
            continue
        person = natural_person(party)
        if person is None:
            continue
        scope = party.pointer.rpartition("/")[0] + "/" if "/" in party.pointer else ""
        goods = [g for g in record.goods if g.pointer.startswith(scope)]
        controlled = [(g, k) for g in goods if g.hs_code
                      for k in controlled_kinds(g.hs_code) if k in CONTROLLED_FOR_PERSONS]
        value = sum(g.value_eur for g in goods if g.value_eur is not None)
        if not controlled and value < HIGH_VALUE_EUR:
            continue
        what = [f"{k} goods (item {g.number}, HS {g.hs_code})" for g, k in controlled[:3]]
        if value >= HIGH_VALUE_EUR:
            what.append(f"goods worth EUR {value:,.0f}")
        facts.append(Fact(NATURAL_PERSON_CONSIGNEE, "",
                          f"consignee {party.name!r} reads as a private person ({'; '.join(person.reasons)}) "
                          f"and receives {', '.join(what)}", (),
                          {"pointer": party.pointer, "kinds": sorted({k for _, k in controlled}),
                           "value_eur": round(value, 2), "goods": [g.pointer for g, _ in controlled[:20]]}))
    return tuple(facts)


class CommercialGoods(NamedTuple):
    """Goods a private person does not receive by the ten (rules/reference/private-commercial-goods.csv)."""

    hs: str  # prefix of the declared code
    min_count: int  # articles, by the description's count, from which a line is a commercial quantity
    goods: str


def load_commercial_goods(path: Path | None = None) -> tuple[CommercialGoods, ...]:
    path = path or resources.rules_dir() / "reference" / COMMERCIAL_GOODS_FILE
    with path.open(encoding="utf-8", newline="") as f:
        rows = [CommercialGoods(r["hs"], int(r["min_count"]), r["goods"]) for r in csv.DictReader(f)]
    return tuple(sorted(rows, key=lambda g: -len(g.hs)))


@lru_cache(maxsize=1)
def bundled_commercial_goods() -> tuple[CommercialGoods, ...]:
    return load_commercial_goods()


def commercial_quantity_facts(record: ScreeningRecord, goods_list: tuple[CommercialGoods, ...]) -> tuple[Fact, ...]:
    """`commercial-quantity-to-private-person` facts: a consignee that reads as a private person receives a
    goods line of goods_list's goods whose description counts at least their minimum of articles ("iPhone
    16 Pro, 25 units", "folding knives, 40 pcs"): stock for resale or restricted arms, not a purchase for
    oneself. One fact per such line, pointing at its description."""
    facts = []
    for party in record.parties:
        if party.role != "consignee" or natural_person(party) is None:
            continue
        scope = party.pointer.rpartition("/")[0] + "/" if "/" in party.pointer else ""
        for g in record.goods:
            listed = next((c for c in goods_list if (g.hs_code or "").startswith(c.hs)), None)
            count = described_count(g.description) if listed and g.pointer.startswith(scope) else None
            if count is None or count < listed.min_count:
                continue
            facts.append(Fact(PRIVATE_COMMERCIAL_QUANTITY, "",
                              f"consignee {party.name!r} reads as a private person and receives {count} "
                              f"{listed.goods} (goods item {g.number}, HS {g.hs_code}): a commercial quantity", (),
                              {"pointer": f"{g.pointer}/Description" if g.pointer else "Description",
                               "consignee": party.pointer, "item": g.number, "declared": g.hs_code, "count": count,
                               "value_eur": g.value_eur}))
    return tuple(facts)


class Sighting(NamedTuple):
    """One tracked party of one filing, as the history store counts it: under the filer that filed it."""

    filer: str
    mrn: str
    role: str
    identity: str
    pointer: str  # the party's element in the record rules read (MRN-prefixed in a merged consignment)


class Seen(NamedTuple):
    """What the history store knew of a party before a filing: its earlier filings (by this filer), when
    it was first seen (epoch, None if never), and when this filing was counted (epoch)."""

    filings: int
    first_seen: float | None
    at: float


def sightings(record: ScreeningRecord, lead_mrn: str, filer_of: dict[str, str], lead_filer: str
              ) -> list[Sighting]:
    """The tracked parties (consignor, consignee, notify party) of a consignment's record, each under the
    filing (MRN) and filer it came from. filer_of: MRN -> filer of each member."""
    out = []
    for party in record.parties:
        if party.role not in TRACKED_ROLES:
            continue
        identity = party_identity(party)
        if identity is None:
            continue
        mrn = _member_of(party.pointer) or lead_mrn
        out.append(Sighting(filer_of.get(mrn, lead_filer), mrn, party.role, identity, party.pointer))
    return out


def history_fact(sighting: Sighting, seen: Seen) -> Fact:
    """A `party-history` fact: the party's filings by this filer before this one and how many days
    before it the party was first seen (0 for a party never seen)."""
    days = (seen.at - seen.first_seen) / 86400 if seen.first_seen is not None else 0.0
    detail = (f"{sighting.role} first seen {days:.0f} days before this filing, in {seen.filings} earlier "
              f"filing{'' if seen.filings == 1 else 's'} of filer {sighting.filer}"
              if seen.filings else f"{sighting.role} never seen before in filer {sighting.filer}'s filings")
    return Fact(PARTY_HISTORY, "", detail, (),
                {"pointer": sighting.pointer, "role": sighting.role, "filings": seen.filings,
                 "first_seen_days": round(max(days, 0.0), 3), "identity": sighting.identity})

