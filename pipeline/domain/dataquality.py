"""Data-quality rules beyond the XSD, loaded from a rule pack (rules/data-quality/*.yaml).

Two kinds of rule, both data in the pack:
  - `select`: an XPath 1.0 expression, relative to each `scope` element, selecting the
    elements in error. The selects sharing a scope are compiled into one union, run once per
    scope element; only when it finds something are the rules run one by one to say which
    fired (rare). Relative paths matter: a `//` scan costs more than all the checks together.
  - `check`: a named Python check on the text of the `elements` listed, for what XPath
    cannot say (check digits, national formats, free text, large code lists). Checks are
    pure functions of the value, so the pack caches their answers per value.
A rule's `severity` is "error" (the filing is rejected) or "warning" (it is accepted, and the
finding travels with it to the filer's registration answer and the analyst's view).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import yaml
from lxml import etree

from .check_digits import imo_digit_ok, iso6346_digit_ok
from .offices import not_of_entry, outside_eu
from .reference import EXTRA_COUNTRY_CODES, ReferenceData


@dataclass(frozen=True)
class Finding:
    element: etree._Element
    value: str
    expected: str = ""
    detail: str = ""


# A value check returns None when the value is fine, or (expected, detail) for the message.
ValueCheck = Callable[[str, ReferenceData, "VagueDescriptionMatcher"], "tuple[str, str] | None"]
VALUE_CHECKS: dict[str, ValueCheck] = {}


def value_check(name: str):
    def register(fn: ValueCheck) -> ValueCheck:
        VALUE_CHECKS[name] = fn
        return fn
    return register


@value_check("iso6346-check-digit")
def _iso6346(value, ref, vague):
    if len(value) != 11 or iso6346_digit_ok(value):
        return None  # a wrong length is the XSD's to report
    from stdnum import iso6346  # here: stdnum's import costs `cargoscreen validate` 14 ms of start-up

    try:
        expected = iso6346.calc_check_digit(value[:10])
    except Exception:  # letters where digits belong: also the XSD's
        return None
    return None if expected == value[10] else (expected, "")


@value_check("imo-check-digit")
def _imo(value, ref, vague):
    if len(value) == 7 and value.isdigit() and not imo_digit_ok(value):
        from stdnum import imo

        if not imo.is_valid(value):
            return imo.calc_check_digit(value[:6]), ""
    return None


@value_check("country-code")
def _country(value, ref, vague):
    return None if value in ref.countries else ("", "")


@value_check("hs-subheading")
def _hs_subheading(value, ref, vague):
    """The first six digits must be a subheading of the edition; CN's two further digits are not checked."""
    if len(value) < 6 or not value[:6].isdigit() or value[:6] in ref.hs:
        return None  # a malformed code is the XSD's to report
    chapter, heading = value[:2], value[:4]
    if chapter not in ref.hs:
        return "", f"there is no chapter {chapter}"
    if heading not in ref.hs:
        return "", f"chapter {chapter} ({_short(ref.hs[chapter])}) has no heading {heading}"
    subheadings = sorted(c for c in ref.hs if len(c) == 6 and c.startswith(heading))
    listed = ", ".join(f"{c[:4]}.{c[4:]}" for c in subheadings[:8]) + (" ..." if len(subheadings) > 8 else "")
    return "", f"heading {heading} ({_short(ref.hs[heading])}) has no subheading {heading}.{value[4:6]}; its " \
               f"subheadings are {listed}"


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " ..."


@value_check("locode-country")
def _locode_country(value, ref, vague):
    """A UN/LOCODE starts with its country: an unknown one cannot be a location."""
    country = value[:2]
    known = country in ref.countries or country in EXTRA_COUNTRY_CODES
    return None if known or value in ref.locations else ("", f"{country} is not a country code")


@value_check("locode-in-edition")
def _locode_in_edition(value, ref, vague):
    """Editions lag behind the places real traffic uses: a code of a known country that the
    shipped list lacks is reported, never refused (see DQ_LOCODE_NOT_IN_EDITION)."""
    if value in ref.locations or (value[:2] not in ref.countries and value[:2] not in EXTRA_COUNTRY_CODES):
        return None
    return "", ref.edition("unlocode.csv.gz")


@value_check("office-in-eu")
def _office_in_eu(value, ref, vague):
    """An office of first entry is in a member state or Northern Ireland (see offices.py)."""
    why = outside_eu(value, ref) if len(value) == 8 else None  # a malformed code is the XSD's to report
    return None if why is None else ("", why)


@value_check("office-of-entry")
def _office_of_entry(value, ref, vague):
    """A member state's office the Customs Office List does not know as an office of entry: reported, not refused."""
    why = not_of_entry(value, ref) if len(value) == 8 else None
    return None if why is None else ("", why)


@value_check("package-type")
def _package_type(value, ref, vague):
    """Package types are two characters (a transport document's type, four, is not one)."""
    return None if len(value) != 2 or value in ref.package_types else ("", "")


@value_check("un-number")
def _un_number(value, ref, vague):
    if value in ref.dangerous_goods or not value.isdigit():
        return None
    return "", ref.edition("un-numbers.csv")


@value_check("eori-shape")
def _eori(value, ref, vague):
    country = value[:2]
    if country not in ref.countries and country not in EXTRA_COUNTRY_CODES:
        return "", f"{country} is not a country code"
    national = ref.eori_formats.get(country)
    if national and not national[0].fullmatch(value[2:]):
        return "", f"an EORI from {country} is {country} followed by {national[1]}, e.g. {national[2]}"
    return None


@value_check("vague-description")
def _vague(value, ref, vague):
    return ("", "") if vague.is_vague(value) else None


FILLER_WORDS = frozenset({"of", "and", "the", "a", "an", "for", "as", "per", "in", "with", "to", "x", "pcs", "nos",
                          "total", "only", "other", "etc", "new", "used", "mixed", "assorted"})
_WORD = re.compile(r"[\w']+")


class VagueDescriptionMatcher:
    """A description is vague when nothing is left once the listed terms, numbers and filler words are removed.

    Terms match as whole word sequences, longest first, by set look-ups.
    """

    def __init__(self, terms: Iterable[str]):
        self._terms = {tuple(_WORD.findall(t.lower())) for t in terms if t.strip()}
        self._longest = max((len(t) for t in self._terms), default=1)

    def is_vague(self, description: str) -> bool:
        words = _WORD.findall(description.lower())
        if not words:
            return False  # blank: the schema's minimum length reports it
        i, n = 0, len(words)
        while i < n:
            for length in range(min(self._longest, n - i), 0, -1):
                if tuple(words[i:i + length]) in self._terms:
                    i += length
                    break
            else:
                if not words[i].isdigit() and words[i] not in FILLER_WORDS:
                    return False
                i += 1
        return True


@dataclass(frozen=True)
class DataQualityRule:
    id: str
    title: str
    message: str
    select: str | None = None  # XPath rule, relative to each scope element
    scope: tuple[str, ...] = ()
    expected: str | None = None  # XPath, on the element in error, for the message
    check: str | None = None  # Python rule
    elements: tuple[str, ...] = ()
    params: dict = field(default_factory=dict)
    examples: dict = field(default_factory=dict)
    severity: str = "error"  # "warning": reported to the filer and the analyst, the filing is still accepted

    @property
    def is_warning(self) -> bool:
        return self.severity == "warning"

    def describe(self, finding: Finding) -> str:
        return self.message.format(value=finding.value, expected=finding.expected, detail=finding.detail)


SEVERITIES = ("error", "warning")


class RulePackError(Exception):
    pass


_CACHE_LIMIT = 100_000  # distinct values remembered per rule; then that rule's cache starts over


def _as_xpath_list(values: Iterable[str]) -> str:
    """' A B C ': a list XPath can test with contains($list, concat(' ', ., ' '))."""
    return " " + " ".join(values) + " "


# The select rules the walk in C knows natively (_onepass.pyx: whether a scope can select anything),
# each by its id and a digest of its XPath: a rule edited in the pack is evaluated as written.
NATIVE_SELECTS = {"DQ_TOTAL_GROSS_MASS": "c78089e2dd40d091", "DQ_TOTAL_PACKAGES": "45f05903ac20403c",
                  "DQ_HOUSE_DOCUMENT_DUPLICATE": "fba97d0c791add43", "DQ_ROUTING_COUNTRIES": "49badeef87c1ffb1",
                  "DQ_BULK_PACKAGE_COUNT": "5d29ea64ab0889ae", "DQ_UNPACKED_PIECE_COUNT": "a9f483a9ef792832"}


def select_digest(select: str) -> str:
    return hashlib.sha256(select.encode("utf-8")).hexdigest()[:16]


def _natives(rules: list[DataQualityRule]) -> tuple[str, ...]:
    """The rules' ids when the walk in C knows every one of them natively, else () (the XPath decides)."""
    known = all(NATIVE_SELECTS.get(r.id) == select_digest(r.select) for r in rules)
    return tuple(r.id for r in rules) if known else ()


def in_document_order(findings: list[tuple[DataQualityRule, Finding]]) -> list[tuple[DataQualityRule, Finding]]:
    """Findings by line (stable: the order found within a line), as a filer reads the message."""
    if len(findings) > 1:
        findings.sort(key=lambda rf: rf[1].element.sourceline or 0)
    return findings


class DataQualityPack:
    def __init__(self, name: str, version: str, namespace: str, rules: tuple[DataQualityRule, ...],
                 reference: ReferenceData, source: Path):
        self.name, self.version, self.namespace, self.rules = name, version, namespace, rules
        self.walk_plan = None  # walk_tables() as the walk in C takes them, made by one_pass on first use
        self.reference = reference
        self._vague = VagueDescriptionMatcher(reference.vague_terms)
        ns = {"e": namespace}
        self._variables = {key: _as_xpath_list(map(str, value))
                           for rule in rules for key, value in rule.params.items() if isinstance(value, list)}
        self._selects: dict[str, tuple[etree.XPath, etree.XPath | None]] = {}
        by_scope: dict[str, list[DataQualityRule]] = {}
        for rule in rules:
            if not rule.select:
                continue
            try:
                self._selects[rule.id] = (etree.XPath(rule.select, namespaces=ns),
                                          etree.XPath(rule.expected, namespaces=ns) if rule.expected else None)
                self._selects[rule.id][0](etree.Element("probe"), **self._variables)
            except (etree.XPathSyntaxError, etree.XPathEvalError) as exc:
                raise RulePackError(f"{source}: rule {rule.id}: invalid XPath: {exc}") from None
            for name in rule.scope:
                by_scope.setdefault(f"{{{namespace}}}{name}", []).append(rule)
        # tag -> [(parent tag or None, rule, its answers by raw text, check)]: the hot loop's table.
        self._checks: dict[str, list[tuple[str | None, DataQualityRule, dict, ValueCheck]]] = {}
        for rule in rules:
            answers: dict[str | None, tuple[str, str] | None] = {}
            for spec in rule.elements if rule.check else ():
                parent, _, name = spec.rpartition("/")
                self._checks.setdefault(f"{{{namespace}}}{name}", []).append(
                    (f"{{{namespace}}}{parent}" if parent else None, rule, answers, VALUE_CHECKS[rule.check]))
        self._scopes = {tag: (etree.XPath(" | ".join(f"({r.select})" for r in scoped), namespaces=ns), scoped)
                        for tag, scoped in by_scope.items()}
        self._tags = tuple({*self._checks, *self._scopes})
        # The same tables by local name, for the walk in C (one_pass.py): it sees only this namespace's elements.
        local = len(namespace) + 2
        self._checks_by_name = {tag[local:]: [(parent and parent[local:], *rest) for parent, *rest in entries]
                               for tag, entries in self._checks.items()}
        self._scopes_by_name = {tag[local:]: (*scoped, _natives(scoped[1])) for tag, scoped in self._scopes.items()}

    @classmethod
    def load(cls, path: Path, reference: ReferenceData) -> "DataQualityPack":
        try:
            # libyaml's loader where PyYAML has it: the pure-Python one takes 0.12 s, a third of a CLI start
            doc = yaml.load(Path(path).read_text("utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except (OSError, yaml.YAMLError) as exc:
            raise RulePackError(f"{path}: {exc}") from None
        if not isinstance(doc, dict) or not {"pack", "version", "namespace"} <= doc.keys():
            raise RulePackError(f"{path}: a pack needs 'pack', 'version', 'namespace' and 'rules'")
        rules = []
        for i, raw in enumerate(doc.get("rules") or []):
            where = f"{path}: rule {i + 1} ({raw.get('id', '?')})"
            missing = {"id", "title", "message"} - raw.keys()
            if missing:
                raise RulePackError(f"{where}: missing {', '.join(sorted(missing))}")
            if bool(raw.get("select")) == bool(raw.get("check")):
                raise RulePackError(f"{where}: give either 'select' (XPath) or 'check' (a named check), not both")
            if raw.get("select") and not raw.get("scope"):
                raise RulePackError(f"{where}: a select needs the 'scope' elements it is evaluated from")
            if raw.get("check") and raw["check"] not in VALUE_CHECKS:
                raise RulePackError(f"{where}: unknown check {raw['check']!r}; known: {', '.join(sorted(VALUE_CHECKS))}")
            if raw.get("check") and not raw.get("elements"):
                raise RulePackError(f"{where}: a check needs the 'elements' it looks at")
            if raw.get("severity", "error") not in SEVERITIES:
                raise RulePackError(f"{where}: severity must be one of {', '.join(SEVERITIES)}")
            rules.append(DataQualityRule(
                id=raw["id"], title=raw["title"], message=raw["message"], select=raw.get("select"),
                scope=tuple(raw.get("scope") or ()),
                expected=raw.get("expected"), check=raw.get("check"), elements=tuple(raw.get("elements") or ()),
                params=raw.get("params") or {}, examples=raw.get("examples") or {},
                severity=raw.get("severity", "error")))
        ids = [r.id for r in rules]
        if len(ids) != len(set(ids)):
            raise RulePackError(f"{path}: rule ids are not unique")
        return cls(doc["pack"], str(doc["version"]), doc["namespace"], tuple(rules), reference, Path(path))

    def check(self, root: etree._Element) -> list[tuple[DataQualityRule, Finding]]:
        """Every finding in the message, in document order. One pass over the tree, filtered in C."""
        findings = []
        checks, scopes, variables = self._checks, self._scopes, self._variables
        ref, vague = self.reference, self._vague
        for el in root.iter(*self._tags):
            tag = el.tag
            scoped = scopes.get(tag)
            if scoped is not None and scoped[0](el, **variables):
                findings.extend(self.select_findings(el, scoped[1]))
            entries = checks.get(tag)
            if entries is None:
                continue
            text = el.text
            for parent_tag, rule, answers, fn in entries:
                if parent_tag is not None and el.getparent().tag != parent_tag:
                    continue
                try:
                    problem = answers[text]
                except KeyError:
                    if len(answers) >= _CACHE_LIMIT:
                        answers.clear()
                    problem = answers[text] = fn((text or "").strip(), ref, vague)
                if problem is not None:
                    findings.append((rule, Finding(el, (text or "").strip(), *problem)))
        return in_document_order(findings)

    def walk_tables(self) -> tuple:
        """What the walk in C (one_pass.py) takes after the root and the namespace: the checks and the
        scopes by local name, select_findings, the XPath variables, the reference data, the vague
        description matcher and the answer cache's limit."""
        return (self._checks_by_name, self._scopes_by_name, self.select_findings, self._variables, self.reference,
                self._vague, _CACHE_LIMIT)

    def select_findings(self, scope_el, rules) -> Iterator[tuple[DataQualityRule, Finding]]:
        for rule in rules:
            select, expected = self._selects[rule.id]
            for el in select(scope_el, **self._variables):
                text = (el.text or "").strip() if len(el) == 0 else " ".join((c.text or "").strip() for c in el)
                exp = expected(el) if expected is not None else ""
                if isinstance(exp, float):
                    exp = f"{exp:.6f}".rstrip("0").rstrip(".")
                yield rule, Finding(el, text, expected=str(exp))

    def fires(self, rule: DataQualityRule, subject: "str | etree._Element") -> bool:
        """Whether one rule finds a problem in a value (check rules) or a tree (select rules)."""
        if rule.check:
            return VALUE_CHECKS[rule.check](subject, self.reference, self._vague) is not None
        return bool(self._selects[rule.id][0](subject, **self._variables))  # subject: a scope element
