"""Party history in a real Redis (pipeline/party_history.py): first seen, counts, replays counted once,
a retention on every key, one key per party (Redis Cluster), and each filer's history apart."""
from __future__ import annotations

import re

from cargoscreen.config import PartyHistorySettings
from cargoscreen.domain.parties import Sighting
from cargoscreen.party_history import _RECORD, PartyHistoryStore, party_key

DAY = 86400.0
T0 = 1_790_000_000.0


def seen(filer="DE123", mrn="M1", identity="id:CN91330000", role="consignor"):
    return Sighting(filer, mrn, role, identity, "/IE3F10/Consignment/Consignor")


def test_first_seen_and_filings_before_each_filing(redis_client):
    store = PartyHistoryStore(redis_client)
    [first] = store.record([seen(mrn="M1")], now=T0)
    assert (first.filings, first.first_seen, first.at) == (0, None, T0)
    [second] = store.record([seen(mrn="M2")], now=T0 + 3 * DAY)
    assert (second.filings, second.first_seen, second.at) == (1, T0, T0 + 3 * DAY)
    [third] = store.record([seen(mrn="M3")], now=T0 + 9 * DAY)
    assert (third.filings, third.first_seen) == (2, T0)


def test_a_replayed_filing_reads_what_it_first_saw_and_counts_nothing(redis_client):
    store = PartyHistoryStore(redis_client)
    store.record([seen(mrn="M1")], now=T0)
    [m2] = store.record([seen(mrn="M2")], now=T0 + DAY)
    store.record([seen(mrn="M3")], now=T0 + 2 * DAY)
    # M2 redelivered, or its consignment assessed again, days later: the same answer, no count
    [again] = store.record([seen(mrn="M2")], now=T0 + 5 * DAY)
    assert again == m2
    [m4] = store.record([seen(mrn="M4")], now=T0 + 6 * DAY)
    assert m4.filings == 3
    # the same filing twice in one batch (a consignment's two parties of one identity) counts once
    store.record([seen(mrn="M5"), seen(mrn="M5", role="notify")], now=T0 + 7 * DAY)
    [m6] = store.record([seen(mrn="M6")], now=T0 + 8 * DAY)
    assert m6.filings == 5


def test_markers_are_bounded_to_the_replay_window(redis_client):
    store = PartyHistoryStore(redis_client, PartyHistorySettings(replay_window=4))
    for i in range(10):
        store.record([seen(mrn=f"M{i}")], now=T0 + i)
    key = party_key("cs", "DE123", "id:CN91330000")
    fields = {f.decode() for f in redis_client.hkeys(key)}
    assert fields == {"n", "f", "s:0", "s:1", "s:2", "s:3", "m:M6", "m:M7", "m:M8", "m:M9"}
    [m8] = store.record([seen(mrn="M8")], now=T0 + 100)  # within the window: a replay
    assert m8.filings == 8
    [m1] = store.record([seen(mrn="M1")], now=T0 + 101)  # past it: counted again (a party long known)
    assert m1.filings == 10


def test_every_key_expires_after_the_retention_and_a_sighting_refreshes_it(redis_client):
    store = PartyHistoryStore(redis_client, PartyHistorySettings(retention_seconds=400 * 86400))
    store.record([seen(mrn="M1"), seen(mrn="M1", role="consignee", identity="name:PL:anna kowalska")], now=T0)
    keys = redis_client.keys("*")
    assert len(keys) == 2
    for key in keys:
        assert 399 * 86400 < redis_client.ttl(key) <= 400 * 86400
    redis_client.expire(keys[0], 10)
    store.record([seen(mrn="M2")], now=T0 + 1)
    assert redis_client.ttl(party_key("cs", "DE123", "id:CN91330000")) > 399 * 86400
    assert {k.decode() for k in keys} == {party_key("cs", "DE123", "id:CN91330000"),
                                         party_key("cs", "DE123", "name:PL:anna kowalska")}


def test_each_filer_knows_a_party_from_its_own_filings_only(redis_client):
    """Filer A's many filings naming a shipper do not make that shipper known in filer B's filings."""
    store = PartyHistoryStore(redis_client)
    store.record([seen(filer="FR111", mrn=f"A{i}") for i in range(20)], now=T0)
    [b] = store.record([seen(filer="NL222", mrn="B1")], now=T0 + 30 * DAY)
    assert (b.filings, b.first_seen) == (0, None)


def test_the_script_touches_only_the_keys_it_is_given(redis_client):
    """Redis Cluster: every key a script touches is declared (a call serves the parties of one slot)."""
    key = party_key("cs", "DE123", "id:CN91330000")
    assert key.startswith("cs:ph:{") and key.endswith("}")
    calls = re.findall(r"redis\.call\('\w+', (\w+)", _RECORD)
    assert calls and set(calls) == {"h"} and "for i, h in ipairs(KEYS)" in _RECORD
    store = PartyHistoryStore(redis_client)
    store.record([seen(mrn="M1"), seen(mrn="M1", identity="id:CN2")], now=T0)
    assert sorted(k.decode() for k in redis_client.keys("*")) == sorted([key, party_key("cs", "DE123", "id:CN2")])


def test_a_batch_is_one_script_call_and_counts_as_its_sightings_one_by_one(redis_client):
    """One call for a batch's parties on a single Redis, with the answers calls one by one give: a party
    seen twice in the batch is counted in order, a filing's party repeated reads back its first count."""
    batch = [seen(mrn="M1"), seen(mrn="M2"), seen(mrn="M1", identity="id:CN2"), seen(mrn="M2"),
             seen(filer="FR9", mrn="M3"), seen(mrn="M3"), seen(mrn="M1", identity="id:CN2")]
    redis_client.config_resetstat()
    together = PartyHistoryStore(redis_client).record(batch, now=T0)
    calls = redis_client.info("commandstats")
    assert sum(v["calls"] for k, v in calls.items() if k in ("cmdstat_evalsha", "cmdstat_eval")) == 1
    redis_client.flushall()
    alone = [PartyHistoryStore(redis_client).record([s], now=T0)[0] for s in batch]
    assert together == alone
    assert [x.filings for x in together] == [0, 1, 0, 1, 0, 2, 0]


def test_a_flushed_script_cache_is_loaded_again(redis_client):
    store = PartyHistoryStore(redis_client)
    store.record([seen(mrn="M1")], now=T0)
    redis_client.script_flush()
    [again] = store.record([seen(mrn="M2")], now=T0 + 1)
    assert again.filings == 1


def test_with_the_store_away_each_filing_says_so_and_its_parties_stay_unknown(redis_process):
    """An outage after the retries: one party-history-unavailable fact per filing with tracked parties; the
    rules' party fields stay missing (no rule on them fires), and nothing waits."""
    from cargoscreen.connectors.redis_store import connect
    from cargoscreen.domain.enrichment import PARTY_HISTORY_UNAVAILABLE
    from cargoscreen.domain.screening import Party, ScreeningRecord
    from cargoscreen.enrichment import party_facts
    from cargoscreen.linking import Member, standalone

    store = PartyHistoryStore(connect(redis_process.url))
    record = ScreeningRecord("F30", "express", "house", parties=(Party("consignor", None, "Star Ltd", country="HK"),))
    bare = ScreeningRecord("F30", "express", "house")
    batch = [standalone(Member("M1", "s1", "DE1", "L1", "F30", "d1", record)),
             standalone(Member("M2", "s2", "DE1", "L2", "F30", "d2", bare))]
    [(fact,), ()] = party_facts(batch, store.record)
    assert fact.kind == "party-history" and fact.values["filings"] == 0  # the store is up
    redis_process.stop()
    [(fact,), ()] = party_facts(batch, store.record)
    assert fact.kind == PARTY_HISTORY_UNAVAILABLE and "unreachable" in fact.detail
