"""Parsing XML from outside, which is hostile until proven otherwise.

No DTD (so no entity expansion of any kind, internal or external), no network, no XInclude,
bounded size, and the bytes must match their declared encoding. Nesting depth is bounded by
libxml2 itself: without XML_PARSE_HUGE it stops at 256 levels, before building the tree
(a Python check per document would cost more than a sixth of the parse). Each refusal is a
RejectedXml with a code and a text the sender can act on.
"""
from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from .config import XmlLimits

XINCLUDE_NS = b"http://www.w3.org/2001/XInclude"
MAX_DEPTH = 256  # libxml2's limit without XML_PARSE_HUGE (lxml's huge_tree)


@dataclass(frozen=True)
class XmlProblem:
    code: str
    reason: str
    line: int | None = None
    column: int | None = None


class RejectedXml(Exception):
    def __init__(self, problem: XmlProblem):
        super().__init__(problem.reason)
        self.problem = problem


class _ResourceGuard(etree.Resolver):
    """Refuses every external resource; schema sets may read local files, never the network."""

    def __init__(self, allow_local_files: bool):
        super().__init__()
        self.allow_local_files = allow_local_files

    def resolve(self, url, pubid, context):
        local = "://" not in (url or "") or url.startswith("file://")
        if self.allow_local_files and local:
            return None  # libxml2 reads the local file itself
        raise RejectedXml(XmlProblem("EXTERNAL_RESOURCE", f"External resource {url!r} is not allowed"))


def secure_parser(allow_local_files: bool = False, drop_blank_text: bool = False,
                  drop_comments: bool = False) -> etree.XMLParser:
    """An lxml parser that never loads a DTD, expands entities or touches the network.

    allow_local_files is for the operator's own schema sets (includes and imports);
    submissions are parsed without it. drop_blank_text drops the indentation between
    elements (libxml2 keeps blanks that are an element's only content, so an all-blank value
    still fails its length): 10-20% fewer nodes to parse, validate and walk in pretty-printed
    filings. drop_comments drops comments and processing instructions: inside a value
    ("<IssueDateTime><!-- x -->2026-...") they would split its text, and the regime reads neither.
    Parsers are not thread-safe: one per DoFn instance.
    """
    parser = etree.XMLParser(
        resolve_entities=False,
        load_dtd=False,
        dtd_validation=False,
        no_network=True,
        huge_tree=False,  # keeps libxml2's own caps (depth 256, text nodes 10 MB)
        collect_ids=False,
        remove_blank_text=drop_blank_text,
        remove_comments=drop_comments,
        remove_pis=drop_comments,
    )
    parser.resolvers.add(_ResourceGuard(allow_local_files))
    return parser


class SafeXmlParser:
    """Turns submitted bytes into an lxml tree, or raises RejectedXml."""

    def __init__(self, limits: XmlLimits):
        self.limits = limits
        self._parser = secure_parser(drop_blank_text=True, drop_comments=True)

    def parse(self, data: bytes) -> etree._ElementTree:
        if len(data) > self.limits.max_bytes:
            raise RejectedXml(XmlProblem(
                # Readers stop one byte past the limit (folders.read_filing): the size read, not the file's.
                "SIZE_LIMIT", f"Message is over the limit of {self.limits.max_bytes:,} bytes ({len(data):,} bytes read)"))
        if not data or data.isspace():  # isspace stops at the first other byte; strip() would copy the message
            raise RejectedXml(XmlProblem("EMPTY", "Message is empty"))
        # Fast refusal before the parser sees anything: a DOCTYPE is the only way in for
        # entity declarations (billion laughs, quadratic blowup, XXE).
        if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
            raise RejectedXml(XmlProblem("DTD_FORBIDDEN", "Document type declarations (DTD) and entities are not allowed"))
        if XINCLUDE_NS in data:
            raise RejectedXml(XmlProblem("XINCLUDE_FORBIDDEN", "XInclude is not allowed"))
        try:
            root = etree.fromstring(data, self._parser)
        except etree.XMLSyntaxError as exc:
            line, column = exc.position if exc.position else (None, None)
            if "Excessive depth" in exc.msg:
                raise RejectedXml(XmlProblem(
                    "DEPTH_LIMIT", f"Elements are nested deeper than {MAX_DEPTH} levels", line, column)) from None
            raise RejectedXml(XmlProblem("NOT_WELL_FORMED", f"Not well-formed XML: {exc.msg}", line, column)) from None
        except RejectedXml:
            raise
        tree = root.getroottree()
        # Defence in depth: a DTD in another encoding (UTF-16) passes the byte scan above.
        if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
            raise RejectedXml(XmlProblem("DTD_FORBIDDEN", "Document type declarations (DTD) and entities are not allowed"))
        return tree


def element_pointer(el: etree._Element) -> str:
    """XPath-like location without prefixes, indexed where siblings share a name:
    /IE3F10/Consignment/GoodsItem[2]/HSCode."""
    parts = []
    while el is not None:
        name = etree.QName(el).localname
        parent = el.getparent()
        if parent is not None:
            same = list(parent.iterchildren(el.tag))
            if len(same) > 1:
                name += f"[{same.index(el) + 1}]"
        parts.append(name)
        el = parent
    return "/" + "/".join(reversed(parts))
