"""The schema registry: picks the XSD for a message by its root element's namespace and name.

Give it folders of XSD sets: any well-formed set works (several files, xs:include, xs:import,
several namespaces, legacy sets with no target namespace), not only ours. Each file that no
other file includes is an entry point; its global elements, and those of the files it
includes, are the roots it validates. XSD 1.0 sets compile with lxml (libxml2, the fast
path); XSD 1.1 sets (assertions, conditional types), and sets libxml2 cannot compile, with
xmlschema. Everything compiles when the registry is built, so a broken set fails at start-up
with its file and reason, not on the first message.

A violation comes back as facts (where, which value, which constraint, what the schema's
own documentation says is expected); validation.py words them for the filer.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Protocol

from lxml import etree

from .safexml import element_pointer, secure_parser

log = logging.getLogger(__name__)

XS = "http://www.w3.org/2001/XMLSchema"
VC = "http://www.w3.org/2007/XMLSchema-versioning"
_XSD11_ONLY = {f"{{{XS}}}{n}" for n in ("assert", "assertion", "alternative", "openContent", "defaultOpenContent", "override")}
_CLARK = re.compile(r"\{[^}]*\}")


class SchemaSetError(Exception):
    """A schema set that cannot be used; says which file and why."""


@dataclass(frozen=True)
class SchemaViolation:
    code: str  # XSD_FORMAT, XSD_LENGTH, XSD_CODE, XSD_RANGE, XSD_MISSING, XSD_UNEXPECTED, XSD_ASSERTION, XSD_INVALID
    pointer: str
    line: int | None
    element: str
    value: str | None
    constraint: str  # the facet or rule violated, e.g. "pattern [0-9]{6}([0-9]{2})?" or "maxLength 512"
    expected: str | None  # what the schema documents as expected, in words
    detail: str  # the validator's own text, without namespace noise


class CompiledSchema(Protocol):
    source: Path
    version: str

    def violations(self, tree: etree._ElementTree) -> list[SchemaViolation]:
        """Empty when the message is valid."""


@dataclass
class _Docs:
    """What the schema set says about its types, to tell a filer what is expected."""

    by_type: dict[str, str] = field(default_factory=dict)
    by_pattern: dict[str, str] = field(default_factory=dict)
    by_codes: dict[frozenset, str] = field(default_factory=dict)
    by_element: dict[str, str] = field(default_factory=dict)
    element_names: set[str] = field(default_factory=set)  # every element the set declares

    def update(self, other: "_Docs") -> None:
        for name in ("by_type", "by_pattern", "by_codes", "by_element", "element_names"):
            getattr(self, name).update(getattr(other, name))


@dataclass
class _XsdFile:
    path: Path
    namespace: str | None
    elements: list[str]
    includes: list[Path]
    imports: list[Path]
    xsd11: bool
    docs: _Docs


def _documentation(el) -> str | None:
    text = el.findtext(f"{{{XS}}}annotation/{{{XS}}}documentation")
    return " ".join(text.split()) if text else None


def _scan(path: Path, parser: etree.XMLParser) -> _XsdFile:
    try:
        root = etree.parse(str(path), parser).getroot()
    except etree.XMLSyntaxError as exc:
        raise SchemaSetError(f"{path}: not well-formed XML: {exc}") from None
    if root.tag != f"{{{XS}}}schema":
        raise SchemaSetError(f"{path}: root element is {root.tag}, not xs:schema")

    def locations(*tags: str) -> list[Path]:
        return [(path.parent / el.get("schemaLocation")).resolve()
                for el in root.iterchildren(*(f"{{{XS}}}{t}" for t in tags)) if el.get("schemaLocation")]

    docs = _Docs()
    for st in root.iter(f"{{{XS}}}simpleType", f"{{{XS}}}complexType"):
        doc = _documentation(st)
        if not doc:
            continue
        if st.get("name"):
            docs.by_type[st.get("name")] = doc
        for pattern in st.iterfind(f"{{{XS}}}restriction/{{{XS}}}pattern"):
            docs.by_pattern[pattern.get("value")] = doc
        codes = frozenset(e.get("value") for e in st.iterfind(f"{{{XS}}}restriction/{{{XS}}}enumeration"))
        if codes:
            docs.by_codes[codes] = doc
    for el in root.iter(f"{{{XS}}}element"):
        doc = _documentation(el)
        if el.get("name"):
            docs.element_names.add(el.get("name"))
            if doc:
                docs.by_element[el.get("name")] = doc
    xsd11 = (root.get(f"{{{VC}}}minVersion", "1.0") >= "1.1"
             or any(el.tag in _XSD11_ONLY for el in root.iter(etree.Element)))
    return _XsdFile(
        path=path.resolve(),
        namespace=root.get("targetNamespace") or None,
        elements=[el.get("name") for el in root.iterchildren(f"{{{XS}}}element")],
        includes=locations("include", "redefine", "override"),
        imports=locations("import"),
        xsd11=xsd11,
        docs=docs,
    )


def _quoted(message: str, marker: str) -> str | None:
    start = message.find(marker)
    if start < 0:
        return None
    start += len(marker)
    end = message.find("'", start)
    return message[start:end] if end >= start else None


def _names(message: str, marker: str) -> list[str]:
    """The element names libxml2 lists after 'Expected is ( ... )' or 'Expected is one of ( ... )'."""
    start = message.find(marker)
    if start < 0:
        return []
    inner = message[message.find("(", start) + 1: message.find(")", start)]
    return [_CLARK.sub("", n).strip() for n in inner.split(",") if n.strip()]


# libxml2 error type -> our code. Anything not listed is XSD_INVALID with libxml2's words.
_LIBXML2_CODES = {
    "SCHEMAV_CVC_PATTERN_VALID": "XSD_FORMAT",
    "SCHEMAV_CVC_DATATYPE_VALID_1_2_1": "XSD_FORMAT",
    "SCHEMAV_CVC_DATATYPE_VALID_1_2_2": "XSD_FORMAT",
    "SCHEMAV_CVC_DATATYPE_VALID_1_2_3": "XSD_FORMAT",
    "SCHEMAV_CVC_LENGTH_VALID": "XSD_LENGTH",
    "SCHEMAV_CVC_MINLENGTH_VALID": "XSD_LENGTH",
    "SCHEMAV_CVC_MAXLENGTH_VALID": "XSD_LENGTH",
    "SCHEMAV_CVC_ENUMERATION_VALID": "XSD_CODE",
    "SCHEMAV_CVC_ELT_5_2_2": "XSD_CODE",
    "SCHEMAV_CVC_MININCLUSIVE_VALID": "XSD_RANGE",
    "SCHEMAV_CVC_MAXINCLUSIVE_VALID": "XSD_RANGE",
    "SCHEMAV_CVC_MINEXCLUSIVE_VALID": "XSD_RANGE",
    "SCHEMAV_CVC_MAXEXCLUSIVE_VALID": "XSD_RANGE",
    "SCHEMAV_CVC_TOTALDIGITS_VALID": "XSD_RANGE",
    "SCHEMAV_CVC_FRACTIONDIGITS_VALID": "XSD_RANGE",
    "SCHEMAV_CVC_COMPLEX_TYPE_4": "XSD_MISSING",
    "SCHEMAV_CVC_COMPLEX_TYPE_3_2_1": "XSD_UNEXPECTED",
    "SCHEMAV_CVC_COMPLEX_TYPE_3_2_2": "XSD_UNEXPECTED",
    "SCHEMAV_CVC_COMPLEX_TYPE_2_1": "XSD_UNEXPECTED",
    "SCHEMAV_CVC_COMPLEX_TYPE_2_3": "XSD_UNEXPECTED",
    "SCHEMAV_CVC_ELT_1": "XSD_UNEXPECTED",
}


class LxmlSchema:
    """XSD 1.0 through libxml2: the fast path."""

    version = "1.0"

    def __init__(self, source: Path, docs: _Docs):
        self.source = source
        self._docs = docs
        try:
            self._schema = etree.XMLSchema(etree.parse(str(source), secure_parser(allow_local_files=True)))
        except etree.XMLSchemaParseError as exc:
            raise SchemaSetError(f"{source}: {exc}") from None

    def violations(self, tree: etree._ElementTree) -> list[SchemaViolation]:
        if self._schema.validate(tree):
            return []
        return [self._violation(tree, entry) for entry in self._schema.error_log]

    def _violation(self, tree, entry) -> SchemaViolation:
        message = entry.message
        detail = _CLARK.sub("", message)
        code = _LIBXML2_CODES.get(entry.type_name, "XSD_INVALID")
        found = tree.xpath(entry.path, namespaces={k: v for k, v in tree.getroot().nsmap.items() if k}) if entry.path else []
        el = found[0] if found and isinstance(found, list) and isinstance(found[0], etree._Element) else None
        pointer = element_pointer(el) if el is not None else (entry.path or "/")
        element = etree.QName(el).localname if el is not None else _CLARK.sub("", _quoted(message, "Element '") or "")
        value = el.text.strip() if el is not None and len(el) == 0 and el.text else None
        constraint, expected = code.lower().removeprefix("xsd_"), None
        if entry.type_name == "SCHEMAV_ELEMENT_CONTENT":
            if "Missing child element" in message:
                missing = _names(message, "Expected is") or ["child element"]
                code, value, constraint = "XSD_MISSING", None, "required element"
                element = " or ".join(missing)
                if len(missing) == 1:
                    pointer = f"{pointer}/{missing[0]}"
            else:
                allowed = _names(message, "Expected is")
                parent = el.getparent() if el is not None else None
                present = ({etree.QName(c).localname for c in parent.iterchildren(tag=etree.Element)}
                           if parent is not None else set())  # comments and PIs are children too
                value = None
                if allowed and element in self._docs.element_names and not set(allowed) & present:
                    # A known element arriving where another, absent one was due: that one is missing.
                    code, constraint, expected = "XSD_MISSING", "required element", f"before {element}"
                    pointer = element_pointer(parent) + (f"/{allowed[0]}" if len(allowed) == 1 else "")
                    element = " or ".join(allowed)
                else:
                    code, constraint = "XSD_UNEXPECTED", "element not allowed here"
                    expected = ("one of " if len(allowed) > 1 else "") + ", ".join(allowed) if allowed else None
        elif code == "XSD_FORMAT":
            pattern = _quoted(message, "by the pattern '")
            type_name = _quoted(message, "atomic type '")
            constraint = f"pattern {pattern}" if pattern else f"datatype {_CLARK.sub('', type_name or 'value')}"
            expected = self._docs.by_pattern.get(pattern or "") or self._docs.by_type.get(
                _CLARK.sub("", type_name or ""))
        elif code == "XSD_LENGTH":
            numbers = re.findall(r"'(\d+)'", message) or ["?"]  # the value's length (as the type counts it), the bound
            kind = entry.type_name.split("_")[2].lower().replace("length", "Length")
            constraint = f"{kind} {numbers[-1]}"
            expected = {"maxLength": "at most", "minLength": "at least"}.get(kind, "exactly") + f" {numbers[-1]} characters"
            value = el.text if el is not None and el.text else value
            detail = numbers[0]
        elif code == "XSD_CODE":
            codes = frozenset(re.findall(r"'([^']*)'", message[message.find("{", message.find("set")):]))
            constraint = "code list"
            expected = self._docs.by_codes.get(codes) or ("one of " + ", ".join(sorted(codes)) if codes else None)
            if entry.type_name == "SCHEMAV_CVC_ELT_5_2_2":
                constraint, expected = "fixed value", f"the value {_quoted(message, 'fixed value constraint ') or ''}".strip()
        elif code == "XSD_RANGE":
            constraint = entry.type_name.split("_")[2].lower()
        if code != "XSD_MISSING" and expected is None and el is not None:
            expected = self._docs.by_element.get(element)
        return SchemaViolation(code, pointer, entry.line or None, element, value, constraint, expected, detail)


_XMLSCHEMA_CODES = (("Pattern", "XSD_FORMAT"), ("Length", "XSD_LENGTH"), ("Enumeration", "XSD_CODE"),
                    ("Inclusive", "XSD_RANGE"), ("Exclusive", "XSD_RANGE"), ("Digits", "XSD_RANGE"),
                    ("Assert", "XSD_ASSERTION"), ("Atomic", "XSD_FORMAT"))


class XmlschemaSchema:
    """XSD 1.1 (or what libxml2 cannot compile) through xmlschema: slower, and the only way to XSD 1.1."""

    def __init__(self, source: Path, xsd11: bool, docs: _Docs):
        self.source = source
        self.version = "1.1" if xsd11 else "1.0"
        self._docs = docs
        import xmlschema  # here, not at the top: its import costs a command that validates one file 0.15 s

        cls = xmlschema.XMLSchema11 if xsd11 else xmlschema.XMLSchema10
        try:
            # allow='local': imports and includes only from the local filesystem; defuse: no entities.
            self._schema = cls(str(source), allow="local", defuse="always")
        except (xmlschema.XMLSchemaException, OSError) as exc:
            raise SchemaSetError(f"{source}: {exc}") from None

    def violations(self, tree: etree._ElementTree) -> list[SchemaViolation]:
        return [self._violation(err) for err in self._schema.iter_errors(tree)]

    def _violation(self, err) -> SchemaViolation:
        el = err.elem if isinstance(getattr(err, "elem", None), etree._Element) else None
        validator = type(err.validator).__name__
        code = next((c for key, c in _XMLSCHEMA_CODES if key in validator), "XSD_INVALID")
        reason = _CLARK.sub("", err.reason or str(err.message))
        if "XsdGroup" in validator or "ModelGroup" in validator:
            code = "XSD_MISSING" if "missing" in reason.lower() or "not complete" in reason.lower() else "XSD_UNEXPECTED"
        element = etree.QName(el).localname if el is not None else ""
        type_name = getattr(getattr(err.validator, "parent", None), "local_name", None) or \
            getattr(err.validator, "local_name", None)
        return SchemaViolation(
            code=code,
            pointer=element_pointer(el) if el is not None else (err.path or "/"),
            line=el.sourceline if el is not None else None,
            element=element,
            value=el.text.strip() if el is not None and len(el) == 0 and el.text else None,
            constraint=validator.removeprefix("Xsd").replace("Facets", "").replace("Facet", "").lower(),
            expected=self._docs.by_type.get(type_name or "") or self._docs.by_element.get(element),
            detail=reason,
        )


@dataclass
class SchemaRegistry:
    """(namespace, root element name) -> compiled schema, built from folders of XSD sets."""

    roots: dict[tuple[str | None, str], CompiledSchema] = field(default_factory=dict)

    @classmethod
    def from_dirs(cls, dirs: Iterable[Path]) -> "SchemaRegistry":
        registry = cls()
        parser = secure_parser(allow_local_files=True)
        for directory in dirs:  # earlier folders win: operators put their own sets first
            registry._add_dir(Path(directory), parser)
        return registry

    def _add_dir(self, directory: Path, parser: etree.XMLParser) -> None:
        if not directory.is_dir():
            raise SchemaSetError(f"{directory}: not a folder of XSD sets")
        files = {p.resolve(): _scan(p, parser) for p in sorted(directory.rglob("*.xsd"))}
        included = {inc for f in files.values() for inc in f.includes}
        for path, xsd in files.items():
            if path in included:
                continue  # compiled as part of the file that includes it
            names = [n for m in (xsd, *_closure(xsd, files, follow_imports=False)) for n in m.elements]
            if not names:
                continue  # a library of types only: nothing can be a message root
            docs = _Docs()
            for member in (*_closure(xsd, files, follow_imports=True), xsd):
                docs.update(member.docs)
            schema = self._compile(path, docs, xsd11=any(m.xsd11 for m in (xsd, *_closure(xsd, files, False))))
            for name in names:
                key = (xsd.namespace, name)
                if key in self.roots:
                    log.info("root {%s}%s is served by %s; %s is not used for it", key[0], name,
                             self.roots[key].source, path)
                    continue
                self.roots[key] = schema

    @staticmethod
    def _compile(path: Path, docs: _Docs, xsd11: bool) -> CompiledSchema:
        if xsd11:
            return XmlschemaSchema(path, xsd11=True, docs=docs)
        try:
            return LxmlSchema(path, docs)
        except SchemaSetError as exc:
            log.warning("libxml2 cannot compile %s (%s); using xmlschema for it", path, exc)
            return XmlschemaSchema(path, xsd11=False, docs=docs)

    def lookup(self, namespace: str | None, name: str) -> CompiledSchema | None:
        return self.roots.get((namespace, name))


def _closure(xsd: _XsdFile, files: dict[Path, _XsdFile], follow_imports: bool) -> list[_XsdFile]:
    """The files xsd pulls in, transitively (includes, and imports when asked)."""
    seen: set[Path] = set()
    out: list[_XsdFile] = []
    stack = list(xsd.includes) + (list(xsd.imports) if follow_imports else [])
    while stack:
        p = stack.pop()
        if p in seen or p not in files:
            continue
        seen.add(p)
        out.append(files[p])
        stack.extend(files[p].includes + (files[p].imports if follow_imports else []))
    return out
