"""Consignments assessed before their containers' events are judged again when the events come.

Real Redis (the container store's script puts watched boxes on the rejudge stream), the real
starter pack, the real effect writer; the filing is a hand-written deep-sea straight bill lodged
before its box was stuffed."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from lxml import etree

from cargoscreen import resources
from cargoscreen.config import Settings
from cargoscreen.connectors.redis_streams import StreamKeys
from cargoscreen.container_store import ContainerEventStore
from cargoscreen.decisions import decide, filer_answers
from cargoscreen.domain.container_events import ContainerEvent
from cargoscreen.domain.reference import bundled_reference
from cargoscreen.domain.rulepack import COMPLETE, RFI
from cargoscreen.domain.scoring import Scorer
from cargoscreen.domain.rulepack import RulePack
from cargoscreen.domain.screening import screening_record
from cargoscreen.enrichment import enrich
from cargoscreen.linking import Member, standalone
from cargoscreen.rejudge import ContainerWatch, RejudgeDesk, Watch, provisional, rejudged
from cargoscreen.rule_store import RulePackSource
from cargoscreen.workbench.queue import QueueKeys, ReferralQueue

FILING = Path(__file__).parent / "data" / "filings" / "sea-f10-before-loading.xml"
PACK = resources.rules_dir() / "risk" / "ics2-starter"
SCORER = Scorer(RulePack.load(PACK))
HOUR = 3600.0
KEYS = StreamKeys()


def _consignment():
    record = screening_record(etree.parse(str(FILING)).getroot(), "F10")
    return standalone(Member("26NLABCDEFGHIJKLM1", "sub-1", "NL004556789", record.lrn, "F10", "d1", record))


def _event(n: int, code: str, hours_after_filing: float, empty: str = "LADEN", vessel: str | None = None,
           voyage: str = "FA548W") -> ContainerEvent:
    record = _consignment().record
    t = record.issued_at + hours_after_filing * HOUR
    return ContainerEvent(f"ev-{n}", "EQUIPMENT", "ACT", code, t, t, "MSCU6639870", True, empty, "CNSGH",
                          vessel, (voyage,) if vessel else (), (), ("FX2611207",) if empty == "LADEN" else ())


PICKED_UP = [_event(1, "PICK", -6, empty="EMPTY")]
LOADED_LADEN = PICKED_UP + [_event(2, "STUF", 20), _event(3, "GTIN", 30), _event(4, "LOAD", 50, vessel="9811000")]
# Gated in and loaded empty, for another voyage of the declared vessel: two indicators, enough to refer.
LOADED_EMPTY = PICKED_UP + [_event(5, "GTIN", 30, empty="EMPTY"), _event(6, "LOAD", 50, empty="EMPTY",
                                                                        vessel="9811000", voyage="999X")]


def _first_decision(history):
    [filing] = enrich([_consignment()], lambda ids: {i: list(history) for i in ids}, bundled_reference())
    return decide(filing, SCORER)


def test_a_box_not_yet_loaded_is_watched_and_a_loaded_one_is_not():
    assert provisional(_first_decision(PICKED_UP).filing) == ("MSCU6639870",)
    assert provisional(_first_decision([]).filing) == ("MSCU6639870",)  # no event at all yet
    assert provisional(_first_decision(LOADED_LADEN).filing) == ()


def test_loaded_as_declared_settles_the_watch_without_a_new_decision():
    first = _first_decision(PICKED_UP)
    assert first.assessment.decision == COMPLETE
    decision, after = rejudged(Watch.of(first, ("MSCU6639870",)), {"MSCU6639870": LOADED_LADEN}, SCORER,
                               bundled_reference())
    assert decision is None and after.waiting == ()


def test_loaded_empty_for_another_voyage_makes_a_new_version_that_refers():
    first = _first_decision(PICKED_UP)
    decision, after = rejudged(Watch.of(first, ("MSCU6639870",)), {"MSCU6639870": LOADED_EMPTY}, SCORER,
                               bundled_reference())
    assert decision is not None and decision.assessment.decision == RFI
    assert {"SS-013", "SS-011"} <= {h.rule for h in decision.assessment.hits}
    assert decision.filing.version == first.filing.version + 1 and "+csm:" in decision.filing.state
    assert decision.key != first.key and after.waiting == () and after.referral_id == decision.referral_id


@pytest.fixture
def desk(redis_client, redis_server):
    settings = Settings().with_redis_url(redis_server.url)
    return RejudgeDesk(redis_client, redis_client, RulePackSource(PACK, None, 60), settings)


def test_an_event_for_a_watched_box_reaches_the_desk_which_decides_again_once(redis_client, desk):
    store = ContainerEventStore(redis_client)
    store.add(PICKED_UP)
    first = _first_decision(PICKED_UP)
    assert ContainerWatch(redis_client, "cs", 3600).watch([first]) == 1
    assert redis_client.xlen(KEYS.rejudge) == 0  # the pick-up came before the watch
    store.add(LOADED_EMPTY[1:])
    assert [f[b"container"] for _, f in redis_client.xrange(KEYS.rejudge)] == [b"MSCU6639870"]
    assert desk.handle_new() == 1
    decisions = [json.loads(f[b"body"]) for _, f in redis_client.xrange(KEYS.decisions)]
    assert [(d["decision"], d["version"]) for d in decisions] == [(RFI, 2)]
    referral = [json.loads(f[b"body"]) for _, f in redis_client.xrange(KEYS.referrals("RC-NL"))]
    assert [r["referral_id"] for r in referral] == ["REF-26NLABCDEFGHIJKLM1"]
    answers = [json.loads(f[b"body"]) for _, f in redis_client.xrange(KEYS.answers("NL004556789"))]
    assert [a["message_type"] for a in answers] == ["IE3Q02"]
    assert redis_client.get("cs:watch:mrn:26NLABCDEFGHIJKLM1") is None  # loaded: final, no longer watched
    store.add([_event(7, "DISC", 400, vessel="9811000")])  # later events of an unwatched box: nothing to do
    assert redis_client.xlen(KEYS.rejudge) == 1 and desk.rejudge("mrn:26NLABCDEFGHIJKLM1") == "gone"
    assert desk.handle_new() == 0 and redis_client.xpending(KEYS.rejudge, "rejudge")["pending"] == 0


def test_a_weaker_rejudgement_never_lowers_a_referral_it_waits_for_the_analyst(redis_client, desk):
    """Container events come from carriers: reporting a box as loaded laden must not clear the
    referral an analyst holds. The re-judgement is noted on the referral; nothing is sent."""
    referred = _first_decision(LOADED_EMPTY)  # loaded empty for another voyage: a request for information
    assert referred.referral and referred.assessment.decision == RFI
    desk.writer.write(desk._decision_effects(referred, KEYS) + [
        desk._answer_effect(a, KEYS) for a in filer_answers(referred, referred.assessed_at)])
    queue = ReferralQueue(redis_client, referred.risk_centre, "cs", 1800)
    queue.ensure_group()
    assert queue.take_in() == 1
    queue.claim(referred.referral_id, "alice")
    # As if those events had been reported before the box was gated in laden: still watched.
    watch = replace(Watch.of(referred, ("MSCU6639870",)),
                    anomalies=[["packed-status-mismatch", "MSCU6639870"], ["voyage-mismatch", "MSCU6639870"]])
    assert watch.decision == RFI and watch.referral_id == referred.referral_id
    ContainerWatch(redis_client, "cs", 3600).update(watch)
    ContainerEventStore(redis_client).add(LOADED_LADEN)

    assert desk.rejudge("mrn:26NLABCDEFGHIJKLM1") == "held"
    assert queue.take_in() == 1
    ref = queue.show(referred.referral_id)
    assert (ref["state"], ref["claimed_by"], ref["body"]["decision"]) == ("claimed", "alice", RFI)
    [note] = ref["notes"]
    assert note["reassessed"].startswith(COMPLETE) and note["referred"] == RFI
    assert note["anomalies_before"] == ["packed-status-mismatch MSCU6639870", "voyage-mismatch MSCU6639870"]
    assert not note["anomalies_now"] and "the analyst decides" in note["held"]  # (Lua cjson: [] comes back as {})
    decisions = [json.loads(f[b"body"]) for _, f in redis_client.xrange(KEYS.decisions)]
    assert [d["decision"] for d in decisions] == [RFI]  # no lower version was decided for the filer
    answers = [json.loads(f[b"body"])["message_type"] for _, f in redis_client.xrange(KEYS.answers("NL004556789"))]
    assert answers == ["IE3Q02"]
    streamed = [json.loads(f[b"body"]) for _, f in redis_client.xrange(KEYS.referrals(referred.risk_centre))]
    assert not any("withdrawn" in b for b in streamed)
    trail = QueueKeys("cs", referred.risk_centre).audit
    audit = [(r[b"who"].decode(), r[b"action"].decode()) for _, r in redis_client.xrange(trail)]
    assert ("system", "rejudged-held") in audit and ("system", "withdrawn") not in audit
    # The same status again changes nothing, and the note is not repeated.
    assert desk.rejudge("mrn:26NLABCDEFGHIJKLM1") in ("final", "gone")
    assert queue.take_in() == 0 and len(queue.show(referred.referral_id)["notes"]) == 1


def test_a_version_decided_after_an_rfi_answer_is_what_the_rejudgement_starts_from(redis_client, desk):
    """The RFI desk follows its re-assessment into the watch: a later re-judgement keeps the filer's
    corrections and numbers its version after the answered one."""
    first = _first_decision(PICKED_UP)
    watches = ContainerWatch(redis_client, "cs", 3600)
    watches.watch([first])
    record = first.filing.record
    corrected = replace(record, goods=(record.goods[0]._replace(description="Corrected: garden furniture"),
                                       *record.goods[1:]))
    answered = decide(replace(first.filing, record=corrected, state=first.filing.state + "+rfi:answer-1",
                              version=first.filing.version + 1), SCORER)
    assert watches.follow(answered) and not ContainerWatch(redis_client, "other", 3600).follow(answered)
    ContainerEventStore(redis_client).add(LOADED_EMPTY[1:])
    assert desk.handle_new() == 1
    [again] = [json.loads(f[b"body"]) for _, f in redis_client.xrange(KEYS.decisions)]
    assert again["version"] == first.filing.version + 2 and "+rfi:answer-1+csm:" in again["state"]
    assert again["filing"]["goods"][0]["description"] == "Corrected: garden furniture"


@pytest.mark.slow
def test_the_service_watches_what_it_decided_before_the_box_was_loaded(redis_client, redis_server):
    """Through the real service: the filing is assessed before any event of its box (watched), then
    the carrier reports the box loaded empty for another voyage; the desk decides again."""
    from dataclasses import replace as with_

    from cargoscreen.service import run_service

    settings = Settings().with_redis_url(redis_server.url)
    settings = with_(settings, streams=with_(settings.streams, once=True, read_batch=10))
    redis_client.xadd(KEYS.filings, {"filing": FILING.read_bytes(), "id": "sea-1"})
    run_service(settings, ["w0"])
    [first] = [json.loads(f[b"body"]) for _, f in redis_client.xrange(KEYS.decisions)]
    assert first["version"] == 1 and first["container_status"] in ("not-loaded", "available")
    assert redis_client.sismember("cs:watch-of:MSCU6639870", first["consignment"])
    ContainerEventStore(redis_client).add(LOADED_EMPTY)
    desk = RejudgeDesk(redis_client, redis_client, RulePackSource(PACK, None, 60), settings)
    assert desk.handle_new() == 1
    decisions = [json.loads(f[b"body"]) for _, f in redis_client.xrange(KEYS.decisions)]
    assert [(d["version"], d["decision"]) for d in decisions] == [(1, first["decision"]), (2, RFI)]


def test_a_rejudgement_reads_the_party_history_its_first_assessment_saw_and_counts_nothing(redis_client, desk):
    from cargoscreen.party_history import PartyHistoryStore

    parties = PartyHistoryStore(redis_client)
    ContainerEventStore(redis_client).add(PICKED_UP)
    [filing] = enrich([_consignment()], lambda ids: {i: list(PICKED_UP) for i in ids}, bundled_reference(),
                      record_parties=parties.record)
    before = sorted(f.detail for f in filing.facts if f.kind == "party-history")
    assert before and all("never seen before" in d for d in before)
    counts = {k: redis_client.hget(k, "n") for k in redis_client.scan_iter("cs:ph:*")}
    first = decide(filing, SCORER)
    ContainerWatch(redis_client, "cs", 3600).watch([first])
    ContainerEventStore(redis_client).add(LOADED_EMPTY[1:])
    assert desk.handle_new() == 1
    [body] = [json.loads(f[b"body"]) for _, f in redis_client.xrange(KEYS.decisions)]
    assert body["version"] == 2
    assert sorted(f["detail"] for f in body["container_facts"] if f["kind"] == "party-history") == before
    assert {k: redis_client.hget(k, "n") for k in redis_client.scan_iter("cs:ph:*")} == counts
