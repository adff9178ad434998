"""Validation of one submission, as a plain function of bytes: no Beam, no Redis.

    validator = FilingValidator(settings)
    outcome = validator.validate(Submission("msg-1", xml_bytes))

Order: the envelope (size, DTD, XInclude, well-formedness, encoding, depth), the message
type (root element looked up in the schema registry), the XSD (lxml, fast path), then the
data-quality pack for our ENS namespace. A rejected message gets every error found, each
with its location, the constraint and a sentence a clerk can act on. The data-quality rules
run on XSD-invalid messages too, so one answer names every problem.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from lxml import etree

from .config import Settings
from .domain.answers import FilingError
from .domain.dataquality import DataQualityPack
from .domain.filings import BY_ROOT, ENS_NS, INVALIDATION_ROOT
from .domain.frozen import fast_init
from .domain.reference import ReferenceData, bundled_reference
from .domain.one_pass import COMPILED, check_and_read, header
from .domain.screening import DataQualityWarning, ScreeningRecord, changed, screening_record
from .safexml import RejectedXml, SafeXmlParser, element_pointer
from .schemas import SchemaRegistry, SchemaViolation


def utc_iso(moment: datetime) -> str:
    """The one date-time format of our messages and records: ISO 8601, UTC, microseconds, Z.
    isoformat, not strftime: every submission gets one, and strftime costs 10 µs."""
    if moment.tzinfo is not timezone.utc:
        moment = moment.astimezone(timezone.utc)
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def utc_now() -> str:
    return utc_iso(datetime.now(timezone.utc))


@dataclass(frozen=True)
class Submission:
    """What a channel delivers: the bytes, and what the channel itself knows about them."""

    submission_id: str
    payload: bytes
    received_at: str = field(default_factory=utc_now)
    channel_filer: str | None = None  # the authenticated sender, where the channel has one


@dataclass(frozen=True)
class FilingSummary:
    """The header facts every later step needs, read once from a message that parsed."""

    message_type: str  # root element's local name, e.g. IE3F10
    namespace: str | None
    filing_code: str | None  # F10, A10 (amendment of F10), Q04 (invalidation); None for other message sets
    mode: str | None
    level: str | None
    lrn: str | None
    declarant: str | None
    representative: str | None
    office_of_first_entry: str | None
    referenced_mrn: str | None  # the MRN an amendment or invalidation is about
    digest: str  # content hash: tells a re-sent filing from a different one under the same LRN

    @property
    def filer(self) -> str | None:
        """Who files, and so who gets the answers: the representative if there is one."""
        return self.representative or self.declarant


@dataclass(frozen=True)
class ValidationOutcome:
    submission: Submission
    summary: FilingSummary | None
    errors: tuple[FilingError, ...]
    # Data-quality warnings: the filing is accepted with them (they reach the filer's answer and,
    # through the record, the analyst).
    warnings: tuple[FilingError, ...] = ()
    # What an accepted ENS filing (or amendment) declares, as the risk rules see it; read while
    # the tree is at hand, so no later step parses the filing again.
    record: ScreeningRecord | None = None

    @property
    def accepted(self) -> bool:
        return not self.errors

    @property
    def filer(self) -> str | None:
        return self.submission.channel_filer or (self.summary.filer if self.summary else None)


# As every filing makes them (frozen.py)
_new_summary, _new_outcome = fast_init(FilingSummary), fast_init(ValidationOutcome)

_WORDS = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def humanize(name: str) -> str:
    """ContainerId -> 'container id', HSCode -> 'HS code', TotalGrossMass -> 'total gross mass'."""
    words = " or ".join(_WORDS.sub(" ", part) for part in name.split(" or ")).split()
    return " ".join(w if w.isupper() and len(w) > 1 else w.lower() for w in words) or "message"


def _word_xsd(v: SchemaViolation, ens: bool = True) -> str:
    """One sentence for a clerk, from the facts the schema registry found. Our ENS set's names
    read as words (GrossMass: 'gross mass'); another set's are named as its schema writes them."""
    name = humanize if ens else (lambda n: n)
    label = name(v.element)
    label = label[0].upper() + label[1:] if ens else label
    expected = f" Expected: {v.expected}." if v.expected else ""
    shown = f"'{v.value}'" if v.value else "(empty)"
    if v.code == "XSD_MISSING":
        where = f" in {name(v.pointer.rstrip('/').split('/')[-1].split('[')[0])}" if " or " in v.element else ""
        before = f" {v.expected}" if v.expected and v.expected.startswith("before ") else ""
        return f"{label} is missing{where}{before}; {'one of them' if ' or ' in v.element else 'it'} is required here."
    if v.code == "XSD_UNEXPECTED":
        return f"{label} is not allowed here.{expected}"
    if not v.value and v.code in ("XSD_FORMAT", "XSD_CODE", "XSD_RANGE"):
        return f"{label} is empty; a value is required.{expected}"
    if v.code == "XSD_FORMAT":
        return f"{label} {shown} does not have the required format.{expected}"
    if v.code == "XSD_LENGTH":
        return f"{label} is {v.detail} characters long; {v.expected or v.constraint} are allowed."
    if v.code == "XSD_CODE":
        return f"{label} {shown} is not an allowed code.{expected}"
    if v.code == "XSD_RANGE":
        return f"{label} {shown} is out of range ({v.constraint}).{expected}"
    return f"{label}: {v.detail}"


class FilingValidator:
    """Validates submissions; build one per worker (schemas and parsers are not picklable).
    answers_only=True: what the filer's answer needs and no more (the command line's `validate`):
    no screening record, and no content digest (summary.digest is "": nothing is registered)."""

    def __init__(self, settings: Settings, reference: ReferenceData | None = None, answers_only: bool = False):
        self.settings = settings
        self.answers_only = answers_only
        self.parser = SafeXmlParser(settings.limits)
        self.registry = SchemaRegistry.from_dirs(settings.schema_dirs)
        self.data_quality = DataQualityPack.load(settings.data_quality_pack, reference or bundled_reference())
        self.compiled_walk = settings.compiled_walk and COMPILED

    def validate(self, submission: Submission) -> ValidationOutcome:
        try:
            tree = self.parser.parse(submission.payload)
        except RejectedXml as exc:
            p = exc.problem
            return ValidationOutcome(submission, None, (FilingError(
                p.code, "/", "well-formed, safe XML within limits", p.reason, p.line),))
        root = tree.getroot()
        qname = etree.QName(root)
        summary = self._summary(root, qname, submission.payload)
        schema = self.registry.lookup(qname.namespace, qname.localname)
        if schema is None:
            return ValidationOutcome(submission, summary, (FilingError(
                "UNKNOWN_MESSAGE", element_pointer(root), "a known message type",
                f"Message type {qname.localname!r} in namespace {qname.namespace or '(none)'} is not one this "
                f"service accepts.", root.sourceline),))
        ens = qname.namespace == self.data_quality.namespace
        errors = [FilingError(v.code, v.pointer, v.constraint, _word_xsd(v, ens), v.line, v.value)
                  for v in schema.violations(tree)]
        warnings, record = [], None
        # An ENS filing the schema accepted, whose record is wanted
        code = summary.filing_code if summary.mode and not errors and not self.answers_only else None
        if not ens and code:  # a data-quality pack for another namespace: the record without it
            record = screening_record(root, code)
        elif ens:  # data quality, and the record of a filing the schema accepted, from one walk over the tree
            findings, record = check_and_read(self.data_quality, root, code, self.compiled_walk)
            for rule, finding in findings:
                (warnings if rule.is_warning else errors).append(FilingError(
                    rule.id, element_pointer(finding.element), rule.title, rule.describe(finding),
                    finding.element.sourceline, finding.value))
        if errors or record is None:
            errors.sort(key=lambda e: e.line or 0)  # stable: document order within a line
            return _new_outcome({"submission": submission, "summary": summary, "errors": tuple(errors),
                                 "warnings": tuple(warnings)})
        if warnings:
            record = changed(record, warnings=tuple(
                DataQualityWarning(w.code, w.pointer, w.value or "", w.reason) for w in warnings))
        return _new_outcome({"submission": submission, "summary": summary, "errors": (),
                             "warnings": tuple(warnings), "record": record})

    def _summary(self, root, qname: etree.QName, payload: bytes) -> FilingSummary:
        digest = "" if self.answers_only else hashlib.blake2b(payload, digest_size=16).hexdigest()
        if qname.namespace != ENS_NS:
            return FilingSummary(qname.localname, qname.namespace, None, None, None, None, None, None, None, None, digest)
        lrn, office, amended, declarant, representative, invalidated = header(root, self.compiled_walk)
        kind, amendment = BY_ROOT.get(qname.localname, (None, False))
        if kind is not None:
            code = ("A" + kind.code[1:]) if amendment else kind.code
        else:
            code = "Q04" if qname.localname == INVALIDATION_ROOT else None
        return _new_summary({
            "message_type": qname.localname, "namespace": qname.namespace, "filing_code": code,
            "mode": kind.mode if kind else None, "level": kind.level if kind else None,
            "lrn": lrn, "declarant": declarant, "representative": representative,
            "office_of_first_entry": office, "referenced_mrn": amended or invalidated, "digest": digest})
