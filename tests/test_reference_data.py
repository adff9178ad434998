"""The shipped code lists: from their maintainers, with provenance, complete enough for real traffic,
and rebuilt from a new edition by the CLI."""
from __future__ import annotations

import csv
import gzip
import json

from click.testing import CliRunner

from cargoscreen import resources
from cargoscreen.cli import main
from cargoscreen.domain.reference import LocationTable, bundled_reference

REFERENCE = resources.rules_dir() / "reference"
SHIPPED = ("unlocode.csv.gz", "hs2022.csv", "package-types.csv", "un-numbers.csv", "customs-offices.csv")


def test_every_shipped_code_list_says_where_it_comes_from():
    with (REFERENCE / "SOURCES.csv").open(encoding="utf-8") as f:
        sources = {r["file"]: r for r in csv.DictReader(f)}
    assert set(SHIPPED) <= set(sources)
    for file in SHIPPED:
        row = sources[file]
        assert row["source"] and row["edition"] and row["licence"] and int(row["rows"]) > 0, row
    ref = bundled_reference()
    assert ref.edition("unlocode.csv.gz") == "UN/LOCODE 2024-1" and ref.edition("hs2022.csv") == "HS 2022"
    assert ref.edition("customs-offices.csv") == "COL snapshot 2025-02-12"


def test_the_code_lists_are_whole_not_samples():
    ref = bundled_reference()
    assert len(ref.locations) > 100_000
    assert sum(1 for code in ref.hs if len(code) == 6) > 5_500
    assert len(ref.package_types) > 350 and len(ref.dangerous_goods) > 2_000
    assert len(ref.customs_offices) > 4_000  # every office of the member states and the transit countries
    # Offices of entry of the main ports and airports, as the Customs Office List names them.
    for code in ("NL000396", "BE101000", "DE004851", "FR002300", "ES001131", "GR004001", "PL322030", "XI000142"):
        assert ref.customs_offices[code].of_entry, code
    # Places that real traffic uses and an earlier, hand-made list refused.
    for code in ("CNPVG", "DECGN", "CHGVA", "ITMIL", "CNQIN", "FRFOS", "USBAL", "CLVAP", "KRSEL", "JPNRT", "BDDAC"):
        assert code in ref.locations, code
    assert ref.locations["CNPVG"].serves("4") and ref.position("CNPVG") is not None
    assert {"3090", "3091", "3480", "3481"} <= set(ref.dangerous_goods)
    assert sum(1 for d in ref.dangerous_goods.values() if d.hazard_class == "1") > 300
    kinds = {code: p.kind for code, p in ref.package_types.items()}
    assert {kinds[c] for c in ("NE", "NF", "NG")} == {"unpacked"} and kinds["VR"] == "bulk" and kinds["CT"] == "package"


def test_a_published_position_far_outside_its_country_is_not_used():
    """Yantian (Shenzhen) is published 900 km off in Fujian; Bezledy (Poland) with its sign lost."""
    ref = bundled_reference()
    yantian = ref.position("CNYTN")
    assert abs(yantian[0] - 22.58) < 0.2 and abs(yantian[1] - 114.27) < 0.2
    assert ref.position("PLBEZ") is None or ref.position("PLBEZ")[0] > 0


def test_reference_build_commands_rebuild_each_list_from_its_maintainers_files(tmp_path):
    out = tmp_path / "reference"
    out.mkdir()
    (out / "places-curated.csv").write_text("locode,name,country,function,coordinates\n"
                                            "NLRTM,Rotterdam,NL,12345---,5155N 00430E\n")
    unece = tmp_path / "CodeListPart1.csv"  # the official layout: no header, a country heading line
    unece.write_text(',"NL",,".NETHERLANDS",,,,,,,,\n'
                     ',"NL","RTM","Rotterdam","Rotterdam","ZH","12345---","AI","0401",,"5155N 00430E",""\n'
                     ',"NL","ZZ1","Bad code","Bad code","","1-------","RL","0101",,"",""\n'
                     'X,"NL","OLD","Deleted","Deleted","","1-------","RL","0101",,"",""\n'
                     ',"BE","ANR","Antwerpen","Antwerpen","VAN","12345---","AI","0401",,"5113N 00425E",""\n',
                     encoding="utf-8")
    hs = tmp_path / "harmonized-system.csv"
    hs.write_text("section,hscode,description,parent,level\nXVI,84,Machinery,TOTAL,2\nXVI,8458,Lathes,84,4\n"
                  "XVI,845811,Lathes; horizontal; numerically controlled,8458,6\nXXI,99,Not specified,TOTAL,2\n")
    rec21 = tmp_path / "code-list.csv"
    rec21.write_text("Status,Code,Name,Description,NumericCode\n,CT,Carton ,,22 to 24\n,VR,\"Bulk, solid\",,2\n"
                     ",NE,Unpacked or unpackaged ,,0\nX,SX,Set,,11 to 45\n")
    numbers = tmp_path / "un"
    numbers.mkdir()
    (numbers / "0336.json").write_text(json.dumps({"number": "0336", "description": "FIREWORKS", "class": "1",
                                                   "classCode": "1.4G"}))
    runner, common = CliRunner(), ["--out", str(out), "--edition", "test", "--source", "fixture", "--licence", "x"]
    col = tmp_path / "COL.json.gz"  # the CS/RD2 message: one entry per office and language
    with gzip.open(col, "wt", encoding="utf-8") as f:
        json.dump({"messageInformation": {"snapshotDate": "2025-02-12"}, "lists": {"customsOffices": {"listEntries": [
            {"state": "valid", "languageCode": "NL", "name": "Rotterdam  Maasvlakte", "id": "NL000396",
             "countryId": "NL", "roles": [{"role": "EXT"}, {"role": "ENT"}]},
            {"state": "valid", "languageCode": "FR", "name": "ANVERS DAE", "id": "BE101000", "countryId": "BE",
             "roles": [{"role": "ENT"}]},
            {"state": "valid", "languageCode": "EN", "name": "ANTWERPEN DAE", "id": "BE101000", "countryId": "BE",
             "roles": [{"role": "ENT"}]},
            {"state": "invalid", "languageCode": "EN", "name": "Closed", "id": "BE999999", "countryId": "BE",
             "roles": [{"role": "ENT"}]},
            {"state": "valid", "languageCode": "EN", "name": "Bad", "id": "B1", "countryId": "BE", "roles": []}]}}}, f)
    for args in (["unlocode", str(unece), "--no-airports"], ["hs", str(hs)], ["package-types", str(rec21)],
                 ["un-numbers", str(numbers)], ["customs-offices", str(col)]):
        result = runner.invoke(main, ["reference", "build", *args, *common])
        assert result.exit_code == 0, result.output
    table = LocationTable.from_file(out / "unlocode.csv.gz")
    assert "NLRTM" in table and "NLXXX" not in table and len(table) == 2
    assert table._rows is None, "the codes file written beside the list answers `in` without its rows"
    assert set(table) == {"NLRTM", "BEANR"}  # the malformed and the deleted left out
    assert table["NLRTM"].serves("4") and round(table["NLRTM"].latitude, 2) == 51.92
    with gzip.open(out / "unlocode.csv.gz", "rt") as f:
        assert next(f).startswith("locode,name,subdivision,function,status,coordinates,coordinates_source")
    assert (out / "hs2022.csv").read_text().splitlines()[1:] == ["84,Machinery", "8458,Lathes",
                                                                "845811,Lathes; horizontal; numerically controlled"]
    assert (out / "package-types.csv").read_text().splitlines()[1:] == ["CT,Carton,package", "NE,Unpacked or unpackaged,unpacked",
                                                                        "VR,\"Bulk, solid\",bulk"]
    assert (out / "un-numbers.csv").read_text().splitlines()[1:] == ["0336,1,1.4G,FIREWORKS"]
    assert (out / "customs-offices.csv").read_text().splitlines()[1:] == ["BE101000,BE,ANTWERPEN DAE,ENT",
                                                                         "NL000396,NL,Rotterdam Maasvlakte,ENT EXT"]
    with (out / "SOURCES.csv").open() as f:
        assert {r["file"] for r in csv.DictReader(f)} == set(SHIPPED)


def test_reference_show_looks_codes_up():
    result = CliRunner().invoke(main, ["reference", "show", "--code", "CNPVG", "--code", "0336", "--code", "QQQQQ",
                                       "--code", "NL000396"])
    assert result.exit_code == 0
    assert "customs office NL000396: Rotterdam Maasvlakte (NL), an office of entry" in result.output
    assert "UN/LOCODE CNPVG: Shanghai Pudong" in result.output and "UN 0336: class 1 1.4G: FIREWORKS" in result.output
    assert "QQQQQ: not in any shipped list" in result.output and "UN/LOCODE 2024-1" in result.output


def test_the_shipped_codes_file_lists_exactly_the_shipped_codes():
    """rules/reference/unlocode-codes.txt is made from the shipped unlocode.csv.gz (its first line
    names the list's sha256) and holds its codes; the lazy table answers `in` as the rows do."""
    import random

    from cargoscreen import resources
    from cargoscreen.domain.reference import _read_rows, read_codes_file

    path = resources.rules_dir() / "reference" / "unlocode.csv.gz"
    codes = read_codes_file(path)
    assert codes is not None, "rebuild it: cargoscreen reference build unlocode (or reference.write_codes_file)"
    rows = _read_rows(path)
    assert codes.split() == sorted(rows)
    lazy, eager = LocationTable.from_file(path), LocationTable(rows)
    rng = random.Random(5)
    asked = rng.sample(sorted(rows), 2000) + ["".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ29", k=5))
                                              for _ in range(3000)] + ["NLRT", "NLRTMX", "", "nlrtm"]
    assert [c in lazy for c in asked] == [c in eager for c in asked]
    assert lazy._rows is None and len(lazy) == len(eager)
    assert lazy["NLRTM"] == eager["NLRTM"] and lazy._rows is not None  # the rows read when a place is asked for
    assert LocationTable.from_file(path).read()._rows == rows  # or when a worker's set-up asks


def test_a_codes_file_of_other_bytes_is_not_trusted(tmp_path):
    """A list replaced by hand after its codes file was written: the list is read as it is."""
    from cargoscreen.domain.reference import write_codes_file

    table = tmp_path / "unlocode.csv"
    table.write_text("locode,name,subdivision,function,status,coordinates,coordinates_source\n"
                     "NLRTM,Rotterdam,ZH,12345---,AI,,\n", encoding="utf-8")
    write_codes_file(table, ["NLRTM"])
    assert LocationTable.from_file(table)._rows is None
    table.write_text(table.read_text() + "BEANR,Antwerpen,VAN,12345---,AI,,\n", encoding="utf-8")
    reread = LocationTable.from_file(table)
    assert reread._rows is not None and "BEANR" in reread
