"""CSV for people: every CSV cargoscreen writes for someone to open (audit exports, rule reports)
goes through these writers, so no cell can run as a spreadsheet formula (CSV injection).

Text that a spreadsheet would read as a formula or a command (it starts with =, +, -, @, a tab
or a carriage return) gets a leading apostrophe, as OWASP advises: the cell shows the text, and
the apostrophe says it was changed. Numbers are left alone, also as text ("-3", "1e-5"): a
spreadsheet reads them as numbers, not formulas. The product's own data files (reference data
read back by the validator) are not for spreadsheets and keep their values as they are.
"""
from __future__ import annotations

import csv
import re
from typing import Any, Iterable

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


class Writer:
    """csv.writer with every cell neutralised."""

    def __init__(self, f, **options):
        self._writer = csv.writer(f, **options)

    def writerow(self, row: Iterable) -> None:
        self._writer.writerow([cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable]) -> None:
        for row in rows:
            self.writerow(row)


class DictWriter(csv.DictWriter):
    """csv.DictWriter with every cell neutralised (the header is the caller's own field names)."""

    def writerow(self, rowdict: dict):
        return super().writerow({k: cell(v) for k, v in rowdict.items()})

    def writerows(self, rowdicts: Iterable[dict]) -> None:
        for row in rowdicts:
            self.writerow(row)
