"""Party history through the batch job (real Beam, real Redis, real XML): a shipper's later filing sees it
known, a first one sees it new; the starter pack's PH-001 refers a new shipper's pistol parts to a private
person, not a known shipper's, and a shipper known to one filer is new to another."""
from __future__ import annotations

import re
from functools import lru_cache

import pytest
from lxml import etree

from cargoscreen.config import Settings
from cargoscreen.connectors.files import read_json_lines
from cargoscreen.generator import GeneratorSpec, generate
from cargoscreen.job import run_batch

pytestmark = pytest.mark.slow
E = "{urn:cargoscreen:ics2:ens:v1}"
FILER, OTHER_FILER = "BE0822036108", "NL123456789"


@lru_cache(maxsize=None)
def _template() -> bytes:
    spec = GeneratorSpec(count=200, seed=41, defect_rate=0, envelope_rate=0, resubmission_rate=0, modes=("express",))
    return next(f.data for f in generate(spec)
                if f.label["filing_code"] == "F30" and f.data.count(b"<ens:HouseConsignment>") == 1)


def _text(parent, tag: str, value: str) -> None:
    el = parent.find(f"{E}{tag}")
    if el is None:
        el = etree.SubElement(parent, f"{E}{tag}")
    el.text = value


def express(lrn: str, filer: str, shipper: str, pistol_parts: bool) -> bytes:
    """An express house (F30) from `shipper` (named, no id, in Hong Kong) to a private person in Warsaw:
    books, or pistol slides and barrels."""
    root = etree.fromstring(_template())
    header = root.find(f"{E}Header")
    _text(header, "LRN", lrn)
    header.find(f"{E}Representative/{E}IdentificationNumber").text = filer
    house = root.find(f"{E}Consignment/{E}HouseConsignment")
    consignor, consignee = house.find(f"{E}Consignor"), house.find(f"{E}Consignee")
    for party in (consignor, consignee):
        if party.find(f"{E}IdentificationNumber") is not None:
            party.remove(party.find(f"{E}IdentificationNumber"))
    consignor.find(f"{E}Name").text = shipper
    consignor.find(f"{E}Address/{E}Country").text = "HK"
    consignee.find(f"{E}Name").text = "Anna Kowalska"
    consignee.find(f"{E}Address/{E}Street").text = "ul. Długa 12/5"
    consignee.find(f"{E}Address/{E}City").text = "Warszawa"
    consignee.find(f"{E}Address/{E}Country").text = "PL"
    item = house.find(f"{E}GoodsItem")
    item.find(f"{E}Description").text = "Pistol slides and barrels" if pistol_parts else "Printed books hardcover"
    item.find(f"{E}HSCode").text = "930510" if pistol_parts else "490199"
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _run(folder, files: dict[str, bytes], url: str, out):
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    summary = run_batch(Settings().with_redis_url(url), folder, out)
    assert summary.balanced and summary.accepted == len(files), summary
    return {d["submission_id"]: d for d in read_json_lines(out / "decisions")}


def _consignor_history(decision: dict) -> dict:
    [fact] = [f for f in decision["container_facts"] if f["kind"] == "party-history" and "consignor" in f["detail"]]
    return fact


def _earlier_filings(decision: dict) -> int:
    """The consignor's earlier filings, as its party-history fact says them to the analyst."""
    found = re.search(r"in (\d+) earlier filing", _consignor_history(decision)["detail"])
    return int(found[1]) if found else 0


def test_a_known_shipper_is_known_a_new_one_new_and_each_filer_knows_its_own(tmp_path, redis_server, redis_client):
    url = redis_server.url
    first = _run(tmp_path / "in1", {f"s-{i}.xml": express(f"PH-S-{i}", FILER, "Pearl River Arms Trading Ltd", False)
                                    for i in range(3)}, url, tmp_path / "out1")
    # one filing after the other: each sees the ones counted before it
    assert sorted(_earlier_filings(d) for d in first.values()) == [0, 1, 2]

    later = _run(tmp_path / "in2", {
        # the same shipper, spelt otherwise
        "known.xml": express("PH-K-1", FILER, "PEARL RIVER ARMS TRADING CO., LTD.", True),
        "new.xml": express("PH-N-1", FILER, "Kowloon Precision Parts Ltd", True),
        "other-filer.xml": express("PH-O-1", OTHER_FILER, "Pearl River Arms Trading Ltd", True),
    }, url, tmp_path / "out2")
    known, new, other = later["known.xml"], later["new.xml"], later["other-filer.xml"]
    assert _earlier_filings(known) == 3 and FILER in _consignor_history(known)["detail"]
    assert "never seen before" in _consignor_history(new)["detail"]
    assert "never seen before in filer " + OTHER_FILER in _consignor_history(other)["detail"]

    def rules(d):
        return {h["rule"] for h in d["hits"]}
    assert "PH-001" not in rules(known) and "PH-001" in rules(new) and "PH-001" in rules(other)
    assert new["decision"] == "control" and new["score"] >= known["score"] + 60
    [hit] = [h for h in new["hits"] if h["rule"] == "PH-001"]
    assert any("person = natural" in e["value"] for e in hit["evidence"])
    assert any("filings = 0" in e["value"] for e in hit["evidence"])
    assert any(f["kind"] == "natural-person-consignee" and "12/5" in f["detail"] for f in new["container_facts"])

    # a re-run of the same folder re-sends every filing: nothing is assessed or counted again
    again = run_batch(Settings().with_redis_url(url), tmp_path / "in2", tmp_path / "out3")
    assert again.balanced and again.resent == 3
    _run(tmp_path / "in4", {"next.xml": express("PH-K-2", FILER, "Pearl River Arms Trading Ltd", False)},
         url, tmp_path / "out4")
    [after] = read_json_lines(tmp_path / "out4" / "decisions")
    assert _earlier_filings(after) == 4


def _issued(data: bytes, when: str) -> bytes:
    root = etree.fromstring(data)
    root.find(f"{E}Header/{E}IssueDateTime").text = when
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def test_a_backtest_sees_the_shippers_history_its_own_traffic_builds(tmp_path):
    """`cargoscreen rules backtest` replays traffic with a party history of its own, built in issue
    order: pistol parts from a shipper the traffic already carried are not a new shipper's."""
    from cargoscreen.cli import _labelled_traffic
    from cargoscreen.decisions import decide
    from cargoscreen.domain.rulepack import RulePack
    from cargoscreen.domain.scoring import Scorer

    folder = tmp_path / "traffic"
    folder.mkdir()
    files = {f"books-{i}.xml": _issued(express(f"BT-S-{i}", FILER, "Pearl River Arms Trading Ltd", False),
                                       f"2026-09-0{i + 1}T10:00:00Z") for i in range(3)}
    # written first, issued last: the history follows the issue times, not the folder's order
    files["a-known.xml"] = _issued(express("BT-K", FILER, "Pearl River Arms Trading Ltd", True), "2026-09-20T10:00:00Z")
    files["a-new.xml"] = _issued(express("BT-N", FILER, "Kowloon Precision Parts Ltd", True), "2026-09-20T10:00:00Z")
    for name, data in files.items():
        (folder / name).write_bytes(data)
    settings = Settings()
    traffic = _labelled_traffic(folder, (), settings)
    scorer = Scorer(RulePack.load(settings.rules.pack_dir))
    rules = {f.submission_id: {h.rule for h in decide(f, scorer).assessment.hits} for f in traffic.filings}
    assert "PH-001" in rules["a-new.xml"] and "PH-001" not in rules["a-known.xml"]
    seen = {f.submission_id: next(x for x in f.facts if x.kind == "party-history" and "consignor" in x.detail)
            for f in traffic.filings}
    assert seen["a-known.xml"].values["filings"] == 3 and seen["a-known.xml"].values["first_seen_days"] == 19.0
