"""Check digits of container and ship numbers on a filing's hot path, answered by table look-ups.

python-stdnum stays the authority (`stdnum.iso6346`, `stdnum.imo`): these answer only the plain
shape (ISO 6346: four capital letters and seven digits; IMO: seven digits) and say None for
anything else, which the caller gives to stdnum; a test holds them equal to stdnum. Why they
exist: stdnum tidies and re-checks its input first and costs 4-10 µs a call inside the
validation walk, where every filing brings container and vessel numbers not seen before.
"""
from __future__ import annotations

from operator import mul

# ISO 6346: letters take the values 10..38 skipping multiples of 11 (stdnum's alphabet)
_ISO6346 = {c: v for v, c in enumerate("0123456789A BCDEFGHIJK LMNOPQRSTU VWXYZ") if c != " "}
_WEIGHTS = tuple(2 ** i for i in range(10))


def iso6346_digit_ok(container: str) -> bool | None:
    """Whether an 11-character container number in plain capitals and digits carries its check
    digit (stdnum's calc_check_digit; the category letter is not checked); None when it is not of
    that shape (stdnum's to judge)."""
    if len(container) != 11 or not container[4:].isdigit() or not container[:4].isalpha() \
            or not container[:4].isupper() or not container.isascii():
        return None
    return sum(map(mul, map(_ISO6346.__getitem__, container[:10]), _WEIGHTS)) % 11 % 10 == int(container[10])


_MRN_WEIGHTS = tuple(2 ** i for i in range(17))


def mrn_check_character(body: str) -> str | None:
    """The check character of an MRN's first 17 characters (stdnum's iso6346.calc_check_digit over
    them), or None when one is not a plain capital or digit (stdnum's to judge). Every registration
    makes an MRN: stdnum took 10 µs of it."""
    if len(body) != 17 or not body.isascii():
        return None
    try:
        return str(sum(map(mul, map(_ISO6346.__getitem__, body), _MRN_WEIGHTS)) % 11 % 10)
    except KeyError:
        return None


def imo_digit_ok(number: str) -> bool | None:
    """Whether a seven-digit IMO ship number carries its check digit; None when it is not seven
    ASCII digits."""
    if len(number) != 7 or not number.isdigit() or not number.isascii():
        return None
    return sum(map(mul, map(int, number[:6]), (7, 6, 5, 4, 3, 2))) % 10 == int(number[6])
