"""Who may file what in a consignment: attacks of one filer on another's consignment, through the real
HTTP ingress (a uvicorn process, each filer with its own token), the real streaming service and the
workbench's keeper, or the batch job, on a real Redis. Each attack worked before a house needed its
master filer's word (pipeline/linking.py, "who may file what"); each test shows it refused, said so
to the claimant without the victim's data, audited, and brought to the claimed consignment's risk
centre."""
from __future__ import annotations

import json
from dataclasses import replace
from functools import lru_cache

import pytest
from lxml import etree

from cargoscreen import audit
from cargoscreen.config import Settings
from cargoscreen.connectors.files import read_json_lines
from cargoscreen.connectors.redis_streams import StreamKeys
from cargoscreen.generator import GeneratorSpec, generate
from cargoscreen.job import run_batch
from cargoscreen.service import run_service
from cargoscreen.workbench.keeper import Keeper
from cargoscreen.workbench.queue import QueueKeys

from .test_ingress import KEYS, _call, ingress  # noqa: F401  (the fixture)
from .test_rfi_answers import rfi_answer

pytestmark = pytest.mark.slow
E = "{urn:cargoscreen:ics2:ens:v1}"
OFFICE = "NL000396"  # every filing enters at Rotterdam: risk centre RC-NL


@lru_cache(maxsize=None)
def _template(code: str) -> bytes:
    spec = GeneratorSpec(count=120, seed=41, defect_rate=0, envelope_rate=0, resubmission_rate=0, modes=("sea",))
    return next(f.data for f in generate(spec) if f.label["filing_code"] == code)


def _set(root, path: str, value: str) -> None:
    root.find("/".join(f"{E}{step}" for step in path.split("/"))).text = value


def _enter_at_rotterdam(root) -> None:
    """Office, place of unloading and route agree on Rotterdam (so the referral is RC-NL's, not the default's)."""
    _set(root, "Header/CustomsOfficeOfFirstEntry", OFFICE)
    place = root.find(f"{E}Consignment/{E}PlaceOfUnloading")
    for child in list(place):
        place.remove(child)
    etree.SubElement(place, f"{E}UNLocode").text = "NLRTM"
    route = root.find(f"{E}Consignment/{E}Itinerary")
    route[-1].text = "NL"
    for extra in [c for c in route[:-1] if c.text == "NL"]:
        route.remove(extra)


def master(lrn: str, document: str, houses=()) -> bytes:
    """A carrier's partial master (F12) for `document`, listing `houses`: documents, or (document, filer)."""
    root = etree.fromstring(_template("F12"))
    _set(root, "Header/LRN", lrn)
    _enter_at_rotterdam(root)
    consignment = root.find(f"{E}Consignment")
    _set(consignment, "TransportDocument/Number", document)
    for listed in consignment.findall(f"{E}HouseTransportDocument"):
        consignment.remove(listed)
    for house in houses:
        number, filer = house if isinstance(house, tuple) else (house, None)
        listed = etree.SubElement(consignment, f"{E}HouseTransportDocument")
        etree.SubElement(listed, f"{E}Type").text = "N703"
        etree.SubElement(listed, f"{E}Number").text = number
        if filer:
            etree.SubElement(listed, f"{E}Filer").text = filer
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def house(lrn: str, master_document: str, document: str, risky: bool = False) -> bytes:
    """A forwarder's house filing (F15): plain chairs, or (risky) smartphones under a plastics HS code,
    which the starter pack asks about (a request for information, FI-003)."""
    root = etree.fromstring(_template("F15"))
    _set(root, "Header/LRN", lrn)
    _enter_at_rotterdam(root)
    _set(root, "Consignment/MasterTransportDocument/Number", master_document)
    _set(root, "Consignment/TransportDocument/Number", document)
    for n, item in enumerate(root.iter(f"{E}GoodsItem")):
        item.find(f"{E}Description").text = "Smartphones for cellular networks" if risky and n == 0 \
            else "Wooden dining chairs"
        item.find(f"{E}HSCode").text = "392410" if risky and n == 0 else "940360"
        for optional in ("UNDGNumber", "DeclaredValue"):
            if item.find(f"{E}{optional}") is not None:
                item.remove(item.find(f"{E}{optional}"))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def filed_by(filing: bytes, eori: str) -> bytes:
    """The filing as a folder carries it: its filer is its declarant (no representative)."""
    root = etree.fromstring(filing)
    header = root.find(f"{E}Header")
    if header.find(f"{E}Representative") is not None:
        header.remove(header.find(f"{E}Representative"))
    _set(header, "Declarant/IdentificationNumber", eori)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def invalidation(filing: bytes, lrn: str, mrn: str) -> bytes:
    src = etree.fromstring(filing)
    root = etree.Element(f"{E}IE3Q04", nsmap=src.nsmap)
    root.append(src.find(f"{E}Header"))
    _set(root, "Header/LRN", lrn)
    etree.SubElement(root, f"{E}MRN").text = mrn
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


class Desk:
    """The filers at the ingress, the service behind it, the keeper: what each filer reads, what Redis holds."""

    def __init__(self, ingress, redis_server, redis_client):
        self.port, tokens = ingress
        (self.victim, self.victim_token), (self.intruder, self.intruder_token) = tokens.items()
        self.client = redis_client
        settings = Settings().with_redis_url(redis_server.url)
        self.settings = replace(settings, streams=replace(settings.streams, once=True))
        self.keeper = Keeper(redis_client, self.settings)

    def file(self, token: str, payload: bytes, path: str = "/v1/filings") -> str:
        status, receipt = _call(self.port, "POST", path, payload, token)
        assert status == 202, receipt
        return receipt["submission_id"]

    def run(self) -> None:
        run_service(self.settings, ["w0"])
        self.keeper.once()

    def answers(self, filer: str) -> list[dict]:
        return [json.loads(f[b"body"]) for _, f in self.client.xrange(KEYS.answers(filer))]

    def answer(self, filer: str, submission_id: str, message_type: str) -> dict:
        [found] = [a for a in self.answers(filer) if a["submission_id"] == submission_id
                   and a["message_type"] == message_type]
        return found

    def decisions(self) -> list[dict]:
        """Every decision made (withdrawals, on the same stream, left out)."""
        return [d for _, f in self.client.xrange(KEYS.decisions) for d in [json.loads(f[b"body"])] if "decision" in d]

    def latest(self, consignment: str) -> dict:
        return json.loads(self.client.get(KEYS.decision_of(consignment)))

    def referral(self, rid: str) -> dict:
        return {k.decode(): v.decode() for k, v in self.client.hgetall(QueueKeys("cs", "RC-NL").referral(rid)).items()}

    def audit(self) -> list[tuple[str, str, str]]:
        return [(e["who"], e["action"], e["centre"]) for e in audit.entries(self.client, audit.every_trail(self.client, "cs"))]


@pytest.fixture
def desk(ingress, redis_server, redis_client):  # noqa: F811
    return Desk(ingress, redis_server, redis_client)


def _refused_claim(desk: Desk, sid: str, document: str) -> tuple[str, dict]:
    """The claimant's IE3N01 for a refused claim (its MRN) and the decision on its filing, alone."""
    mrn = desk.answer(desk.intruder, sid, "IE3R01")["mrn"]
    refusal = desk.answer(desk.intruder, sid, "IE3N01")
    assert refusal["mrn"] == mrn and "HOUSE_NOT_LISTED" in refusal["xml"] and document in refusal["xml"]
    assert desk.victim not in refusal["xml"]  # nothing of the victim's: not who, not what it filed
    [own] = [d for d in desk.decisions() if d["mrn"] == mrn]
    assert own["consignment"] == f"mrn:{mrn}" and "SS-020" in [h["rule"] for h in own["hits"]]
    assert own["referral_id"] and own["risk_centre"] == "RC-NL"  # to the claimed consignment's centre
    assert (desk.intruder, "claim-refused", "RC-NL") in desk.audit()
    return mrn, refusal


def test_a_house_from_another_filer_neither_completes_nor_empties_a_consignment(desk):
    """Before: the intruder's harmless house completed the victim's consignment (assessment complete,
    on the intruder's goods), the victim's real house then overwrote it, and the intruder's
    invalidation of its own house deleted the victim's and withdrew the victim's referral."""
    victim, intruder = desk.victim, desk.intruder
    master_sid = desk.file(desk.victim_token, master("VIC-M-1", "MBVIC0001", [("HBVIC0001", victim)]))
    desk.run()
    # The intruder quotes the victim's master and its house number, with harmless goods; then the
    # victim's real house comes, whose goods are referred; then the intruder invalidates its own house.
    claim = house("INT-H-1", "MBVIC0001", "HBVIC0001")
    claim_sid = desk.file(desk.intruder_token, claim)
    desk.run()
    desk.file(desk.victim_token, house("VIC-H-1", "MBVIC0001", "HBVIC0001", risky=True))
    desk.run()
    decided = desk.latest("sea:MBVIC0001")
    claim_mrn = desk.answer(intruder, claim_sid, "IE3R01")["mrn"]
    desk.file(desk.intruder_token, invalidation(claim, "INT-Q-1", claim_mrn))
    desk.run()

    master_mrn = desk.answer(victim, master_sid, "IE3R01")["mrn"]
    assert decided["decision"] == "request-for-information" and decided["referral_id"] == f"REF-{master_mrn}"
    assert "IE3R04" in [a["message_type"] for a in desk.answers(intruder)]  # its own filing, invalidated
    withdrawn = [json.loads(f[b"body"])["withdrawn"] for _, f in desk.client.xrange(KEYS.referrals("RC-NL"))
                 if b"withdrawn" in f[b"body"]]
    assert withdrawn == [f"mrn:{claim_mrn}"]  # its own referral, nobody else's
    assert desk.latest("sea:MBVIC0001") == decided and desk.referral(f"REF-{master_mrn}")["state"] == "open"
    members = desk.client.hkeys(StreamKeys().consignments.hash("sea:MBVIC0001"))
    assert len([f for f in members if f.startswith(b"h:")]) == 1
    # The victim's consignment was only ever assessed on the victim's own filings: never complete on
    # the intruder's goods.
    made = [d for d in desk.decisions() if d["consignment"] == "sea:MBVIC0001"]
    assert [d["decision"] for d in made] == ["request-for-information"]
    assert {f["filer"] for f in made[0]["filings"]} == {victim}
    assert not [a for a in desk.answers(victim) if a["message_type"] == "IE3N03"]
    _refused_claim(desk, claim_sid, "HBVIC0001")


def test_a_filer_refused_from_a_consignment_cannot_answer_its_request_for_information(desk):
    """Before: a master listing no houses took the first house quoting it, anyone's: the intruder's
    house joined, and the intruder could answer the request for information about the victim's
    goods, correct them, and clear the referral."""
    victim, intruder = desk.victim, desk.intruder
    # The intruder's house comes first: it waits, and the master, listing none (its filer files them), refuses it.
    claim_sid = desk.file(desk.intruder_token, house("INT-H-2", "MBVIC0002", "HBINT0002"))
    master_sid = desk.file(desk.victim_token, master("VIC-M-2", "MBVIC0002"))
    desk.run()
    desk.file(desk.victim_token, house("VIC-H-2", "MBVIC0002", "HBVIC0002", risky=True))
    desk.run()
    master_mrn = desk.answer(victim, master_sid, "IE3R01")["mrn"]
    rid = f"REF-{master_mrn}"
    body = json.loads(desk.referral(rid)["body"])
    pointer = next(i["pointer"] for i in body["information_requested"] if i["pointer"])

    # The intruder answers for the victim's consignment, "correcting" its goods: refused, audited, nothing changed.
    sid = desk.file(desk.intruder_token, rfi_answer(master_mrn, pointer, "851713"), "/v1/rfi-answers")
    desk.keeper.once()
    assert json.loads(desk.referral(rid).get("answers") or "[]") == [] and desk.referral(rid)["state"] == "open"
    assert desk.latest("sea:MBVIC0002")["decision"] == "request-for-information"
    refused = desk.answer(intruder, sid, "IE3N01")
    assert "FOREIGN_MRN" in refused["xml"] and "HBVIC0002" not in refused["xml"]
    assert (intruder, "rfi-answer-refused", "RC-NL") in desk.audit()
    assert {f["filer"] for f in body["filings"]} == {victim}
    _refused_claim(desk, claim_sid, "HBINT0002")


def test_answers_name_only_the_documents_of_the_recipients_own_filings(desk):
    """Before: a house filer's IE3N02 listed every house the master still expected, other filers'
    numbers included: a stranger quoting any master number read them all."""
    victim, intruder = desk.victim, desk.intruder
    desk.file(desk.victim_token, master("VIC-M-3", "MBVIC0003", ["HBVIC0003", "HBVIC0004"]))
    desk.run()
    stranger_sid = desk.file(desk.intruder_token, house("INT-H-3", "MBVIC0003", "HBSTRANGE3"))
    desk.run()
    assert not [a for a in desk.answers(intruder) if "HBVIC000" in a["xml"]]
    _refused_claim(desk, stranger_sid, "HBSTRANGE3")

    # A master naming the intruder as the filer of one of its houses: the master's filer reads its
    # whole list; the named forwarder its own house, and the other as a count.
    desk.file(desk.victim_token, master("VIC-M-5", "MBVIC0005", ["HBVIC0005", ("HBINT0005", intruder)]))
    desk.file(desk.intruder_token, house("INT-H-5", "MBVIC0005", "HBINT0005"))
    desk.run()
    to_master = [a for a in desk.answers(victim) if a["message_type"] == "IE3N02" and "HBINT0005" in a["xml"]]
    assert to_master and "HBVIC0005" in to_master[0]["xml"]
    [pending] = [a for a in desk.answers(intruder) if a["message_type"] == "IE3N02"]
    assert "1 house filing expected from other filers" in pending["xml"] and "HBVIC0005" not in pending["xml"]

    # Once the victim files its own house, the consignment is complete: both filers are answered.
    desk.file(desk.victim_token, house("VIC-H-5", "MBVIC0005", "HBVIC0005"))
    desk.run()
    [made] = [d for d in desk.decisions() if d["consignment"] == "sea:MBVIC0005"]
    assert {f["filer"] for f in made["filings"]} == {victim, intruder}

    # A request for information about the victim's house: each filer is asked, the victim with the
    # pointer into its filing, the forwarder without the victim's MRN.
    desk.file(desk.victim_token, master("VIC-M-6", "MBVIC0006", ["HBVIC0006", ("HBINT0006", intruder)]))
    desk.file(desk.intruder_token, house("INT-H-6", "MBVIC0006", "HBINT0006"))
    risky_sid = desk.file(desk.victim_token, house("VIC-H-6", "MBVIC0006", "HBVIC0006", risky=True))
    desk.run()
    risky_mrn = desk.answer(victim, risky_sid, "IE3R01")["mrn"]
    [asked] = [d for d in desk.decisions() if d["consignment"] == "sea:MBVIC0006"]
    assert asked["decision"] == "request-for-information"
    assert any(i["pointer"].startswith(risky_mrn + "#") for i in asked["information_requested"] if i["pointer"])
    to_victim = [a for a in desk.answers(victim) if a["message_type"] == "IE3Q02" and a["mrn"] == risky_mrn]
    assert to_victim and f"{risky_mrn}#" in to_victim[0]["xml"]
    to_forwarder = [a for a in desk.answers(intruder) if a["message_type"] == "IE3Q02"]
    assert to_forwarder and all(risky_mrn not in a["xml"] for a in to_forwarder)
    assert "<Text>" in to_forwarder[0]["xml"] or "Text>" in to_forwarder[0]["xml"]  # still told what is asked


def test_the_batch_job_refuses_a_claim_answers_it_apart_from_the_doors_and_balances(tmp_path, redis_server):
    """A folder has no channel: the filer is the one each filing declares. The intruder's IE3N01 comes
    after its IE3R01 and is counted apart, so inputs = accepted + rejected + dead-lettered still holds.
    A house its master lists for another filer is a conflicting claim (SS-020 refers it); one its
    master lists without naming any filer is refused too, but contradicts nobody: SS-021 only adds
    weight, and plain goods are assessed complete."""
    victim, intruder, forwarder = "NL123456789", "DE123456789", "BE0123456789"
    (tmp_path / "in").mkdir()
    for name, filing in {"1-claim.xml": filed_by(house("INT-H-9", "MBVIC0009", "HBVIC0009"), intruder),
                         "2-master.xml": filed_by(master("VIC-M-9", "MBVIC0009", [("HBVIC0009", victim)]), victim),
                         "3-house.xml": filed_by(house("VIC-H-9", "MBVIC0009", "HBVIC0009"), victim),
                         "4-master.xml": filed_by(master("OLD-M-8", "MBOLD0008", ["HBOLD0008"]), victim),
                         "5-house.xml": filed_by(house("FWD-H-8", "MBOLD0008", "HBOLD0008"), forwarder)}.items():
        (tmp_path / "in" / name).write_bytes(filing)
    summary = run_batch(Settings().with_redis_url(redis_server.url), tmp_path / "in", tmp_path / "out")
    assert summary.balanced and summary.claims_refused == 2 and summary.rejected == 0 and summary.accepted == 5
    answers = read_json_lines(tmp_path / "out" / "answers")
    refusals = {a["submission_id"]: a["xml"] for a in answers if a["message_type"] == "IE3N01"}
    assert sorted(refusals) == ["1-claim.xml", "5-house.xml"]
    assert "HOUSE_NOT_LISTED" in refusals["1-claim.xml"] and "HOUSE_FILER_NOT_NAMED" in refusals["5-house.xml"]
    assert "without the identity of the filer expected to file it" in refusals["5-house.xml"]
    decisions = read_json_lines(tmp_path / "out" / "decisions")
    [mine] = [d for d in decisions if d["consignment"] == "sea:MBVIC0009"]
    assert {f["filer"] for f in mine["filings"]} == {victim} and len(mine["filings"]) == 2
    [theirs] = [d for d in decisions if d["filer"] == intruder]
    assert theirs["consignment"].startswith("mrn:") and "SS-020" in [h["rule"] for h in theirs["hits"]]
    [unnamed] = [d for d in decisions if d["filer"] == forwarder]
    rules = [h["rule"] for h in unnamed["hits"]]
    assert unnamed["consignment"].startswith("mrn:") and "SS-021" in rules and "SS-020" not in rules
    assert unnamed["decision"] == "assessment-complete"
