"""Learned reference statistics: robust statistics, the fallback chain subheading -> heading ->
chapter, the table a pack carries, and deviations that name the reference they came from."""
from __future__ import annotations

import math
from dataclasses import replace
import re
import statistics

import pytest

from cargoscreen import resources
from cargoscreen.domain.rulepack import PackError, RulePack, read_pack_files
from cargoscreen.domain.scoring import Scorer, Subject
from cargoscreen.domain.screening import GoodsLine, record_from_dict
from cargoscreen.domain.unit_statistics import (EUR_PER_KG, EUR_PER_PIECE, KG_PER_PACKAGE, UnitReference, from_csv,
                                                learn, observations, robust, to_csv)

STARTER = resources.rules_dir() / "risk" / "ics2-starter"


def test_robust_statistics_are_the_median_and_the_scaled_mad_of_the_logarithms():
    values = [10.0, 20.0, 40.0, 20.0, 20.0, 10.0, 40.0]
    r = robust(values)
    assert r.n == 7 and r.median == pytest.approx(20.0)
    # |log x - log 20| = log 2 for four values, 0 for three: the MAD is log 2
    assert r.log_sigma == pytest.approx(1.4826 * math.log(2))
    assert r.q05 <= r.q25 <= r.median <= r.q75 <= r.q95
    assert (r.q05, r.q95) == (pytest.approx(10.0), pytest.approx(40.0))


def test_a_few_wild_declarations_do_not_move_the_reference():
    honest = [100.0 * (1 + 0.01 * i) for i in range(95)]
    wild = honest + [0.5] * 5  # five goods items declared at a two-hundredth of their value
    clean, dirty = robust(honest), robust(wild)
    assert dirty.median == pytest.approx(clean.median, rel=0.05)
    assert dirty.log_sigma == pytest.approx(clean.log_sigma, rel=0.15)
    # what a mean and standard deviation of the logarithms would have done: a spread many times wider
    assert statistics.stdev(map(math.log, wild)) > 5 * statistics.stdev(map(math.log, honest))


def test_nothing_positive_is_no_statistics():
    assert robust([0.0, -3.0, math.inf]) is None
    assert robust([5.0]).log_sigma == 0.0


def test_observations_of_a_goods_item_per_kg_per_piece_and_per_package():
    cartons = GoodsLine(hs_code="85171300", gross_mass=80.0, packages=10, package_types=("CT",), value=28000.0,
                        currency="EUR")
    assert sorted(observations(cartons, {"NE"})) == [(EUR_PER_KG, "", 350.0), (KG_PER_PACKAGE, "CT", 8.0)]
    cars = GoodsLine(hs_code="870323", gross_mass=3000.0, packages=2, package_types=("NE",), value=40000.0,
                     currency="EUR")
    assert (EUR_PER_PIECE, "NE", 20000.0) in set(observations(cars, {"NE"}))
    dollars = cars._replace(currency="USD")
    assert [m for m, _, _ in observations(dollars, {"NE"})] == [KG_PER_PACKAGE]  # no rate for USD: no value
    mixed = cartons._replace(package_types=("CT", "PX"))
    assert [m for m, _, _ in observations(mixed, {"NE"})] == [EUR_PER_KG]  # whose mass is it, CT's or PX's?
    assert list(observations(cartons._replace(hs_code="85"), {"NE"})) == []


@pytest.mark.parametrize("hs_code", ["970121", "970600", "710239", "710410"])
def test_goods_priced_by_the_piece_have_no_value_per_kg_learned_or_judged(hs_code):
    painting = GoodsLine(hs_code=hs_code, gross_mass=100.0, packages=1, package_types=("CS",), value=300.0,
                         currency="EUR")
    assert [m for m, _, _ in observations(painting, {"NE"})] == [KG_PER_PACKAGE]
    statistics_ = RulePack.load(STARTER).environment.statistics
    item = record_from_dict({"goods": [{"hs_code": hs_code, "gross_mass": 100, "value": 300, "currency": "EUR"}]}).goods[0]
    assert statistics_.unit_value_z(item) is None and statistics_.unit_value_ratio(item) is None
    gold = record_from_dict({"goods": [{"hs_code": "711319", "gross_mass": 100, "value": 300, "currency": "EUR"}]}).goods[0]
    assert statistics_.unit_value_ratio(gold) < 0.01  # jewellery of precious metal is judged by its mass


def _observed(hs: str, median: float, n: int, measure=EUR_PER_KG, package_type=""):
    return [(measure, hs, package_type, median * (1.2 if i % 2 else 1 / 1.2)) for i in range(n)]


def test_learning_keeps_cells_with_enough_observations_at_every_level():
    observed = _observed("851713", 350, 30) + _observed("851762", 40, 5) + _observed("854231", 900, 25)
    cells = {(c.level, c.hs): c for c in learn(observed, min_count=20)}
    assert set(cells) == {("subheading", "851713"), ("subheading", "854231"), ("heading", "8517"),
                          ("heading", "8542"), ("chapter", "85")}
    assert cells[("heading", "8517")].stats.n == 35
    assert cells[("chapter", "85")].stats.n == 60
    assert cells[("subheading", "851713")].stats.median == pytest.approx(350 * 1.2, rel=0.2)


def test_the_lookup_falls_back_from_subheading_to_heading_to_chapter():
    observed = (_observed("851713", 350, 30) + _observed("851762", 40, 25) + _observed("851769", 60, 5)
                + _observed("854231", 900, 25))
    reference = UnitReference(learn(observed, min_count=20))
    assert reference.cell(EUR_PER_KG, "85171300").level == "subheading"
    heading = reference.cell(EUR_PER_KG, "851769")  # 5 observations of its own: too few
    assert (heading.level, heading.hs, heading.stats.n) == ("heading", "8517", 60)
    chapter = reference.cell(EUR_PER_KG, "853710")  # nothing of 8537 at all
    assert (chapter.level, chapter.hs) == ("chapter", "85")
    assert reference.cell(EUR_PER_KG, "640399") is None  # nothing of chapter 64
    assert reference.cell(KG_PER_PACKAGE, "851713", "CT") is None  # another measure
    # A pack may ask for more observations than the learner kept: the subheading's 30 are not enough.
    stricter = UnitReference(learn(observed, min_count=20), min_count=40)
    assert stricter.cell(EUR_PER_KG, "851713").level == "heading"
    assert heading.describe().startswith("heading 8517 fallback, n=60, median ")
    assert reference.cell(EUR_PER_KG, "851713").describe().startswith("subheading 851713, n=30, median ")


def test_a_deviation_is_measured_in_the_learned_spread_but_never_narrower_than_the_floor():
    [cell] = [c for c in learn(_observed("851713", 350, 30), min_count=20) if c.level == "subheading"]
    assert UnitReference([cell]).z(cell, cell.stats.median * math.exp(-3 * cell.stats.log_sigma)) == \
        pytest.approx(-3.0)
    floored = UnitReference([cell], min_log_sigma=1.0)
    assert floored.z(cell, cell.stats.median / math.e) == pytest.approx(-1.0)


def test_the_table_reads_back_what_was_written_after_its_header():
    cells = learn(_observed("851713", 350, 30) + _observed("870323", 20000, 20, EUR_PER_PIECE, "NE"), 20)
    text = to_csv(cells, ["learned by: a test", "source: nowhere"])
    assert text.startswith("# learned by: a test\n# source: nowhere\nmeasure,level,hs,")
    again = from_csv(text)
    assert [(c.measure, c.level, c.hs, c.package_type, c.stats.n) for c in again] == \
        [(c.measure, c.level, c.hs, c.package_type, c.stats.n) for c in cells]
    assert again[0].stats.median == pytest.approx(cells[0].stats.median, rel=1e-5)
    with pytest.raises(ValueError, match="line 2"):
        from_csv("measure,level,hs,package_type,n,median,log_sigma,q05,q25,q75,q95\n"
                 "eur_per_kg,heading,851713,,30,350,0.2,1,2,3,4\n")


# -- the pack and the scorer ----------------------------------------------------------------------
TABLE = """# a table made for this test
measure,level,hs,package_type,n,median,log_sigma,q05,q25,q75,q95
eur_per_kg,subheading,851713,,412,350,0.3,200,300,400,600
eur_per_kg,heading,8517,,500,120,0.8,20,60,300,600
eur_per_kg,chapter,42,,90,60,0.6,10,30,100,300
kg_per_package,subheading,640399,CT,80,12,0.2,8,10,14,16
"""


def _pack(table: str = TABLE, **parameters) -> RulePack:
    files = read_pack_files(STARTER)
    files["reference/unit-statistics.csv"] = table
    for name, value in parameters.items():
        files["pack.yaml"] = re.sub(rf"(?m)^  {name}: .*$", f"  {name}: {value}", files["pack.yaml"], count=1)
    return RulePack.from_files(files)


def _hit(pack: RulePack, rule: str, goods: list[dict]):
    assessment = Scorer(pack).assess(record_from_dict({"goods": goods}))
    return next((h for h in assessment.hits if h.rule == rule), None), assessment


def test_an_undervaluation_names_the_subheading_reference_it_was_measured_against():
    hit, assessment = _hit(_pack(), "FI-001", [{"description": "Smartphones", "hs_code": "851713",
                                                 "gross_mass": 100, "value": 2000, "currency": "EUR"}])
    assert assessment.referral and hit is not None
    [evidence] = [e for e in hit.evidence if e.value.startswith("unit_value_z")]
    assert "reference: subheading 851713, n=412, median 350 EUR/kg" in evidence.value
    # measured in the pack's floor of 0.75, not the learned 0.3, and the evidence says so
    assert f"unit_value_z = {math.log(20 / 350) / 0.75:.4g} " in evidence.value
    assert "log sigma 0.75 (the floor; learned 0.30)" in evidence.value
    assert evidence.pointer.endswith("[1]/DeclaredValue")


def test_an_undervaluation_against_a_fallback_says_it_is_one():
    # 851762 has no subheading cell: the heading's reference (median 120, wide) is the measure.
    hit, _ = _hit(_pack(), "FI-002", [{"description": "Network switches", "hs_code": "851762",
                                        "gross_mass": 100, "value": 600, "currency": "EUR"}])
    assert hit is not None and "reference: heading 8517 fallback, n=500, median 120 EUR/kg" in hit.explanation()
    hit, _ = _hit(_pack(), "FI-002", [{"description": "Leather handbags", "hs_code": "420221",
                                        "gross_mass": 100, "value": 300, "currency": "EUR"}])
    assert hit is not None and "reference: chapter 42 fallback, n=90" in hit.explanation()


def test_the_pack_parameter_min_count_moves_the_reference_up_the_chain():
    goods = [{"description": "Smartphones", "hs_code": "851713", "gross_mass": 100, "value": 500, "currency": "EUR"}]
    hit, _ = _hit(_pack(), "FI-002", goods)
    assert hit is not None and "reference: subheading 851713, n=412" in hit.explanation()
    hit, _ = _hit(_pack(reference_min_count=450), "FI-002", goods)  # the subheading's 412 are not enough
    assert hit is not None and "reference: heading 8517 fallback, n=500" in hit.explanation()


def test_too_light_packages_for_the_goods_name_their_reference():
    # HS-005 is a weak indicator: alone it refers nothing, so its evidence (gathered for referrals) is
    # read from its condition, as a referral it takes part in shows it.
    pack = _pack()
    hit, _ = _hit(pack, "HS-005", [{"description": "Leather shoes", "hs_code": "640399", "gross_mass": 400,
                                     "packages": 1000, "package_types": ["CT"]}])
    assert hit is not None
    rule = next(r for r in pack.rules if r.id == "HS-005")
    fired, evidence = rule.condition.explain(Subject(record_from_dict({"goods": [
        {"description": "Leather shoes", "hs_code": "640399", "gross_mass": 400, "packages": 1000,
         "package_types": ["CT"]}]})))
    shown = replace(hit, evidence=tuple(evidence)).explanation()
    assert fired and "package_mass_z" in shown
    assert "reference: subheading 640399 in CT, n=80, median 12 kg/package" in shown


def test_a_broken_table_refuses_the_pack_with_its_row():
    with pytest.raises(PackError, match="unit-statistics.csv: line 3: "):
        _pack(TABLE.replace("eur_per_kg,subheading,851713", "eur_per_kg,subheading,8517x3"))
    with pytest.raises(PackError, match="reference_min_count is a number"):
        _pack(reference_min_count="'many'")


# -- learning from a real run's archive -----------------------------------------------------------
@pytest.mark.slow
def test_learn_statistics_from_a_batch_runs_archive_writes_a_table_the_pack_loads(tmp_path, redis_server):
    from click.testing import CliRunner

    from cargoscreen.cli import main
    from cargoscreen.config import Settings
    from cargoscreen.connectors.redis_store import connect
    from cargoscreen.corpus import write_corpus
    from cargoscreen.job import run_batch
    from cargoscreen.domain.filings import ENS_NS
    from cargoscreen.statistics_learn import read_labels
    from lxml import etree

    write_corpus(tmp_path, count=300, seed=23, defect_rate=0.1, envelope_rate=0.0, resubmission_rate=0.05,
                 risk_rate=0.1, modes=("sea", "air"))
    connect(redis_server.url).flushall()
    run_batch(Settings().with_redis_url(redis_server.url), tmp_path / "filings", tmp_path / "out")
    archive = tmp_path / "out" / "archive"
    table = tmp_path / "unit-statistics.csv"

    result = CliRunner().invoke(main, ["rules", "learn-statistics", str(archive), "--labels",
                                       str(tmp_path / "labels.jsonl"), "--min-count", "5", "--out", str(table)])
    assert result.exit_code == 0, result.output
    text = table.read_text()
    header = [line for line in text.splitlines() if line.startswith("# ")]
    labels = read_labels(tmp_path / "labels.jsonl")
    accepted = sum(x["expected"] == "registered" and not x.get("resubmission_of") for x in labels.values())
    assert f"learned by: cargoscreen rules learn-statistics {archive} --labels" in header[1]
    source = header[2]
    assert source.startswith(f"# source: archive {archive}; filings read ")
    used = int(re.search(r"used (\d+)", source).group(1))
    risky = int(re.search(r"in risky consignments (\d+)", source).group(1))
    assert risky > 0 and used + risky == accepted  # every accepted filing once, the risky ones left out
    assert re.search(r"filings issued: \d{4}-\d\d-\d\d to \d{4}-\d\d-\d\d", text)
    assert "min count per cell: 5" in text
    cells = from_csv(text)
    assert {c.measure for c in cells} >= {EUR_PER_KG, KG_PER_PACKAGE}
    assert {c.level for c in cells} == {"subheading", "heading", "chapter"}
    assert all(c.stats.n >= 5 for c in cells)
    # What was learned is what the filings declare, read here straight from their XML: the largest
    # chapter's cell holds every EUR-valued goods item of that chapter in the filings used, and its
    # median is theirs.
    chapter = max((c for c in cells if c.measure == EUR_PER_KG and c.level == "chapter"), key=lambda c: c.stats.n)
    risky_consignments = {x["consignment"] for x in labels.values() if x.get("risk") and x.get("consignment")}
    per_kg = []
    for name, label in labels.items():
        if label["expected"] != "registered" or label.get("resubmission_of") or label.get("risk") \
                or label.get("consignment") in risky_consignments:
            continue
        for item in etree.parse(str(tmp_path / "filings" / name)).iter(f"{{{ENS_NS}}}GoodsItem"):
            hs, value = item.findtext(f"{{{ENS_NS}}}HSCode") or "", item.find(f"{{{ENS_NS}}}DeclaredValue")
            if hs.startswith(chapter.hs) and value is not None and value.get("currency") == "EUR":
                per_kg.append(float(value.text) / float(item.findtext(f"{{{ENS_NS}}}GrossMass")))
    assert chapter.stats.n == len(per_kg)
    assert chapter.stats.median == pytest.approx(math.exp(statistics.median(map(math.log, per_kg))), rel=1e-4)
    # ... and a pack takes it as its reference.
    assert len(_pack(text, reference_min_count=5).environment.statistics.learned) == len(cells)
    assert len(_pack(text).environment.statistics.learned) == sum(c.stats.n >= 20 for c in cells)  # the pack's 20


def test_a_carton_of_light_goods_is_full_long_before_it_is_heavy():
    statistics_ = RulePack.load(STARTER).environment.statistics

    def load(hs_code, types=("CT",)):
        item = record_from_dict({"goods": [{"hs_code": hs_code, "gross_mass": 410.0, "packages": 10,
                                            "package_types": list(types)}]}).goods[0]
        return statistics_.package_load(item)

    assert load("610910") == pytest.approx(41 / 25)  # T-shirts: the light goods' own row
    assert load("481830") == pytest.approx(41 / 25) and load("392690") == pytest.approx(41 / 25)
    assert load("690721") == pytest.approx(41 / 80)  # tiles: the carton's row
    assert load("610910", ("CT", "PX")) == pytest.approx(41 / 2500)  # mixed types: the most any of them carries
