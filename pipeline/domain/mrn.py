"""Movement reference numbers: 18 characters, as the EU lays them out.

    YY CC SSSSSSSSSSSS E K
    year, country of registration, 12-character sequence (base 36), 'E' (entry summary), check character

The check character is the ISO 6346 algorithm over the first 17 characters (as for EU MRNs);
python-stdnum computes it. The sequence comes from a counter in the registration store, so
MRNs are unique; the MRN is a pure function of (year, country, sequence) and back.
"""
from __future__ import annotations

import string

from stdnum import iso6346

_BASE36 = string.digits + string.ascii_uppercase
SEQUENCE_CHARS = 12
PROCEDURE = "E"


def _base36(n: int, width: int) -> str:
    out = []
    while n:
        n, r = divmod(n, 36)
        out.append(_BASE36[r])
    text = "".join(reversed(out)) or "0"
    if len(text) > width:
        raise ValueError(f"sequence {n} does not fit in {width} base-36 characters")
    return text.rjust(width, "0")


def make_mrn(year: int, country: str, sequence: int) -> str:
    body = f"{year % 100:02d}{country}{_base36(sequence, SEQUENCE_CHARS)}{PROCEDURE}"
    return body + iso6346.calc_check_digit(body)


def is_valid_mrn(mrn: str) -> bool:
    return (len(mrn) == 18 and mrn[:2].isdigit() and mrn[2:4].isalpha() and mrn[16] == PROCEDURE
            and all(c in _BASE36 for c in mrn[4:16]) and iso6346.calc_check_digit(mrn[:17]) == mrn[17])


def mrn_sequence(mrn: str) -> int:
    """The registration sequence an MRN was made from (the store's key for it)."""
    if not is_valid_mrn(mrn):
        raise ValueError(f"{mrn!r} is not a valid MRN")
    return int(mrn[4:16], 36)
