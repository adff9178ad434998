"""The workbench from scripts: list, show, claim, release, resolve, audit export, risk information,
analysts; against a real Redis, through the real command line."""
import json
import os
import subprocess
import sys

from click.testing import CliRunner

from cargoscreen.cli import main
from cargoscreen.workbench.accounts import Analysts

from .test_workbench_queue import put, referral


def run(*args, ok=True):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert (result.exit_code == 0) == ok, result.output
    return result.output


def test_list_show_claim_release_resolve_and_audit(redis_client, redis_server):
    url = redis_server.url
    for n in range(3):
        put(redis_client, "RC-NL", referral(n, score=10 * (n + 1), mode=("sea", "air", "sea")[n]))
    listed = json.loads(run("workbench", "list", "--redis-url", url, "--centre", "RC-NL", "--mode", "sea"))
    assert listed["total"] == 2 and [r["score"] for r in listed["referrals"]] == ["30.0", "10.0"]
    rid = listed["referrals"][0]["referral_id"]
    assert json.loads(run("workbench", "show", "--redis-url", url, "--centre", "RC-NL", rid))["state"] == "open"
    assert "claimed by alice" in run("workbench", "claim", "--redis-url", url, "--centre", "RC-NL",
                                     "--analyst", "alice", rid)
    refused = run("workbench", "resolve", "--redis-url", url, "--centre", "RC-NL", "--analyst", "bob", rid,
                  "--outcome", "no-finding", ok=False)
    assert "refused:" in refused and "claimed by alice" in refused
    run("workbench", "release", "--redis-url", url, "--centre", "RC-NL", "--analyst", "alice", rid)
    run("workbench", "claim", "--redis-url", url, "--centre", "RC-NL", "--analyst", "bob", rid)
    assert "resolved: finding / cash" in run("workbench", "resolve", "--redis-url", url, "--centre", "RC-NL",
                                             "--analyst", "bob", rid, "--outcome", "finding", "--category", "cash")
    assert "already resolved by bob" in run("workbench", "resolve", "--redis-url", url, "--centre", "RC-NL",
                                            "--analyst", "bob", rid, "--outcome", "finding", "--category", "cash",
                                            ok=False)
    shown = json.loads(run("workbench", "show", "--redis-url", url, "--centre", "RC-NL", rid))
    assert (shown["outcome"], shown["category"], shown["resolved_by"]) == ("finding", "cash", "bob")
    assert "no such referral in RC-BE" in run("workbench", "show", "--redis-url", url, "--centre", "RC-BE", rid,
                                              ok=False)
    lines = [json.loads(x) for x in run("workbench", "audit", "--redis-url", url).splitlines()]
    assert [(x["who"], x["action"]) for x in lines] == [("alice", "claim"), ("alice", "release"), ("bob", "claim"),
                                                        ("bob", "resolve")]
    csv_text = run("workbench", "audit", "--redis-url", url, "--format", "csv", "--centre", "RC-NL")
    assert csv_text.splitlines()[0] == "id,at,who,centre,action,subject,detail" and len(csv_text.splitlines()) == 5


def test_risk_information_from_the_command_line(redis_client, redis_server):
    url = redis_server.url
    out = run("riskinfo", "publish", "--redis-url", url, "--centre", "RC-NL", "--analyst", "alice", "--kind",
              "route", "--watch", "from=EC", "--watch", "to=NLRTM", "--title", "Banana route", "--area",
              "drug-precursors", "--until", "2099-01-01T00:00:00Z")
    assert out.startswith("RIF-RC-NL-1 published: loading_country == \"EC\" and place_of_unloading == \"NLRTM\"")
    assert "ends before it starts" in run("riskinfo", "publish", "--redis-url", url, "--centre", "RC-NL",
                                          "--analyst", "alice", "--kind", "route", "--watch", "from=EC", "--title",
                                          "x", "--area", "drug-precursors", "--until", "2001-01-01T00:00:00Z",
                                          ok=False)
    assert [f["id"] for f in json.loads(run("riskinfo", "list", "--redis-url", url))] == ["RIF-RC-NL-1"]
    run("riskinfo", "revoke", "--redis-url", url, "--centre", "RC-BE", "--analyst", "eve", "RIF-RC-NL-1", ok=False)
    run("riskinfo", "revoke", "--redis-url", url, "--centre", "RC-NL", "--analyst", "alice", "RIF-RC-NL-1")
    assert json.loads(run("riskinfo", "list", "--redis-url", url)) == []
    assert len(json.loads(run("riskinfo", "list", "--redis-url", url, "--all"))) == 1


def test_analysts_file_keeps_only_hashes(tmp_path):
    path = tmp_path / "analysts"
    run("workbench", "user", "add", "alice", "--centre", "RC-NL", "--analysts", path,
        "--password", "a long enough secret")
    assert "a long enough secret" not in path.read_text() and path.stat().st_mode & 0o077 == 0
    assert "at least 12" in run("workbench", "user", "add", "bob", "--centre", "RC-NL", "--analysts", path,
                                "--password", "short", ok=False)
    analysts = Analysts.load(path)
    assert analysts.sign_in("alice", "a long enough secret").centre == "RC-NL"
    assert analysts.sign_in("alice", "wrong") is None and analysts.sign_in("mallory", "x") is None


# Runs the real CLI and, at every file operation it makes (an audit hook fires before each), notes
# the permissions of every file in the analysts file's folder: a moment when a password hash was
# readable by others would show, however short.
WATCHED_CLI = """
import json, os, stat, sys
folder, record = os.environ["WATCH_FOLDER"], os.environ["WATCH_RECORD"]
seen, busy = [], []
def hook(event, args):
    if busy or not (event == "open" or event.startswith("os.")):
        return
    busy.append(1)
    try:
        seen.extend((event, e.name, stat.S_IMODE(e.stat().st_mode)) for e in os.scandir(folder) if e.is_file())
    finally:
        busy.pop()
os.umask(0o022)
sys.addaudithook(hook)
from cargoscreen.cli import main
try:
    main(sys.argv[1:])
finally:
    with open(record, "w") as f:
        json.dump(seen, f)
"""


def test_the_analysts_file_is_never_readable_by_others(tmp_path):
    folder = tmp_path / "conf"
    folder.mkdir()
    path = folder / "analysts"
    env = {**os.environ, "WATCH_FOLDER": str(folder), "WATCH_RECORD": str(tmp_path / "seen.json"),
           "CARGOSCREEN_NEW_PASSWORD": "a long enough secret"}
    for command in (["add", "alice", "--centre", "RC-NL"], ["add", "bob", "--centre", "RC-BE"],
                    ["password", "alice"], ["remove", "bob"]):
        done = subprocess.run([sys.executable, "-c", WATCHED_CLI, "workbench", "user", *command, "--analysts",
                               str(path)], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        seen = json.loads((tmp_path / "seen.json").read_text())
        assert seen and [s for s in seen if s[2] & 0o077] == [], command  # seen: the hook did look
    assert path.stat().st_mode & 0o077 == 0 and sorted(os.listdir(folder)) == ["analysts"]  # no temporary left
    assert [ln.split()[:2] for ln in path.read_text().splitlines()] == [["alice", "RC-NL"]]


def test_the_audit_trail_reads_newest_first_in_batches(redis_client):
    from itertools import islice

    from cargoscreen import audit

    for n in range(25):
        audit.record(redis_client, "cs:audit", "alice", "RC-NL" if n % 2 else "RC-BE", "claim", f"REF-{n}", "")
    newest = [r["subject"] for r in islice(audit.entries(redis_client, "cs:audit", centre="RC-NL", batch=4,
                                                         newest_first=True), 5)]
    assert newest == ["REF-23", "REF-21", "REF-19", "REF-17", "REF-15"]
    assert [r["subject"] for r in audit.entries(redis_client, "cs:audit", centre="RC-NL", batch=4)][:2] == \
        ["REF-1", "REF-3"]
