"""The batch pipeline on Beam's FnApiRunner with a real Redis: every submission leaves through one door."""
from __future__ import annotations

import base64
import json
from collections import Counter

import pytest
from lxml import etree

from cargoscreen import resources
from cargoscreen.corpus import write_corpus
from cargoscreen.config import RedisSettings, Settings
from cargoscreen.domain.filings import ANSWERS_NS
from cargoscreen.connectors.files import read_json_lines
from cargoscreen.answering import PENDING_ANSWERS
from cargoscreen.decisions import ASSESSMENT_ANSWERS
from cargoscreen.job import run_batch
from cargoscreen.schemas import SchemaRegistry

pytestmark = pytest.mark.slow
ASSESSMENT_TYPES = set(ASSESSMENT_ANSWERS.values())


@pytest.fixture(scope="module")
def batch_run(tmp_path_factory, redis_server):
    root = tmp_path_factory.mktemp("batch")
    write_corpus(root, count=400, seed=77, defect_rate=0.15, envelope_rate=0.04, resubmission_rate=0.03)
    (root / "filings" / "unreadable.xml").symlink_to(root / "does-not-exist.xml")  # a file that cannot be read
    settings = Settings().with_redis_url(redis_server.url)
    summary = run_batch(settings, root / "filings", root / "out")
    labels = {json.loads(line)["file"]: json.loads(line) for line in (root / "labels.jsonl").open()}
    answers = read_json_lines(root / "out" / "answers")
    door = [a for a in answers if a["message_type"] not in ASSESSMENT_TYPES | set(PENDING_ANSWERS)]
    return summary, labels, door, read_json_lines(root / "out" / "dead-letters"), \
        [a for a in answers if a["message_type"] in ASSESSMENT_TYPES], read_json_lines(root / "out" / "decisions"), \
        [a for a in answers if a["message_type"] in PENDING_ANSWERS]


def test_inputs_equal_accepted_plus_rejected_plus_dead_lettered(batch_run):
    summary, labels, answers, dead, *_ = batch_run
    assert summary.inputs == 401
    assert summary.balanced
    assert len(answers) == summary.accepted + summary.rejected and len(dead) == summary.dead_lettered == 1
    ids = Counter(a["submission_id"] for a in answers) + Counter(d["submission_id"] for d in dead)
    assert set(ids) == set(labels) | {"unreadable.xml"} and set(ids.values()) == {1}  # exactly one door each


def test_answers_match_the_ground_truth(batch_run):
    summary, labels, answers, dead, *_ = batch_run
    for a in answers:
        expected = labels[a["submission_id"]]["expected"]
        assert a["message_type"] == ("IE3R01" if expected == "registered" else "IE3N99"), a["submission_id"]
    assert summary.answers["IE3R01"] == sum(label["expected"] == "registered" for label in labels.values())


def test_every_emitted_answer_validates(batch_run):
    registry = SchemaRegistry.from_dirs([resources.schema_dir()])
    for a in batch_run[2] + batch_run[4]:
        tree = etree.fromstring(a["xml"].encode()).getroottree()
        assert registry.lookup(ANSWERS_NS, a["message_type"]).violations(tree) == [], a["submission_id"]


def test_error_notifications_name_every_planted_defect(batch_run):
    _, labels, answers, *_ = batch_run
    for a in answers:
        label = labels[a["submission_id"]]
        if a["message_type"] != "IE3N99":
            continue
        codes = {c.text for c in etree.fromstring(a["xml"].encode()).iter("{%s}Code" % ANSWERS_NS)}
        assert {d["code"] for d in label["defects"]} <= codes, a["submission_id"]


def test_resent_filings_get_the_mrn_of_the_original(batch_run):
    _, labels, answers, *_ = batch_run
    by_id = {a["submission_id"]: a for a in answers}
    resent = [label for label in labels.values() if label.get("resubmission_of")]
    assert resent
    for label in resent:
        assert by_id[label["file"]]["mrn"] == by_id[label["resubmission_of"]]["mrn"]
    mrns = [a["mrn"] for a in answers if a["message_type"] == "IE3R01"]
    assert len(set(mrns)) == len(mrns) - len(resent)


def test_dead_letters_keep_their_reason(batch_run):
    [dead] = batch_run[3]
    assert dead["submission_id"] == "unreadable.xml" and dead["stage"] == "read" and "unreadable" in dead["reason"]


def test_redis_down_dead_letters_the_accepted_and_still_answers_the_rejected(tmp_path):
    write_corpus(tmp_path, count=60, seed=5, defect_rate=0.2, envelope_rate=0, resubmission_rate=0)
    settings = Settings(redis=RedisSettings(url=f"unix://{tmp_path}/no-redis.sock", retries=1, backoff_seconds=0.01))
    summary = run_batch(settings, tmp_path / "filings", tmp_path / "out")
    dead = read_json_lines(tmp_path / "out" / "dead-letters")
    assert summary.accounted and summary.inputs == 60
    assert summary.dead_lettered == len(dead) > 0 and summary.answers.get("IE3R01", 0) == 0
    assert summary.answers["IE3N99"] == 60 - len(dead)
    assert all(d["stage"] == "register" and "unavailable" in d["reason"] and d["payload_base64"]
               and d["cause"] == "redis-unreachable" for d in dead)
    # Whose each one is: the filer its filing names (no channel authenticated these files)
    assert all(f"<ens:IdentificationNumber>{d['filer']}<".encode() in base64.b64decode(d["payload_base64"]) for d in dead)
    assert summary.lost == {"redis-unreachable": len(dead)} and not summary.balanced  # lost work is no success


def test_a_valid_message_of_another_schema_set_is_rejected_not_registered(tmp_path, redis_server):
    from .conftest import OTHER_SCHEMAS

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "invoice.xml").write_text("<Invoice><Number>INV-000001</Number><Amount>3</Amount></Invoice>")
    settings = Settings(extra_schema_dirs=(OTHER_SCHEMAS,)).with_redis_url(redis_server.url)
    summary = run_batch(settings, tmp_path / "in", tmp_path / "out")
    [answer] = read_json_lines(tmp_path / "out" / "answers")
    assert summary.balanced and summary.answers == {"IE3N99": 1}
    assert "NOT_AN_ENS_FILING" in answer["xml"]


def test_every_newly_registered_filing_gets_one_decision_and_its_answer(batch_run):
    summary, labels, answers, _, assessment_answers, decisions, pending = batch_run
    registered = {a["submission_id"] for a in answers if a["message_type"] == "IE3R01"}
    first_filings = {s for s in registered if not labels[s].get("resubmission_of")}
    # Each first filing is decided once, in its consignment, unless that consignment is still incomplete;
    # a postal dispatch is in the decision of each of its items, which are answered about the items.
    in_decisions = Counter(f for d in decisions for f in _filings_of(d, answers, first_filings, dispatches=False))
    dispatches = {f for d in decisions for f in _filings_of(d, answers, first_filings, dispatches=True)}
    waiting = {a["submission_id"] for a in pending}
    assert set(in_decisions.values()) == {1} and set(in_decisions) | dispatches | waiting == first_filings
    assert Counter(a["submission_id"] for a in assessment_answers) == in_decisions  # one answer per filing
    expected_type = {sid: ASSESSMENT_ANSWERS[d["decision"]] for d in decisions
                     for sid in _filings_of(d, answers, first_filings, dispatches=False)}
    assert all(a["message_type"] == expected_type[a["submission_id"]] for a in assessment_answers)
    assert summary.assessed == len(decisions) and sum(summary.decisions.values()) == len(decisions)
    assert all(d["rule_pack"].startswith("ics2-starter@") for d in decisions)


def _filings_of(decision: dict, answers: list[dict], first_filings: set[str], dispatches: bool) -> list[str]:
    """The decision's filings: its postal dispatches, or the others."""
    by_mrn = {a["mrn"]: a["submission_id"] for a in answers
              if a["message_type"] == "IE3R01" and a["submission_id"] in first_filings}
    return [by_mrn[f["mrn"]] for f in decision["filings"] if (f["filing_code"] == "F42") == dispatches]


def test_the_batch_job_runs_unchanged_on_the_portable_runner(tmp_path, redis_client, redis_server, job_service):
    write_corpus(tmp_path, count=150, seed=3, defect_rate=0.1, risk_rate=0.1)
    settings = Settings().with_redis_url(redis_server.url)
    portable = run_batch(settings, tmp_path / "filings", tmp_path / "portable", runner="PortableRunner",
                         options=[f"--job_endpoint={job_service}", "--environment_type=LOOPBACK"])
    redis_client.flushall()  # the same filings again, as new, on the local default runner
    local = run_batch(settings, tmp_path / "filings", tmp_path / "local")
    assert portable.balanced and portable.inputs == 150 and portable.assessed > 80
    assert (portable.answers, portable.decisions, portable.rule_hits) == (local.answers, local.decisions, local.rule_hits)

    def outcomes(folder):
        return {d["submission_id"]: (d["decision"], d["score"], [h["rule"] for h in d["hits"]])
                for d in read_json_lines(tmp_path / folder / "decisions")}
    assert outcomes("portable") == outcomes("local")


def test_a_stream_entry_without_a_filing_is_dead_lettered_with_its_authenticated_filer():
    from cargoscreen.answering import dead_letter_body
    from cargoscreen.connectors.redis_streams import entry_submission

    dead = entry_submission("cs:{r0}:filings", b"1700000000000-0", {b"filer": b"NL123456789", b"id": b"x"})
    body = dead_letter_body(dead)
    assert (body["stage"], body["filer"]) == ("read", "NL123456789") and "no 'filing' field" in body["reason"]
    assert "filer" not in dead_letter_body(entry_submission("cs:{r0}:filings", b"1-0", {b"id": b"y"}))
