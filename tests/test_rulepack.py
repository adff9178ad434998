"""Rule packs as data: the starter pack and its examples, and packs refused with every problem located."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cargoscreen import resources
from cargoscreen.domain.rulepack import RISK_AREAS, PackError, RulePack, read_pack_files
from cargoscreen.domain.scoring import check_examples, example_subject

STARTER = resources.rules_dir() / "risk" / "ics2-starter"
STARTER_PACK = RulePack.load(STARTER)


def test_the_starter_pack_covers_the_risk_areas():
    pack = STARTER_PACK
    assert len(pack.rules) >= 40
    areas = {r.area for r in pack.rules}
    assert set(RISK_AREAS) - {"data-quality"} <= areas
    assert any("has_fact" in r.condition.text or "facts" in r.condition.text for r in pack.rules)  # container status
    assert pack.id.startswith(f"ics2-starter@{pack.version}+") and len(pack.id) <= 35
    assert all(r.owner and r.title and r.examples for r in pack.rules)


@pytest.mark.parametrize("rule", STARTER_PACK.rules, ids=lambda r: r.id)
def test_each_rule_passes_its_own_examples(rule):
    fires = [e for e in rule.examples if e.fires]
    passes = [e for e in rule.examples if not e.fires]
    assert fires and passes
    for example in rule.examples:
        subject = example_subject(example.data)
        applies = "F" + subject.record.filing_code[1:] in rule.filings and rule.valid_at(subject.now)
        assert (applies and rule.condition.test(subject)) is example.fires, f"{rule.file}:{example.line}"


def test_check_examples_reports_a_failing_example_with_its_line(tmp_path):
    pack_dir = _copy(tmp_path)
    rules = pack_dir / "rules" / "financial-ipr.yaml"
    text = rules.read_text().replace("{place_of_loading: JPTYO, goods: [{description: Fresh bananas",
                                     "{place_of_loading: ECGYE, goods: [{description: Fresh bananas", 1)
    rules.write_text(text)
    [failure] = check_examples(RulePack.load(pack_dir))
    assert failure.rule == "FI-005" and failure.expected_to_fire
    assert text.splitlines()[failure.line - 1].lstrip().startswith("- {place_of_loading: ECGYE")


def _copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(STARTER, tmp_path / "pack"))


def _problems(files: dict[str, str]) -> list[str]:
    with pytest.raises(PackError) as caught:
        RulePack.from_files(files)
    return [str(p) for p in caught.value.problems]


def _with_rule(rule_yaml: str) -> dict[str, str]:
    files = read_pack_files(STARTER)
    files["rules/zz-new.yaml"] = "rules:\n" + rule_yaml
    return files


GOOD_RULE = """  - id: NEW-001
    title: New rule
    area: security-safety
    owner: tests
    weight: 10
    decision: control
    when: loading_country == 'CN'
    examples:
      fires: [{}]
      passes: [{place_of_loading: USNYC}]
"""


def test_a_good_new_rule_loads():
    pack = RulePack.from_files(_with_rule(GOOD_RULE))
    assert pack.rules[-1].id == "NEW-001" and not check_examples(pack)


@pytest.mark.parametrize("change, expected", [
    (("loading_country == 'CN'", "loading_country == "), "rules/zz-new.yaml:8: rule NEW-001: condition: column"),
    (("loading_country == 'CN'", "loadng_country == 'CN'"), "zz-new.yaml:8: rule NEW-001: condition: column 1: unknown name"),
    (("loading_country == 'CN'", "any(goods, prefixed(hs_code, ref.nope))"), "no reference data 'nope'"),
    (("area: security-safety", "area: astrology"), "zz-new.yaml:4: rule NEW-001: unknown risk area 'astrology'"),
    (("decision: control", "decision: arrest"), "zz-new.yaml:7: rule NEW-001: unknown decision 'arrest'"),
    (("weight: 10", "weight: 1000"), "weight is a number from -100 to 100"),
    (("weight: 10", "weight: 10\n    colour: red"), "zz-new.yaml:7: rule NEW-001: unknown key 'colour'"),
    (("      passes: [{place_of_loading: USNYC}]\n", ""), "every rule needs examples"),
    (("decision: control", "decision: request-for-information"), "says what to ask"),
    (("owner: tests\n", "owner: tests\n    modes: [ships]\n"), "'ships' is neither a mode"),
    (("owner: tests\n", "owner: tests\n    valid: {until: someday}\n"), "valid.until 'someday' is not a date"),
    (("id: NEW-001", "id: SS-001"), "id SS-001 already used in rules/security-safety.yaml:"),
])
def test_broken_rules_are_refused_and_located(change, expected):
    problems = _problems(_with_rule(GOOD_RULE.replace(*change)))
    assert any(expected in p for p in problems), problems


def test_every_problem_is_reported_not_just_the_first():
    broken = GOOD_RULE.replace("area: security-safety", "area: astrology").replace("weight: 10", "weight: x")
    problems = _problems(_with_rule(broken + GOOD_RULE.replace("NEW-001", "NEW-002").replace("'CN'", "1 +")))
    assert len(problems) == 3


@pytest.mark.parametrize("edit, expected", [
    (lambda f: f.pop("pack.yaml"), "pack.yaml: missing"),
    (lambda f: f.update({"pack.yaml": f["pack.yaml"] + "\n  bad: [indent"}), "pack.yaml"),
    (lambda f: f.update({"pack.yaml": f["pack.yaml"].replace("{request-for-information: 40, control: 60}",
                                                              "{request-for-information: 40, do-not-load: 60}")}),
     "do-not-load is for air pre-loading filings only"),
    (lambda f: f.update({"pack.yaml": f["pack.yaml"].replace("filings: [sea, air, express, postal, road, rail]",
                                                              "filings: [sea]")}), "no decision table for F21"),
    (lambda f: f.update({"pack.yaml": f["pack.yaml"].replace("reference/aeo.csv", "reference/missing.csv")}),
     "names reference/missing.csv, which is not in the pack"),
    (lambda f: f.update({"pack.yaml": f["pack.yaml"].replace("column: eori", "column: vat")}), "no column 'vat'"),
])
def test_broken_manifests_are_refused(edit, expected):
    files = read_pack_files(STARTER)
    edit(files)
    problems = _problems(files)
    assert any(expected in p for p in problems), problems


def test_same_files_same_digest_and_any_change_shows():
    files = read_pack_files(STARTER)
    a, b = RulePack.from_files(files), RulePack.from_files(dict(files))
    files["reference/aeo.csv"] += "NL000000001,AEOF,Another B.V.,\n"
    assert a.id == b.id != RulePack.from_files(files).id


def test_the_starter_pack_meets_the_cost_bounds_with_room_to_spare():
    """Its costliest rule a third of the bound; all its rules together, on a filing of the schema's
    largest size, a third of that filing's budget."""
    from cargoscreen.domain.conditions import COLLECTION_LIMITS, MAX_COST
    from cargoscreen.domain.scoring import BUDGET_BASE, BUDGET_PER_ITEM

    costs = [r.condition.cost for r in STARTER_PACK.rules]
    assert max(costs) <= MAX_COST / 3
    # A third since the legal-list rules (risk-policy) joined the goods-description rules: the per-filing
    # budget, not this estimate, is what holds at run time.
    assert sum(costs) <= (BUDGET_BASE + BUDGET_PER_ITEM * COLLECTION_LIMITS["goods"]) / 3


def test_packs_read_through_libyaml_as_through_the_pure_python_parser():
    """Rule packs are parsed by libyaml (PyYAML's C parser, several times faster at a worker's start):
    every YAML file of the repository gives the same mappings with the same line numbers, and a broken
    file the same error at the same line, as the pure-Python safe loader."""
    import yaml

    from cargoscreen.domain import rulepack

    class PurePython(yaml.SafeLoader):
        pass

    PurePython.add_constructor("tag:yaml.org,2002:map", rulepack._lined_map)

    def lined(x):
        if isinstance(x, dict):
            return x.line, sorted(x.lines.items()), {k: lined(v) for k, v in x.items()}
        return [lined(v) for v in x] if isinstance(x, list) else (type(x).__name__, x)

    def read(text, loader):
        try:
            return lined(yaml.load(text, Loader=loader))  # noqa: S506 - SafeLoader subclasses
        except yaml.YAMLError as exc:
            return type(exc).__name__, exc.problem_mark.line

    assert yaml.__with_libyaml__ and issubclass(rulepack._LineLoader, yaml.CSafeLoader)
    root = Path(__file__).resolve().parents[1]
    texts = [p.read_text("utf-8") for folder in ("rules", "tests", "ops") for p in (root / folder).rglob("*.yaml")]
    texts += ["rules:\n  - id: X\n     bad: indent\n", "a: [1, 2\nb: 3\n", "- x\n y: 1\n", "a: !!python/object:os.system x\n"]
    assert len(texts) > 10
    for text in texts:
        assert read(text, rulepack._LineLoader) == read(text, PurePython)
