"""Container status feed (DCSA T&T 2.2): checked against the definition, stored idempotently, in event-time order."""
from __future__ import annotations

import copy
import json
import uuid

import pytest
import yaml
from click.testing import CliRunner

from cargoscreen.cli import main
from cargoscreen.connectors.dcsa import DEFINITION, EXAMPLES, DcsaEventChecker, read_events
from cargoscreen.connectors.redis_store import EmbeddedRedis, connect
from cargoscreen.container_feed import load_events
from cargoscreen.config import ContainerStatusSettings
from cargoscreen.container_store import ContainerEventStore
from cargoscreen.domain.container_events import normalize

EXAMPLE_EVENTS = json.loads(EXAMPLES.read_text())
EQUIPMENT = next(e for e in EXAMPLE_EVENTS if e["eventType"] == "EQUIPMENT")


@pytest.fixture(scope="module")
def checker():
    return DcsaEventChecker()


def equipment_event(container="MSCU6639870", when="2026-11-01T10:00:00Z", code="LOAD", classifier="ACT",
                    location="CNSHA", empty="LADEN", **extra):
    e = copy.deepcopy(EQUIPMENT)
    e.update(eventID=str(uuid.uuid4()), equipmentReference=container, eventDateTime=when,
             equipmentEventTypeCode=code, eventClassifierCode=classifier, emptyIndicatorCode=empty, **extra)
    e["eventLocation"]["UNLocationCode"] = location
    return e


def test_dcsa_examples_are_valid_and_normalize(checker):
    assert [checker.problems(e) for e in EXAMPLE_EVENTS] == [[]] * len(EXAMPLE_EVENTS)
    ev = normalize(EQUIPMENT)
    assert (ev.event_type, ev.classifier, ev.code, ev.equipment, ev.empty, ev.location) == \
        ("EQUIPMENT", "EST", "LOAD", "APZU4812090", "EMPTY", "FRPAR")
    assert ev.equipment_check_digit_ok is True and ev.vessel_imo == "9321483" and "TRD:reserved-HHL123" in ev.documents
    # 2019-11-12T07:41:00+08:30 is 23:11 UTC the day before
    assert ev.event_time == 1573513860.0


@pytest.mark.parametrize("change,where", [
    (lambda e: e.pop("eventDateTime"), "/"),
    (lambda e: e.update(emptyIndicatorCode="HALF"), "/emptyIndicatorCode"),
    (lambda e: e.update(equipmentEventTypeCode="TELEPORT"), "/equipmentEventTypeCode"),
    (lambda e: e.update(eventClassifierCode=7), "/eventClassifierCode"),
    (lambda e: e.update(eventType="PARTY"), "/eventType"),
])
def test_invalid_events_are_rejected_with_located_reasons(checker, change, where):
    event = copy.deepcopy(EQUIPMENT)
    change(event)
    problems = checker.problems(event)
    assert problems and problems[0][0] == where


def test_every_problem_of_an_event_is_listed(checker):
    event = copy.deepcopy(EQUIPMENT)
    event.pop("eventDateTime")
    event["emptyIndicatorCode"] = "HALF"
    assert {p for p, _, _ in checker.problems(event)} == {"/", "/emptyIndicatorCode"}


def test_checks_follow_the_definition_not_a_copy(tmp_path):
    doc = yaml.safe_load(DEFINITION.read_text())
    codes = doc["components"]["schemas"]["equipmentEventTypeCode"]["enum"]
    assert "LOAD" in codes
    codes.remove("LOAD")
    narrowed = tmp_path / "tnt.yaml"
    narrowed.write_text(yaml.safe_dump(doc))
    assert DcsaEventChecker(narrowed).problems(equipment_event(code="LOAD"))[0][0] == "/equipmentEventTypeCode"


@pytest.fixture
def store(redis_client):
    return ContainerEventStore(redis_client, ContainerStatusSettings(max_per_key=50))


def test_histories_are_in_event_time_order_whatever_the_arrival_order(store):
    times = ["2026-11-03T10:00:00Z", "2026-11-01T10:00:00+08:00", "2026-11-02T23:30:00-05:00", "2026-11-01T01:00:00Z"]
    events = [normalize(equipment_event(when=t)) for t in times]
    assert store.add(events) == [True] * 4
    history = store.histories(["MSCU6639870"])["MSCU6639870"]
    assert [e.event_time for e in history] == sorted(e.event_time for e in events)


def test_events_are_idempotent_on_event_id(store, redis_client):
    event = normalize(equipment_event())
    assert store.add([event, event]) == [True, False]
    assert store.add([event]) == [False]
    assert len(store.histories(["MSCU6639870"])["MSCU6639870"]) == 1


def test_actual_estimated_and_planned_are_kept_apart(store):
    store.add([normalize(equipment_event(classifier=c, code="DISC")) for c in ("ACT", "EST", "PLN", "PLN")])
    counts = {c: len(store.histories(["MSCU6639870"], classifier=c)["MSCU6639870"]) for c in ("ACT", "EST", "PLN")}
    assert counts == {"ACT": 1, "EST": 1, "PLN": 2}


def test_lookups_by_vessel_voyage_and_document(store):
    events = [normalize(e) for e in EXAMPLE_EVENTS]
    store.add(events)
    on_voyage = store.by_voyage("9321483", "2103S")
    assert on_voyage and all(e.vessel_imo == "9321483" for e in on_voyage)
    by_doc = store.by_document("TRD:reserved-HHL123")
    assert {e.event_id for e in by_doc} == {e.event_id for e in events if "TRD:reserved-HHL123" in e.documents}
    assert store.histories(["NOPE1234567"]) == {"NOPE1234567": []}


def test_store_stays_bounded_and_keys_expire(store, redis_client):
    events = [normalize(equipment_event(when=f"2026-10-{d:02d}T{h:02d}:00:00Z")) for d in range(1, 31) for h in (1, 13)]
    store.add(events)
    history = store.histories(["MSCU6639870"])["MSCU6639870"]
    assert len(history) == 50 and history[-1].event_time == max(e.event_time for e in events)  # the newest 50 kept
    assert 0 < redis_client.ttl("cs:eq:{MSCU6639870}:ACT") <= 180 * 86400
    assert 0 < redis_client.ttl(f"cs:ev:{{MSCU6639870}}:{events[-1].event_id}") <= 180 * 86400


def test_loader_counts_every_event_once(checker, store, tmp_path):
    good = [equipment_event(when=f"2026-11-0{d}T10:00:00Z") for d in range(1, 6)]
    unchecked = equipment_event(container="MSCU6639871")  # ISO 6346 check digit wrong: loaded, flagged
    bad = copy.deepcopy(good[0])
    bad["eventID"] = str(uuid.uuid4())
    bad["emptyIndicatorCode"] = "HALF"
    (tmp_path / "list.json").write_text(json.dumps(good + [unchecked, bad]))
    (tmp_path / "lines.jsonl").write_text(json.dumps(good[0]) + "\n{not json\n\n" + json.dumps(EXAMPLE_EVENTS[0]) + "\n")
    rejected = []
    items = [i for f in sorted(tmp_path.iterdir()) for i in read_events(f)]
    summary = load_events(items, checker, store, on_rejected=lambda w, e, p: rejected.append((w, p)), batch_size=3)
    assert (summary.read, summary.loaded, summary.duplicates) == (10, 7, 1)
    assert summary.rejected == {"/ (json)": 1, "/emptyIndicatorCode (enum)": 1} and summary.balanced
    assert summary.unchecked_container_ids == 1
    assert [w for w, _ in rejected] == [f"{tmp_path / 'lines.jsonl'}:2", f"{tmp_path / 'list.json'}[6]"]
    assert store.histories(["MSCU6639871"])["MSCU6639871"][0].equipment_check_digit_ok is False


def test_csm_load_command(tmp_path, redis_server, redis_client):
    (tmp_path / "feed").mkdir()
    (tmp_path / "feed" / "events.json").write_text(EXAMPLES.read_text())
    runner = CliRunner()
    args = ["csm", "load", str(tmp_path / "feed"), "--redis-url", redis_server.url,
            "--rejected", str(tmp_path / "rejected.jsonl")]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "read 7 = loaded 7 + duplicates 0 + rejected 0" in first.output
    again = runner.invoke(main, args)
    assert again.exit_code == 0 and "read 7 = loaded 0 + duplicates 7 + rejected 0" in again.output
    assert (tmp_path / "rejected.jsonl").read_text() == ""


def test_embedded_store_keeps_its_events_across_restarts(tmp_path):
    with EmbeddedRedis(tmp_path) as server:
        ContainerEventStore(connect(server.url)).add([normalize(equipment_event())])
    with EmbeddedRedis(tmp_path) as server:
        assert len(ContainerEventStore(connect(server.url)).histories(["MSCU6639870"])["MSCU6639870"]) == 1


def test_fast_path_agrees_with_the_definition_as_written(checker):
    """The flattened, compiled schemas accept exactly what jsonschema on the original definition accepts."""
    import random

    rnd = random.Random(7)
    values = [None, 7, -1, "X", "", [], {}, "2026-13-40T00:00:00Z", "LADEN", "ACT", {"UNLocationCode": "NLRTM"}]
    checked = 0
    for event in EXAMPLE_EVENTS + [equipment_event(), equipment_event(code="GTIN", classifier="PLN")]:
        for _ in range(80):
            mutated = copy.deepcopy(event)
            target = mutated
            if isinstance(mutated.get("transportCall"), dict) and rnd.random() < 0.3:
                target = mutated["transportCall"]
            key = rnd.choice(sorted(target))
            if rnd.random() < 0.3:
                target.pop(key)
            else:
                target[key] = rnd.choice(values)
            event_type = mutated.get("eventType")
            if not isinstance(event_type, str) or event_type not in checker._fast:
                continue
            try:
                checker._fast[event_type](mutated)
                fast_ok = True
            except Exception:
                fast_ok = False
            assert fast_ok == (not list(checker._full[event_type].iter_errors(mutated))), mutated
            checked += 1
    assert checked > 500


def test_live_feed_from_a_redis_stream(checker, redis_client):
    from cargoscreen.container_feed import follow_stream, rejected_to_stream

    store = ContainerEventStore(redis_client)
    good = [equipment_event(when=f"2026-11-0{d}T10:00:00Z") for d in range(1, 6)]
    bad = dict(good[0], eventID=str(uuid.uuid4()), emptyIndicatorCode="HALF")
    for e in good + [bad]:
        redis_client.xadd("feed", {"event": json.dumps(e)})
    redis_client.xadd("feed", {"event": "{broken"})
    # A loader that crashed after reading two entries, before acknowledging them:
    redis_client.xgroup_create("feed", "loaders", id="0")
    redis_client.xreadgroup("loaders", "loader-1", {"feed": ">"}, count=2)

    def follow():
        return follow_stream(redis_client, "feed", "loaders", "loader-1", checker, store,
                             rejected_to_stream(redis_client, "feed"), batch_size=3, once=True)

    summary = follow()
    assert (summary.read, summary.loaded, summary.duplicates, sum(summary.rejected.values())) == (7, 5, 0, 2)
    assert redis_client.xpending("feed", "loaders")["pending"] == 0  # everything acknowledged
    rejected = [json.loads(f[b"record"]) for _, f in redis_client.xrange("feed:rejected")]
    assert [r["reasons"][0].split(":")[0] for r in rejected] == ["/emptyIndicatorCode", "/"]
    assert len(store.histories(["MSCU6639870"])["MSCU6639870"]) == 5
    # The same events again (a sender's retry): duplicates, not new history.
    for e in good:
        redis_client.xadd("feed", {"event": json.dumps(e)})
    again = follow()
    assert (again.read, again.loaded, again.duplicates) == (5, 0, 5)


def test_csm_follow_command(redis_server, redis_client):
    for e in EXAMPLE_EVENTS:
        redis_client.xadd("cs:csm:events", {"event": json.dumps(e)})
    result = CliRunner().invoke(main, ["csm", "follow", "--redis-url", redis_server.url, "--once"])
    assert result.exit_code == 0, result.output
    assert "read 7 = loaded 7 + duplicates 0 + rejected 0" in result.output


def test_a_batch_of_histories_is_one_script_call_and_one_mget_and_reads_as_each_index_and_event(store, redis_client):
    """Generated traffic's feed: a batch's histories and plans read with one script call (every index) and one
    MGET (every event) on a single Redis, and equal, container by container, to its indexes read one by one
    (ZRANGE of each classifier's newest, GET of each event), merged in event-time order."""
    from cargoscreen.domain.container_events import ContainerEvent
    from cargoscreen.generator import GeneratorSpec, generate
    from cargoscreen.status_generator import StatusSpec, generate_status

    spec = GeneratorSpec(count=120, seed=8, risk_rate=0.1)
    events = [normalize(e) for history, _ in generate_status(generate(spec), StatusSpec(seed=8, anomaly_rate=0.2))
              for e in history]
    store.add(events)
    containers = sorted({e.equipment for e in events if e.equipment}) + ["NOPE1234567"]
    store.histories_and_plans(containers[:1])  # the script loaded
    redis_client.config_resetstat()
    held = store.histories_and_plans(containers)
    calls = {k[len("cmdstat_"):]: v["calls"] for k, v in redis_client.info("commandstats").items()}
    assert calls["evalsha"] == 1 and calls["mget"] == 1 and calls["zrange"] == 3 * len(containers)  # in the script
    one_by_one = {}
    for c in containers:
        ids = [i.decode() for k in ("ACT", "EST", "PLN") for i in redis_client.zrange(f"cs:eq:{{{c}}}:{k}", -500, -1)]
        one_by_one[c] = sorted((ContainerEvent.from_json(redis_client.get(f"cs:ev:{{{c}}}:{i}")) for i in ids),
                               key=lambda e: e.event_time)
    assert held == one_by_one and len(containers) > 50 and sum(map(len, held.values())) > 250
