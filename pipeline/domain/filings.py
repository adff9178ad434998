"""The catalogue of ENS filing kinds: one row per specific-circumstance code.

This table is the single source for which filings exist, their mode and level, and which
body (XSD model group in ens-components.xsd) they carry. The schema's root elements follow
it (a test keeps the two in step), and so do the generator and the extraction.
The split of codes within a family is our model of the regime (see ICS2-NOTES.md).
"""
from __future__ import annotations

from dataclasses import dataclass

ENS_NS = "urn:cargoscreen:ics2:ens:v1"
ANSWERS_NS = "urn:cargoscreen:ics2:answers:v1"
TYPES_NS = "urn:cargoscreen:ics2:types:v1"

# Levels: what a filing of the kind carries.
STRAIGHT = "straight"  # one transport document, goods at master level
MASTER = "master"  # master level with all its houses (complete dataset)
PARTIAL_MASTER = "partial-master"  # master level only; houses filed separately
HOUSE = "house"  # house level, quoting its master transport document
PRE_LOADING = "pre-loading"  # air pre-loading minimum dataset (7+1)
POSTAL_MASTER = "postal-master"  # postal master level with receptacles

MODES = ("sea", "air", "express", "postal", "road", "rail")


@dataclass(frozen=True)
class FilingKind:
    code: str
    mode: str
    level: str
    body: str
    title: str

    @property
    def root(self) -> str:
        return "IE3" + self.code

    @property
    def amendment_root(self) -> str:
        return "IE3A" + self.code[1:]


FILING_KINDS: tuple[FilingKind, ...] = (
    FilingKind("F10", "sea", STRAIGHT, "StraightBodySea", "Sea, complete dataset, straight bill of lading"),
    FilingKind("F11", "sea", MASTER, "MasterBodySea", "Sea, complete dataset, master and house bills"),
    FilingKind("F12", "sea", PARTIAL_MASTER, "PartialMasterBodySea", "Sea, partial, master level (carrier)"),
    FilingKind("F13", "sea", PARTIAL_MASTER, "PartialMasterBodySea", "Sea, partial, straight bill (carrier)"),
    FilingKind("F14", "sea", HOUSE, "HouseBodySea", "Sea, partial, straight bill goods data"),
    FilingKind("F15", "sea", HOUSE, "HouseBodySea", "Sea, house level, complete (forwarder)"),
    FilingKind("F16", "sea", HOUSE, "HouseBodySea", "Sea, house level, partial (forwarder)"),
    FilingKind("F17", "sea", HOUSE, "HouseBodySea", "Sea, house level, for a master filed by another party"),
    FilingKind("F20", "air", PRE_LOADING, "PreLoadingBodyAir", "Air cargo, pre-loading minimum dataset (7+1)"),
    FilingKind("F21", "air", MASTER, "MasterBodyAir", "Air cargo, complete dataset, master and house waybills"),
    FilingKind("F22", "air", STRAIGHT, "StraightBodyAir", "Air cargo, complete dataset, direct air waybill"),
    FilingKind("F23", "air", PARTIAL_MASTER, "PartialMasterBodyAir", "Air cargo, partial, master level (carrier)"),
    FilingKind("F24", "air", HOUSE, "HouseBodyAir", "Air cargo, house level (forwarder)"),
    FilingKind("F30", "express", MASTER, "MasterBodyAir", "Express, complete dataset, master and house"),
    FilingKind("F31", "express", HOUSE, "HouseBodyAir", "Express, house level"),
    FilingKind("F32", "express", PRE_LOADING, "PreLoadingBodyAir", "Express, pre-loading minimum dataset"),
    FilingKind("F42", "postal", POSTAL_MASTER, "MasterBodyPostal", "Postal, master level with receptacles"),
    FilingKind("F43", "postal", HOUSE, "HouseBodyPostal", "Postal, house (item) level"),
    FilingKind("F45", "postal", PRE_LOADING, "PreLoadingBodyPostal", "Postal, pre-loading minimum dataset"),
    FilingKind("F50", "road", STRAIGHT, "StraightBodyRoad", "Road, complete dataset"),
    FilingKind("F51", "rail", STRAIGHT, "StraightBodyRail", "Rail, complete dataset"),
)

BY_CODE: dict[str, FilingKind] = {k.code: k for k in FILING_KINDS}
BY_ROOT: dict[str, tuple[FilingKind, bool]] = {
    **{k.root: (k, False) for k in FILING_KINDS},
    **{k.amendment_root: (k, True) for k in FILING_KINDS},
}
INVALIDATION_ROOT = "IE3Q04"
