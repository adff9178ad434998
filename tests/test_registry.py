"""The schema registry serves any XSD set dropped in a folder, picked by root namespace and name."""
from __future__ import annotations

import shutil

import pytest
import xmlschema

from cargoscreen import resources
from cargoscreen.config import Settings
from cargoscreen.schemas import LxmlSchema, SchemaRegistry, SchemaSetError, XmlschemaSchema
from cargoscreen.validation import FilingValidator, Submission

from .conftest import OTHER_SCHEMAS

MSG, CODES, SHIP = "urn:example:x:msg:2", "urn:example:x:codes:1", "urn:example:shipment:1"


@pytest.fixture(scope="module")
def registry():
    return SchemaRegistry.from_dirs([OTHER_SCHEMAS, resources.schema_dir()])


@pytest.fixture(scope="module")
def other_validator():
    return FilingValidator(Settings(extra_schema_dirs=(OTHER_SCHEMAS,)))


def test_roots_of_every_file_structure_are_found(registry):
    roots = set(registry.roots)
    assert (None, "Invoice") in roots  # legacy, no namespace
    assert {(MSG, "Declaration"), (MSG, "Notification")} <= roots  # entry point
    assert (MSG, "Attachment") in roots  # declared in an included file: served by the file that includes it
    assert (CODES, "CodeList") in roots  # declared in an imported file: its own entry
    assert (SHIP, "Shipment") in roots  # XSD 1.1
    assert registry.lookup(MSG, "Attachment").source.name == "messages.xsd"
    assert registry.lookup(CODES, "CodeList").source.name == "codes.xsd"


def test_backends_follow_the_xsd_version(registry):
    assert isinstance(registry.lookup(None, "Invoice"), LxmlSchema)
    assert isinstance(registry.lookup(SHIP, "Shipment"), XmlschemaSchema)
    assert registry.lookup(SHIP, "Shipment").version == "1.1"


def test_same_name_in_another_namespace_is_another_message(registry):
    assert registry.lookup("urn:somewhere:else", "Declaration") is None
    assert registry.lookup(None, "Declaration") is None


def _validate(v, xml: str):
    return v.validate(Submission("t", xml.encode()))


def test_legacy_message_without_namespace(other_validator):
    ok = _validate(other_validator, "<Invoice><Number>INV-000123</Number><Amount>10.5</Amount></Invoice>")
    assert ok.accepted
    bad = _validate(other_validator, "<Invoice>\n<Number>INV-12</Number>\n<Amount>ten</Amount></Invoice>")
    assert [(e.code, e.pointer, e.line) for e in bad.errors] == [
        ("XSD_FORMAT", "/Invoice/Number", 2), ("XSD_FORMAT", "/Invoice/Amount", 3)]
    assert "INV- and 6 digits" in bad.errors[0].reason  # the set's own documentation, quoted to the filer


def test_multi_namespace_message(other_validator):
    good = f'<m:Declaration xmlns:m="{MSG}" xmlns:c="{CODES}"><m:Reference>REF0001</m:Reference><m:Port>BBB</m:Port><c:Remark>x</c:Remark></m:Declaration>'
    assert _validate(other_validator, good).accepted
    bad = f'<Declaration xmlns="{MSG}"><Reference>REF1</Reference><Port>ZZZ</Port></Declaration>'
    errors = _validate(other_validator, bad).errors
    assert [(e.code, e.pointer) for e in errors] == [("XSD_FORMAT", "/Declaration/Reference"),
                                                     ("XSD_CODE", "/Declaration/Port")]
    assert "one of AAA, BBB, CCC" in errors[1].reason


def test_xsd11_assertion_is_enforced(other_validator):
    ok = f'<Shipment xmlns="{SHIP}"><Pieces>5</Pieces><PiecesScreened>5</PiecesScreened></Shipment>'
    assert _validate(other_validator, ok).accepted
    bad = f'<Shipment xmlns="{SHIP}"><Pieces>5</Pieces><PiecesScreened>6</PiecesScreened></Shipment>'
    errors = _validate(other_validator, bad).errors
    assert [e.code for e in errors] == ["XSD_ASSERTION"]
    assert errors[0].pointer == "/Shipment"


def test_unknown_message_type_is_rejected_with_its_name(other_validator):
    outcome = _validate(other_validator, '<Order xmlns="urn:nobody"><Id>1</Id></Order>')
    assert [e.code for e in outcome.errors] == ["UNKNOWN_MESSAGE"]
    assert "'Order'" in outcome.errors[0].reason and "urn:nobody" in outcome.errors[0].reason


def test_earlier_folder_wins_for_the_same_root(tmp_path):
    first = tmp_path / "first"
    shutil.copytree(OTHER_SCHEMAS / "legacy", first)
    registry = SchemaRegistry.from_dirs([first, OTHER_SCHEMAS])
    assert registry.lookup(None, "Invoice").source.parent == first.resolve()


def test_broken_schema_set_fails_at_start_naming_the_file(tmp_path):
    (tmp_path / "broken.xsd").write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="A" type="NoSuchType"/></xs:schema>')
    with pytest.raises(SchemaSetError, match="broken.xsd"):
        SchemaRegistry.from_dirs([tmp_path])
    (tmp_path / "broken.xsd").write_text("<xs:schema")
    with pytest.raises(SchemaSetError, match="broken.xsd.*not well-formed"):
        SchemaRegistry.from_dirs([tmp_path])


def test_schema_sets_cannot_reach_the_network(tmp_path):
    (tmp_path / "remote.xsd").write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:r">'
        '<xs:import namespace="urn:other" schemaLocation="http://127.0.0.1:9/other.xsd"/>'
        '<xs:element name="R" type="xs:string"/></xs:schema>')
    with pytest.warns(xmlschema.XMLSchemaImportWarning, match="block access to remote resource"):
        registry = SchemaRegistry.from_dirs([tmp_path])  # the import is refused, the rest compiles
    assert registry.lookup("urn:r", "R") is not None
