"""The customs office of first entry: whether the declared one can be one, and whether it fits the route.

The filer declares the office, and the office names the member state whose risk centre assesses
the consignment. Only pattern-checked, it let a filer send its referrals to a queue no analyst
works (ZZ123456, US123456). Judged against the EU Customs Office List (rules/reference/
customs-offices.csv) instead:
  - an office outside the member states and Northern Ireland cannot be an office of first entry:
    the data-quality pack refuses the filing (`outside_eu`);
  - an office of a member state that the list does not know as an office of entry (absent, or
    listed without the entry role) is accepted with a warning: lists lag behind new offices, and a
    typo must not stop trade (`not_of_entry`);
  - a listed office of entry in a country that is neither the country of unloading nor on the
    declared route does not fit the journey. A country on the route does: a ship's first EU port
    of call before it unloads elsewhere, a road or rail border crossing on the way inland.
The last two go to the default risk centre, with a fact that says why (`enrichment.office_facts`).
"""
from __future__ import annotations

import pycountry

from .reference import ENTRY_OFFICE_COUNTRIES, ReferenceData

# Country codes of places and itineraries (ISO 3166) for an office's country where they differ:
# Northern Ireland's offices are XI, its ports GB (GBBEL).
PLACE_COUNTRY = {"XI": "GB"}


def _country_name(code: str) -> str:
    country = pycountry.countries.get(alpha_2=code)
    return country.name if country else code


def outside_eu(code: str, ref: ReferenceData) -> str | None:
    """Why `code` cannot be an office of first entry (its country is not the EU's), or None."""
    country = code[:2]
    if country in ENTRY_OFFICE_COUNTRIES:
        return None
    office = ref.customs_offices.get(code)
    if office is not None:
        return f"it is {office.name}, an office in {_country_name(country)}, outside the EU"
    if country in ref.countries:
        return f"{country} ({_country_name(country)}) is not a member state of the EU"
    return f"{country} is not a country code"


def not_of_entry(code: str, ref: ReferenceData) -> str | None:
    """Why an office of a member state is not a known office of entry, or None (also for offices
    outside the EU: `outside_eu` reports those)."""
    if code[:2] not in ENTRY_OFFICE_COUNTRIES:
        return None
    office = ref.customs_offices.get(code)
    if office is None:
        return f"not in the Customs Office List ({ref.edition('customs-offices.csv')})"
    if not office.of_entry:
        return f"{office.name} is in the Customs Office List, but not as an office of entry"
    return None
