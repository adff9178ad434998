"""The shipped legal lists: each loads, agrees with the code lists it refers to, says where it
comes from, and holds the entries the risk rules rely on."""
from __future__ import annotations

import csv

import pytest
from click.testing import CliRunner

from cargoscreen import resources
from cargoscreen.cli import main
from cargoscreen.domain.legal_lists import FILES, LegalLists, bundled_legal_lists, cas_valid, check
from cargoscreen.domain.reference import bundled_reference

REFERENCE = resources.rules_dir() / "reference"


@pytest.fixture(scope="module")
def lists() -> LegalLists:
    return bundled_legal_lists()


def test_each_legal_list_loads_and_says_where_it_comes_from(lists):
    with (REFERENCE / "SOURCES.csv").open(encoding="utf-8") as f:
        sources = {r["file"]: r for r in csv.DictReader(f)}
    for file in FILES.values():
        row = sources[file]
        assert row["source"] and row["licence"] and int(row["rows"]) > 0, row
        with (REFERENCE / file).open(encoding="utf-8") as f:
            assert int(row["rows"]) == sum(1 for _ in csv.DictReader(f)), file
    assert len(lists.precursors) > 40 and len(lists.chp) == 50 and len(lists.measures) > 15
    assert len(lists.controlled) > 40 and lists.cultural and lists.cash and lists.cash_terms and lists.lithium


def test_the_legal_lists_agree_with_the_code_lists():
    """CAS check digits, HS/CN codes in HS 2022 (subheading level), UN numbers in the shipped
    list, countries, subdivisions and UN/LOCODEs, row counts: `cargoscreen reference check`."""
    assert check(bundled_legal_lists(), bundled_reference()) == []


def test_cas_check_digits():
    assert cas_valid("299-42-3") and cas_valid("7732-18-5") and cas_valid("1369021-80-6")
    assert not cas_valid("299-42-4") and not cas_valid("4433-77-3") and not cas_valid("29942-3")
    assert not cas_valid("") and not cas_valid("abc-de-f")


def test_every_cas_number_and_code_of_the_precursors_is_valid(lists):
    ref = bundled_reference()
    for p in lists.precursors:
        assert p.cas is None or cas_valid(p.cas), p
        assert p.hs and all(code in ref.hs for code in p.hs), p
        assert all(len(code) == 8 and code[:6] in p.hs for code in p.cn), p
    # every entry that the annexes give a CAS number has one here, except the groups and IMDPAM
    assert sum(1 for p in lists.precursors if p.cas is None) == 5


def test_known_precursors_are_where_the_annexes_put_them(lists):
    ephedrine = lists.precursor_by_cas("299-42-3")
    assert ephedrine.substance == "Ephedrine" and ephedrine.category_273 == "1" and ephedrine.category_111 == "1"
    assert "category 1" in ephedrine.legal_reference and "stereoisomeric" in ephedrine.salts_text
    bmk_glycidate = lists.precursor_by_cas("80532-66-7")
    assert "BMK methyl glycidate" in bmk_glycidate.substance and bmk_glycidate.category_273 == "1"
    assert bmk_glycidate.added_by == "2020/1737"
    assert lists.precursor_by_cas("108-24-7").category_273 == "2A"  # acetic anhydride
    # Potassium permanganate: subcategory 2B of Regulation 273/2004 (Regulation 1258/2013 put only
    # acetic anhydride in 2A), category 2 of Regulation 111/2005.
    permanganate = lists.precursor_by_cas("7722-64-7")
    assert (permanganate.category_273, permanganate.category_111) == ("2B", "2")
    assert lists.precursor_by_cas("7723-14-0").category_273 == "2A"  # red phosphorus, since 2020/1737
    for cas in ("67-64-1", "7664-93-9"):  # acetone, sulphuric acid
        assert lists.precursor_by_cas(cas).category_273 == "3"
    assert "hydrochloric" in lists.precursor_by_cas("67-64-1").salts_text
    for cas in ("23056-29-3", "125541-22-2", "1609-66-1", "21409-26-7", "39742-60-4"):  # fentanyl precursors
        assert lists.precursor_by_cas(cas).category_273 == "1"
    for cas in ("4433-77-6", "16648-44-5", "13605-48-6", "2167189-50-4", "25547-51-7", "28578-16-7"):
        assert lists.precursor_by_cas(cas) is not None, cas  # APAA, MAPA and the glycidates
    medicines = [p for p in lists.precursors if p.category_111 == "4"]
    assert medicines and all(p.category_273 is None for p in medicines)
    assert {"300341", "300442"} <= {code for p in medicines for code in p.hs}
    assert lists.precursor_by_cas("50-00-0") is None  # formaldehyde: not scheduled


def test_precursors_by_code(lists):
    assert [p.substance for p in lists.precursors_for_code("2939 41 00")] == ["Ephedrine"]
    assert [p.substance for p in lists.precursors_for_code("291524")] == ["Acetic anhydride"]
    assert [p.substance for p in lists.precursors_for_code("2914.11.00.00")] == ["Acetone"]
    ketones = {p.substance for p in lists.precursors_for_code("29143100")}
    assert ketones == {"1-Phenyl-2-propanone"}
    piperidines = lists.precursors_for_code("29333999")
    assert len(piperidines) >= 5 and all(p.cn_partial for p in piperidines)  # an "ex" code: other substances too
    assert lists.precursors_for_code("847130") == ()


def test_precursor_names_are_found_as_whole_phrases(lists):
    found = lists.precursor_names_in("BMK Methyl Glycidate 25 kg drums; acetone; MEK solvent")
    assert [(m.phrase, m.abbreviation) for m in found] == [("bmk methyl glycidate", False), ("acetone", False),
                                                           ("mek", True)]
    assert found[0].precursor.cas == "80532-66-7"
    assert lists.precursor_names_in("leather together with cement; meks; acetonenitrile") == []
    assert {m.precursor.substance for m in lists.precursor_names_in("Ephedrine hydrochloride")} == {"Ephedrine"}
    assert lists.precursor_names["piperonal"][0].cas == "120-57-0"


def test_common_high_priority_items(lists):
    assert lists.chp_tier("8542.31") == "1" and lists.chp_tier("85423190") == "1"
    assert lists.chp_tier("851762") == "2" and lists.chp_tier("880730") == "3.B" and lists.chp_tier("845811") == "4.B"
    assert lists.chp_tier("610910") is None
    tiers = {item.tier for item in lists.chp.values()}
    assert tiers == {"1", "2", "3.A", "3.B", "4.A", "4.B"}
    ref = bundled_reference()
    assert all(item.description == ref.hs[item.hs] for item in lists.chp.values())


def test_countries_and_areas_under_restrictive_measures(lists):
    russia = lists.restrictive_measures("RU")
    assert any("833/2014" in m.regulation and {"dual-use", "chp", "luxury"} <= m.restricts for m in russia)
    assert any("269/2014" in m.regulation and "party" in m.applies for m in russia)
    assert any("765/2006" in m.regulation for m in lists.restrictive_measures("by"))
    assert {"RU", "BY", "IR", "KP", "SY"} <= lists.countries_under_measures()
    assert "UA" not in lists.countries_under_measures() and lists.restrictive_measures("UA") == ()
    assert lists.restrictive_measures("FR") == ()
    crimea = lists.restrictive_measures("UA-43")[0]
    assert "692/2014" in crimea.regulation and crimea.coverage == "whole" and "origin" in crimea.applies


def test_places_in_areas_under_restrictive_measures(lists):
    assert lists.area_of("UAYAL").key == "UA-43"  # Yalta: the code list's subdivision 43
    assert lists.area_of("UAFEO").key == "UA-43"  # Feodosiia: published without a subdivision
    assert lists.area_of("UASVP").key == "UA-40"  # Sevastopol
    mariupol = lists.area_of("UAMPW")
    assert mariupol.key == "UA-14" and mariupol.coverage == "partial" and "2022/263" in mariupol.regulation
    assert lists.area_of("UAODS") is None and lists.area_of("UAKBP") is None and lists.area_of("NLRTM") is None
    assert lists.area_of("ZZZZZ") is None


def test_controlled_goods_headings_and_their_un_numbers(lists):
    ref = bundled_reference()
    assert lists.is_controlled("930200") == ("firearm",)
    assert lists.is_controlled("9305.10.00") == ("firearm-part",)
    assert lists.is_controlled("930621") == ("ammunition",)
    assert lists.is_controlled("360200") == ("explosive",)
    assert lists.is_controlled("36041000") == ("pyrotechnic",)
    assert lists.is_controlled("970610") == ("cultural",)
    assert lists.is_controlled("850760") == ("lithium",) and lists.is_controlled("850650") == ("lithium",)
    assert lists.is_controlled("490700") == ("cash",)
    assert set(lists.is_controlled("93")) == set() and set(lists.is_controlled("9303")) == {"firearm"}
    assert lists.is_controlled("610910") == ()
    fireworks = lists.un_numbers_for("360410")
    assert fireworks == ("0333", "0334", "0335", "0336", "0337")
    assert ref.dangerous_goods["0336"].classification == "1.4G"
    assert "0012" in lists.un_numbers_for("930630") and "3481" in lists.un_numbers_for("850760")
    for c in lists.controlled:
        assert c.description == ref.hs[c.hs]
        assert all(n in ref.dangerous_goods for n in c.un_numbers), c
        if c.kind in ("explosive", "pyrotechnic"):
            assert c.un_numbers and all(ref.dangerous_goods[n].hazard_class == "1" for n in c.un_numbers), c
    covered = {c.hs for c in lists.controlled}
    for prefix in ("9301", "9302", "9303", "9304", "9305", "9306", "3601", "3602", "3603", "3604",
                   "9701", "9702", "9703", "9704", "9705", "9706"):
        assert {code for code in ref.hs if len(code) == 6 and code.startswith(prefix)} <= covered, prefix


def test_lithium_batteries_by_air(lists):
    ion = lists.lithium_battery("UN3481")
    assert {(b.packaging, b.air_packing_instruction) for b in ion} == {("packed with equipment", "966"),
                                                                       ("contained in equipment", "967")}
    assert lists.lithium_battery("3480")[0].passenger_aircraft == "forbidden"
    assert {b.air_packing_instruction for b in lists.lithium} == {"952", "965", "966", "967", "968", "969", "970"}
    assert {b.hs for b in lists.lithium} == {"850650", "850760", "871160"}
    assert {b.un_number for b in lists.lithium if b.hs == "871160"} == {"3556", "3557"}  # e-scooters, e-bikes


def test_cultural_goods_and_cash(lists):
    archaeology = next(c for c in lists.cultural if c.key == "c")
    assert archaeology.import_licence_min_age == 250 and archaeology.importer_statement_min_age is None
    painting = lists.cultural_categories("970121")
    assert any(c.importer_statement_min_age == 200 and c.importer_statement_min_value_eur == 18000 for c in painting)
    assert lists.cultural_origin_ban("IQ").legal_reference.startswith("Council Regulation (EC) No 1210/2003")
    assert "36/2012" in lists.cultural_origin_ban("SY").legal_reference and lists.cultural_origin_ban("FR") is None
    assert {c.kind for c in lists.cash} == {"currency", "bearer-negotiable-instrument", "commodity", "prepaid-card"}
    assert lists.cash_terms_in("Geschenk: Bargeld und Goldbarren") == [("bargeld", "currency"),
                                                                      ("goldbarren", "commodity")]
    assert lists.cash_terms_in("billets de banque usagés") == [("billets de banque", "currency")]
    assert {lang for lang in ("en", "de", "fr", "es", "it", "nl", "pl", "pt")} == {
        r["language"] for r in csv.DictReader((REFERENCE / "cash-terms.csv").open(encoding="utf-8"))}


def test_check_reports_what_disagrees(tmp_path, lists):
    """A wrong check digit, an HS code outside HS 2022 and an unknown UN number are each reported."""
    reference = tmp_path / "reference"
    reference.mkdir()
    for file in (*FILES.values(), "SOURCES.csv"):
        (reference / file).write_bytes((REFERENCE / file).read_bytes())
    path = reference / "drug-precursors.csv"
    path.write_text(path.read_text("utf-8").replace("299-42-3", "299-42-4").replace(",293941,", ",299999,"), "utf-8")
    path = reference / "controlled-goods.csv"
    path.write_text(path.read_text("utf-8").replace("0333 0334", "0333 9998"), "utf-8")
    broken = LegalLists.load(reference, bundled_reference().locations)
    problems = check(broken, bundled_reference(), reference)
    assert any("CAS 299-42-4" in p for p in problems)
    assert any("299999 is not in HS 2022" in p for p in problems)
    assert any("UN9998" in p for p in problems)


def test_reference_commands_show_and_check_the_legal_lists():
    runner = CliRunner()
    result = runner.invoke(main, ["reference", "check"])
    assert result.exit_code == 0, result.output
    assert "legal lists consistent" in result.output
    result = runner.invoke(main, ["reference", "show", "--code", "80532-66-7", "--code", "8542.31",
                                  "--code", "UAYAL", "--code", "BY", "--code", "360410", "--list", "lithium"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "drug-precursors.csv" in out and "chp-items.csv" in out  # the files with their sources
    assert "CAS 80532-66-7: Methyl 2-methyl-3-phenyloxirane-2-carboxylate (BMK methyl glycidate)" in out
    assert "common high priority item 8542.31: tier 1" in out
    assert "UAYAL lies in Autonomous Republic of Crimea (UA-43, whole)" in out
    assert "restrictive measures BY: Council Regulation (EC) No 765/2006" in out
    assert "pyrotechnic, UN0333 UN0334 UN0335 UN0336 UN0337" in out
    assert "UN3480 batteries alone" in out and "PI 965" in out
