"""Data quality and the screening record from one walk over an ENS filing's tree.

The validation stage needs both from every filing: the data-quality pack's findings and,
for a filing the schema accepted, the record the risk rules read. With the compiled walk
(_onepass.pyx, built at install when Cython and a C compiler are there) both come from one
pass over libxml2's nodes in C, with no Python object per element; without it, from the
pure-Python reference, DataQualityPack.check and then screening_record. The two give the
same findings and records (tests/test_one_pass.py, on generated filings of every kind).
"""
from __future__ import annotations

from lxml import etree

from .dataquality import DataQualityPack, DataQualityRule, Finding, in_document_order
from .filings import ENS_NS, INVALIDATION_ROOT
from .screening import ScreeningRecord, screening_record

try:
    from . import _onepass
except (ImportError, ValueError):  # not built (no compiler at install), or built against an lxml of another shape
    _onepass = None

COMPILED = _onepass is not None


def header(root: etree._Element, compiled: bool = COMPILED) -> tuple[str | None, ...]:
    """(lrn, office of first entry, amended MRN, declarant id, representative id, invalidated MRN) of
    an ENS filing, read from its header (and an invalidation's MRN): in C with the walk, else by lxml."""
    if compiled:
        return _onepass.header(root, ENS_NS)
    h: dict[str, str | None] = dict.fromkeys((*_HEADER_FIELDS.values(), "invalidated"))
    first = root[0] if len(root) else None
    for child in first if first is not None and first.tag == _HEADER_TAG else ():
        name = _HEADER_FIELDS.get(child.tag)
        if name in ("declarant", "representative"):
            h[name] = next((c.text for c in child.iterchildren(_ID_TAG)), None)
        elif name:
            h[name] = child.text
    if etree.QName(root).localname == INVALIDATION_ROOT:
        h["invalidated"] = root.findtext(f"{{{ENS_NS}}}MRN")
    return h["lrn"], h["office"], h["amended"], h["declarant"], h["representative"], h["invalidated"]


# Header element -> what header() calls it.
_HEADER_FIELDS = {f"{{{ENS_NS}}}{name}": field_name for name, field_name in (
    ("LRN", "lrn"), ("CustomsOfficeOfFirstEntry", "office"), ("AmendedMRN", "amended"),
    ("Declarant", "declarant"), ("Representative", "representative"))}
_HEADER_TAG = f"{{{ENS_NS}}}Header"
_ID_TAG = f"{{{ENS_NS}}}IdentificationNumber"


def check_and_read(pack: DataQualityPack, root: etree._Element, filing_code: str | None,
                   compiled: bool = COMPILED) -> tuple[list[tuple[DataQualityRule, Finding]], ScreeningRecord | None]:
    """(findings, record): the pack's findings in document order, and with a filing_code (an ENS
    filing valid against the schema: F10..F51, A10..A51) its screening record, unless one of the
    findings is an error (a rejected filing has no record)."""
    if compiled:
        if pack.walk_plan is None:
            pack.walk_plan = _onepass.WalkPlan(pack.namespace, *pack.walk_tables())
        top = f"/{etree.QName(root).localname}" if filing_code else None
        findings, walked = _onepass.walk(root, pack.walk_plan, top)
        findings = in_document_order(findings)
        accepted = walked is not None and all(rule.is_warning for rule, _ in findings)
        return findings, walked.record(filing_code) if accepted else None
    findings = pack.check(root)
    accepted = filing_code is not None and all(rule.is_warning for rule, _ in findings)
    return findings, screening_record(root, filing_code) if accepted else None
