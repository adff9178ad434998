"""The answers cargoscreen emits, built as XML of the answers schema (xsd/ics2-v1/answers.xsd).

Pure functions: facts in, an Answer (message type, recipient, XML bytes) out. A test
validates every builder's output against the schema. Each builder writes its XML itself
(XmlText); `tree=LxmlTree` builds it with lxml instead, the reference it is tested against.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from lxml import etree

from .filings import ANSWERS_NS

NSMAP = {None: ANSWERS_NS}
MAX_ORIGINAL_VALUE = 512
MAX_TEXT = 512  # the schema's Text512: a question, a result's text
MAX_REQUESTS = 99  # InformationRequested per IE3Q02
# What XML cannot carry (lxml refuses it: the answer would fail, the filing be dead-lettered), and the
# other control characters: a text from a rule or a form is refused with them where it is written
# (text_problem), and an answer replaces them where it is built. Tab, CR and LF are whitespace to the
# schema's token type, which collapses them.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_SPACES = re.compile("[ \t\n\r]+")


def text_problem(text: str, limit: int = MAX_TEXT) -> str | None:
    """Why `text` cannot be a text of an answer (Text512 and the like), or None if it can."""
    bad = _CONTROL.search(text)
    if bad:
        return f"holds a control character (U+{ord(bad.group()):04X}) at character {bad.start() + 1}"
    collapsed = _SPACES.sub(" ", text).strip(" ")
    if not collapsed:
        return "is empty"
    if len(collapsed) > limit:
        return f"is longer than {limit} characters"
    return None


def _fit(text: str, limit: int = MAX_TEXT) -> str:
    """A text made fit for the schema's token types, whatever it holds (U+FFFD for a control character)."""
    return _SPACES.sub(" ", _CONTROL.sub("\ufffd", text)).strip(" ")[:limit] or "\ufffd"


@dataclass(frozen=True)
class Answer:
    message_type: str  # IE3R01, IE3N99, ...
    submission_id: str
    recipient: str | None  # the filer's EORI; None only for an unreadable submission
    xml: bytes
    lrn: str | None = None
    mrn: str | None = None
    # What it answers: the content digest of the submission, or the consignment state assessed.
    # With the type, recipient, LRN and MRN it names the answer: one answer per name is sent.
    about: str = ""


def about(answer: Answer, subject: str) -> Answer:
    """The answer naming what it answers (Answer.about): dataclasses.replace at a third of its cost."""
    return Answer(answer.message_type, answer.submission_id, answer.recipient, answer.xml, answer.lrn, answer.mrn,
                  subject)


@dataclass(frozen=True)
class FilingError:
    """One error in a submission, located: what the filer reads in IE3N99 and IE3N01."""

    code: str
    pointer: str
    constraint: str
    reason: str
    line: int | None = None
    value: str | None = None


@dataclass(frozen=True)
class RiskResult:
    """One rule that fired, as the referral messages carry it."""

    risk_area: str
    risk_level: str
    criterion_id: str
    rule_pack_version: str
    text: str
    pointers: tuple[str, ...] = ()


class XmlText:
    """An element of an answer, written out as lxml writes it (`LxmlTree`, the reference: a test holds
    the two to the same bytes) for a fraction of lxml's cost: an answer is a dozen short elements,
    and building and serialising lxml's tree was a fifth of a filing's scoring step. An element
    with text is written at once (the builders give text only to elements without children)."""

    __slots__ = ("tag", "parts")

    def __init__(self, tag: str):
        self.tag, self.parts = tag, []  # the children: written (str) or still open (XmlText)

    def add(self, tag: str, text: str | None = None) -> "XmlText | None":
        if text is None:
            child = XmlText(tag)
            self.parts.append(child)
            return child
        if "&" in text or "<" in text or ">" in text or "\r" in text:
            text = _escaped(text)
        self.parts.append(f"<{tag}>{text}</{tag}>")
        return None

    def serialised(self) -> bytes:  # the root: every answer has its header
        xml = f'{_DECLARATION}<{self.tag} xmlns="{ANSWERS_NS}">{self._inner()}</{self.tag}>'
        if _CONTROL.search(xml):  # a character for a character: the same as in each text apart
            xml = _CONTROL.sub("\ufffd", xml)
        return xml.encode()

    def _written(self) -> str:
        return f"<{self.tag}>{self._inner()}</{self.tag}>" if self.parts else f"<{self.tag}/>"

    def _inner(self) -> str:
        return "".join(p if p.__class__ is str else p._written() for p in self.parts)


_DECLARATION = "<?xml version='1.0' encoding='UTF-8'?>\n"


def _escaped(text: str) -> str:
    """Character data as libxml2 writes it in UTF-8: markup characters and CR as references."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


class LxmlTree:
    """The reference: the same answer as an lxml tree, serialised by lxml (what answers were built with
    until XmlText; tests compare the two)."""

    __slots__ = ("element",)

    def __init__(self, tag: str, text: str | None = None, parent=None):
        qname = f"{{{ANSWERS_NS}}}{tag}"
        self.element = etree.Element(qname, nsmap=NSMAP) if parent is None else etree.SubElement(parent, qname)
        if text is not None:
            self.element.text = _CONTROL.sub("\ufffd", text) if _CONTROL.search(text) else text

    @property
    def tag(self) -> str:
        return etree.QName(self.element).localname

    def add(self, tag: str, text: str | None = None) -> "LxmlTree":
        return LxmlTree(tag, text, self.element)

    def serialised(self) -> bytes:
        return etree.tostring(self.element, xml_declaration=True, encoding="UTF-8")


def _sub(parent, tag, text=None):
    """A child of `parent`; a character XML cannot carry in its text becomes U+FFFD (never a dead letter for it)."""
    return parent.add(tag, text if text is None or text.__class__ is str else str(text))


def _start(message_type: str, submission_id: str, recipient: str | None, lrn: str | None, mrn: str | None,
           now: str, tree=XmlText):
    root = tree(message_type)
    h = _sub(root, "Header")
    _sub(h, "MessageId", os.urandom(16).hex())  # random, as uuid4's hex was
    _sub(h, "PreparationDateTime", now)
    _sub(h, "SubmissionId", submission_id[:512])
    if recipient:
        _sub(h, "Recipient", recipient)
    if lrn:
        _sub(h, "LRN", lrn)
    if mrn:
        _sub(h, "MRN", mrn)
    return root


def _done(root, submission_id, recipient, lrn=None, mrn=None) -> Answer:
    return Answer(root.tag, submission_id, recipient, root.serialised(), lrn, mrn)


def _errors(root, errors: Iterable[FilingError], element: str = "Error") -> None:
    for e in errors:
        el = _sub(root, element)
        _sub(el, "Code", e.code)
        _sub(el, "Pointer", e.pointer[:4000])
        if e.line is not None:
            _sub(el, "Line", e.line)
        _sub(el, "Constraint", e.constraint[:512])
        _sub(el, "Reason", e.reason[:4000])
        if e.value:
            _sub(el, "OriginalValue", e.value[:MAX_ORIGINAL_VALUE])


def _results(root, results: Sequence[RiskResult]) -> None:
    for r in results:
        el = _sub(root, "Result")
        _sub(el, "RiskArea", _fit(r.risk_area, 35))
        _sub(el, "RiskLevel", _fit(r.risk_level, 17))
        _sub(el, "CriterionId", _fit(r.criterion_id, 35))
        _sub(el, "RulePackVersion", _fit(r.rule_pack_version, 35))
        _sub(el, "Text", _fit(r.text))
        for p in r.pointers[:99]:
            _sub(el, "Pointer", p[:4000])


def _repeat(root, repeat_of: str | None, done: str) -> None:
    """Marks the answer to a re-send: repeat_of names the submission that did it first ("" when not
    recorded; None: not a re-send), `done` says what was done then and not again."""
    if repeat_of is None:
        return
    repeat = _sub(root, "Repeat")
    if repeat_of:
        _sub(repeat, "OriginalSubmissionId", repeat_of[:512])
    by = f" by submission {repeat_of}" if repeat_of else ""
    _sub(repeat, "Text", f"Re-sent: {done}{by}; nothing was done again."[:512])


def registration(submission_id, recipient, filing_code, lrn, mrn, registered_at, now,
                 repeat_of: str | None = None, warnings: Sequence[FilingError] = (), *, tree=XmlText) -> Answer:
    """IE3R01; with repeat_of, the answer to a re-send of a filing registered already (its MRN and time);
    warnings: the data-quality warnings the filing was accepted with."""
    root = _start("IE3R01", submission_id, recipient, lrn, mrn, now, tree)
    _sub(root, "FilingCode", filing_code)
    _sub(root, "LRN", lrn)
    _sub(root, "MRN", mrn)
    _sub(root, "RegistrationDateTime", registered_at)
    _errors(root, warnings, "Warning")
    _repeat(root, repeat_of, f"LRN {lrn} with this content was registered as MRN {mrn} at {registered_at}")
    return _done(root, submission_id, recipient, lrn, mrn)


def error_notification(submission_id, recipient, lrn, errors: Sequence[FilingError], now, *,
                       tree=XmlText) -> Answer:
    root = _start("IE3N99", submission_id, recipient, lrn, None, now, tree)
    _sub(root, "RejectionDateTime", now)
    _sub(root, "ErrorCount", len(errors))
    _errors(root, errors)
    return _done(root, submission_id, recipient, lrn)


def lifecycle_error(submission_id, recipient, lrn, mrn, errors: Sequence[FilingError], now, *,
                    tree=XmlText) -> Answer:
    root = _start("IE3N01", submission_id, recipient, lrn, mrn, now, tree)
    _sub(root, "RejectionDateTime", now)
    _errors(root, errors)
    return _done(root, submission_id, recipient, lrn, mrn)


def amendment_accepted(submission_id, recipient, lrn, mrn, now, repeat_of: str | None = None,
                       warnings: Sequence[FilingError] = (), *, tree=XmlText) -> Answer:
    root = _start("IE3N10", submission_id, recipient, lrn, mrn, now, tree)
    _sub(root, "AmendmentDateTime", now)
    _errors(root, warnings, "Warning")
    _repeat(root, repeat_of, f"this amendment of MRN {mrn} was accepted")
    return _done(root, submission_id, recipient, lrn, mrn)


def invalidation_accepted(submission_id, recipient, lrn, mrn, now, repeat_of: str | None = None, *,
                          tree=XmlText) -> Answer:
    root = _start("IE3R04", submission_id, recipient, lrn, mrn, now, tree)
    _sub(root, "InvalidationDateTime", now)
    _repeat(root, repeat_of, f"MRN {mrn} was invalidated")
    return _done(root, submission_id, recipient, lrn, mrn)


def not_complete(submission_id, recipient, lrn, mrn, missing_documents: Sequence[str], now, *,
                 tree=XmlText) -> Answer:
    root = _start("IE3N02", submission_id, recipient, lrn, mrn, now, tree)
    _sub(root, "NotificationDateTime", now)
    for number in missing_documents:
        _sub(root, "MissingTransportDocument", number[:70])
    return _done(root, submission_id, recipient, lrn, mrn)


def pending(submission_id, recipient, lrn, mrn, reason: str | None, now, *, tree=XmlText) -> Answer:
    root = _start("IE3N11", submission_id, recipient, lrn, mrn, now, tree)
    _sub(root, "NotificationDateTime", now)
    if reason:
        _sub(root, "Reason", reason[:512])
    return _done(root, submission_id, recipient, lrn, mrn)


def assessment_complete(submission_id, recipient, lrn, mrn, rule_pack_version: str | None, now, *,
                        tree=XmlText) -> Answer:
    root = _start("IE3N03", submission_id, recipient, lrn, mrn, now, tree)
    _sub(root, "CompletionDateTime", now)
    if rule_pack_version:
        _sub(root, "RulePackVersion", rule_pack_version[:35])
    return _done(root, submission_id, recipient, lrn, mrn)


def control_notification(submission_id, recipient, lrn, mrn, office: str, results: Sequence[RiskResult], now, *,
                         tree=XmlText) -> Answer:
    root = _start("IE3N08", submission_id, recipient, lrn, mrn, now, tree)
    _sub(root, "NotificationDateTime", now)
    _sub(root, "CustomsOffice", office)
    _results(root, results)
    return _done(root, submission_id, recipient, lrn, mrn)


def do_not_load(submission_id, recipient, lrn, mrn, results: Sequence[RiskResult], now, *, tree=XmlText) -> Answer:
    root = _start("IE3Q01", submission_id, recipient, lrn, mrn, now, tree)
    _sub(root, "NotificationDateTime", now)
    _results(root, results)
    return _done(root, submission_id, recipient, lrn, mrn)


def request_for_information(submission_id, recipient, lrn, mrn, requests: Sequence[tuple[str | None, str]],
                            now, *, tree=XmlText) -> Answer:
    """requests: (pointer to the data element or None, what is asked)."""
    root = _start("IE3Q02", submission_id, recipient, lrn, mrn, now, tree)
    _sub(root, "RequestDateTime", now)
    asked = dict.fromkeys((pointer, _fit(text)) for pointer, text in requests)  # each question once
    for pointer, text in list(asked)[:MAX_REQUESTS]:
        el = _sub(root, "InformationRequested")
        if pointer:
            _sub(el, "Pointer", pointer[:4000])
        _sub(el, "Text", text)
    return _done(root, submission_id, recipient, lrn, mrn)


def request_for_screening(submission_id, recipient, lrn, mrn, methods: Sequence[str], results: Sequence[RiskResult],
                          now, *, tree=XmlText) -> Answer:
    root = _start("IE3Q03", submission_id, recipient, lrn, mrn, now, tree)
    _sub(root, "RequestDateTime", now)
    for m in methods[:10]:
        _sub(root, "ScreeningMethod", m)
    _results(root, results)
    return _done(root, submission_id, recipient, lrn, mrn)
