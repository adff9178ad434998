"""Risk rule packs: rules, reference data, statistics and decision tables, as versioned data.

A pack is a folder (or the same files held in Redis, see rule_store.py):

    pack.yaml              name, version, owner; parameters; reference data; statistics;
                           risk levels; decision tables per filing type
    rules/*.yaml           the rules, each with its positive and negative examples
    reference/...          CSV and text files the pack names

`RulePack.from_files` compiles everything once and refuses the pack with every problem
located (file, line, rule, column in the condition) rather than the first. A pack's identity
is name@version plus a digest of its files; the same version with other content is refused
on publication (rule_store.py), so a version names one content forever.
"""
from __future__ import annotations

import csv
import hashlib
import io
import math
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from .answers import text_problem
from .conditions import (Condition, ConditionError, Environment, RefSet, RefTable, Statistics, TermMatcher,
                         compile_condition)
from .filings import BY_CODE, FILING_KINDS, MODES, PRE_LOADING
from .legal_references import LEGAL_FILES, cells, legal_rows, legal_text, row_matches
from .memo import BoundedMemo
from .screening import address_key, name_key
from .unit_statistics import EUR_PER_KG, EUR_PER_PIECE, KG_PER_PACKAGE, UnitReference, from_csv, valued_by_mass

RISK_AREAS = ("security-safety", "financial", "ipr", "health-safety", "environment", "drug-precursors",
              "dual-use", "firearms-explosives", "cash", "cultural-goods", "data-quality", "trusted-trader")
COMPLETE, RFI, RFS, CONTROL, DNL = ("assessment-complete", "request-for-information", "request-for-screening",
                                    "control", "do-not-load")
DECISIONS = (COMPLETE, RFI, RFS, CONTROL, DNL)
# How strong a decision is. RFS (before loading, air) and control (on arrival) are the same strength for
# different moments: a rule asking for screening leads to a control in a sea filing's table.
SEVERITY = {COMPLETE: 0, RFI: 1, RFS: 2, CONTROL: 2, DNL: 3}
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_PACK_ID = 35  # the answers schema's RulePackVersion


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    message: str
    rule: str | None = None

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        return f"{where}: {f'rule {self.rule}: ' if self.rule else ''}{self.message}"


class PackError(ValueError):
    def __init__(self, problems: list[Problem]):
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


# -- YAML with line numbers ---------------------------------------------------------------------
class _Lined(dict):
    line: int = 0
    lines: dict = {}


class _LineLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """Safe loading, through libyaml where PyYAML has it (the pure-Python parser took 0.2 s of a worker's
    start on the starter pack): the same mappings, marks and errors."""


def _lined_map(loader, node):
    loader.flatten_mapping(node)
    mapping = _Lined(loader.construct_mapping(node, deep=True))
    mapping.line = node.start_mark.line + 1
    mapping.lines = {k.value: v.start_mark.line + 1 for k, v in node.value if isinstance(k, yaml.ScalarNode)}
    return mapping


_LineLoader.add_constructor("tag:yaml.org,2002:map", _lined_map)


def _yaml(text: str, file: str, problems: list[Problem]) -> Any:
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problems.append(Problem(file, mark.line + 1 if mark else None, f"not valid YAML: {exc}"))
        return None


def _line(mapping, key: str | None = None) -> int | None:
    if not isinstance(mapping, _Lined):
        return None
    return mapping.lines.get(key, mapping.line) if key else mapping.line


# -- the pack's parts ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Example:
    fires: bool
    data: dict
    line: int | None


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    area: str
    owner: str
    weight: float
    decision: str  # the strongest decision this rule can lead to
    condition: Condition
    filings: frozenset[str]  # F codes it applies to (amendments follow their filing)
    valid_from: float | None = None
    valid_until: float | None = None
    ask: str | None = None  # what a request for information asks the filer
    screening_methods: tuple[str, ...] = ()
    description: str = ""
    examples: tuple[Example, ...] = ()
    file: str = ""
    line: int | None = None
    strong: bool = False  # a strong indicator: refers on its own (the table's `strong_indicator`), whatever the score

    def valid_at(self, now: float) -> bool:
        return (self.valid_from is None or now >= self.valid_from) and (self.valid_until is None or now < self.valid_until)

    def can_lead_to(self, decision: str) -> bool:
        """A request for information needs a rule with a question; the others, a rule at least that strong."""
        if decision == RFI:
            return self.decision == RFI
        return SEVERITY[self.decision] >= max(SEVERITY[decision], 2)


@dataclass(frozen=True)
class DecisionTable:
    name: str
    filings: frozenset[str]
    thresholds: tuple[tuple[str, float], ...]  # (decision, minimum score), strongest first
    strong: str | None = None  # the decision one strong indicator leads to on its own (None: no such policy)


_UNKNOWN = object()  # not yet looked up (None is a found "no reference")


class PackStatistics(Statistics):
    """Reference distributions: unit values and masses per package per HS code (learned, see
    unit_statistics.py; or a hand-typed table of medians), usual loading countries per HS
    heading, plausible kilograms per package type."""

    def __init__(self, unit_values: RefTable | None, routes: dict[str, dict[str, float]],
                 package_weights: dict[str, float], learned: UnitReference | None = None,
                 goods_package_weights: tuple[tuple[str, tuple[str, ...], float], ...] = ()):
        self.unit_values, self.routes, self.package_weights = unit_values, routes, package_weights
        # (package type, HS prefixes, max kg): a package of these goods carries less than its type allows
        # (a carton of T-shirts is full long before it is heavy). Judged for one package type only.
        self.goods_package_weights = goods_package_weights
        self.learned = learned
        self._by_code: dict = {}
        self._by_cell: dict = {}
        self._limits = BoundedMemo(100_000)  # (package type, HS code) -> package_limit
        self._by_goods = BoundedMemo(100_000)  # (HS code, package types) -> _goods_references

    # These run for every goods item of every filing (the scorer's index reads them): kept tight.
    def _reference(self, hs: str | None):
        """(median EUR/kg, log sigma) for an HS code, remembered per code (callers look in
        _by_code first: a method call costs as much as the rest of a statistic)."""
        found = self._by_code.get(hs)
        if found is None:
            if not valued_by_mass(hs):
                found = (None, None)
            elif self.learned is not None:
                ref = self._cell(EUR_PER_KG, hs, "")
                found = ref[:2] if ref else (None, None)
            else:
                row = self.unit_values.get(hs) if self.unit_values is not None and hs else None
                found = (row["median_eur_per_kg"], row["log_sigma"]) if row else (None, None)
            self._by_code[hs] = found
        return found

    def unit_value_z(self, item) -> float | None:
        """How many (log-normal) standard deviations the declared value per kg lies from its HS code's median."""
        value, mass = item.value_eur, item.gross_mass
        if not value or not mass or value < 0:
            return None
        median, sigma = self._by_code.get(item.hs_code) or self._reference(item.hs_code)
        return math.log(value / mass / median) / sigma if median and sigma else None

    def unit_value_ratio(self, item) -> float | None:
        value, mass = item.value_eur, item.gross_mass
        if value is None or not mass:
            return None
        median = (self._by_code.get(item.hs_code) or self._reference(item.hs_code))[0]
        return value / mass / median if median else None

    def _cell(self, measure: str, hs: str | None, package_type: str):
        """(median, spread, cell) of the learned cell of an HS code and package type, or None;
        remembered per (measure, code, type)."""
        key = (measure, hs, package_type)
        try:
            return self._by_cell[key]
        except KeyError:
            learned = self.learned
            cell = learned.cell(measure, hs, package_type) if learned is not None else None
            found = self._by_cell[key] = (cell.stats.median, learned.spread(cell), cell) if cell else None
            return found

    def _per_piece(self, item):
        """(EUR per piece, reference) of goods counted in pieces of one package type, else (None, None)."""
        value, packages, types = item.value_eur, item.packages, item.package_types
        if not value or value < 0 or not packages or len(types) != 1:
            return None, None
        return value / packages, self._cell(EUR_PER_PIECE, item.hs_code, types[0])

    def piece_value_z(self, item) -> float | None:
        """Like unit_value_z, per piece, for goods counted in pieces (unpacked: cars, machines, ...)."""
        value, ref = self._per_piece(item)
        return math.log(value / ref[0]) / ref[1] if ref else None

    def piece_value_ratio(self, item) -> float | None:
        value, ref = self._per_piece(item)
        return value / ref[0] if ref else None

    def package_mass_z(self, item) -> float | None:
        """How many (log-space) standard deviations the kilograms per package lie from the usual for
        these goods in this package type: far above, more than the goods weigh; far below, packages
        too light for what they are said to hold. Items of one package type with a count only."""
        mass, packages, types = item.gross_mass, item.packages, item.package_types
        if not mass or mass < 0 or not packages or len(types) != 1:
            return None
        ref = self._by_cell.get((KG_PER_PACKAGE, item.hs_code, types[0]), _UNKNOWN)
        if ref is _UNKNOWN:
            ref = self._cell(KG_PER_PACKAGE, item.hs_code, types[0])
        return math.log(mass / packages / ref[0]) / ref[1] if ref else None

    def package_mass_ratio(self, item) -> float | None:
        mass, packages, types = item.gross_mass, item.packages, item.package_types
        if not mass or mass < 0 or not packages or len(types) != 1:
            return None
        ref = self._cell(KG_PER_PACKAGE, item.hs_code, types[0])
        return mass / packages / ref[0] if ref else None

    def reference(self, name: str, item) -> str | None:
        if name in ("unit_value_z", "unit_value_ratio"):
            if self.learned is None:
                median = self._reference(item.hs_code)[0]
                return f"table of medians, {median:g} EUR/kg" if median else None
            ref = self._cell(EUR_PER_KG, item.hs_code, "")
        elif name in ("piece_value_z", "piece_value_ratio", "package_mass_z", "package_mass_ratio"):
            types = item.package_types
            measure = KG_PER_PACKAGE if name.startswith("package") else EUR_PER_PIECE
            ref = self._cell(measure, item.hs_code, types[0]) if len(types) == 1 else None
        else:
            return None
        return self.learned.describe(ref[2]) if ref else None

    def route_share(self, item, loading_country) -> float | None:
        """Share of the reference traffic of the item's HS heading loaded in this country (0 when never seen)."""
        hs = item.hs_code
        shares = self.routes.get(hs[:4]) if hs else None
        if shares is None or not loading_country:
            return None
        return shares.get(loading_country, 0.0)

    def package_max_kg(self, item) -> float | None:
        return self._heaviest(item.package_types)

    def _heaviest(self, package_types: tuple[str, ...]) -> float | None:
        limits = [self.package_weights[t] for t in package_types if t in self.package_weights]
        return max(limits) if limits else None

    def package_load(self, item) -> float | None:
        """Kilograms per package as a share of what the package type carries at most (above 1: implausible)."""
        mass, packages = item.gross_mass, item.packages
        if mass is None or not packages:
            return None
        types = item.package_types
        limit = self.package_limit(types[0], item.hs_code) if len(types) == 1 else self.package_max_kg(item)
        return mass / packages / limit if limit else None

    # The statistics goods_measures gives, in its order.
    MEASURED = ("unit_value_z", "unit_value_ratio", "package_mass_z", "package_load", "route_share")

    def goods_measures(self, item, loading_country) -> tuple:
        """The MEASURED statistics of one goods item at once, each as its own method gives it (the
        scorer's index reads them for every goods item of every filing: one call, the references
        of the item's code and package types looked up once per such pair (_goods_references),
        costs a fraction of five; tests/test_compiled_scoring.py checks they agree on generated
        traffic). The methods stay what conditions and explanations read."""
        key = (item.hs_code, item.package_types)
        refs = self._by_goods.get(key)
        if refs is None:
            refs = self._goods_references(*key)
        median, sigma, per_package, limit, shares = refs
        # item.value_eur written out (a property call costs as much as the look-up above)
        value = item.value if item.currency == "EUR" else item.converted_value
        mass, packages = item.gross_mass, item.packages
        z = ratio = mass_z = load = share = None
        if median and value is not None and mass:
            ratio = value / mass / median
            if value and not value < 0 and sigma:
                z = math.log(value / mass / median) / sigma
        if packages and mass is not None:
            if per_package and mass and not mass < 0:
                mass_z = math.log(mass / packages / per_package[0]) / per_package[1]
            if limit:
                load = mass / packages / limit
        if shares is not None and loading_country:
            share = shares.get(loading_country, 0.0)
        return z, ratio, mass_z, load, share

    def _goods_references(self, hs: str | None, types: tuple[str, ...]) -> tuple:
        """What goods_measures compares an item of this code and these package types with: (median
        EUR/kg, its log sigma, the learned kg per package of the one type or None, the most a
        package carries, the heading's loading-country shares or None); remembered per pair."""
        median, sigma = self._reference(hs)
        one = len(types) == 1
        per_package = self._cell(KG_PER_PACKAGE, hs, types[0]) if one else None
        limit = self.package_limit(types[0], hs) if one else self._heaviest(types)
        refs = (median, sigma, per_package, limit, self.routes.get(hs[:4]) if hs else None)
        return self._by_goods.remember((hs, types), refs)

    def package_limit(self, package_type: str, hs_code: str | None) -> float | None:
        """The most a package of this type holding goods of this code weighs: the goods' own row if
        one names the code, else the type's; remembered per type and code."""
        key = (package_type, hs_code)
        found = self._limits.get(key, _UNKNOWN)
        if found is _UNKNOWN:
            code = hs_code or ""
            found = next((kg for kind, prefixes, kg in self.goods_package_weights
                          if kind == package_type and code.startswith(prefixes)), self.package_weights.get(package_type))
            self._limits.remember(key, found)
        return found


@dataclass(frozen=True)
class RulePack:
    name: str
    version: str
    digest: str
    owner: str
    description: str
    rules: tuple[Rule, ...]
    tables: tuple[DecisionTable, ...]
    levels: tuple[tuple[str, float], ...]  # (risk level, minimum score), highest first
    environment: Environment
    files: dict = field(repr=False, compare=False, default_factory=dict)
    calibration: dict = field(repr=False, compare=False, default_factory=dict)  # the record of the calibration applied

    @property
    def id(self) -> str:
        """What every decision records: name@version+digest (the answers schema allows 35 characters)."""
        return f"{self.name}@{self.version}+{self.digest[:8]}"

    def table_for(self, filing_code: str) -> DecisionTable:
        """The first table listing the filing's type (amendments are decided like their filing)."""
        code = "F" + filing_code[1:]
        return next(t for t in self.tables if code in t.filings)

    def level_for(self, score: float) -> str:
        return next((name for name, minimum in self.levels if score >= minimum), self.levels[-1][0])

    # -- loading -----------------------------------------------------------------------------
    @classmethod
    def load(cls, directory: Path) -> "RulePack":
        return cls.from_files(read_pack_files(directory))

    @classmethod
    def from_files(cls, files: dict[str, str]) -> "RulePack":
        """files: path within the pack -> text. Raises PackError naming every problem."""
        problems: list[Problem] = []
        manifest = _yaml(files.get("pack.yaml", ""), "pack.yaml", problems) if "pack.yaml" in files else None
        if "pack.yaml" not in files:
            problems.append(Problem("pack.yaml", None, "missing: every pack has a pack.yaml"))
        if not isinstance(manifest, dict):
            if manifest is not None:
                problems.append(Problem("pack.yaml", None, "must be a mapping"))
            raise PackError(problems)
        name, version = str(manifest.get("pack", "")), str(manifest.get("version", ""))
        for key, value in (("pack", name), ("version", version)):
            if not value:
                problems.append(Problem("pack.yaml", _line(manifest), f"`{key}` is required"))
        parameters = manifest.get("parameters") or {}
        if not isinstance(parameters, dict):
            problems.append(Problem("pack.yaml", _line(manifest, "parameters"), "`parameters` must be a mapping"))
            parameters = {}
        references = _references(manifest.get("reference") or {}, files, problems)
        statistics = _statistics(manifest.get("statistics") or {}, files, problems, parameters)
        env = Environment(references, dict(parameters), statistics)
        levels = _levels(manifest, problems)
        tables = _tables(manifest, problems)
        rules = _rules(manifest, files, env, problems)
        rules, calibration = _calibrated(manifest, files, rules, problems)
        digested = {**files, **legal_inputs(manifest)}  # a legal list's new edition is new content
        digest = hashlib.sha256(b"".join(f"{k}\0{digested[k]}\0".encode() for k in sorted(digested))).hexdigest()
        pack = cls(name, version, digest, str(manifest.get("owner", "")), str(manifest.get("description", "")),
                   tuple(rules), tables, levels, env, dict(files), calibration)
        if name and version and len(pack.id) > MAX_PACK_ID:
            problems.append(Problem("pack.yaml", _line(manifest, "pack"),
                                    f"name@version+digest {pack.id!r} exceeds {MAX_PACK_ID} characters"))
        if problems:
            raise PackError(problems)
        return pack


def read_pack_files(directory: Path) -> dict[str, str]:
    directory = Path(directory)
    if not (directory / "pack.yaml").is_file():
        raise PackError([Problem(str(directory), None, "not a rule pack: no pack.yaml")])
    files = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            if path.stat().st_size > MAX_FILE_BYTES:
                raise PackError([Problem(str(path.relative_to(directory)), None,
                                         f"larger than {MAX_FILE_BYTES // 2**20} MiB")])
            files[path.relative_to(directory).as_posix()] = path.read_text(encoding="utf-8")
    return files


def _epoch(value, file: str, line, what: str, problems: list[Problem], rule: str | None = None) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=value.tzinfo or timezone.utc).timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc).timestamp()
    try:
        return datetime.fromisoformat(str(value)).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        problems.append(Problem(file, line, f"{what} {value!r} is not a date (YYYY-MM-DD)", rule))
        return None


def _csv_rows(files, file, problems, line) -> list[dict[str, str]] | None:
    if file not in files:
        problems.append(Problem("pack.yaml", line, f"names {file}, which is not in the pack"))
        return None
    return list(csv.DictReader(io.StringIO(files[file])))


def _references(spec, files, problems) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not isinstance(spec, dict):
        problems.append(Problem("pack.yaml", None, "`reference` must be a mapping of name -> {file, kind, ...}"))
        return out
    for name, entry in spec.items():
        line = _line(spec, name)
        if isinstance(entry, dict) and "legal" in entry:
            found = _legal_reference(name, entry, line, problems)
            if found is not None:
                out[name] = found
            continue
        if not isinstance(entry, dict) or "file" not in entry or entry.get("kind") not in ("set", "terms", "table"):
            problems.append(Problem("pack.yaml", line, f"reference {name}: needs `file` and `kind` (set, terms or "
                                                       f"table)"))
            continue
        file, kind = entry["file"], entry["kind"]
        if kind == "terms" or (kind == "set" and file.endswith(".txt")):
            if file not in files:
                problems.append(Problem("pack.yaml", line, f"reference {name}: names {file}, which is not in the pack"))
                continue
            lines = [t.strip() for t in files[file].splitlines() if t.strip() and not t.lstrip().startswith("#")]
            out[name] = TermMatcher(lines) if kind == "terms" else RefSet(lines)
            continue
        rows = _csv_rows(files, file, problems, line)
        if rows is None:
            continue
        where = entry.get("where") or {}
        if not isinstance(where, dict) or (rows and not set(where) <= set(rows[0])):
            problems.append(Problem("pack.yaml", line, f"reference {name}: `where` names columns of {file} "
                                                       f"(it has {', '.join(rows[0]) if rows else 'none'})"))
            continue
        rows = [r for r in rows if all((r.get(k) or "").strip() == str(v) for k, v in where.items())]
        column = entry.get("column") if kind == "set" else entry.get("key")
        if entry.get("normalize") == "address":
            rows = [{**r, "_address": address_key(r.get("street"), r.get("city"), r.get("country"))} for r in rows]
            column = "_address"
        if not rows or column not in rows[0]:
            problems.append(Problem(file, 1, f"reference {name}: no rows, or no column {column!r} (columns: "
                                             f"{', '.join(rows[0]) if rows else 'none'})"))
            continue
        normalize = name_key if entry.get("normalize") == "name" else (lambda v: v)
        if kind == "set":
            values, expiry = [], {}
            for row_number, row in enumerate(rows, start=2):
                value = normalize((row.get(column) or "").strip())
                if not value:
                    continue
                values.append(value)
                until = (row.get("valid_until") or "").strip()
                if until:
                    epoch = _epoch(until, file, row_number, "valid_until", problems)
                    if epoch is not None:
                        expiry[value] = max(expiry.get(value, 0), epoch)
            out[name] = RefSet(values, expiry)
        else:
            table = {}
            for row in rows:
                key = (row.get(column) or "").strip()
                if key:
                    table[key] = {k: _cell(v) for k, v in row.items() if k != column}
            out[name] = RefTable(table, prefix=entry.get("match") == "prefix")
    return out


def _legal_reference(name: str, entry: dict, line, problems: list[Problem]) -> RefSet | TermMatcher | None:
    """A set or term list drawn from a bundled legal list (see legal_references.py): the values of
    `column` (or of each of a list of columns) in the rows `where` selects; a term list may add
    exclusions (`exclude`)."""
    rows = legal_rows(str(entry["legal"]))
    kind, column, where = entry.get("kind"), entry.get("column"), entry.get("where") or {}
    columns_asked = [str(c) for c in column] if isinstance(column, list) else [str(column)]
    if rows is None:
        problems.append(Problem("pack.yaml", line, f"reference {name}: no legal list {entry['legal']!r}; one of "
                                                   f"{', '.join(LEGAL_FILES)}"))
        return None
    columns = set(rows[0]) if rows else set()
    unknown = sorted({*columns_asked, *where} - columns) if isinstance(where, dict) else ["where"]
    if kind not in ("set", "terms") or unknown or set(entry) - {"legal", "kind", "column", "where", "exclude"}:
        problems.append(Problem("pack.yaml", line, f"reference {name}: a legal list gives a set or terms "
                                                   f"(`kind`) from a `column`, optionally `where` and `exclude`; "
                                                   f"{entry['legal']} has columns {', '.join(sorted(columns))}"))
        return None
    values = list(dict.fromkeys(v for row in rows if row_matches(row, where) for c in columns_asked
                                for v in cells(row[c])))
    if not values:
        problems.append(Problem("pack.yaml", line, f"reference {name}: no rows of {entry['legal']} match {where}"))
        return None
    if kind == "set":
        return RefSet(values)
    return TermMatcher([*values, *(f"!{x}" for x in entry.get("exclude") or ())])


def legal_inputs(manifest) -> dict[str, str]:
    """The legal lists a pack's reference data draws on, as text (the pack's digest covers them)."""
    spec = manifest.get("reference") if isinstance(manifest, dict) else None
    names = {str(e["legal"]) for e in (spec.values() if isinstance(spec, dict) else ())
             if isinstance(e, dict) and str(e.get("legal")) in LEGAL_FILES}
    return {f"legal:{n}": legal_text(n) for n in sorted(names)}


def _cell(value: str | None):
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value.strip() or None


# Parameters of the learned statistics, and what they are when a pack does not set them.
LEARNED_PARAMETERS = {"reference_min_count": 20, "reference_min_log_sigma": 0.0}


def _learned(spec, files, problems, parameters) -> UnitReference | None:
    """The learned table of unit values and masses per package (`unit_statistics:`), or None."""
    file, line = spec["unit_statistics"], _line(spec, "unit_statistics")
    settings = {k: parameters.get(k, default) for k, default in LEARNED_PARAMETERS.items()}
    bad = [k for k, v in settings.items() if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0]
    if bad:
        problems.append(Problem("pack.yaml", _line(parameters, bad[0]), f"parameter {bad[0]} is a number, 0 or more"))
        return None
    if file not in files:
        problems.append(Problem("pack.yaml", line, f"names {file}, which is not in the pack"))
        return None
    try:
        cells = from_csv(files[file])
    except ValueError as exc:
        problems.append(Problem(file, None, str(exc)))
        return None
    return UnitReference(cells, settings["reference_min_count"], settings["reference_min_log_sigma"])


def _statistics(spec, files, problems, parameters=None) -> PackStatistics:
    unit_values, routes, weights = None, {}, {}
    learned = _learned(spec, files, problems, parameters or {}) if "unit_statistics" in spec else None
    if "unit_values" in spec:
        rows = _csv_rows(files, spec["unit_values"], problems, _line(spec, "unit_values"))
        if rows is not None:
            wanted = {"hs", "median_eur_per_kg", "log_sigma"}
            if rows and not wanted <= set(rows[0]):
                problems.append(Problem(spec["unit_values"], 1, f"needs columns {', '.join(sorted(wanted))}"))
            else:
                unit_values = RefTable({r["hs"]: {"median_eur_per_kg": float(r["median_eur_per_kg"]),
                                                  "log_sigma": float(r["log_sigma"])} for r in rows}, prefix=True)
    if "commodity_routes" in spec:
        for row in _csv_rows(files, spec["commodity_routes"], problems, _line(spec, "commodity_routes")) or ():
            routes.setdefault(row["hs4"], {})[row["country"]] = float(row["share"])
    goods_weights = []
    if "package_weights" in spec:
        for row in _csv_rows(files, spec["package_weights"], problems, _line(spec, "package_weights")) or ():
            prefixes = tuple(sorted(filter(None, (row.get("hs") or "").split("|")), key=len, reverse=True))
            if prefixes:
                goods_weights.append((row["package_type"], prefixes, float(row["max_kg"])))
            else:
                weights[row["package_type"]] = float(row["max_kg"])
    return PackStatistics(unit_values, routes, weights, learned, tuple(goods_weights))


def _levels(manifest, problems) -> tuple[tuple[str, float], ...]:
    levels = (manifest.get("scoring") or {}).get("levels") or {"low": 0, "medium": 30, "high": 60, "critical": 90}
    if not isinstance(levels, dict) or not all(isinstance(v, (int, float)) for v in levels.values()):
        problems.append(Problem("pack.yaml", _line(manifest, "scoring"), "scoring.levels: name -> minimum score"))
        return (("low", 0),)
    return tuple(sorted(levels.items(), key=lambda kv: -kv[1]))


def _filing_codes(value, file, line, problems, rule=None) -> frozenset[str]:
    if value in (None, "all", ["all"]):
        return frozenset(k.code for k in FILING_KINDS)
    codes = set()
    for v in value if isinstance(value, list) else [value]:
        v = str(v)
        if v in MODES:
            codes.update(k.code for k in FILING_KINDS if k.mode == v)
        elif v == "pre-loading":
            codes.update(k.code for k in FILING_KINDS if k.level == PRE_LOADING)
        elif v in BY_CODE:
            codes.add(v)
        else:
            problems.append(Problem(file, line, f"{v!r} is neither a mode ({', '.join(MODES)}), `pre-loading`, "
                                                f"nor a filing code (F10..F51)", rule))
    return frozenset(codes)


def _tables(manifest, problems) -> tuple[DecisionTable, ...]:
    spec = manifest.get("decisions")
    if not isinstance(spec, list) or not spec:
        problems.append(Problem("pack.yaml", _line(manifest, "decisions"),
                                "`decisions` must list decision tables: {name, filings, thresholds}"))
        return ()
    tables = []
    for entry in spec:
        line = _line(entry)
        if not isinstance(entry, dict) or not isinstance(entry.get("thresholds"), dict):
            problems.append(Problem("pack.yaml", line, "a decision table needs `thresholds`: decision -> minimum score"))
            continue
        filings = _filing_codes(entry.get("filings"), "pack.yaml", line, problems)
        thresholds = []
        for decision, minimum in entry["thresholds"].items():
            if decision not in DECISIONS[1:]:
                problems.append(Problem("pack.yaml", _line(entry["thresholds"], decision),
                                        f"unknown decision {decision!r}; one of {', '.join(DECISIONS[1:])}"))
            elif decision == DNL and any(BY_CODE[c].level != PRE_LOADING for c in filings):
                problems.append(Problem("pack.yaml", _line(entry["thresholds"], decision),
                                        "do-not-load is for air pre-loading filings only (F20, F32, F45)"))
            elif not isinstance(minimum, (int, float)):
                problems.append(Problem("pack.yaml", _line(entry["thresholds"], decision), "a threshold is a number"))
            else:
                thresholds.append((decision, float(minimum)))
        thresholds.sort(key=lambda t: (-SEVERITY[t[0]], -t[1]))
        strong = entry.get("strong_indicator")
        if strong is not None and strong not in {d for d, _ in thresholds}:
            problems.append(Problem("pack.yaml", _line(entry, "strong_indicator"),
                                    f"strong_indicator {strong!r} is not a decision of this table "
                                    f"({', '.join(d for d, _ in thresholds)})"))
            strong = None
        tables.append(DecisionTable(str(entry.get("name", f"table {len(tables) + 1}")), filings, tuple(thresholds),
                                    strong))
    covered = frozenset().union(*(t.filings for t in tables)) if tables else frozenset()
    missing = sorted(k.code for k in FILING_KINDS if k.code not in covered)
    if tables and missing:
        problems.append(Problem("pack.yaml", _line(manifest, "decisions"),
                                f"no decision table for {', '.join(missing)}"))
    return tuple(tables)


_RULE_KEYS = {"id", "title", "area", "owner", "weight", "decision", "when", "modes", "filings", "valid", "ask",
              "screening", "description", "examples", "strength"}
STRENGTHS = ("weak", "strong")


def _rules(manifest, files, env, problems) -> list[Rule]:
    patterns = manifest.get("rules") or ["rules/*.yaml"]
    rule_files = sorted({f for p in patterns for f in files if Path(f).match(p)})
    if not rule_files:
        problems.append(Problem("pack.yaml", _line(manifest, "rules"), f"no rule files match {patterns}"))
    rules, seen = [], {}
    for file in rule_files:
        data = _yaml(files[file], file, problems)
        entries = data.get("rules") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            if data is not None:
                problems.append(Problem(file, 1, "a rule file holds `rules:`, a list of rules"))
            continue
        for entry in entries:
            rule = _rule(entry, file, env, problems)
            if rule is None:
                continue
            if rule.id in seen:
                problems.append(Problem(file, rule.line, f"id {rule.id} already used in {seen[rule.id]}", rule.id))
                continue
            seen[rule.id] = f"{file}:{rule.line}"
            rules.append(rule)
    return rules


def _rule(entry, file, env, problems) -> Rule | None:
    line = _line(entry)
    if not isinstance(entry, dict):
        problems.append(Problem(file, line, "a rule is a mapping"))
        return None
    rid = str(entry.get("id", ""))
    before = len(problems)
    for key in sorted(set(entry) - _RULE_KEYS):
        problems.append(Problem(file, _line(entry, key), f"unknown key {key!r}", rid or None))
    for key in ("id", "title", "area", "owner", "weight", "decision", "when"):
        if entry.get(key) in (None, ""):
            problems.append(Problem(file, line, f"`{key}` is required", rid or None))
    if entry.get("area") and entry["area"] not in RISK_AREAS:
        problems.append(Problem(file, _line(entry, "area"), f"unknown risk area {entry['area']!r}; one of "
                                                            f"{', '.join(RISK_AREAS)}", rid))
    if entry.get("decision") and entry["decision"] not in DECISIONS:
        problems.append(Problem(file, _line(entry, "decision"), f"unknown decision {entry['decision']!r}; one of "
                                                                f"{', '.join(DECISIONS)}", rid))
    weight = entry.get("weight")
    if weight is not None and (not isinstance(weight, (int, float)) or not -100 <= weight <= 100):
        problems.append(Problem(file, _line(entry, "weight"), "weight is a number from -100 to 100", rid))
    if entry.get("decision") == RFI and not entry.get("ask"):
        problems.append(Problem(file, _line(entry, "decision"), "a request-for-information rule says what to ask "
                                                                "(`ask`)", rid))
    problem = text_problem(str(entry["ask"])) if entry.get("ask") else None
    if problem:  # the question goes into the filer's answer, which would fail its schema
        problems.append(Problem(file, _line(entry, "ask"), f"the question {problem}", rid))
    if entry.get("strength", "weak") not in STRENGTHS:
        problems.append(Problem(file, _line(entry, "strength"), "strength is `weak` (refers only in combination, "
                                                                "the default) or `strong` (refers on its own)", rid))
    screening = tuple(str(m) for m in entry.get("screening") or ())
    if any(m not in "0123456789" or len(m) != 1 for m in screening):
        problems.append(Problem(file, _line(entry, "screening"), "screening methods are codes 0-9", rid))
    condition = None
    if entry.get("when"):
        try:
            condition = compile_condition(str(entry["when"]), env)
        except ConditionError as exc:
            problems.append(Problem(file, _line(entry, "when"), f"condition: {exc}", rid))
        except (RecursionError, MemoryError):
            problems.append(Problem(file, _line(entry, "when"), "condition: too deeply nested", rid))
    modes = _filing_codes(entry.get("modes"), file, _line(entry, "modes"), problems, rid)
    filings = _filing_codes(entry.get("filings"), file, _line(entry, "filings"), problems, rid) \
        if entry.get("filings") is not None else modes
    valid = entry.get("valid") or {}
    valid_from = _epoch(valid.get("from"), file, _line(entry, "valid"), "valid.from", problems, rid)
    valid_until = _epoch(valid.get("until"), file, _line(entry, "valid"), "valid.until", problems, rid)
    examples = _examples(entry, file, rid, problems)
    if len(problems) > before or condition is None:
        return None
    return Rule(rid, str(entry["title"]), entry["area"], str(entry["owner"]), float(weight), entry["decision"],
                condition, modes & filings, valid_from, valid_until, entry.get("ask"), screening,
                str(entry.get("description", "")), examples, file, line, entry.get("strength") == "strong")


def _examples(entry, file, rid, problems) -> tuple[Example, ...]:
    spec = entry.get("examples")
    if not isinstance(spec, dict) or not spec.get("fires") or not spec.get("passes"):
        problems.append(Problem(file, _line(entry, "examples") or _line(entry),
                                "every rule needs examples: at least one under `fires` and one under `passes`", rid))
        return ()
    out = []
    for key in ("fires", "passes"):
        for example in spec[key]:
            if not isinstance(example, dict):
                problems.append(Problem(file, _line(spec, key), "an example is a mapping of filing fields", rid))
                continue
            out.append(Example(key == "fires", example, _line(example)))
    return tuple(out)


def _calibrated(manifest, files, rules: list[Rule], problems: list[Problem]) -> tuple[list[Rule], dict]:
    """The rules with the weights of the pack's calibration file (`calibration:` in pack.yaml,
    written by `cargoscreen rules calibrate`), and that file's record of where they came from.
    A calibration sets weak indicators only: a strong one refers on its own whatever its weight."""
    file = manifest.get("calibration")
    if not file:
        return rules, {}
    line = _line(manifest, "calibration")
    if file not in files:
        problems.append(Problem("pack.yaml", line, f"calibration names {file}, which is not in the pack"))
        return rules, {}
    data = _yaml(files[file], file, problems)
    weights = data.get("weights") if isinstance(data, dict) else None
    if not isinstance(weights, dict) or not isinstance(data.get("record"), dict):
        problems.append(Problem(file, 1, "a calibration holds `record:` (where it came from) and `weights:` "
                                         "(rule id -> weight)"))
        return rules, {}
    by_id = {r.id: r for r in rules}
    for rid, weight in weights.items():
        rule = by_id.get(str(rid))
        if rule is None or rule.strong or not isinstance(weight, (int, float)) or not -100 <= weight <= 100:
            problems.append(Problem(file, _line(weights, rid), f"{rid}: a calibrated weight is a number from -100 to "
                                                               f"100 for a weak rule of the pack", str(rid)))
        else:
            by_id[rule.id] = replace(rule, weight=float(weight))
    return [by_id[r.id] for r in rules], dict(data["record"])
