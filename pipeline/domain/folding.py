"""Accents off: what party names and goods descriptions are compared without."""
from __future__ import annotations

import unicodedata


def without_accents(text: str) -> str:
    """'Müller Ångström' -> 'Muller Angstrom': letters decomposed (NFKD) and their combining marks
    dropped; ASCII text as it is, since decomposing it changes nothing."""
    if text.isascii():
        return text
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
