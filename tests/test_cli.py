"""The cargoscreen command, as a carrier or operator uses it: what it writes, how it fails (one line
and a documented exit code), how its output reads in a file or a pipe."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cargoscreen.cli import main
from cargoscreen.connectors.files import read_json_lines
from cargoscreen.connectors.redis_store import connect
from cargoscreen.exits import Exit

from .conftest import OTHER_SCHEMAS, RedisProcess, started_by

CARGOSCREEN = str(Path(sys.executable).parent / "cargoscreen")  # the installed command, as a user runs it
STARTER = Path(__file__).parents[1] / "rules" / "risk" / "ics2-starter"
UNREACHABLE = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def cargoscreen(*args: str, **env: str) -> subprocess.CompletedProcess:
    """The command in a process of its own, its output through pipes (not a terminal)."""
    return subprocess.run([CARGOSCREEN, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def failed_in_one_line(result: subprocess.CompletedProcess, code: int, *words: str) -> None:
    lines = result.stderr.splitlines()
    assert result.returncode == code, (result.returncode, result.stderr[-3000:])
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert all(w in lines[0] for w in words), lines[0]


def test_generate_is_deterministic_and_writes_labels(tmp_path):
    runner = CliRunner()
    for name in ("a", "b"):
        result = runner.invoke(main, ["generate", "--out", str(tmp_path / name), "--count", "40", "--seed", "3"])
        assert result.exit_code == 0, result.output
    files_a = sorted(p.name for p in (tmp_path / "a" / "filings").iterdir())
    assert len(files_a) == 40
    for name in files_a:
        assert (tmp_path / "a" / "filings" / name).read_bytes() == (tmp_path / "b" / "filings" / name).read_bytes()
    labels = [json.loads(line) for line in (tmp_path / "a" / "labels.jsonl").open()]
    assert [label["file"] for label in labels] == files_a


def test_validate_reports_and_sets_the_exit_status(tmp_path):
    runner = CliRunner()
    runner.invoke(main, ["generate", "--out", str(tmp_path), "--count", "60", "--seed", "8", "--defect-rate", "0.3"])
    labels = [json.loads(line) for line in (tmp_path / "labels.jsonl").open()]
    good = [tmp_path / "filings" / label["file"] for label in labels if label["expected"] == "registered"][:3]
    bad = next(tmp_path / "filings" / label["file"] for label in labels if label["defects"]
               and label["defects"][0]["layer"] != "envelope")
    ok = runner.invoke(main, ["validate", *map(str, good)])
    assert ok.exit_code == 0 and ok.output.count("ACCEPTED") == 3
    rejected = runner.invoke(main, ["validate", str(good[0]), str(bad)])
    assert rejected.exit_code == 1 and "REJECTED" in rejected.output and "1 accepted, 1 rejected" in rejected.output
    as_json = runner.invoke(main, ["validate", "--json", str(bad)])
    [report] = json.loads(as_json.output)
    assert as_json.exit_code == 1 and not report["accepted"]
    assert all(e["pointer"].startswith("/") and e["reason"] and e["line"] for e in report["errors"])


def test_validate_answers_as_the_pipeline_validates(tmp_path):
    """`validate --json` (answers only: no screening record, no digest) accepts and rejects what the
    pipeline's validator does, with the same errors, on a corpus with defects and hostile XML."""
    from cargoscreen.config import Settings
    from cargoscreen.validation import FilingValidator, Submission

    runner = CliRunner()
    runner.invoke(main, ["generate", "--out", str(tmp_path), "--count", "150", "--seed", "21", "--defect-rate", "0.3",
                         "--envelope-rate", "0.05"])
    result = runner.invoke(main, ["validate", "--json", str(tmp_path / "filings")])
    reports = {Path(r["file"]).name: r for r in json.loads(result.output)}
    pipeline_validator = FilingValidator(Settings())
    rejected = 0
    for path in sorted((tmp_path / "filings").glob("*.xml")):
        outcome = pipeline_validator.validate(Submission(path.name, path.read_bytes()))
        report = reports[path.name]
        assert report["accepted"] == outcome.accepted, path.name
        assert [(e["code"], e["pointer"], e["line"]) for e in report["errors"]] == \
            [(e.code, e.pointer, e.line) for e in outcome.errors], path.name
        rejected += not outcome.accepted
    assert len(reports) == 150 and 20 < rejected < 150 and result.exit_code == 1


def test_validate_starts_without_beam_redis_or_the_rule_language(tmp_path):
    """The command line imports a subcommand's heavy modules when it is named: `validate --json` starts
    without Beam, Redis, the rule language, the workbench, rich, the enrichment's facts or stdnum (a
    bad check digit imports it), and answers whether a UN/LOCODE exists without reading the code
    list's rows (its codes file suffices)."""
    from cargoscreen.generator import GeneratorSpec, generate

    (tmp_path / "f.xml").write_text("<Invoice/>")
    for f in generate(GeneratorSpec(count=20, seed=4, defect_rate=0.0, envelope_rate=0.0)):
        (tmp_path / f.name).write_bytes(f.data)
    probe = ("import sys\nfrom cargoscreen.cli import main\n"
             "try:\n    main(['validate', '--json', sys.argv[1]])\nexcept SystemExit:\n    pass\n"
             "from cargoscreen.domain.reference import bundled_reference\n"
             "print('rows read:', bundled_reference().locations._rows is not None)\n"
             "heavy = ('apache_beam', 'redis', 'cargoscreen.domain.conditions', 'cargoscreen.workbench', 'duckdb',\n"
             "         'rich', 'cargoscreen.domain.enrichment', 'stdnum')\n"
             "print(sorted({m.split('.')[0] if not m.startswith('cargoscreen') else m for m in sys.modules\n"
             "              if m.startswith(heavy)}))\n")
    loaded = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, check=True)
    *_, rows, modules = loaded.stdout.strip().splitlines()
    assert '"accepted": true' in loaded.stdout and modules == "[]", loaded.stdout
    assert rows == "rows read: False"
    assert "workbench" in CliRunner().invoke(main, ["--help"]).output  # the lazy ones are still listed


def test_validate_with_an_added_schema_folder(tmp_path):
    invoice = tmp_path / "invoice.xml"
    invoice.write_text("<Invoice><Number>INV-000001</Number><Amount>3</Amount></Invoice>")
    runner = CliRunner()
    assert runner.invoke(main, ["validate", str(invoice)]).exit_code == 1  # unknown without the folder
    result = runner.invoke(main, ["validate", "--schemas", str(OTHER_SCHEMAS), str(invoice)])
    assert result.exit_code == 0, result.output


def test_a_second_run_keeps_the_first_runs_results_and_reports_the_resent_filings(tmp_path):
    """Run twice into one --output with its embedded Redis: each run writes a folder of its own
    (Beam's sinks would replace the first run's files), `latest` points at the second, and the
    second's summary says its filings were re-sends, answered again and not assessed again."""
    CliRunner().invoke(main, ["generate", "--out", str(tmp_path / "corpus"), "--count", "50", "--seed", "12",
                              "--resubmission-rate", "0"])
    runs = [cargoscreen("run", "--input", str(tmp_path / "corpus" / "filings"), "--output", str(tmp_path / "out"))
            for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[-1].stderr[-3000:]
    first, second = sorted((tmp_path / "out").glob("run-*"))
    assert (tmp_path / "out" / "latest").resolve() == second.resolve()
    first_summary, second_summary = (json.loads((d / "summary.json").read_text()) for d in (first, second))
    decided = sum(1 for f in (first / "decisions").glob("*.jsonl") for _ in f.open())
    assert decided == first_summary["assessed"] > 0 and first_summary["resent"] == 0
    assert second_summary["resent"] == second_summary["accepted"] == first_summary["accepted"]
    assert second_summary["assessed"] == 0 and second_summary["balanced"]
    assert f"{second_summary['accepted']} of the accepted filings were re-sends" in runs[1].stdout
    # In a pipe the summary's lines are whole (rich cut them at 80 columns).
    assert re.search(r"^inputs 50 = accepted \d+ \+ rejected \d+ \+ dead-lettered 0: balanced .* filings/s\)$",
                     runs[1].stdout, re.M), runs[1].stdout
    assert not started_by("", str(tmp_path / "out"))  # the embedded redis-server stopped with each run


def test_a_run_that_lost_filings_to_a_full_redis_says_so_and_exits_6(tmp_path):
    """Redis fills up mid-run (noeviction, as a store that must not drop registrations runs): the
    filings it refused are dead-lettered with their cause, the summary line says how many were lost
    and why, summary.json does not call the run balanced, and the exit code is not 0."""
    CliRunner().invoke(main, ["generate", "--out", str(tmp_path / "corpus"), "--count", "120", "--seed", "31",
                              "--resubmission-rate", "0"])
    server = RedisProcess(tmp_path, "--maxmemory-policy", "noeviction").start()
    try:
        client = connect(server.url)
        client.config_set("maxmemory", int(client.info("memory")["used_memory"]) + 100_000)  # room for part of the run
        result = cargoscreen("run", "--input", str(tmp_path / "corpus" / "filings"), "--output", str(tmp_path / "out"),
                             "--redis-url", server.url)
    finally:
        server.stop()
    assert result.returncode == Exit.LOST, (result.returncode, result.stdout[-3000:], result.stderr[-3000:])
    summary = json.loads((tmp_path / "out" / "latest" / "summary.json").read_text())
    dead = read_json_lines(tmp_path / "out" / "latest" / "dead-letters")
    lost = [d for d in dead if d.get("cause") == "redis-refused"]
    assert not summary["balanced"] and summary["lost"] == {"redis-refused": len(lost)} and len(lost) > 0
    assert summary["inputs"] == summary["accepted"] + summary["rejected"] + summary["dead_lettered"] == 120
    line = next(x for x in result.stdout.splitlines() if x.startswith("inputs 120 = "))
    assert f"NOT BALANCED: {len(lost)} filings lost to Redis" in line and "out of memory" in line \
        and "command not allowed when used" in line, line


def test_a_service_run_that_lost_filings_to_redis_says_so_and_exits_6(tmp_path):
    """The service's account may not run the registration's INCR (an ACL set up wrong): every filing it
    would register is dead-lettered on the stream with its cause, and `run --once` says how many were
    lost and why, and exits 6 instead of 0."""
    from cargoscreen.connectors.redis_streams import StreamKeys
    from cargoscreen.generator import GeneratorSpec, generate

    server = RedisProcess(tmp_path).start()
    try:
        client = connect(server.url)
        client.acl_setuser("screening", enabled=True, passwords=["+pw"], keys=["*"], channels=["*"],
                           commands=["+@all", "-incr"])
        filings = list(generate(GeneratorSpec(count=40, seed=3, resubmission_rate=0)))
        for f in filings:
            client.xadd(StreamKeys().filings, {"filing": f.data, "id": f.name})
        result = cargoscreen("run", "--once", "--consumer", "w0", "--redis-url", f"unix://screening:pw@{server.socket}")
        dead = [json.loads(f[b"body"]) for _, f in client.xrange("cs:dead-letters")]
    finally:
        server.stop()
    assert result.returncode == Exit.LOST, (result.returncode, result.stderr[-3000:])
    assert dead and all(d["cause"] == "redis-refused" and "can't run this command" in d["reason"] for d in dead)
    assert result.stderr.strip().splitlines()[-1] == (
        f"cargoscreen run: {len(dead)} filings lost to Redis, dead-lettered unanswered or undecided (the dead-letter "
        f"stream keeps each with its cause): {len(dead)} because Redis refused a command (out of memory, read-only "
        "replica, no permission)")


def test_the_demo_runs_the_whole_flow_again_and_prints_whole_answers(tmp_path):
    """What `make demo` runs, smaller: generate, screen with an embedded Redis, compare with the ground
    truth. Run again, it regenerates its sample data and keeps the first run's results. Captured (not a
    terminal), an answer's XML is printed whole: no element cut across two lines."""
    demo = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--out", str(demo), "--count", "80", "--seed", "4"])
    assert result.exit_code == 0, result.output
    assert "balanced" in result.output and "agree with the ground truth for 80 of 80" in result.output
    assert "IE3R01" in result.output and "IE3N99" in result.output
    xml = [line.strip() for line in result.output.splitlines() if line.strip().startswith("<")]
    assert len(xml) > 20 and all(line.endswith(">") for line in xml), [x for x in xml if not x.endswith(">")]
    # It explains itself: the counts add up, the enriched record has its heading, and the planted container
    # anomalies that were not referred are named with their score.
    counts = re.search(r"(\d+) registrations = (\d+) new filings \+ (\d+) re-sends .* make (\d+) assessments: (\d+) "
                       r"filings on their own, (\d+) consignments of several filings", result.output)
    assert counts, result.output
    registrations, new, resent, assessed, alone, together = map(int, counts.groups())
    assert registrations == new + resent and assessed == alone + together
    assert "one enriched filing" in result.output and "honest but unusual" in result.output
    again = CliRunner().invoke(main, ["demo", "--out", str(demo), "--count", "30", "--seed", "4"])
    assert again.exit_code == 0 and "agree with the ground truth for 30 of 30" in again.output, again.output
    first, second = sorted((demo / "results").glob("run-*"))
    assert json.loads((first / "summary.json").read_text())["inputs"] == 80
    assert json.loads((demo / "results" / "latest" / "summary.json").read_text())["inputs"] == 30


def test_generate_and_demo_refuse_to_write_over_a_corpus_unless_told(tmp_path):
    runner = CliRunner()
    assert runner.invoke(main, ["generate", "--out", str(tmp_path), "--count", "30"]).exit_code == 0
    for command in (["generate", "--out", str(tmp_path), "--count", "10"], ["demo", "--out", str(tmp_path)]):
        refused = runner.invoke(main, command)
        assert refused.exit_code == Exit.USAGE and "already holds filings, labels.jsonl" in refused.output
        assert "--replace" in refused.output and len(list((tmp_path / "filings").iterdir())) == 30
    replaced = runner.invoke(main, ["generate", "--out", str(tmp_path), "--count", "10", "--replace"])
    assert replaced.exit_code == 0 and len(list((tmp_path / "filings").iterdir())) == 10
    assert len((tmp_path / "labels.jsonl").read_text().splitlines()) == 10


@pytest.mark.parametrize("command", [
    ["run", "--input", "{filings}", "--output", "{tmp}/out"],
    ["run", "--once"],
    ["health", "--consumer", "w1"],
    ["metrics", "targets"],
    ["csm", "load", "{events}"],
    ["csm", "follow", "--once"],
    ["rules", "publish", str(STARTER)],
    ["rules", "status"],
    ["rules", "report", "--out", "{tmp}/report"],
    ["workbench", "list", "--centre", "RC-NL"],
    ["workbench", "keep"],
    ["riskinfo", "list"],
    ["ingress", "serve", "--tokens", "{tmp}/tokens"],
], ids=lambda c: " ".join(w for w in c[:2] if not w.startswith(("-", "{", "/"))))
def test_an_unreachable_redis_is_one_line_and_exit_4(command, tmp_path):
    (tmp_path / "filings").mkdir()
    (tmp_path / "filings" / "a.xml").write_text("<a/>")
    (tmp_path / "events.jsonl").write_text("{}\n")
    (tmp_path / "tokens").write_text("")
    args = [a.format(tmp=tmp_path, filings=tmp_path / "filings", events=tmp_path / "events.jsonl") for a in command]
    result = cargoscreen(*args, "--redis-url", UNREACHABLE)
    failed_in_one_line(result, Exit.REDIS, "Redis at redis://127.0.0.1:1/0 cannot be reached", "127.0.0.1:1")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("run-*"))  # nothing half done


def test_a_wrong_redis_password_is_one_line_and_exit_4_without_the_password(tmp_path):
    server = RedisProcess(tmp_path, "--requirepass", "right-one").start()
    try:
        for password in ("?password=wrong-one", ""):
            result = cargoscreen("rules", "status", "--redis-url", server.url + password)
            failed_in_one_line(result, Exit.REDIS, "refused the credentials", str(server.socket))
            assert "wrong-one" not in result.stderr
    finally:
        server.stop()


def test_usage_and_input_mistakes_are_one_line_and_exit_3(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "some").mkdir()
    (tmp_path / "some" / "gone.xml").symlink_to(tmp_path / "nowhere.xml")  # unreadable, whoever runs the tests
    (tmp_path / "some" / "other.xml").write_text("<a/>")
    cases = [
        (["run", "--input", str(tmp_path / "missing"), "--output", str(tmp_path / "out")], "does not exist"),
        (["run", "--input", str(tmp_path / "a-file"), "--output", str(tmp_path / "out")], "is a file"),
        (["run", "--input", str(tmp_path / "empty"), "--output", str(tmp_path / "out")], "holds no filings"),
        (["run", "--input", str(tmp_path), "--output", str(tmp_path / "out"), "--rules", str(tmp_path / "empty")],
         "rule pack refused: " + str(tmp_path / "empty") + ": not a rule pack"),
        (["validate", str(tmp_path / "empty")], "holds no filings"),
        (["validate", "--schemas", str(tmp_path / "empty"), str(tmp_path / "a-file")], "holds no XSD files"),
        (["generate", "--out", str(tmp_path / "a-file")], "is a file"),
        (["compact-archive", str(tmp_path / "empty")], "is not an archive"),
        (["csm", "load", str(tmp_path / "empty"), "--data-dir", str(tmp_path / "data")], "holds no event files"),
        (["rules", "backtest", str(tmp_path / "empty"), "--candidate", str(STARTER)], "holds no filings"),
        (["ingress", "token", "DE123456789012345", "--tokens", str(tmp_path / "empty")], "Is a directory"),
        (["workbench", "user", "add", "alice", "--centre", "RC-NL", "--analysts", str(tmp_path / "empty"),
          "--password", "x"], "is a directory"),
    ]
    for args, words in cases:
        failed_in_one_line(cargoscreen(*args), Exit.USAGE, words)
    assert not (tmp_path / "out").exists()
    unreadable = cargoscreen("validate", str(tmp_path / "some"))  # reported with the others, not instead of them
    assert unreadable.returncode == Exit.USAGE and not unreadable.stderr
    assert "UNREADABLE" in unreadable.stdout and "REJECTED" in unreadable.stdout


def test_the_traceback_is_there_for_who_asks(tmp_path):
    for args, env in ((["--debug"], {}), ([], {"CARGOSCREEN_DEBUG": "1"})):
        result = cargoscreen(*args, "health", "--consumer", "w1", "--redis-url", UNREACHABLE, **env)
        assert result.returncode != 0 and "Traceback" in result.stderr and "ConnectionError" in result.stderr


def test_the_readme_documents_every_exit_code():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", readme, re.M)}
    assert documented == {int(e) for e in Exit}


def test_a_rejected_filing_reads_whole_in_a_pipe(tmp_path):
    """Redirected, the report's lines are not cut at 80 columns: each error's sentence is on one line."""
    CliRunner().invoke(main, ["generate", "--out", str(tmp_path), "--count", "60", "--seed", "8", "--defect-rate", "1",
                              "--envelope-rate", "0"])
    report = cargoscreen("validate", str(tmp_path / "filings"))
    errors = json.loads(cargoscreen("validate", "--json", str(tmp_path / "filings")).stdout)
    reasons = [e["reason"] for f in errors for e in f["errors"]]
    assert report.returncode == Exit.REFUSED and len(reasons) > 60
    lines = report.stdout.splitlines()
    assert all(any(reason in line for line in lines) for reason in reasons)


def test_generate_plants_only_the_chosen_defects(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["generate", "--out", str(tmp_path), "--count", "200", "--seed", "6",
                                  "--defect-rate", "0.5", "--envelope-rate", "0", "--defects",
                                  "vague-description,container-check-digit"])
    assert result.exit_code == 0, result.output
    labels = [json.loads(line) for line in (tmp_path / "labels.jsonl").open()]
    planted = {d["kind"] for label in labels for d in label["defects"]}
    assert planted == {"vague-description", "container-check-digit"}
    bad = runner.invoke(main, ["generate", "--out", str(tmp_path / "x"), "--count", "1", "--defects", "nonsense"])
    assert bad.exit_code == Exit.USAGE and "unknown defect" in bad.output


def test_a_run_without_container_status_says_so_once_instead_of_an_anomaly_per_container(tmp_path):
    """No `csm load` before the run: nothing can be judged, so no container is an anomaly; the summary
    says once that no container status was loaded."""
    corpus = tmp_path / "corpus"
    assert CliRunner().invoke(main, ["generate", "--out", str(corpus), "--count", "60", "--seed", "8",
                                     "--modes", "sea"]).exit_code == 0
    result = CliRunner().invoke(main, ["run", "--input", str(corpus / "filings"), "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert result.output.count("no container status loaded") == 1
    summary = json.loads((tmp_path / "out" / "latest" / "summary.json").read_text())
    assert summary["container_status_not_loaded"] > 0 and summary["facts"] == {}
    assert "container-unknown" not in result.output
