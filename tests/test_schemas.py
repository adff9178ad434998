"""The ENS schema set: structure, the catalogue of filings, and the formats its simple types enforce."""
from __future__ import annotations


import pytest
import xmlschema
from lxml import etree

from cargoscreen import resources
from cargoscreen.domain.filings import ANSWERS_NS, ENS_NS, FILING_KINDS, MODES, TYPES_NS
from cargoscreen.generator import GeneratorSpec, generate
from cargoscreen.schemas import SchemaRegistry

SET = resources.schema_dir() / "ics2-v1"


def test_namespaces_carry_a_version_and_shared_types_are_imported():
    for ns in (ENS_NS, ANSWERS_NS, TYPES_NS):
        assert ns.endswith(":v1")
    ens = etree.parse(str(SET / "ens.xsd")).getroot()
    xs = "{http://www.w3.org/2001/XMLSchema}"
    assert [i.get("schemaLocation") for i in ens.iter(f"{xs}import")] == ["types.xsd"]
    assert [i.get("schemaLocation") for i in ens.iter(f"{xs}include")] == ["ens-components.xsd"]
    answers = etree.parse(str(SET / "answers.xsd")).getroot()
    assert [i.get("namespace") for i in answers.iter(f"{xs}import")] == [TYPES_NS]


def test_roots_follow_the_filing_catalogue(settings):
    registry = SchemaRegistry.from_dirs([resources.schema_dir()])
    ens_roots = {name for ns, name in registry.roots if ns == ENS_NS}
    expected = {k.root for k in FILING_KINDS} | {k.amendment_root for k in FILING_KINDS} | {"IE3Q04"}
    assert ens_roots == expected
    assert {k.mode for k in FILING_KINDS} == set(MODES)
    answer_roots = {name for ns, name in registry.roots if ns == ANSWERS_NS}
    assert answer_roots == {"IE3R01", "IE3N99", "IE3N01", "IE3N02", "IE3N11", "IE3N03", "IE3N08", "IE3N10",
                            "IE3Q01", "IE3Q02", "IE3Q03", "IE3R04"}


@pytest.mark.parametrize("kind", FILING_KINDS, ids=lambda k: k.code)
def test_clean_filings_of_every_kind_are_schema_valid(kind, settings):
    registry = SchemaRegistry.from_dirs(settings.schema_dirs)
    spec = GeneratorSpec(count=200, seed=int(kind.code[1:]), defect_rate=0, envelope_rate=0,
                         resubmission_rate=0, modes=(kind.mode,))
    seen = 0
    for filing in generate(spec):
        tree = etree.fromstring(filing.data).getroottree()
        if etree.QName(tree.getroot()).localname != kind.root:
            continue
        seen += 1
        assert registry.lookup(ENS_NS, kind.root).violations(tree) == []
    assert seen, f"the generator made no {kind.code} in 200 filings of mode {kind.mode}"


# Each simple type, with values it must accept and values it must refuse. Checked with
# xmlschema, an implementation independent of the libxml2 the pipeline uses.
TYPE_CASES = {
    "LRN": (["LRN-2026/0001", "A", "x" * 22], ["", "x" * 23, "has space", "ümlaut"]),
    "MRN": (["26NL0000000009IXE3", "25DE12345678901234"], ["26NL0000000009IXE", "26nl0000000009IXE3", "2XNL0000000009IXE3"]),
    "EORI": (["NL123456789", "DE1", "GB123456789000"], ["nl123456789", "NL", "NL1234567890123456", "N1123"]),
    "CountryCode": (["NL", "CN"], ["nl", "NLD", "N"]),
    "UNLocode": (["NLRTM", "DE2A9", "CNSHA"], ["NLRT", "NLRTMM", "NL1TM", "nlrtm"]),
    "HSCode": (["851713", "85171300"], ["8517", "8517130", "851713000", "8517.13", "85171A"]),
    "ContainerId": (["CSQU3054383", "ABCJ1234567", "ABCZ0000000"], ["CSQU305438", "CSQX3054383", "CS1U3054383", "csqu3054383"]),
    "IMONumber": (["9074729"], ["907472", "90747290", "IMO9074729"]),
    "UTCDateTime": (["2026-11-23T14:30:00Z", "2026-11-23T14:30:00.123Z"],
                    ["2026-11-23T14:30:00", "2026-11-23T14:30:00+01:00", "2026-11-23", "2026-13-23T14:30:00Z"]),
    "FlightNumber": (["KL0862", "LH400", "U21234A", "9W0001"], ["K", "KL-0862", "KL12345", "kl0862"]),
    "Text70": (["a", "x" * 70], ["", "x" * 71, "   "]),
    "Text512": (["Men's leather shoes", "x" * 512], ["", "x" * 513]),
    "MassKg": (["1", "1250.5", "0.000001"], ["0", "-1", "1.0000001", "abc"]),
    "PackageCount": (["0", "99999999"], ["-1", "100000000", "1.5"]),
    "CustomsOfficeCode": (["NL000396", "DEA12345"], ["NL00039", "NL0003966"]),
    "Phone": (["+31 10 252 1010", "0102521010"], ["call me", "+3"]),
}


@pytest.fixture(scope="module")
def types_schema():
    return xmlschema.XMLSchema10(str(SET / "types.xsd"))


@pytest.mark.parametrize("type_name", sorted(TYPE_CASES))
def test_simple_types_enforce_their_formats(types_schema, type_name):
    xsd_type = types_schema.types[type_name]
    good, bad = TYPE_CASES[type_name]
    for value in good:
        assert xsd_type.is_valid(value), f"{type_name} should accept {value!r}"
    for value in bad:
        assert not xsd_type.is_valid(value), f"{type_name} should refuse {value!r}"


def test_every_simple_type_is_documented_for_the_filer(types_schema):
    undocumented = [name for name, t in types_schema.types.items()
                    if not (t.annotation and t.annotation.documentation)]
    assert undocumented == []


def test_generated_sizes_span_small_to_large():
    sizes = sorted(len(f.data) for f in generate(GeneratorSpec(count=400, seed=5, defect_rate=0, envelope_rate=0)))
    assert sizes[0] < 2_500 and sizes[-1] > 20_000
    assert 3_000 < sizes[len(sizes) // 2] < 12_000
