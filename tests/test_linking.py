"""Multiple filing: partial filings linked into consignments, with their state in a real Redis."""
from __future__ import annotations

from cargoscreen.domain.screening import record_from_dict
from cargoscreen.linking import (ConsignmentStore, Member, assemble, consignment_of, linked_key, missing_documents,
                                 standalone)


def _member(mrn: str, code: str, document: str, master: str | None = None, houses=(), digest: str = "d1",
            goods=({"hs_code": "940360", "description": "wooden chairs"},)) -> Member:
    record = record_from_dict({"filing_code": code, "transport_document": document, "master_document": master,
                               "house_documents": list(houses), "goods": list(goods)})
    return Member(mrn, f"sub-{mrn}", f"FILER{mrn[-1]}", f"LRN{mrn}", code, digest, record)


MASTER = _member("MRN1", "F12", "MB1", houses=("HB1", "HB2"))
HOUSE1 = _member("MRN2", "F15", "HB1", master="MB1", goods=({"hs_code": "293212", "description": "chemicals"},))
HOUSE2 = _member("MRN3", "F16", "HB2", master="MB1")


def test_partial_filings_share_the_key_of_their_master_document_and_others_stand_alone():
    assert linked_key(MASTER.record) == linked_key(HOUSE1.record) == "sea:MB1"
    plain = _member("MRN9", "F10", "BL9")
    assert linked_key(plain.record) is None and standalone(plain).key == "mrn:MRN9"


def test_what_is_missing_is_named_for_the_filer():
    assert missing_documents("sea:MB1", [HOUSE1]) == ("master transport document MB1",)
    assert missing_documents("sea:MB1", [MASTER, HOUSE1]) == ("house transport document HB2",)
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


def test_a_consignment_is_complete_once_every_listed_house_is_in_and_redelivery_keeps_its_version(redis_client):
    store = ConsignmentStore(redis_client)
    first = store.add("sea:MB1", HOUSE1, deadline=100.0)[0]
    assert not first.complete and redis_client.zscore(store.due_key, "sea:MB1") == 100.0
    assert not store.add("sea:MB1", MASTER, deadline=200.0)[0].complete  # the first deadline stands
    assert redis_client.zscore(store.due_key, "sea:MB1") == 100.0
    done = store.add("sea:MB1", HOUSE2, deadline=300.0)[0]
    assert done.complete and done.version == 1 and len(done.members) == 3
    assert redis_client.zscore(store.due_key, "sea:MB1") is None  # complete: no deadline
    again = store.add("sea:MB1", HOUSE2, deadline=300.0)[0]  # a redelivery changes nothing
    assert (again.version, again.state) == (1, done.state)
    amended = store.add("sea:MB1", _member("MRN3", "A16", "HB2", master="MB1", digest="d2"), deadline=400.0)[0]
    assert amended.complete and amended.version == 2 and amended.state != done.state
    assert {m.digest for m in amended.members if m.mrn == "MRN3"} == {"d2"}


def test_an_invalidated_house_leaves_its_consignment_and_an_unknown_one_is_not_linked(redis_client):
    store = ConsignmentStore(redis_client)
    for m in (MASTER, HOUSE1, HOUSE2):
        store.add("sea:MB1", m, deadline=100.0)[0]
    after = store.remove("MRN3", deadline=500.0)
    assert not after.complete and after.missing == ("house transport document HB2",)
    assert redis_client.zscore(store.due_key, "sea:MB1") == 500.0  # incomplete again: a deadline again
    assert store.remove("MRN-NOT-LINKED", deadline=1.0) is None


def test_the_linking_script_and_the_python_rule_agree_on_completeness_and_what_is_missing(redis_client):
    store = ConsignmentStore(redis_client)
    masters = [None, (), ("HB1",), ("HB1", "HB2")]  # None: no master filed
    house_sets = [(), ("HB1",), ("HB2",), ("HB1", "HB2"), ("HB1", "HB3")]
    for i, expected in enumerate(masters):
        for j, houses in enumerate(house_sets):
            key = f"sea:MB{i}{j}"
            members = [] if expected is None else [_member(f"MRN{i}{j}0", "F12", f"MB{i}{j}", houses=expected)]
            members += [_member(f"MRN{i}{j}{k + 1}", "F15", h, master=f"MB{i}{j}") for k, h in enumerate(houses)]
            if not members:
                continue
            results = [store.add(key, m, deadline=100.0)[0] for m in members]
            want = missing_documents(key, members)
            assert results[-1].complete == (want == ()), (expected, houses)
            if want:
                assert results[-1].missing == want, (expected, houses)


def test_overdue_consignments_are_claimed_for_a_while_and_come_due_again_if_not_answered(redis_client):
    store = ConsignmentStore(redis_client)
    store.add("sea:MB1", HOUSE1, deadline=100.0)[0]
    [(key, version, members)] = store.overdue(now=150.0, retry_seconds=60)
    assert key == "sea:MB1" and version == 0 and [m.mrn for m in members] == ["MRN2"]
    assert store.overdue(now=160.0, retry_seconds=60) == []  # claimed
    assert [k for k, _, _ in store.overdue(now=211.0, retry_seconds=60)] == ["sea:MB1"]  # its referral never came


def test_offline_linking_for_backtests_matches_the_redis_rules():
    ready, pending = assemble([MASTER, HOUSE1, _member("MRN9", "F10", "BL9"), _member("MRN7", "F16", "HB7", "MB7")])
    assert sorted(c.key for c in ready) == ["mrn:MRN9"]
    assert {p.member.mrn for p in pending} == {"MRN1", "MRN2", "MRN7"}
    ready, _ = assemble([MASTER, HOUSE1, HOUSE2])
    assert [c.key for c in ready] == ["sea:MB1"] and len(ready[0].members) == 3


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
    assert redis_client.zscore(store.due_key, "postal:PD1") is None
    [second] = store.add("postal:PD1", ITEMS[1], deadline=300.0)  # later items go straight through
    assert second.key == "postal:PD1/IT2" and second.complete
    c = consignment_of(second.key, second.version, second.state, list(second.members))
    assert c.lead.mrn == "MRNP2" and [m.mrn for m in c.members] == ["MRNP2", "MRNP0"]
    assert [g.description for g in c.record.goods] == ["item 2"] and c.record.place_of_loading == "CNSZX"
    [again] = store.add("postal:PD1", ITEMS[1], deadline=300.0)  # a redelivery is the same version
    assert (again.version, again.state) == (1, second.state)
    gone = store.remove("MRNP2", deadline=400.0)  # an invalidated item leaves its own consignment
    assert gone.key == "postal:PD1/IT2" and not gone.members


def test_a_dispatch_alone_waits_for_items_and_items_alone_come_due_one_by_one(redis_client):
    store = ConsignmentStore(redis_client)
    [alone] = store.add("postal:PD9", _postal("MRNQ0", "F42", "PD9"), deadline=100.0)
    assert not alone.complete and alone.missing == ("postal item filings",)
    for item in ITEMS[:2]:
        store.add("postal:PD2", _postal(item.mrn, "F43", item.record.transport_document, dispatch="PD2"), deadline=50.0)
    due = store.overdue(now=150.0, retry_seconds=60)
    assert sorted(k for k, _, _ in due) == ["postal:PD2/IT1", "postal:PD2/IT2", "postal:PD9"]
    assert all(len(members) == 1 for _, _, members in due)
    assert missing_documents("postal:PD2/IT1", [ITEMS[0]]) == ("postal dispatch (F42) with transport document PD2",)


def test_assembling_in_memory_follows_the_same_postal_rule():
    ready, pending = assemble([ITEMS[0], DISPATCH, ITEMS[1]])
    assert sorted(c.key for c in ready) == ["postal:PD1/IT1", "postal:PD1/IT2"] and not pending
    ready, pending = assemble([ITEMS[2]])
    assert not ready and [p.missing for p in pending] == [("postal dispatch (F42) with transport document PD1",)]
