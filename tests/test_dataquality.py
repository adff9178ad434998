"""The data-quality pack: every rule's own examples, and a pack that is wrong is refused with its location."""
from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from cargoscreen import resources
from cargoscreen.config import Settings
from cargoscreen.domain.dataquality import DataQualityPack, RulePackError, VagueDescriptionMatcher
from cargoscreen.domain.reference import ReferenceData

PACK_PATH = resources.rules_dir() / "data-quality" / "ens-v1.yaml"


@pytest.fixture(scope="module")
def pack():
    return DataQualityPack.load(PACK_PATH, ReferenceData.load())


def _subject(pack, rule, example: str):
    if rule.check:
        return example
    root = etree.fromstring(example.replace(">", f' xmlns="{pack.namespace}">', 1))
    return root


def _cases(kind):
    pack = DataQualityPack.load(PACK_PATH, ReferenceData.load())
    return [pytest.param(rule.id, ex, id=f"{rule.id}-{kind}-{i}") for rule in pack.rules
            for i, ex in enumerate(rule.examples.get(kind, []))]


@pytest.mark.parametrize("rule_id,example", _cases("pass"))
def test_rule_passes_its_good_examples(pack, rule_id, example):
    rule = next(r for r in pack.rules if r.id == rule_id)
    assert not pack.fires(rule, _subject(pack, rule, example))


@pytest.mark.parametrize("rule_id,example", _cases("fail"))
def test_rule_fires_on_its_bad_examples(pack, rule_id, example):
    rule = next(r for r in pack.rules if r.id == rule_id)
    assert pack.fires(rule, _subject(pack, rule, example))


def test_every_rule_has_examples_both_ways(pack):
    assert len(pack.rules) >= 12
    for rule in pack.rules:
        assert rule.examples.get("pass") and rule.examples.get("fail"), rule.id


def test_pack_is_versioned(pack):
    assert pack.name == "ens-data-quality" and pack.version.count(".") == 2


def test_vague_terms_list_is_long_enough_and_matches_whole_words():
    terms = ReferenceData.load().vague_terms
    assert len(terms) >= 100 and {"consolidated", "general cargo", "fak", "said to contain"} <= set(terms)
    m = VagueDescriptionMatcher(terms)
    assert m.is_vague("FAK") and m.is_vague("Said to contain: general cargo, 3 pallets")
    assert not m.is_vague("Fakes of nothing else: imitation handbags")  # 'fak' is not a prefix match
    assert not m.is_vague("Partsmaster brake pads")


@pytest.mark.parametrize("yaml_text,message", [
    ("pack: p\nversion: 1\nnamespace: urn:x\nrules:\n- {id: A, title: t, message: m, check: no-such, elements: [X]}",
     "rule 1 \\(A\\): unknown check 'no-such'"),
    ("pack: p\nversion: 1\nnamespace: urn:x\nrules:\n- {id: A, title: t, message: m}",
     "rule 1 \\(A\\): give either 'select'"),
    ("pack: p\nversion: 1\nnamespace: urn:x\nrules:\n- {id: A, title: t, message: m, select: 'e:X[', scope: [Y]}",
     "rule A: invalid XPath"),
    ("pack: p\nversion: 1\nnamespace: urn:x\nrules:\n- {id: A, message: m, check: eori-shape, elements: [X]}",
     "rule 1 \\(A\\): missing title"),
    ("pack: p\nversion: 1\nnamespace: urn:x\nrules:\n- {id: A, title: t, message: m, select: 'e:X'}",
     "a select needs the 'scope'"),
    ("version: 1\nrules: []", "a pack needs"),
    ("pack: [unclosed", "ens-broken.yaml"),
])
def test_a_wrong_pack_is_refused_with_its_location(tmp_path, yaml_text, message):
    path = tmp_path / "ens-broken.yaml"
    path.write_text(yaml_text)
    with pytest.raises(RulePackError, match=message):
        DataQualityPack.load(path, ReferenceData.load())


# -- every example is what the schema lets through: the pack's examples test the layer after the XSD ----------
ENS = "urn:cargoscreen:ics2:ens:v1"


_TEMPLATES: list = []


def _templates() -> list:
    """Real filings to place example values in: the hand-written deep-sea bill (with a UN number
    added), and a clean generated filing of each kind (houses, receptacles, named places, marks)."""
    if not _TEMPLATES:
        from cargoscreen.generator import GeneratorSpec, generate

        sea = etree.parse(str(Path(__file__).parent / "data" / "filings" / "sea-f10-before-loading.xml"))
        sea.xpath("//e:GoodsItem/e:HSCode", namespaces={"e": ENS})[0].addnext(etree.Element(f"{{{ENS}}}UNDGNumber"))
        sea.xpath("//e:GoodsItem/e:UNDGNumber", namespaces={"e": ENS})[0].text = "1263"
        _TEMPLATES.append(sea)
        kinds = {}
        for f in generate(GeneratorSpec(count=400, seed=13, defect_rate=0, envelope_rate=0, resubmission_rate=0)):
            kinds.setdefault(f.label["filing_code"], f.data)
        _TEMPLATES.extend(etree.ElementTree(etree.fromstring(data)) for _, data in sorted(kinds.items()))
    return _TEMPLATES


def _xsd_problems(pack, element_path: str, value: str) -> list[str] | None:
    """The XSD's complaints about `value` placed in real filings at an element matching element_path
    (Name or Parent/Name), under each kind of parent the templates have it under, keeping the placement
    the schema likes best ([] when it accepts the value somewhere); None when no template has one."""
    parent, _, name = element_path.rpartition("/")
    xpath = f"//e:{parent}/e:{name}" if parent else f"//e:{name}"
    found = []
    for template in _templates():
        root = template.getroot()
        parents = {etree.QName(el.getparent()).localname for el in template.xpath(xpath, namespaces={"e": ENS})}
        for parent_name in sorted(parents):
            tree = etree.ElementTree(etree.fromstring(etree.tostring(template)))
            tree.xpath(f"//e:{parent_name}/e:{name}", namespaces={"e": ENS})[0].text = value
            schema = _registry().lookup(ENS, etree.QName(root).localname)
            found.append([v.detail for v in schema.violations(tree) if v.element == name])
    return min(found, key=len) if found else None


_REGISTRY = []


def _registry():
    if not _REGISTRY:
        from cargoscreen.schemas import SchemaRegistry
        _REGISTRY.append(SchemaRegistry.from_dirs(Settings().schema_dirs))
    return _REGISTRY[0]


def _value_examples():
    pack = DataQualityPack.load(PACK_PATH, ReferenceData.load())
    return [pytest.param(rule.id, spec, ex, id=f"{rule.id}-{kind}-{i}-{spec}") for rule in pack.rules if rule.check
            for kind in ("pass", "fail") for i, ex in enumerate(rule.examples.get(kind, []))
            for spec in rule.elements]


@pytest.mark.parametrize("rule_id,element,example", _value_examples())
def test_every_value_example_is_well_formed_for_the_xsd(pack, rule_id, element, example):
    """Pass examples must be accepted by the schema too, and fail examples must be what only this
    rule catches: a value the XSD already refuses would test nothing the XSD does not."""
    problems = _xsd_problems(pack, element, example)
    assert problems is not None, f"the template filing has no {element}"
    assert problems == [], f"{rule_id}: {example!r} in {element} is refused by the XSD: {problems}"


def _fragment_leaves():
    pack = DataQualityPack.load(PACK_PATH, ReferenceData.load())
    out = []
    for rule in pack.rules:
        if rule.check:
            continue
        for kind in ("pass", "fail"):
            for i, ex in enumerate(rule.examples.get(kind, [])):
                root = etree.fromstring(ex.replace(">", f' xmlns="{ENS}">', 1))
                for el in root.iter():
                    if len(el) == 0 and el.text and el.getparent() is not None:
                        path = f"{etree.QName(el.getparent()).localname}/{etree.QName(el).localname}"
                        out.append(pytest.param(rule.id, path, el.text, id=f"{rule.id}-{kind}-{i}-{path}"))
    return out


@pytest.mark.parametrize("rule_id,element,value", _fragment_leaves())
def test_every_value_in_the_xpath_rules_examples_is_well_formed_for_the_xsd(pack, rule_id, element, value):
    problems = _xsd_problems(pack, element, value)
    if problems is None:
        pytest.skip(f"the template filing has no {element} to try {value!r} in")
    assert problems == [], f"{rule_id}: {value!r} in {element} is refused by the XSD: {problems}"


def test_the_bulk_rule_lists_exactly_the_reference_s_bulk_codes(pack):
    bulk = next(r for r in pack.rules if r.id == "DQ_BULK_PACKAGE_COUNT").params["bulk_codes"]
    unpacked = next(r for r in pack.rules if r.id == "DQ_UNPACKED_PIECE_COUNT").params["unpacked_codes"]
    kinds = pack.reference.package_types
    assert sorted(bulk) == sorted(c for c, p in kinds.items() if p.kind == "bulk")
    assert set(unpacked) == {"NE", "NF", "NG"} and all(kinds[c].kind == "unpacked" for c in unpacked)


def test_a_type_element_of_two_characters_is_a_package_type():
    """DQ_PACKAGE_TYPE_UNKNOWN checks every Type element and skips values that are not two characters
    long, relying on the schema: a Type is a package type (two characters) or a transport document
    type (four)."""
    xs = {"xs": "http://www.w3.org/2001/XMLSchema"}
    folder = resources.schema_dir() / "ics2-v1"
    declared = {el.get("type") for path in folder.glob("*.xsd")
                for el in etree.parse(str(path)).iterfind(".//xs:element[@name='Type']", xs)}
    assert declared == {"t:PackageTypeCode", "t:TransportDocumentType"}
    types = etree.parse(str(folder / "types.xsd"))
    pattern = types.find(".//xs:simpleType[@name='PackageTypeCode']//xs:pattern", xs).get("value")
    documents = [e.get("value") for e in types.iterfind(".//xs:simpleType[@name='TransportDocumentType']//xs:enumeration", xs)]
    assert pattern == "[A-Z0-9]{2}" and documents and all(len(code) == 4 for code in documents)
