"""Where the bundled schema sets and rule data live.

Installed from a wheel they sit inside the package (cargoscreen/xsd, cargoscreen/rules);
in an editable checkout they sit beside pipeline/ (the design card's top level).
"""
from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    for candidate in (_PACKAGE_DIR / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"cargoscreen data folder {name!r} not found next to {_PACKAGE_DIR}")


def schema_dir() -> Path:
    """The bundled XSD sets (one sub-folder per set)."""
    return _data_dir("xsd")


def rules_dir() -> Path:
    """The bundled rule packs and reference data."""
    return _data_dir("rules")
