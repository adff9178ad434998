"""A filer answers a request for information through the ingress; the referral gets the answer and the
consignment is re-assessed. Real uvicorn ingress, real service, real Redis, the keeper's real steps."""
from __future__ import annotations

import json
from dataclasses import replace

from lxml import etree

from cargoscreen import audit
from cargoscreen.config import Settings
from cargoscreen.generator import GeneratorSpec, generate
from cargoscreen.service import run_service
from cargoscreen.workbench.keeper import Keeper

from .test_ingress import KEYS, _call, ingress  # noqa: F401  (the fixture)


def electronics_misclassified() -> bytes:
    """A plain sea filing whose first goods item says smartphones under a plastics HS code (FI-003 asks)."""
    spec = GeneratorSpec(count=40, seed=33, defect_rate=0, envelope_rate=0, resubmission_rate=0, modes=("sea",))
    filing = next(f for f in generate(spec) if f.label.get("filing_code") == "F10")
    root = etree.fromstring(filing.data)
    item = root.find(".//{*}GoodsItem")
    item.find(".//{*}Description").text = "Smartphones for cellular networks"
    item.find(".//{*}HSCode").text = "392410"
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


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
    actions = [(e["who"], e["action"]) for e in audit.entries(redis_client, "cs:audit")]
    assert (filer, "rfi-answer") in actions and ("system", "resolve") in actions

    # The same answer delivered again changes nothing.
    redis_client.xadd(KEYS.rfi_answers, {"xml": rfi_answer(body["mrn"], pointer, "851713"),
                                         "id": receipt["submission_id"], "filer": filer,
                                         "received_at": "2026-11-23T12:00:01Z"})
    before = (redis_client.xlen(KEYS.decisions), redis_client.xlen(KEYS.answers(filer)))
    keeper.once()
    assert (redis_client.xlen(KEYS.decisions), redis_client.xlen(KEYS.answers(filer))) == before
    assert len(json.loads(redis_client.hget(f"cs:wb:{centre}:ref:{rid}", "answers"))) == 1
