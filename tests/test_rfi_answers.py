"""A filer answers a request for information through the ingress; the referral gets the answer and the
consignment is re-assessed. Real uvicorn ingress, real service, real Redis, the keeper's real steps."""
from __future__ import annotations

import json
import os
from dataclasses import replace

import pytest
from lxml import etree

from cargoscreen import audit
from cargoscreen.config import Settings
from cargoscreen.connectors.redis_store import hash_tag
from cargoscreen.decisions import Decision
from cargoscreen.domain.reference import bundled_reference
from cargoscreen.domain.rulepack import COMPLETE, CONTROL, RFI
from cargoscreen.domain.scoring import Assessment
from cargoscreen.domain.screening import record_from_dict
from cargoscreen.generator import GeneratorSpec, generate
from cargoscreen.reassessment import APPLY, HOLD, SETTLE, AnswerItem, apply_corrections, settlement
from cargoscreen.service import run_service
from cargoscreen.workbench.accounts import add_analyst
from cargoscreen.workbench.keeper import Keeper
from cargoscreen.workbench.queue import ReferralQueue

from .conftest import workbench_server
from .test_ingress import KEYS, _call, ingress  # noqa: F401  (the fixture)
from .test_workbench_browser import CHROMEDRIVER, CHROMIUM, PASSWORD, browser, shot, sign_in, text_of, until  # noqa: F401


def smartphones(hs: str = "392410", route: tuple[str, ...] = (), aeo: bool = False, value: str | None = None) -> bytes:
    """A plain sea filing whose first goods item says smartphones under another chapter's HS code (FI-003
    asks about it); `route` replaces its itinerary, `aeo` makes declarant and consignee authorised economic
    operators (the trusted-trader rules subtract), `value` declares the item's value in EUR."""
    spec = GeneratorSpec(count=40, seed=33, defect_rate=0, envelope_rate=0, resubmission_rate=0, modes=("sea",))
    filing = next(f for f in generate(spec) if f.label.get("filing_code") == "F10")
    root = etree.fromstring(filing.data)
    item = root.find(".//{*}GoodsItem")
    item.find(".//{*}Description").text = "Smartphones for cellular networks"
    item.find(".//{*}HSCode").text = hs
    if value:
        item.find("{*}DeclaredValue").text = value
    if route:
        itinerary = root.find(".//{*}Itinerary")
        for country, el in zip(route, itinerary, strict=True):
            el.text = country
    if aeo:
        root.find(".//{*}Declarant/{*}IdentificationNumber").text = "NL812345678"
        root.find(".//{*}Consignee/{*}IdentificationNumber").text = "DE1234567890123"
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def electronics_misclassified() -> bytes:
    """The plain request for information: smartphones under a plastics code, nothing else (FI-003 asks)."""
    return smartphones()


def rfi_answer(mrn: str, pointer: str, corrected: str | None, text: str = "Classification corrected.") -> bytes:
    fix = f"<CorrectedValue>{corrected}</CorrectedValue>" if corrected else ""
    return (f'<IE3R02 xmlns="urn:cargoscreen:ics2:responses:v1"><MRN>{mrn}</MRN>'
            f"<ResponseDateTime>2026-11-23T12:00:00Z</ResponseDateTime><Answer><Pointer>{pointer}</Pointer>"
            f"<Text>{text}</Text>{fix}</Answer></IE3R02>").encode()


def answers_of(client, filer):
    return [json.loads(f[b"body"]) for _, f in client.xrange(KEYS.answers(filer))]


def test_an_rfi_answer_is_attached_and_the_consignment_reassessed(ingress, redis_server, redis_client):  # noqa: F811
    port, tokens = ingress
    (filer, token), (other, other_token) = tokens.items()
    assert _call(port, "POST", "/v1/filings", electronics_misclassified(), token)[0] == 202
    settings = Settings().with_redis_url(redis_server.url)
    run_service(replace(settings, streams=replace(settings.streams, once=True)), ["w0"])
    keeper = Keeper(redis_client, settings)
    keeper.once()
    [(centre_key, _)] = [(k, None) for k in redis_client.scan_iter("cs:wb:*:open")]
    centre = centre_key.decode().split(":")[2]
    rid = redis_client.zrange(centre_key, 0, 0)[0].decode()
    body = json.loads(redis_client.hget(f"cs:wb:{centre}:ref:{rid}", "body"))
    assert body["decision"] == "request-for-information" and "FI-003" in [h["rule"] for h in body["hits"]]
    assert "IE3Q02" in [a["message_type"] for a in answers_of(redis_client, filer)]
    pointer = next(i["pointer"] for i in body["information_requested"] if i["pointer"])

    # Refused at the door: not schema-valid (located), another message, no token.
    status, refusal = _call(port, "POST", "/v1/rfi-answers", rfi_answer(body["mrn"], pointer, None, text=""), token)
    assert status == 400 and refusal["error"] == "SCHEMA" and refusal["errors"][0]["pointer"].endswith("Text")
    assert _call(port, "POST", "/v1/rfi-answers", electronics_misclassified(), token)[1]["error"] == "NOT_AN_RFI_ANSWER"
    assert _call(port, "POST", "/v1/rfi-answers", rfi_answer(body["mrn"], pointer, "851713"))[0] == 401
    # Another filer cannot answer for this consignment: a lifecycle error, on its own stream.
    assert _call(port, "POST", "/v1/rfi-answers", rfi_answer(body["mrn"], pointer, "851713"), other_token)[0] == 202
    keeper.once()
    [refused] = answers_of(redis_client, other)
    assert refused["message_type"] == "IE3N01" and "FOREIGN_MRN" in refused["xml"]
    assert json.loads(redis_client.hget(f"cs:wb:{centre}:ref:{rid}", "answers") or "[]") == []

    # The filer's answer, with the corrected HS code: re-assessed complete, the referral settled.
    status, receipt = _call(port, "POST", "/v1/rfi-answers", rfi_answer(body["mrn"], pointer, "851713"), token)
    assert status == 202
    keeper.once()
    shown = json.loads(redis_client.hget(f"cs:wb:{centre}:ref:{rid}", "answers"))
    assert len(shown) == 1 and shown[0]["submission_id"] == receipt["submission_id"]
    assert shown[0]["applied"] == [f"{pointer} = 851713"] and shown[0]["reassessed"].startswith("assessment-complete")
    state = {k.decode(): v.decode() for k, v in redis_client.hgetall(f"cs:wb:{centre}:ref:{rid}").items()}
    assert (state["state"], state["outcome"], state["resolved_by"]) == ("resolved", "rfi-answered", "system")
    last = answers_of(redis_client, filer)[-1]
    assert last["message_type"] == "IE3N03" and last["submission_id"] == receipt["submission_id"]
    decisions = [json.loads(f[b"body"]) for _, f in redis_client.xrange(KEYS.decisions)]
    assert [(d["decision"], d["version"]) for d in decisions if d["mrn"] == body["mrn"]] == \
        [("request-for-information", 1), ("assessment-complete", 2)]
    actions = [(e["who"], e["action"]) for e in audit.entries(redis_client, audit.every_trail(redis_client, "cs"))]
    assert (filer, "rfi-answer") in actions and ("system", "resolve") in actions

    # The same answer delivered again changes nothing.
    redis_client.xadd(KEYS.rfi_answers, {"xml": rfi_answer(body["mrn"], pointer, "851713"),
                                         "id": receipt["submission_id"], "filer": filer,
                                         "received_at": "2026-11-23T12:00:01Z"})
    before = (redis_client.xlen(KEYS.decisions), redis_client.xlen(KEYS.answers(filer)))
    keeper.once()
    assert (redis_client.xlen(KEYS.decisions), redis_client.xlen(KEYS.answers(filer))) == before
    assert len(json.loads(redis_client.hget(f"cs:wb:{centre}:ref:{rid}", "answers"))) == 1


# ---- an answer adds information; it never decides (security finding 2) ----
# A drug precursor's HS code shared with other substances (the "ex" code of NPP, ANPP and 4-piperidone):
# a weak indicator (DP-001); a category 1 substance's own code (PMK's 293292) is a strong one (DP-004).
PMK = "293339"
PLAIN_DESCRIPTION = "Plastic tableware and kitchenware"  # what HS 392410 is: FI-003 no longer asks


def referred(port: int, token: str, filing: bytes, redis_server, client) -> tuple[Keeper, ReferralQueue, dict]:
    """The filing through the ingress, the real service and the keeper: its referral in the queue."""
    assert _call(port, "POST", "/v1/filings", filing, token)[0] == 202
    settings = Settings().with_redis_url(redis_server.url)
    run_service(replace(settings, streams=replace(settings.streams, once=True)), ["w0"])
    keeper = Keeper(client, settings)
    keeper.once()
    [key] = client.scan_iter("cs:wb:*:open")
    queue = ReferralQueue(client, hash_tag(key.decode()))
    return keeper, queue, queue.show(client.zrange(key, 0, 0)[0].decode())["body"]


def answered(port: int, token: str, keeper: Keeper, mrn: str, pointer: str, corrected: str) -> str:
    """The filer's IE3R02 through the ingress, handled by the keeper's RFI desk; its submission id."""
    status, receipt = _call(port, "POST", "/v1/rfi-answers", rfi_answer(mrn, pointer, corrected), token)
    assert status == 202
    assert keeper.once()["rfi_answers"] == 1
    return receipt["submission_id"]


def decided(client, mrn: str) -> list[tuple[str, int]]:
    return [(d["decision"], d["version"]) for d in (json.loads(f[b"body"]) for _, f in client.xrange(KEYS.decisions))
            if d["mrn"] == mrn]


def sent(client, filer: str) -> list[str]:
    """The message types on the filer's answers stream (those of one batch in any order)."""
    return sorted(a["message_type"] for a in answers_of(client, filer))


def trail(client, rid: str) -> list[tuple[str, str]]:
    return [(e["who"], e["action"]) for e in audit.entries(client, audit.every_trail(client, "cs")) if e["subject"] == rid]


def test_an_answer_never_clears_a_control_referral_of_another_rule(ingress, redis_server, redis_client):  # noqa: F811
    """Control for a sanctioned route (SS-006) plus a question (FI-003): the filer "corrects" the goods so
    that the question no longer fires, which takes the score under the control threshold. Nothing is
    closed and nothing is sent: the control stands until the analyst decides."""
    port, tokens = ingress
    [(filer, token), _] = tokens.items()
    keeper, queue, body = referred(port, token, smartphones(route=("CN", "IR", "IT")), redis_server, redis_client)
    rid = body["referral_id"]
    assert body["decision"] == "control" and {h["rule"] for h in body["hits"]} == {"SS-006", "FI-003"}
    [asked] = body["information_requested"]  # the rules would have asked; a control notification was sent
    assert sent(redis_client, filer) == ["IE3N08", "IE3R01"]

    sid = answered(port, token, keeper, body["mrn"], asked["pointer"], PLAIN_DESCRIPTION)
    ref = queue.show(rid)
    assert ref["state"] == "open" and "outcome" not in ref
    [shown] = ref["answers"]
    assert shown["submission_id"] == sid and shown["applied"] == [f"{asked['pointer']} = {PLAIN_DESCRIPTION}"]
    assert shown["action"] == "hold" and shown["reassessed"].startswith("assessment-complete")
    assert "never lowers a decision that was not a request for information" in shown["held"]
    assert decided(redis_client, body["mrn"]) == [("control", 1)]  # no new version, no assessment complete
    assert sent(redis_client, filer) == ["IE3N08", "IE3R01"]

    queue.claim(rid, "alice")
    queue.resolve(rid, "alice", "no-finding", note="route explained by the carrier")
    assert trail(redis_client, rid) == [(filer, "rfi-answer"), ("system", "rfi-reassessed"), ("alice", "claim"),
                                        ("alice", "resolve")]


def test_an_answer_never_takes_a_referral_from_the_analyst_who_holds_it(ingress, redis_server, redis_client):  # noqa: F811
    """A plain request for information, claimed by an analyst; the filer's answer clears the question, and
    the re-assessment would complete. The analyst keeps it and decides; the trail says who did what."""
    port, tokens = ingress
    [(filer, token), _] = tokens.items()
    keeper, queue, body = referred(port, token, electronics_misclassified(), redis_server, redis_client)
    rid = body["referral_id"]
    assert body["decision"] == "request-for-information"
    queue.claim(rid, "alice")

    answered(port, token, keeper, body["mrn"], body["information_requested"][0]["pointer"], PLAIN_DESCRIPTION)
    ref = queue.show(rid)
    assert (ref["state"], ref.get("claimed_by")) == ("claimed", "alice")
    [shown] = ref["answers"]
    assert shown["action"] == "hold" and "alice holds the referral" in shown["held"]
    assert decided(redis_client, body["mrn"]) == [("request-for-information", 1)]
    assert sent(redis_client, filer) == ["IE3Q02", "IE3R01"]

    done = queue.resolve(rid, "alice", "rfi-answered", note="classification confirmed with the invoice")
    assert (done["state"], done["outcome"], done["resolved_by"]) == ("resolved", "rfi-answered", "alice")
    assert trail(redis_client, rid) == [("alice", "claim"), (filer, "rfi-answer"), ("system", "rfi-reassessed"),
                                        ("alice", "resolve")]


def test_a_correction_that_takes_a_risk_indicator_away_is_a_risk_fact_for_the_analyst(ingress, redis_server,  # noqa: F811
                                                                                      redis_client):
    """Smartphones declared under PMK's code: a control (DP-001 and FI-003). The filer "corrects" the code
    into a phone's. The correction is recorded as a risk fact with before and after, the starter pack's
    SS-019 scores it, so the re-assessment is still a control, sent as such; the referral stays open
    with the fact and the rule on it."""
    port, tokens = ingress
    [(filer, token), _] = tokens.items()
    keeper, queue, body = referred(port, token, smartphones(hs=PMK, value="150000"), redis_server, redis_client)
    rid, hs_pointer = body["referral_id"], body["information_requested"][0]["pointer"].replace("Description", "HSCode")
    assert body["decision"] == "control" and {h["rule"] for h in body["hits"]} == {"DP-001", "FI-003"}

    sid = answered(port, token, keeper, body["mrn"], hs_pointer, "851713")
    ref = queue.show(rid)
    [shown] = ref["answers"]
    assert ref["state"] == "open" and shown["reassessed"].startswith("control") and shown["action"] == "apply"
    [change] = shown["risk_changes"]
    assert "from '293339' to '851713'" in change and "DP-001" in change
    keeper.once()  # the new version of the referral comes in through the referral stream
    ref = queue.show(rid)
    new = ref["body"]
    assert ref["state"] == "open" and new["version"] == 2 and new["filing"]["goods"][0]["hs_code"] == "851713"
    [fact] = [f for f in new["container_facts"] if f["kind"] == "rfi-correction-changes-risk"]
    assert fact["detail"] == change
    [hit] = [h for h in new["hits"] if h["rule"] == "SS-019"]
    assert hit["evidence"][0]["pointer"] == hs_pointer and "'293339' to '851713'" in hit["evidence"][0]["value"]
    kept = new["reassessment"]["facts"][-1]["values"]  # what rules read as the fact's before and after
    assert (kept["pointer"], kept["before"], kept["after"], kept["rules"]) == (hs_pointer, PMK, "851713", ["DP-001"])
    assert decided(redis_client, body["mrn"]) == [("control", 1), ("control", 2)]
    assert sent(redis_client, filer) == ["IE3N08", "IE3N08", "IE3R01"]
    assert "SS-019" not in json.dumps(answers_of(redis_client, filer))  # the filer learns no criteria

    # Delivered again once its re-assessment is the referral's version: nothing more happens.
    redis_client.xadd(KEYS.rfi_answers, {"xml": rfi_answer(body["mrn"], hs_pointer, "851713"), "id": sid,
                                         "filer": filer, "received_at": "2026-11-23T12:00:01Z"})
    trail_before = trail(redis_client, rid)
    keeper.once()
    assert decided(redis_client, body["mrn"]) == [("control", 1), ("control", 2)]
    assert sent(redis_client, filer) == ["IE3N08", "IE3N08", "IE3R01"] and trail(redis_client, rid) == trail_before


def test_a_correction_that_changed_the_risk_picture_is_a_control_for_trusted_traders_too(ingress, redis_server,  # noqa: F811
                                                                                         redis_client):
    """The same correction from trusted traders: their request for information (the precursor code and the
    question, less the AEO rules). SS-019 is a strong indicator: the AEO discounts lower the score, not the
    decision it leads to on its own, so the re-assessment is a control, applied and sent (a stronger
    decision needs no analyst); the filer is never told its goods are cleared. (Holding a lower re-assessment
    with a changed risk picture: test_what_a_reassessment_may_do_to_the_referral.)"""
    port, tokens = ingress
    [(filer, token), _] = tokens.items()
    keeper, queue, body = referred(port, token, smartphones(hs=PMK, value="150000", aeo=True), redis_server,
                                   redis_client)
    assert body["decision"] == "request-for-information" and "DP-001" in {h["rule"] for h in body["hits"]}
    pointer = body["information_requested"][0]["pointer"].replace("Description", "HSCode")

    answered(port, token, keeper, body["mrn"], pointer, "851713")
    ref = queue.show(body["referral_id"])
    [shown] = ref["answers"]
    assert ref["state"] == "open" and shown["action"] == "apply" and shown["reassessed"].startswith("control")
    assert "DP-001" in shown["risk_changes"][0]
    keeper.once()
    new = queue.show(body["referral_id"])["body"]
    assert new["strong_indicators"] == ["SS-019"] and new["basis"].startswith("referred on one strong indicator: SS-019")
    assert decided(redis_client, body["mrn"]) == [("request-for-information", 1), ("control", 2)]
    assert sent(redis_client, filer) == ["IE3N08", "IE3Q02", "IE3R01"]


def _decided(decision: str) -> Decision:
    return Decision(None, Assessment("pack", 0.0, "low", decision, "table", ()), "", "RC-NL")


QUESTION = {"rule": "FI-003", "weight": 40, "decision": RFI}
CONTROL_HIT = {"rule": "FI-005", "weight": 15, "decision": CONTROL}


@pytest.mark.parametrize("was, hits, state, now, changes, expected", [
    (RFI, [QUESTION], "open", COMPLETE, (), (SETTLE, "")),  # the plain RFI answered: the only automatic close
    (RFI, [QUESTION], "open", RFI, (), (APPLY, "")),  # still asking: the new questions go out
    (RFI, [QUESTION], "open", CONTROL, (), (APPLY, "")),  # the answer made it worse: a control
    (CONTROL, [QUESTION], "claimed", CONTROL, (), (APPLY, "")),  # the new version keeps the analyst's claim
    (CONTROL, [QUESTION], "open", RFI, (), (HOLD, "never lowers")),
    (CONTROL, [QUESTION], "open", COMPLETE, (), (HOLD, "never lowers")),
    (RFI, [QUESTION], "claimed", COMPLETE, (), (HOLD, "alice holds the referral")),
    (RFI, [QUESTION], "open", COMPLETE, ("a fact",), (HOLD, "changed the risk picture")),
    (RFI, [QUESTION, CONTROL_HIT], "open", COMPLETE, (), (HOLD, "also had FI-005, which asked nothing")),
])
def test_what_a_reassessment_may_do_to_the_referral(was, hits, state, now, changes, expected):
    action, why = settlement({"decision": was, "hits": hits}, state, "alice" if state == "claimed" else "",
                             _decided(now), changes)
    assert action == expected[0] and expected[1] in why


def test_answers_correct_only_descriptions_and_real_hs_codes():
    record = record_from_dict({"goods": [{"description": "Smartphones", "hs_code": PMK}]})
    at = record.goods[0].pointer
    items = [AnswerItem(f"{at}/HSCode", "", "999999"), AnswerItem(f"{at}/HSCode", "", "8517"),  # no such code
             AnswerItem(f"{at}/GrossMass", "", "1"), AnswerItem(f"{at}/HSCode", "", "851713")]
    fixed, applied = apply_corrections(record, items, bundled_reference().hs)
    assert [str(c) for c in applied] == [f"{at}/HSCode = 851713"] and fixed.goods[0].hs_code == "851713"
    assert (applied[0].before, applied[0].after) == (PMK, "851713")


@pytest.mark.slow
@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("CARGOSCREEN_REQUIRE_TOOLS"),
                    reason="Debian's chromium and chromium-driver are not installed")
def test_the_analyst_sees_the_answer_and_its_risk_fact_and_decides(ingress, redis_server, redis_client,  # noqa: F811
                                                                   browser, tmp_path):  # noqa: F811
    """The PMK case on the referral page in a real browser: the answer with the correction that changed
    the risk picture, the fact with before and after, SS-019 among the rules; the analyst claims and
    resolves it there, and the audit page shows the filer's answer, the system's re-assessment and
    the analyst's decision."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    port, tokens = ingress
    [(filer, token), _] = tokens.items()
    keeper, queue, body = referred(port, token, smartphones(hs=PMK, value="150000"), redis_server, redis_client)
    rid = body["referral_id"]
    answered(port, token, keeper, body["mrn"], body["information_requested"][0]["pointer"].replace(
        "Description", "HSCode"), "851713")
    keeper.once()
    analysts = tmp_path / "analysts"
    add_analyst(analysts, "alice", queue.centre, PASSWORD)
    with workbench_server(redis_server.url, analysts, tmp_path, "--no-keeper") as base:
        sign_in(browser, base, "alice")
        browser.get(f"{base}/referrals/{rid}")
        answers = browser.find_element(By.ID, "answers").text
        assert "Changes the risk picture: HS code of goods item 1 corrected by the filer" in answers
        assert "from '293339' to '851713': no longer fires DP-001" in answers and "re-assessed: control" in answers
        assert "rfi-correction-changes-risk — HS code of goods item 1" in browser.find_element(By.ID, "containers").text
        assert "SS-019" in browser.find_element(By.ID, "rules").text and text_of(browser, "state") == "open"
        shot(browser, "13-referral-rfi-correction-changes-risk")

        browser.find_element(By.ID, "claim").click()
        until(browser, lambda d: text_of(d, "state") == "claimed", "claimed")
        Select(browser.find_element(By.ID, "outcome")).select_by_value("finding")
        Select(browser.find_element(By.ID, "category")).select_by_visible_text("precursors")
        browser.find_element(By.ID, "resolve").click()
        until(browser, lambda d: text_of(d, "state") == "resolved", "resolved")
        browser.get(base + "/audit")
        rows = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#audit tr") if rid in r.text]
        for who, action in ((filer, "rfi-answer"), ("system", "rfi-reassessed"), ("alice", "resolve")):
            assert any(who in r and action in r for r in rows), (who, action, rows)
        shot(browser, "14-audit-rfi-answer")


def test_handled_answers_leave_the_stream_after_the_retention_and_unhandled_ones_stay(redis_client):
    """`cs:rfi-answers` is bounded: what the desk acknowledged more than the retention ago goes; what
    it read and did not finish (pending), and what it has not read, stay however old."""
    from cargoscreen.workbench.rfi import GROUP, RfiDesk

    desk = RfiDesk(redis_client, None, Settings(), 60)
    desk.trim(3600)  # no stream yet: nothing to do
    ids = [f"{second * 1000}-0" for second in range(1000, 1006)]  # one answer a second
    for entry in ids:
        redis_client.xadd(desk.stream, {"id": entry}, id=entry)
    redis_client.xgroup_create(desk.stream, GROUP, id="0")
    redis_client.xreadgroup(GROUP, "desk", {desk.stream: ">"}, count=4)
    redis_client.xack(desk.stream, GROUP, ids[0], ids[2], ids[3])  # the second one still pending

    def kept():
        return [e.decode() for e, _ in redis_client.xrange(desk.stream)]

    desk.trim(3600, now=1000.5 + 3600)  # only the first answer was handled long enough ago
    assert kept() == ids[1:]
    desk.trim(3600, now=1_000_000.0)  # all old: the pending one, and with it those after, stay; so do unread ones
    assert kept() == ids[1:]
    redis_client.xack(desk.stream, GROUP, ids[1])
    desk.trim(3600, now=1_000_000.0)
    assert kept() == ids[4:]  # handled ones gone; the two never read stay
