"""The data-quality pack: every rule's own examples, and a pack that is wrong is refused with its location."""
from __future__ import annotations

import pytest
from lxml import etree

from cargoscreen import resources
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


def test_unece_unlocode_file_can_replace_the_bundled_subset(tmp_path):
    path = tmp_path / "CodeListPart1.csv"
    path.write_text(',"NL","RTM","Rotterdam","Rotterdam","ZH","12345---","AI","0401",,"5155N 00430E",""\n'
                    ',"XX","ZZZ","Nowhere","Nowhere","","1-------","RL","0101",,"",""\n', encoding="utf-8")
    ref = ReferenceData.load(unlocode_file=path)
    assert set(ref.locations) == {"NLRTM", "XXZZZ"}
    rtm = ref.locations["NLRTM"]
    assert rtm.serves("1") and rtm.serves("4") and round(rtm.latitude, 2) == 51.92 and round(rtm.longitude, 2) == 4.5
