"""Risk information sharing: what one risk centre finds, every pipeline screens for, until it expires.

An analyst publishes a risk information form (the EU's CRMS2 does this between ~900 offices):
what to watch (a party, an address, a route, a container, a commodity, or a pattern written in
the rule language), the risk area, what a hit should lead to, and a validity period. Each form
becomes one rule, compiled against the active pack's reference data, added to that pack's
rules: hot reload (rule_store.RulePackSource) picks a new form up within its poll interval,
the rule's validity makes it stop firing at the second it expires, and its hits explain
themselves like any rule's ("Risk information RIF-RC-NL-7 (RC-NL): ...").

    {prefix}:riskinfo:forms     hash: form id -> JSON
    {prefix}:riskinfo:version   incremented by every publication and revocation (what workers poll)
    {prefix}:riskinfo:seq       form numbers

Forms are checked before they are stored: a condition that does not compile (or goes past the
language's bounds on nesting and cost), an unknown area or decision, a period that ends before it
starts, a title or question an answer cannot carry (a control character), are refused with the
reason. So is a form that singles nothing out: one analyst's form is a rule in every pipeline, and
one that fires on most ordinary traffic would refer (or stop) ordinary trade everywhere. Besides
the constants the compiler refuses, each form is tried on generated ordinary filings of its modes
and refused when it fires on more than MAX_ORDINARY_SHARE of them.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import cache

import redis

from .audit import audit_fields, system_trail
from .connectors.redis_store import hash_tag
from .domain.answers import text_problem
from .domain.conditions import ConditionError, compile_condition
from .domain.container_events import utc_epoch
from .domain.filings import FILING_KINDS, MODES
from .domain.rulepack import CONTROL, DNL, RFI, RFS, RISK_AREAS, Rule, RulePack
from .domain.screening import address_key, name_key
from .validation import utc_now

KINDS = ("party", "address", "route", "container", "commodity", "pattern")
ACTIONS = (RFI, RFS, CONTROL, DNL)
DEFAULT_WEIGHT = 70  # above the starter pack's control threshold: a centre's alert refers on its own
RULE_FILE = "risk-information"  # what a form's rule gives as its file (rules from packs name theirs)
ORDINARY_FILINGS = 300  # generated clean filings of every mode a form is tried on before publication
MAX_ORDINARY_SHARE = 0.5  # a form firing on more of those (of its modes) singles nothing out


class FormError(ValueError):
    pass


def _literal(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _place(value: str, port_field: str, country_field: str) -> str:
    value = value.strip().upper()
    if re.fullmatch(r"[A-Z]{2}", value):
        return f"{country_field} == {_literal(value)}"
    if re.fullmatch(r"[A-Z]{2}[A-Z0-9]{3}", value):
        return f"{port_field} == {_literal(value)}"
    raise FormError(f"{value!r} is neither a country (2 letters) nor a UN/LOCODE (5 characters)")


def condition_of(kind: str, watch: dict) -> str:
    """The rule-language condition a form's `watch` fields stand for."""
    w = {k: str(v).strip() for k, v in watch.items() if v is not None and str(v).strip()}
    if kind == "party":
        tests = ([f"id == {_literal(w['id'].upper())}"] if "id" in w else []) + \
            ([f"name_key == {_literal(name_key(w['name']))}"] if "name" in w else [])
        if not tests:
            raise FormError("a party is watched by its identification number, its name, or both")
        return f"any(parties, {' or '.join(tests)})"
    if kind == "address":
        if not {"street", "city", "country"} <= set(w):
            raise FormError("an address needs street, city and country")
        return f"any(parties, address_key == {_literal(address_key(w['street'], w['city'], w['country'].upper()))})"
    if kind == "route":
        tests = [_place(w["from"], "place_of_loading", "loading_country")] if "from" in w else []
        tests += [_place(w["to"], "place_of_unloading", "unloading_country")] if "to" in w else []
        if "via" in w:
            if not re.fullmatch(r"[A-Za-z]{2}", w["via"]):
                raise FormError("`via` is a country (2 letters)")
            tests.append(f"{_literal(w['via'].upper())} in routing_countries")
        if not tests:
            raise FormError("a route needs at least one of from, to, via")
        return " and ".join(tests)
    if kind == "container":
        if not re.fullmatch(r"[A-Za-z]{4}\d{7}", w.get("container", "")):
            raise FormError("a container is its ISO 6346 number (4 letters, 7 digits)")
        return f"any(containers, container_id == {_literal(w['container'].upper())})"
    if kind == "commodity":
        tests = []
        if "hs" in w:
            if not re.fullmatch(r"\d{2,8}", w["hs"]):
                raise FormError("an HS code prefix is 2 to 8 digits")
            tests.append(f"prefixed(hs_code, {_literal(w['hs'])})")
        if "description" in w:
            tests.append(f"matches(description, {_literal(w['description'])})")
        if not tests:
            raise FormError("a commodity is watched by HS code prefix, description words, or both")
        return f"any(goods, {' and '.join(tests)})"
    if kind == "pattern":
        if "condition" not in w:
            raise FormError("a pattern is a condition in the rule language (rules/README.md)")
        return w["condition"]
    raise FormError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")


@dataclass(frozen=True)
class RiskInformation:
    id: str
    centre: str
    kind: str
    watch: dict
    title: str
    area: str
    action: str
    valid_from: str  # ISO 8601 UTC
    valid_until: str
    weight: float = DEFAULT_WEIGHT
    ask: str = ""
    modes: tuple[str, ...] = ()
    published_by: str = ""
    published_at: str = ""
    revoked_by: str = ""
    revoked_at: str = ""
    condition: str = field(default="", compare=False)

    def to_json(self) -> str:
        return json.dumps({**self.__dict__, "modes": list(self.modes)}, ensure_ascii=False)

    @classmethod
    def from_json(cls, raw) -> "RiskInformation":
        data = json.loads(raw)
        return cls(**{**data, "modes": tuple(data.get("modes") or ())})

    @property
    def until_epoch(self) -> float:
        return utc_epoch(self.valid_until)

    def rule(self, pack: RulePack) -> Rule:
        """This form as a rule of `pack` (its reference data, its filing codes)."""
        try:
            condition = compile_condition(self.condition, pack.environment)
        except (ConditionError, RecursionError) as exc:
            raise FormError(f"condition: {exc}") from None
        filings = frozenset(k.code for k in FILING_KINDS if not self.modes or k.mode in self.modes)
        title = f"Risk information {self.id} ({self.centre}): {self.title}"
        return Rule(self.id, title, self.area, f"{self.centre} ({self.published_by})", float(self.weight),
                    self.action, condition, filings, utc_epoch(self.valid_from), utc_epoch(self.valid_until),
                    self.ask or None, ("1",) if self.action in (RFS, DNL) else (),
                    f"Published {self.published_at} by {self.published_by}", (), RULE_FILE, None)


def _iso(value: str) -> str:
    try:
        moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        raise FormError(f"{value!r} is not a date-time (ISO 8601, e.g. 2026-12-01T00:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@cache
def ordinary_traffic() -> tuple:
    """Screening records of generated clean filings of every mode (made once per process, ~2 s)."""
    from lxml import etree

    from .domain.screening import screening_record
    from .generator import GeneratorSpec, generate

    spec = GeneratorSpec(count=ORDINARY_FILINGS, seed=2026, defect_rate=0.0, envelope_rate=0.0,
                         resubmission_rate=0.0)
    return tuple(screening_record(etree.fromstring(f.data), f.label["filing_code"]) for f in generate(spec))


def ordinary_hits(rule: Rule) -> tuple[int, int]:
    """(filings the rule's condition fires on, filings of its types) among the ordinary traffic."""
    from .domain.scoring import Subject

    records = [r for r in ordinary_traffic() if "F" + r.filing_code[1:] in rule.filings]
    return sum(1 for r in records if rule.condition.test(Subject(r))), len(records)


def checked_form(pack: RulePack, *, centre: str, kind: str, watch: dict, title: str, area: str, action: str,
                 valid_until: str, valid_from: str | None = None, weight: float | None = None, ask: str = "",
                 modes=(), published_by: str = "", form_id: str = "") -> RiskInformation:
    """A form, checked and compiled against `pack`; FormError naming what is wrong."""
    if not title.strip():
        raise FormError("a form needs a title (what to watch and why, in a line)")
    for name, text in (("title", title), ("question", ask)):
        problem = text_problem(text) if text.strip() else None
        if problem:
            raise FormError(f"the {name} {problem}")
    if area not in RISK_AREAS:
        raise FormError(f"unknown risk area {area!r}; one of {', '.join(RISK_AREAS)}")
    if action not in ACTIONS:
        raise FormError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    if action == RFI and not ask.strip():
        raise FormError("a request for information says what to ask the filer")
    modes = tuple(m for m in modes if m)
    if any(m not in MODES for m in modes):
        raise FormError(f"modes are among {', '.join(MODES)}")
    weight = DEFAULT_WEIGHT if weight in (None, "") else float(weight)
    if not 0 < weight <= 100:
        raise FormError("weight is a number above 0, at most 100")
    start, end = _iso(valid_from or utc_now()), _iso(valid_until)
    if utc_epoch(end) <= utc_epoch(start):
        raise FormError("the validity period ends before it starts")
    form = RiskInformation(form_id, centre, kind, dict(watch), title.strip()[:200], area, action, start, end,
                           weight, ask.strip()[:512], modes, published_by, utc_now(),
                           condition=condition_of(kind, watch))
    hits, traffic = ordinary_hits(form.rule(pack))  # the rule refuses a condition that does not compile
    if traffic and hits > MAX_ORDINARY_SHARE * traffic:
        raise FormError(f"condition: fires on {hits} of {traffic} generated ordinary filings of its modes "
                        f"({hits / traffic:.0%}; at most {MAX_ORDINARY_SHARE:.0%}): risk information singles out "
                        f"what to watch, it does not refer ordinary trade")
    return form


def with_forms(pack: RulePack, forms: list[RiskInformation]) -> RulePack:
    """The pack plus a rule per form that still compiles against it (a form naming reference data
    a newer pack dropped is skipped, not fatal: the pack's own rules must go on)."""
    rules = []
    for form in forms:
        try:
            rules.append(form.rule(pack))
        except FormError:
            continue
    return replace(pack, rules=pack.rules + tuple(rules)) if rules else pack


class RiskInformationStore:
    def __init__(self, client: redis.Redis, key_prefix: str = "cs"):
        self.client = client
        # In the slot of the system's audit trail: a publication and its record are one transaction
        # on a Redis Cluster too (a centre reads its records there, audit.trails).
        self.audit_key = system_trail(key_prefix)
        tag = hash_tag(self.audit_key)
        self.forms_key = f"{key_prefix}:riskinfo:{{{tag}}}:forms"
        self.version_key = f"{key_prefix}:riskinfo:{{{tag}}}:version"
        self.seq_key = f"{key_prefix}:riskinfo:{{{tag}}}:seq"

    def publish(self, form: RiskInformation) -> RiskInformation:
        form = replace(form, id=f"RIF-{form.centre}-{self.client.incr(self.seq_key)}")
        fields = audit_fields(form.published_by, form.centre, "publish-risk-information", form.id,
                          f"{form.kind} {json.dumps(form.watch, ensure_ascii=False)}: {form.title} "
                          f"[{form.area}, {form.action}, {form.valid_from} to {form.valid_until}]")
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.forms_key, form.id, form.to_json())
        pipe.incr(self.version_key)
        pipe.xadd(self.audit_key, fields)
        pipe.execute()
        return form

    def revoke(self, form_id: str, by: str, centre: str) -> RiskInformation:
        raw = self.client.hget(self.forms_key, form_id)
        if raw is None:
            raise FormError(f"no risk information {form_id}")
        form = RiskInformation.from_json(raw)
        if form.centre != centre:
            raise FormError(f"{form_id} belongs to {form.centre}: only its centre revokes it")
        form = replace(form, revoked_by=by, revoked_at=utc_now())
        fields = audit_fields(by, centre, "revoke-risk-information", form_id, form.title)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.forms_key, form_id, form.to_json())
        pipe.incr(self.version_key)
        pipe.xadd(self.audit_key, fields)
        pipe.execute()
        return form

    def version(self) -> int:
        return int(self.client.get(self.version_key) or 0)

    def forms(self) -> list[RiskInformation]:
        return sorted((RiskInformation.from_json(v) for v in self.client.hvals(self.forms_key)),
                      key=lambda f: f.published_at, reverse=True)

    def active(self, now: float) -> list[RiskInformation]:
        """Forms not revoked and not yet expired (a form not yet valid is loaded: its rule waits)."""
        return [f for f in self.forms() if not f.revoked_at and f.until_epoch > now]
