"""Multiple filing: partial filings linked into consignments, with their state in a real Redis."""
from __future__ import annotations

from dataclasses import replace

from cargoscreen.domain.screening import record_from_dict
from cargoscreen.linking import (HOUSE_NOT_LISTED, Addition, ConsignmentStore, due_entry, Member, Removal, assemble,
                                 consignment_of, linked_key, house_refusal, listing, member_of, missing_documents,
                                 standalone)


def _member(mrn: str, code: str, document: str, master: str | None = None, houses=(), digest: str = "d1",
            goods=({"hs_code": "940360", "description": "wooden chairs"},), filer: str | None = None) -> Member:
    """houses: the house documents a master lists, each a document or (document, filer expected to file it)."""
    listed = [h if isinstance(h, tuple) else (h, "") for h in houses]
    record = record_from_dict({"filing_code": code, "transport_document": document, "master_document": master,
                               "house_documents": [d for d, _ in listed], "house_filers": [f for _, f in listed],
                               "goods": list(goods)})
    return Member(mrn, f"sub-{mrn}", filer or f"FILER{mrn[-1]}", f"LRN{mrn}", code, digest, record)


MASTER = _member("MRN1", "F12", "MB1", houses=(("HB1", "FILER2"), ("HB2", "FILER3")))
HOUSE1 = _member("MRN2", "F15", "HB1", master="MB1", goods=({"hs_code": "293212", "description": "chemicals"},))
HOUSE2 = _member("MRN3", "F16", "HB2", master="MB1")


def test_partial_filings_share_the_key_of_their_master_document_and_others_stand_alone():
    assert linked_key(MASTER.record) == linked_key(HOUSE1.record) == "sea:MB1"
    plain = _member("MRN9", "F10", "BL9")
    assert linked_key(plain.record) is None and standalone(plain).key == "mrn:MRN9"


def test_what_is_missing_is_named_for_the_filer():
    assert missing_documents("sea:MB1", [HOUSE1]) == ("master transport document MB1",)
    assert missing_documents("sea:MB1", [MASTER, HOUSE1]) == ("house transport document HB2",)
    # Each filer reads the houses expected from it by number, the others' as a count (their numbers are theirs).
    assert missing_documents("sea:MB1", [MASTER, HOUSE1], "FILER1") == ("house transport document HB2",)
    assert missing_documents("sea:MB1", [MASTER, HOUSE1], "FILER2") == ("1 house filing expected from other filers",)
    assert missing_documents("sea:MB1", [MASTER], "FILER3") == ("house transport document HB2",
                                                                "1 house filing expected from other filers")
    assert missing_documents("sea:MB1", [HOUSE1, MASTER, HOUSE2]) == ()
    lone = _member("MRN5", "F13", "MB5")  # lists no houses: complete with the first one
    assert missing_documents("sea:MB5", [lone]) == ("house-level filings",)


def test_the_merged_record_has_the_houses_goods_each_pointing_into_its_own_filing():
    c = consignment_of("sea:MB1", 1, "s", [HOUSE2, MASTER, HOUSE1])
    assert c.lead is MASTER and [m.mrn for m in c.members] == ["MRN1", "MRN2", "MRN3"]
    assert [g.description for g in c.record.goods] == ["wooden chairs", "chemicals", "wooden chairs"]
    assert [g.house for g in c.record.goods] == [None, 1, 2]
    assert c.record.goods[1].pointer.startswith("MRN2#/")
    assert c.record.house_documents == ("HB1", "HB2")


def test_members_survive_their_trip_through_redis_as_json():
    assert Member.from_json(HOUSE1.to_json()) == HOUSE1


def test_a_member_is_kept_compressed_after_its_mrn_and_a_plain_json_one_still_reads():
    body = HOUSE1.to_body()
    assert body.startswith(b"MRN2\x1f") and Member.from_body(body) == HOUSE1
    assert Member.from_body(HOUSE1.to_json().encode()) == HOUSE1  # written by the previous version
    assert len(body) < len(HOUSE1.to_json()) / 2


def test_a_consignment_holding_members_of_the_previous_version_links_and_invalidates_them(redis_client):
    """A rolling upgrade: members a worker of the previous version wrote as plain JSON stay readable to
    the script (whose member is it) and to the reader."""
    store = ConsignmentStore(redis_client)
    for m in (MASTER, HOUSE1):
        store.add("sea:MB1", m, deadline=100.0)
    [hash_key] = [k for k in redis_client.keys("*cons*") if redis_client.type(k) == b"hash"]
    for field, body in redis_client.hgetall(hash_key).items():
        if body.startswith(b"MRN") and b"\x1f" in body:
            redis_client.hset(hash_key, field, Member.from_body(body).to_json())
    assert store.add("sea:MB1", HOUSE2, deadline=100.0)[0].complete  # the master reads the old bodies
    after = store.remove("MRN2", "sea:MB1", deadline=500.0)
    assert not after.complete and after.missing == ("house transport document HB1",)


def test_generated_masters_list_each_house_with_the_filer_that_files_it(validator):
    """The generator's traffic keeps linking: its masters give their houses' filers their word."""
    from cargoscreen.generator import GeneratorSpec, generate
    from cargoscreen.validation import Submission

    spec = GeneratorSpec(count=120, seed=4, defect_rate=0, envelope_rate=0, resubmission_rate=0, modes=("sea",))
    members = [member_of(o, f"MRN{n}") for n, f in enumerate(generate(spec))
               for o in [validator.validate(Submission(f.name, f.data))]]
    masters = {m.record.transport_document: m for m in members if m.record.filing_code == "F12"}
    houses = [h for h in members if h.record.master_document in masters]
    assert masters and houses and any(f for m in masters.values() for f in m.record.house_filers)
    for h in houses:
        m = masters[h.record.master_document]
        assert house_refusal(h.filer, h.record.transport_document, listing(m.record), m.filer) is None


def test_a_consignment_is_complete_once_every_listed_house_is_in_and_redelivery_keeps_its_version(redis_client):
    store = ConsignmentStore(redis_client)
    first = store.add("sea:MB1", HOUSE1, deadline=100.0)[0]
    assert not first.complete and redis_client.zscore(store.keys.due(0), "sea@FILER2:MB1") == 100.0  # its filer's own
    assert not store.add("sea:MB1", MASTER, deadline=200.0)[0].complete  # the first deadline stands
    assert redis_client.zrange(store.keys.due(0), 0, -1, withscores=True) == [(b"sea:MB1", 100.0)]
    done = store.add("sea:MB1", HOUSE2, deadline=300.0)[0]
    assert done.complete and done.version == 1 and len(done.members) == 3
    assert redis_client.zscore(store.keys.due(0), "sea:MB1") is None  # complete: no deadline
    again = store.add("sea:MB1", HOUSE2, deadline=300.0)[0]  # a redelivery changes nothing
    assert (again.version, again.state) == (1, done.state)
    amended = store.add("sea:MB1", _member("MRN3", "A16", "HB2", master="MB1", digest="d2"), deadline=400.0)[0]
    assert amended.complete and amended.version == 2 and amended.state != done.state
    assert {m.digest for m in amended.members if m.mrn == "MRN3"} == {"d2"}


def test_an_invalidated_house_leaves_its_consignment_and_an_unknown_one_is_not_linked(redis_client):
    store = ConsignmentStore(redis_client)
    for m in (MASTER, HOUSE1, HOUSE2):
        store.add("sea:MB1", m, deadline=100.0)[0]
    after = store.remove("MRN3", "sea:MB1", deadline=500.0)
    assert not after.complete and after.key == "sea:MB1" and after.missing == ("house transport document HB2",)
    assert redis_client.zscore(store.keys.due(0), "sea:MB1") == 500.0  # incomplete again: a deadline again
    assert store.remove("MRN-NOT-LINKED", "sea:MB1", deadline=1.0) is None


def test_the_linking_script_and_the_python_rules_agree_on_who_may_file_completeness_and_what_is_missing(
        redis_client):
    store = ConsignmentStore(redis_client)
    # None: no master filed; FM is the master's filer; a house listed without a filer is FM's to file.
    masters = [None, (), ("HB1",), (("HB1", "FA"), "HB2")]
    house_sets = [(), (("HB1", "FM"),), (("HB1", "FA"),), (("HB1", "FA"), ("HB2", "FM")),
                  (("HB1", "FB"), ("HB3", "FM")), (("HB2", "FA"), ("HB1", "FA"))]
    for i, expected in enumerate(masters):
        for j, houses in enumerate(house_sets):
            key = f"sea:MB{i}{j}"
            master = None if expected is None else _member(f"MRN{i}{j}0", "F12", f"MB{i}{j}", houses=expected,
                                                           filer="FM")
            filed = [_member(f"MRN{i}{j}{k + 1}", "F15", h, master=f"MB{i}{j}", filer=f)
                     for k, (h, f) in enumerate(houses)]
            if master is None and not filed:
                continue
            # The houses go in before and after the master: the script judges both on arrival.
            order = filed[:1] + ([master] if master else []) + filed[1:]
            refused = sorted((r.members[0].mrn, r.refused.code) for m in order
                             for r in store.add(key, m, deadline=100.0) if r.refused)
            codes = {h.mrn: None if master is None else
                     house_refusal(h.filer, h.record.transport_document, listing(master.record), master.filer)
                     for h in filed}
            allowed = [h for h in filed if codes[h.mrn] is None]
            assert refused == sorted((mrn, code) for mrn, code in codes.items() if code), (expected, houses)
            members = ([master] if master else []) + allowed
            for probe in members:  # each filer's own view; delivered again, a filing changes nothing
                [now] = store.add(key, probe, deadline=100.0)
                want = missing_documents(key, members, probe.filer)
                assert now.complete == (want == ()), (expected, houses, probe.filer)
                if want:
                    assert now.missing == want, (expected, houses, probe.filer)


def test_overdue_consignments_are_claimed_for_a_while_and_come_due_again_if_not_answered(redis_client):
    store = ConsignmentStore(redis_client)
    store.add("sea:MB1", MASTER, deadline=100.0)
    [(key, version, members)] = store.overdue(now=150.0, retry_seconds=60)
    assert key == "sea:MB1" and version == 0 and [m.mrn for m in members] == ["MRN1"]
    assert store.overdue(now=160.0, retry_seconds=60) == []  # claimed
    assert [k for k, _, _ in store.overdue(now=211.0, retry_seconds=60)] == ["sea:MB1"]  # its referral never came


# -- who may file what: a house joins only on its master filer's word ----------------------------------
INTRUDER = _member("MRN8", "F15", "HB1", master="MB1", filer="FILER9")  # quotes MB1 and a house number it knows


def _audit(client) -> list[tuple[str, str, str]]:
    return [(f[b"who"].decode(), f[b"action"].decode(), f[b"detail"].decode()) for _, f in client.xrange("cs:audit")]


def test_a_house_its_master_does_not_list_for_its_filer_is_refused_once_audited_and_changes_nothing(redis_client):
    store = ConsignmentStore(redis_client)
    store.add("sea:MB1", MASTER, deadline=100.0, centre="RC-NL")
    before = redis_client.hgetall("cs:{p0}:cons:sea:MB1")
    [refused] = store.add("sea:MB1", INTRUDER, deadline=100.0, centre="RC-DE")
    assert refused.refused == (HOUSE_NOT_LISTED, "sea:MB1", "HB1", "RC-NL")  # the consignment's centre hears of it
    assert refused.members[0].mrn == "MRN8" and refused.members[0].refused == refused.refused
    assert {k: v for k, v in redis_client.hgetall("cs:{p0}:cons:sea:MB1").items() if not k.startswith(b"r:")} == before
    assert store.add("sea:MB1", INTRUDER, deadline=100.0)[0].refused  # delivered again: refused again ...
    assert _audit(redis_client) == [("FILER9", "claim-refused", "HOUSE_NOT_LISTED: HB1 in consignment sea:MB1")]
    assert store.remove("MRN8", "sea:MB1", deadline=100.0) is None  # ... audited once; and never linked, so nothing to remove
    done = store.add("sea:MB1", HOUSE1, deadline=100.0) + store.add("sea:MB1", HOUSE2, deadline=100.0)
    assert done[-1].complete and {m.mrn for m in done[-1].members} == {"MRN1", "MRN2", "MRN3"}


def test_houses_filed_before_their_master_wait_apart_and_the_master_keeps_only_those_it_allows(redis_client):
    store = ConsignmentStore(redis_client)
    store.add("sea:MB1", INTRUDER, deadline=50.0)
    store.add("sea:MB1", HOUSE1, deadline=80.0)  # the same house number, another filer: both wait
    assert redis_client.zrange(store.keys.due(0), 0, -1) == [b"sea@FILER9:MB1", b"sea@FILER2:MB1"]
    pending, refused = store.add("sea:MB1", MASTER, deadline=200.0, centre="RC-NL")
    assert pending.missing == ("house transport document HB2",) and refused.refused.code == HOUSE_NOT_LISTED
    assert refused.members[0].mrn == "MRN8" and redis_client.hget("cs:{p0}:cons:sea:MB1", "o:MRN8") is None
    # the deadline of the first house it allows
    assert redis_client.zrange(store.keys.due(0), 0, -1, withscores=True) == [(b"sea:MB1", 80.0)]
    [done] = store.add("sea:MB1", HOUSE2, deadline=300.0)
    assert done.complete and sorted(m.mrn for m in done.members) == ["MRN1", "MRN2", "MRN3"]


def test_a_second_master_from_another_filer_is_refused_and_the_first_keeps_its_document(redis_client):
    store = ConsignmentStore(redis_client)
    store.add("sea:MB1", MASTER, deadline=100.0, centre="RC-NL")
    rival = _member("MRN7", "F12", "MB1", houses=(("HB1", "FILER9"),), filer="FILER9")
    [refused] = store.add("sea:MB1", rival, deadline=100.0)
    assert refused.refused == ("MASTER_FILED_BY_ANOTHER_FILER", "sea:MB1", "MB1", "RC-NL")
    assert store.add("sea:MB1", INTRUDER, deadline=100.0)[0].refused  # the rival's list counts for nothing
    own = _member("MRN1", "A12", "MB1", houses=(("HB1", "FILER2"), ("HB2", "FILER3")), digest="d2")
    assert not store.add("sea:MB1", own, deadline=100.0)[0].refused  # its own filer amends it


def test_a_master_amended_to_list_its_houses_otherwise_refuses_those_it_no_longer_allows(redis_client):
    store = ConsignmentStore(redis_client)
    for m in (MASTER, HOUSE1, HOUSE2):
        store.add("sea:MB1", m, deadline=100.0)
    amended = _member("MRN1", "A12", "MB1", houses=(("HB1", "FILER2"), ("HB2", "FILER4")), digest="d2")
    pending, refused = store.add("sea:MB1", amended, deadline=100.0)
    assert pending.missing == ("house transport document HB2",) and refused.members[0].mrn == "MRN3"
    assert store.remove("MRN3", "sea:MB1", deadline=100.0) is None


def test_a_filing_replaces_or_invalidates_only_its_own_member(redis_client):
    store = ConsignmentStore(redis_client)
    for m in (MASTER, HOUSE1, HOUSE2):
        store.add("sea:MB1", m, deadline=100.0)
    again = _member("MRN5", "F15", "HB1", master="MB1", filer="FILER2", digest="d5")  # FILER2 files HB1 anew
    assert store.add("sea:MB1", again, deadline=100.0)[0].complete
    assert store.remove("MRN2", "sea:MB1", deadline=100.0) is None  # the earlier filing's invalidation leaves the new one be
    assert "MRN5" in {m.mrn for m in store.add("sea:MB1", MASTER, deadline=100.0)[0].members}


def test_without_their_master_each_filers_houses_come_due_and_leave_apart(redis_client):
    store = ConsignmentStore(redis_client)
    store.add("sea:MB1", INTRUDER, deadline=50.0)
    store.add("sea:MB1", HOUSE1, deadline=80.0)
    store.add("sea:MB1", HOUSE2, deadline=90.0)
    due = store.overdue(now=100.0, retry_seconds=60)
    assert sorted((k, sorted(m.mrn for m in ms)) for k, _, ms in due) == [
        ("sea@FILER2:MB1", ["MRN2"]), ("sea@FILER3:MB1", ["MRN3"]), ("sea@FILER9:MB1", ["MRN8"])]
    left = store.remove("MRN8", "sea:MB1", deadline=100.0)  # withdraws its own filer's assessment, nobody else's
    assert left.key == "sea@FILER9:MB1" and redis_client.zscore(store.keys.due(0), "sea@FILER9:MB1") is None
    assert redis_client.zscore(store.keys.due(0), "sea@FILER2:MB1") is not None
    store.add("sea:MB1", MASTER, deadline=100.0)
    assert store.remove("MRN1", "sea:MB1", deadline=500.0).key == "sea:MB1"  # the master leaves: its houses wait apart again
    assert redis_client.zrange(store.keys.due(0), 0, -1, withscores=True) == [
        (b"sea@FILER2:MB1", 500.0), (b"sea@FILER3:MB1", 500.0)]


def test_offline_linking_for_backtests_matches_the_redis_rules():
    ready, pending = assemble([MASTER, HOUSE1, _member("MRN9", "F10", "BL9"), _member("MRN7", "F16", "HB7", "MB7")])
    assert sorted(c.key for c in ready) == ["mrn:MRN9"]
    assert {p.member.mrn for p in pending} == {"MRN1", "MRN2", "MRN7"}
    ready, _ = assemble([MASTER, HOUSE1, HOUSE2])
    assert [c.key for c in ready] == ["sea:MB1"] and len(ready[0].members) == 3
    ready, _ = assemble([INTRUDER, MASTER, HOUSE1, HOUSE2])  # a refused claim is assessed on its own
    assert sorted(c.key for c in ready) == ["mrn:MRN8", "sea:MB1"] and len(ready[1].members) == 3
    assert ready[0].lead.refused.code == HOUSE_NOT_LISTED


# -- postal: a dispatch (F42) and its items (F43), each item assessed on its own ---------------------------
def _postal(mrn: str, code: str, document: str, dispatch: str | None = None, description: str = "phone case"):
    record = record_from_dict({"filing_code": code, "transport_document": document, "master_document": dispatch,
                               "place_of_loading": "CNSZX", "goods": [{"hs_code": "392690", "description": description}]
                               if code == "F43" else []})
    return Member(mrn, f"sub-{mrn}", "DE123456789", f"LRN{mrn}", code, "d1", record)


DISPATCH = _postal("MRNP0", "F42", "PD1")
ITEMS = [_postal(f"MRNP{n}", "F43", f"IT{n}", dispatch="PD1", description=f"item {n}") for n in (1, 2, 3)]


def test_postal_items_link_to_their_dispatch_and_each_is_assessed_on_its_own(redis_client):
    store = ConsignmentStore(redis_client)
    assert linked_key(DISPATCH.record) == linked_key(ITEMS[0].record) == "postal:PD1"
    [waiting] = store.add("postal:PD1", ITEMS[0], deadline=100.0)  # an item before its dispatch waits
    assert not waiting.complete and waiting.missing == ("postal dispatch (F42) with transport document PD1",)
    ready = store.add("postal:PD1", DISPATCH, deadline=200.0)  # the dispatch releases the item waiting for it
    assert [(r.key, r.complete, r.version) for r in ready] == [("postal:PD1/IT1", True, 1)]
    assert redis_client.zscore(store.keys.due(0), "postal:PD1") is None
    [second] = store.add("postal:PD1", ITEMS[1], deadline=300.0)  # later items go straight through
    assert second.key == "postal:PD1/IT2" and second.complete
    c = consignment_of(second.key, second.version, second.state, list(second.members))
    assert c.lead.mrn == "MRNP2" and [m.mrn for m in c.members] == ["MRNP2", "MRNP0"]
    assert [g.description for g in c.record.goods] == ["item 2"] and c.record.place_of_loading == "CNSZX"
    [again] = store.add("postal:PD1", ITEMS[1], deadline=300.0)  # a redelivery is the same version
    assert (again.version, again.state) == (1, second.state)
    gone = store.remove("MRNP2", "postal:PD1", deadline=400.0)  # an invalidated item leaves its own consignment
    assert gone.key == "postal:PD1/IT2" and not gone.members


def test_a_dispatch_alone_waits_for_items_and_items_alone_come_due_one_by_one(redis_client):
    store = ConsignmentStore(redis_client)
    [alone] = store.add("postal:PD9", _postal("MRNQ0", "F42", "PD9"), deadline=100.0)
    assert not alone.complete and alone.missing == ("postal item filings",)
    for item in ITEMS[:2]:
        store.add("postal:PD2", _postal(item.mrn, "F43", item.record.transport_document, dispatch="PD2"), deadline=50.0)
    due = store.overdue(now=150.0, retry_seconds=60)  # items without their dispatch: their filer's own
    assert sorted(k for k, _, _ in due) == ["postal:PD9", "postal@DE123456789:PD2/IT1", "postal@DE123456789:PD2/IT2"]
    assert all(len(members) == 1 for _, _, members in due)
    assert missing_documents("postal:PD2/IT1", [ITEMS[0]]) == ("postal dispatch (F42) with transport document PD2",)
    # Their decisions answer the entry they waited under: the sweep does not bring them back.
    answered = {due_entry(k, members) for k, _, members in due}
    assert answered == {"postal:PD9", "postal@DE123456789:PD2"}
    redis_client.zrem(store.keys.due(0), *answered)  # as the decisions' effects do (service.decision_effects)
    assert store.overdue(now=500.0, retry_seconds=60) == []


def test_assembling_in_memory_follows_the_same_postal_rule():
    ready, pending = assemble([ITEMS[0], DISPATCH, ITEMS[1]])
    assert sorted(c.key for c in ready) == ["postal:PD1/IT1", "postal:PD1/IT2"] and not pending
    ready, pending = assemble([ITEMS[2]])
    assert not ready and [p.missing for p in pending] == [("postal dispatch (F42) with transport document PD1",)]


def test_a_batch_of_additions_links_as_one_by_one_would(redis_client):
    """link sends a batch in one script call; each change sees what those before it did, so the
    results, the consignment's state and the audit trail are those of the same additions one by one."""
    amended = _member("MRN3", "A16", "HB2", master="MB1", digest="d2")
    batch = [("sea:MB1", HOUSE1, 100.0), ("sea:MB1", INTRUDER, 110.0), ("sea:MB1", MASTER, 200.0),
             ("sea:MB1", HOUSE2, 300.0), ("sea:MB1", HOUSE2, 300.0), ("sea:MB1", amended, 400.0),
             ("air:OTHER", _member("MRN7", "F15", "HX", master="OTHER"), 500.0)]
    store = ConsignmentStore(redis_client)

    def state():
        return {k: redis_client.hgetall(k) if redis_client.type(k) == b"hash" else redis_client.zrange(k, 0, -1)
                for k in sorted(redis_client.keys("cs:{p*"))}

    one_by_one = [store.add(key, m, deadline=d, centre="RC-NL", now="t") for key, m, d in batch]
    seen, audited = state(), _audit(redis_client)
    redis_client.flushall()
    together = store.link([Addition(key, m, d, "RC-NL", "t") for key, m, d in batch])
    assert together == one_by_one and state() == seen and _audit(redis_client) == audited
    assert [r.complete for r in together[3]] == [True] and any(r.refused for r in together[2])  # completes, refuses


# -- a bundle's changes in one script call -------------------------------------------------------------------
EARLIER = _member("MRN30", "F12", "MB3", houses=(("HB3", "FILER1"),), filer="FILER0")  # filed in an earlier bundle


def mixed_bundle() -> list[Addition | Removal]:
    """Masters, houses, amendments and invalidations of one consignment and of others, in one bundle:
    houses before and after their master, a claim refused, a consignment completed then amended then
    left incomplete by an invalidation, another completed by a master after its house, a postal item
    released and invalidated, one completed with a member of an earlier bundle, removals of filings
    that are no member, a master invalidated."""
    changes = [("sea:MB1", HOUSE1), ("sea:MB1", INTRUDER),
               ("sea:MB2", _member("MRN24", "F15", "HX2", master="MB2", filer="FILER4")),
               ("sea:MB1", MASTER), ("sea:MB1", HOUSE2), ("sea:MB1", HOUSE2),
               ("sea:MB1", _member("MRN3", "A16", "HB2", master="MB1", digest="d2")), ("sea:MB1", "MRN2"),
               ("sea:MB2", _member("MRN25", "F12", "MB2", houses=(("HX2", "FILER4"),), filer="FILER5")),
               ("postal:PD1", DISPATCH), ("postal:PD1", ITEMS[0]), ("postal:PD1", "MRNP1"),
               ("sea:MB3", _member("MRN31", "F15", "HB3", master="MB3", filer="FILER1")), ("sea:MB1", "MRN-NONE"),
               ("", "MRN10"), ("sea:MB1", "MRN1")]
    return [Removal(what, key, 100.0 + n) if isinstance(what, str) else Addition(key, what, 100.0 + n, "RC-NL", "t")
            for n, (key, what) in enumerate(changes)]


def stored(client) -> dict:
    """Every consignment key (hashes and deadline sets) and what it holds."""
    return {k: client.hgetall(k) if client.type(k) == b"hash" else client.zrange(k, 0, -1, withscores=True)
            for k in sorted(client.keys("cs:{p*}:cons:*"))}


def script_calls(client) -> int:
    """Script calls Redis ran so far (on a cluster, over its masters), leaving out those that failed."""
    nodes = [client.get_redis_connection(n) for n in client.get_primaries()] if hasattr(client, "get_primaries") \
        else [client]
    stats = [s for node in nodes for name, s in node.info("commandstats").items() if name in ("cmdstat_evalsha",
                                                                                               "cmdstat_eval")]
    return sum(s["calls"] - s.get("failed_calls", 0) for s in stats)


def linked_one_by_one_and_as_a_bundle(store: ConsignmentStore, client, flush):
    """The mixed bundle's changes made one by one, then (on an emptied store) as one bundle, each
    after a consignment's master filed in an earlier bundle: the changes, both outcomes, the state
    left (the same both times: asserted), and how many script calls the bundle took."""
    changes = mixed_bundle()
    store.add("sea:MB3", EARLIER, deadline=50.0)
    one_by_one = [store.remove(c.mrn, c.key, c.deadline) if isinstance(c, Removal) else
                  store.add(c.key, c.member, c.deadline, c.centre, c.now) for c in changes]
    seen, audited = stored(client), _audit(client)
    flush()
    store.add("sea:MB3", EARLIER, deadline=50.0)
    calls = script_calls(client)
    together = store.link(changes)
    calls = script_calls(client) - calls
    assert stored(client) == seen and _audit(client) == audited
    return changes, one_by_one, together, seen, calls


def test_a_bundle_mixing_masters_houses_amendments_and_invalidations_links_in_one_script_call_as_one_by_one(
        redis_client):
    """One script call for the whole bundle; each change sees those before it, so the outcomes, the
    consignments' state and the audit trail are those of the changes made one by one."""
    store = ConsignmentStore(redis_client, partitions=16)  # one call on a single Redis, whatever the partitions
    _, one_by_one, together, seen, calls = linked_one_by_one_and_as_a_bundle(store, redis_client,
                                                                             redis_client.flushall)
    assert together == one_by_one and calls == 1
    assert len({k.split(b"}")[0] for k in seen}) > 1  # the bundle touched several partitions
    assert [r.refused.code for r in together[3] if r.refused] == [HOUSE_NOT_LISTED]  # the intruder, at its master
    assert [(r.complete, r.version) for n in (4, 5, 6) for r in together[n]] == [(True, 1), (True, 1), (True, 2)]
    assert together[7].missing == ("house transport document HB1",) and together[8][0].complete
    assert [r.key for r in together[10]] == ["postal:PD1/IT1"] and together[11].key == "postal:PD1/IT1"
    assert together[12][0].complete and together[13] is None and together[14] is None
    assert together[15].key == "sea:MB1" and not together[15].complete  # its master left


def test_a_bundle_gets_back_only_the_bodies_of_members_filed_before_it(redis_client):
    """The members a bundle sent come back as the very objects sent (their bodies stay in Redis); a
    member filed in an earlier bundle comes back from its body."""
    changes, _, together, _, _ = linked_one_by_one_and_as_a_bundle(ConsignmentStore(redis_client), redis_client,
                                                                   redis_client.flushall)
    sent = [c.member for c in changes if isinstance(c, Addition)]

    def was_sent(m: Member) -> bool:
        return any(m is s for s in sent)

    [amended] = together[6]  # the master and both houses, all sent in the bundle
    assert amended.complete and [was_sent(m) for m in amended.members] == [True] * 3
    [postal] = together[10]
    assert [was_sent(m) for m in postal.members] == [True, True]
    [with_earlier] = together[12]
    assert {m.mrn: was_sent(m) for m in with_earlier.members} == {"MRN30": False, "MRN31": True}
    assert [m for m in with_earlier.members if m.mrn == "MRN30"] == [EARLIER]


def test_the_link_step_sends_a_batch_in_one_script_call_with_the_outputs_of_one_by_one(validator, redis_server):
    """Real filings, validated and registered: a batch of houses completing an earlier batch's master,
    an amendment, an invalidation and another consignment whole leaves the linking step in one script
    call, each filing with the outputs it has linked on its own."""
    from apache_beam.pvalue import TaggedOutput

    from cargoscreen.answering import registration_request
    from cargoscreen.config import Settings
    from cargoscreen.connectors.redis_store import connect
    from cargoscreen.registration import RegistrationStore
    from cargoscreen.stages.link import _LinkDoFn
    from cargoscreen.validation import Submission

    from .test_answers import _amend, _invalidation
    from .test_ownership import filed_by, house, master

    carrier, forwarder = "NL100000001", "DE200000002"
    client = connect(redis_server.url)
    client.flushall()
    registry, sent = RegistrationStore(client), []

    def registered(*payloads: bytes) -> list:
        outcomes = [validator.validate(Submission(f"s{len(sent) + n}", p)) for n, p in enumerate(payloads)]
        assert all(o.accepted for o in outcomes), [o.errors for o in outcomes]
        sent.extend(outcomes)
        return list(zip(outcomes, registry.register([registration_request(o, 2026) for o in outcomes],
                                                           "2026-11-20T10:00:00Z")))

    earlier = registered(filed_by(master("L-M1", "MBX1", [("HBX1", forwarder), ("HBX2", forwarder)]), carrier))
    houses = registered(*(filed_by(house(f"L-H{n}", "MBX1", f"HBX{n}"), forwarder) for n in (1, 2)))
    (h1, r1), (h2, r2) = houses
    batch = houses + registered(_amend(h2, r2.mrn), _invalidation(h1, r1.mrn)) + registered(
        filed_by(master("L-M2", "MBX2", [("HBX3", forwarder)]), carrier),
        filed_by(house("L-H3", "MBX2", "HBX3"), forwarder))
    settings = Settings().with_redis_url(redis_server.url)

    def linked(prefix: str, batches: list) -> dict:
        """Each output's elements in order (the step gives a batch per output per batch it takes)."""
        step = _LinkDoFn(replace(settings, redis=replace(settings.redis, key_prefix=prefix)))
        step.setup()
        out: dict = {}
        for b in batches:
            for o in step.process(b):
                tag, values = (o.tag, o.value) if isinstance(o, TaggedOutput) else ("consignments", o)
                out.setdefault(tag, []).extend(values)
        return out

    one_by_one = linked("one", [[e] for e in earlier + batch])
    calls = script_calls(client)
    together = linked("all", [earlier, batch])
    assert script_calls(client) - calls == 2 and together == one_by_one
    outputs = {tag: [(getattr(v, "key", ""), getattr(v, "version", None)) for v in values]
               for tag, values in together.items()}
    assert outputs == {"pending": [("sea:MBX1", None), ("sea:MBX1", None), ("sea:MBX2", None)],
                       "consignments": [("sea:MBX1", 1), ("sea:MBX1", 2), ("sea:MBX2", 1)],
                       "withdrawals": [("sea:MBX1", None)]}


def test_a_body_deflated_by_zlib_ng_reads_with_the_standard_zlib_and_the_other_way_round():
    """A rolling upgrade either way: bodies this version writes (zlib-ng) read in a worker of the
    previous one (the standard library's zlib), and bodies it wrote read here."""
    import zlib

    from cargoscreen.domain import stored_bodies

    text = HOUSE1.to_json()
    body = stored_bodies.pack(text)
    dictionary = stored_bodies._DICTIONARIES[body[0]]
    inflate = zlib.decompressobj(-15, dictionary)
    assert (inflate.decompress(body[1:]) + inflate.flush()).decode() == text
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, dictionary)
    previous = body[:1] + deflate.compress(text.encode()) + deflate.flush()
    assert stored_bodies.unpack(previous) == text
    assert previous != body  # the two libraries' bytes differ: each read the other's


def test_the_compression_dictionaries_are_frozen_and_a_body_of_either_reads():
    """Bodies stay in Redis for the amendment window: those written under dictionary 1 (the previous
    version's, spaced JSON) read after the upgrade, and no dictionary changes under them. Dictionary 2
    reads already and is not written yet: a worker of the previous version, during a rolling upgrade,
    reads every body this one writes."""
    import hashlib
    import json

    from cargoscreen.domain import stored_bodies

    digests = {n: hashlib.blake2b(d, digest_size=8).hexdigest() for n, d in stored_bodies._DICTIONARIES.items()}
    assert digests == {1: "48851a2947668ce2", 2: "0cfb9aa92200897b"}
    previous = json.dumps(json.loads(HOUSE1.to_json()), ensure_ascii=False)  # as version 1 wrote it
    body = HOUSE1.mrn.encode() + b"\x1f" + stored_bodies.pack(previous, dictionary=1)
    assert Member.from_body(body) == HOUSE1 and Member.from_body(HOUSE1.to_body()) == HOUSE1
    assert HOUSE1.to_body()[len(HOUSE1.mrn) + 1] == stored_bodies.CURRENT == 1
    two = HOUSE1.mrn.encode() + b"\x1f" + stored_bodies.pack(HOUSE1.to_json(), dictionary=2)
    assert Member.from_body(two) == HOUSE1
