"""The enrichment stage on Beam with a real Redis: planted anomalies found, clean containers quiet,
and when the store is down, filings go on with an explicit fact and nothing is lost."""
from __future__ import annotations

import json
import threading
import time

import pytest

from cargoscreen.cli import load_feed
from cargoscreen.corpus import write_container_status, write_corpus
from cargoscreen.config import ContainerStatusSettings, RedisSettings, Settings
from cargoscreen.connectors.redis_store import connect, with_retries
from cargoscreen.linking import member_of, standalone
from cargoscreen.container_store import ContainerEventStore
from cargoscreen.domain.reference import bundled_reference
from cargoscreen.domain.enrichment import INFORMATIONAL_FACTS
from cargoscreen.enrichment import AVAILABLE, UNAVAILABLE, enrich
from cargoscreen.generator import GeneratorSpec, generate
from cargoscreen.connectors.files import read_json_lines
from cargoscreen.job import run_batch
from cargoscreen.status_generator import ANOMALIES
from cargoscreen.validation import Submission

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def enriched_run(tmp_path_factory, redis_server):
    root = tmp_path_factory.mktemp("enrich")
    write_corpus(root, count=500, seed=41)
    write_container_status(root, count=500, seed=41, anomaly_rate=0.35)
    url = redis_server.url
    connect(url).flushall()
    loaded, _, _ = load_feed([root / "container-events.jsonl"], url, root / "rejected.jsonl")
    summary = run_batch(Settings().with_redis_url(url), root / "filings", root / "out")
    labels = {(x["file"], x["container"]): x["anomaly"] for x in map(json.loads, (root / "container-labels.jsonl").open())}
    return summary, loaded, labels, read_json_lines(root / "out" / "enriched"), read_json_lines(root / "out" / "answers")


def test_every_planted_anomaly_is_found_and_clean_containers_stay_quiet(enriched_run):
    summary, loaded, labels, enriched, _ = enriched_run
    found, planted_kinds, quiet = [], set(), 0
    for e in enriched:
        assert e["container_status"] in (AVAILABLE, "no-containers")
        for c in e["containers"]:
            # a consignment's containers are labelled with the filing that declares them
            anomaly = next(labels[(sid, c)] for sid in e["filings"] if (sid, c) in labels)
            kinds = {f["kind"] for f in e["facts"] if f["container"] == c} - INFORMATIONAL_FACTS
            if anomaly is None:
                assert kinds == set(), (e["submission_id"], c, kinds)
                quiet += 1
            else:
                assert anomaly in kinds, (e["submission_id"], c, anomaly, kinds)
                found.append(anomaly)
                planted_kinds.add(anomaly)
    assert planted_kinds == set(ANOMALIES) and quiet > 100
    assert sum(summary.facts.values()) >= len(found)
    assert loaded.unchecked_container_ids > 0 and loaded.balanced  # the feed's own bad ids: loaded, counted


def test_facts_point_at_stored_events(enriched_run, redis_server):
    _, _, _, enriched, _ = enriched_run
    store = ContainerEventStore(connect(redis_server.url))
    sample = next(e for e in enriched if any(f["kind"] == "route-sailed" for f in e["facts"]))
    route = next(f for f in sample["facts"] if f["kind"] == "route-sailed")
    history = store.histories([route["container"]])[route["container"]]
    assert set(route["events"]) <= {ev.event_id for ev in history}


def test_each_new_registration_is_enriched_once_in_its_consignment_or_waits_for_it(enriched_run):
    summary, _, _, enriched, answers = enriched_run
    registered = {a["mrn"] for a in answers if a["message_type"] == "IE3R01"}
    waiting = {a["mrn"] for a in answers if a["message_type"] in ("IE3N02", "IE3N11")}
    # A postal item is assessed with its dispatch: the dispatch is in each of its items' consignments.
    in_consignments = [sid for e in enriched for sid in (e["filings"][:1] if e["consignment"].startswith("postal:")
                                                         else e["filings"])]
    dispatches = {sid for e in enriched if e["consignment"].startswith("postal:") for sid in e["filings"][1:]}
    by_submission = {a["submission_id"]: a["mrn"] for a in answers if a["message_type"] == "IE3R01"}
    assessed = [by_submission[sid] for sid in in_consignments]
    assert len(assessed) == len(set(assessed))  # no filing in two consignments, none assessed twice
    assessed += [by_submission[sid] for sid in dispatches]
    assert set(assessed) | waiting == registered  # a filing may wait first, then be assessed with its consignment
    assert summary.enriched == len(enriched) and any(len(e["filings"]) > 1 for e in enriched)


def test_store_down_gives_an_explicit_fact_and_loses_nothing(tmp_path, redis_server):
    write_corpus(tmp_path, count=120, seed=42, defect_rate=0, envelope_rate=0)
    settings = Settings(redis=RedisSettings(url=redis_server.url, retries=2, backoff_seconds=0.01),
                        container_status=ContainerStatusSettings(redis_url=f"unix://{tmp_path}/gone.sock"))
    summary = run_batch(settings, tmp_path / "filings", tmp_path / "out")
    enriched = read_json_lines(tmp_path / "out" / "enriched")
    with_containers = [e for e in enriched if e["containers"]]
    assert summary.balanced and summary.dead_lettered == 0 and summary.enriched == len(enriched)
    assert with_containers and summary.container_status_unavailable == len(with_containers)
    for e in with_containers:
        assert e["container_status"] == UNAVAILABLE
        assert {f["container"] for f in e["facts"] if f["kind"] == UNAVAILABLE} == set(e["containers"])


def _accepted_with_containers(validator, n=30):
    filings = generate(GeneratorSpec(count=300, seed=43, defect_rate=0, envelope_rate=0, resubmission_rate=0,
                                     modes=("sea",)))
    outcomes = [validator.validate(Submission(f.name, f.data)) for f in filings]
    return [standalone(member_of(o, f"MRN{i}")) for i, o in enumerate(outcomes)
            if o.record and o.record.containers][:n]


def test_a_restarted_redis_is_read_again_and_a_short_outage_is_bridged_by_retries(validator, redis_process, tmp_path):
    from cargoscreen.status_generator import StatusSpec, generate_status

    batch = _accepted_with_containers(validator)
    store = ContainerEventStore(connect(redis_process.url))
    filings = [f for f in generate(GeneratorSpec(count=300, seed=43, defect_rate=0, envelope_rate=0,
                                                 resubmission_rate=0, modes=("sea",)))]
    from cargoscreen.connectors.dcsa import DcsaEventChecker
    from cargoscreen.container_feed import load_events

    items = [("g", e) for events, _ in generate_status(filings, StatusSpec(seed=43, anomaly_rate=0.3)) for e in events]
    load_events(items, DcsaEventChecker(), store, on_rejected=lambda *a: None)
    retry = RedisSettings(retries=6, backoff_seconds=0.05)

    def run():
        fetch_store = ContainerEventStore(connect(redis_process.url))
        return enrich(batch, lambda ids: with_retries(retry, lambda: fetch_store.histories(ids)), bundled_reference())

    before = run()
    assert {e.container_status for e in before} == {AVAILABLE}

    redis_process.stop()
    down = enrich(batch, lambda ids: with_retries(RedisSettings(retries=1, backoff_seconds=0.01),
                                                   lambda: ContainerEventStore(connect(redis_process.url)).histories(ids)),
                  bundled_reference())
    assert {e.container_status for e in down} == {UNAVAILABLE} and len(down) == len(batch)

    restarter = threading.Timer(0.3, redis_process.start)  # back within the retries' backoff (~3 s in all)
    restarter.start()
    started = time.perf_counter()
    after = run()
    restarter.join()
    assert time.perf_counter() - started >= 0.3
    assert [e.facts for e in after] == [e.facts for e in before]  # same facts: the data came back with the server


def test_declared_values_reach_the_rules_in_euros_at_the_rate_of_the_filings_day(validator):
    from datetime import datetime, timezone

    from cargoscreen.domain.currency import bundled_euro_rates

    filing = next(f for f in generate(GeneratorSpec(count=50, seed=5, defect_rate=0, envelope_rate=0,
                                                    resubmission_rate=0, modes=("sea",)))
                  if b'currency="EUR"' in f.data)
    in_dollars = filing.data.replace(b'currency="EUR"', b'currency="USD"')
    outcome = validator.validate(Submission(filing.name, in_dollars))
    (enriched,) = enrich([standalone(member_of(outcome, "MRN1"))], lambda ids: {}, bundled_reference())
    day = datetime.fromtimestamp(enriched.record.issued_at, timezone.utc).date()
    rate = bundled_euro_rates().rate("USD", day)
    priced = [g for g in enriched.record.goods if g.value is not None]
    assert priced and all(g.currency == "USD" for g in priced)
    assert [g.value_eur for g in priced] == [round(g.value / rate, 2) for g in priced]
