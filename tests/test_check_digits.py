"""The hot path's check digits agree with python-stdnum, the authority, wherever they answer."""
import random
import string

from stdnum import imo, iso6346

from cargoscreen.domain.check_digits import imo_digit_ok, iso6346_digit_ok, mrn_check_character
from cargoscreen.domain.dataquality import VALUE_CHECKS


def _containers(rng: random.Random, n: int):
    for _ in range(n):
        body = "".join(rng.choices(string.ascii_uppercase, k=4)) + "".join(rng.choices(string.digits, k=6))
        yield body + iso6346.calc_check_digit(body)  # valid
        yield body + rng.choice(string.digits)  # valid one time in ten
    odd = string.ascii_letters + string.digits + " -/é٣"
    for _ in range(n):
        yield "".join(rng.choices(odd, k=rng.choice((10, 11, 12))))


def test_iso6346_agrees_with_stdnum_or_defers():
    """The check digit only: the category letter (U, J, Z, R) is the schema's pattern's to check."""
    rng = random.Random(6346)
    answered = 0
    for number in _containers(rng, 5_000):
        ours = iso6346_digit_ok(number)
        if ours is not None:
            answered += 1
            assert ours == (iso6346.calc_check_digit(number[:10]) == number[10]), number
    assert answered >= 10_000


def test_mrn_check_character_agrees_with_stdnum_or_defers():
    rng = random.Random(17)
    plain, odd = string.digits + string.ascii_uppercase, string.ascii_letters + string.digits + " -é٣"
    answered = 0
    for n in range(20_000):
        body = "".join(rng.choices(plain if n % 4 else odd, k=17 if n % 7 else rng.choice((16, 17, 18))))
        ours = mrn_check_character(body)
        if ours is not None:
            answered += 1
            assert ours == iso6346.calc_check_digit(body), body
    assert answered >= 13_000


def test_imo_agrees_with_stdnum_or_defers():
    rng = random.Random(7)
    answered = 0
    for _ in range(10_000):
        number = "".join(rng.choices(string.digits, k=7)) if rng.random() < 0.9 else \
            "".join(rng.choices(string.digits + " I٣", k=rng.choice((6, 7, 8))))
        ours = imo_digit_ok(number)
        if ours is not None:
            answered += 1
            assert ours == imo.is_valid(number), number
    assert answered >= 8_500
    assert imo_digit_ok("9074729") is True and imo_digit_ok("9074728") is False


def test_value_checks_answer_as_stdnum_alone_would():
    """The data-quality checks give the same findings with the fast path in front of stdnum."""
    def stdnum_iso(value):
        if len(value) != 11:
            return None
        try:
            expected = iso6346.calc_check_digit(value[:10])
        except Exception:
            return None
        return None if expected == value[10] else (expected, "")

    def stdnum_imo(value):
        if len(value) == 7 and value.isdigit() and not imo.is_valid(value):
            return imo.calc_check_digit(value[:6]), ""
        return None

    rng = random.Random(11)
    for number in _containers(rng, 3_000):
        assert VALUE_CHECKS["iso6346-check-digit"](number, None, None) == stdnum_iso(number), number
    for _ in range(6_000):
        number = "".join(rng.choices(string.digits + "٣", k=rng.choice((6, 7, 7, 7, 8))))
        assert VALUE_CHECKS["imo-check-digit"](number, None, None) == stdnum_imo(number), number
