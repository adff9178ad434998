"""Movement reference numbers: 18 characters, as the EU lays them out.

    YY CC SSSSSSSSSSSS E K
    year, country of registration, 12-character sequence (base 36), 'E' (entry summary), check character

The check character is the ISO 6346 algorithm over the first 17 characters (as for EU MRNs);
python-stdnum computes it. The MRN is a pure function of (year, country, sequence) and back.

The sequence says where the registration store keeps the filing (registration.py), so that an
amendment or invalidation quoting the MRN finds it on any node of a Redis Cluster: its bucket (the
store's partition, from the filer and LRN), the period it was registered in (modulo PERIODS) and
the sub-bucket of that period's hashes, and the bucket's own counter, which makes MRNs unique.
"""
from __future__ import annotations

import string

from stdnum import iso6346

from .check_digits import mrn_check_character

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


BUCKET_BITS, PERIOD_BITS, SUB_BITS, COUNTER_BITS = 7, 6, 14, 35  # 62 bits: 36 ** 12 > 2 ** 62
BUCKETS, PERIODS, SUBS = 1 << BUCKET_BITS, 1 << PERIOD_BITS, 1 << SUB_BITS


def pack_sequence(counter: int, sub: int, period: int, bucket: int) -> int:
    """The sequence of the `counter`-th registration of `bucket`, kept in sub-bucket `sub` of `period`."""
    if not (0 <= counter < 1 << COUNTER_BITS and 0 <= sub < SUBS and 0 <= bucket < BUCKETS):
        raise ValueError(f"registration {counter} of bucket {bucket} (sub-bucket {sub}) does not fit in an MRN")
    return (((counter << SUB_BITS | sub) << PERIOD_BITS | period % PERIODS) << BUCKET_BITS) | bucket


def unpack_sequence(sequence: int) -> tuple[int, int, int, int]:
    """(counter, sub-bucket, period modulo PERIODS, bucket) of a sequence made by pack_sequence."""
    bucket = sequence & (BUCKETS - 1)
    sequence >>= BUCKET_BITS
    period = sequence & (PERIODS - 1)
    sequence >>= PERIOD_BITS
    return sequence >> SUB_BITS, sequence & (SUBS - 1), period, bucket


def make_mrn(year: int, country: str, sequence: int) -> str:
    body = f"{year % 100:02d}{country}{_base36(sequence, SEQUENCE_CHARS)}{PROCEDURE}"
    return body + check_character(body)


def check_character(body: str) -> str:
    return mrn_check_character(body) or iso6346.calc_check_digit(body)


def is_valid_mrn(mrn: str) -> bool:
    return (len(mrn) == 18 and mrn[:2].isdigit() and mrn[2:4].isalpha() and mrn[16] == PROCEDURE
            and all(c in _BASE36 for c in mrn[4:16]) and check_character(mrn[:17]) == mrn[17])


def mrn_sequence(mrn: str) -> int:
    """The registration sequence an MRN was made from (where the store keeps it: unpack_sequence)."""
    if not is_valid_mrn(mrn):
        raise ValueError(f"{mrn!r} is not a valid MRN")
    return int(mrn[4:16], 36)
