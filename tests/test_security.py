"""Security: Redis over TLS with AUTH (Debian's redis-server, certificates made here), secrets from
files and the environment, logs that name ids but never carry a filing's content, and filings at
rest readable by their owner only."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace

import pytest
import redis
from lxml import etree

from cargoscreen.answering import ACCEPTING_ANSWERS, REJECTING_ANSWERS
from cargoscreen.config import Settings
from cargoscreen.connectors.redis_store import PASSWORD_FILE_ENV, URL_ENV, connect
from cargoscreen.connectors.redis_streams import StreamKeys
from cargoscreen.generator import GeneratorSpec, generate
from cargoscreen.service import run_service

from .conftest import free_port, stop

REDIS_SERVER, OPENSSL = shutil.which("redis-server"), shutil.which("openssl")
KEYS = StreamKeys()
PASSWORD = "s3cret-" + "x" * 24


def _openssl(*args, cwd):
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def tls_redis(tmp_path):
    """Debian's redis-server with TLS only (no plain port) and a password; a CA and a server certificate."""
    if not (REDIS_SERVER and OPENSSL) and not os.environ.get("CARGOSCREEN_REQUIRE_TOOLS"):
        pytest.skip("Debian's redis-server and openssl are not installed")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test CA",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=tmp_path)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
             "-out", "server.csr", cwd=tmp_path)
    (tmp_path / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
             "-extfile", "san.ext", "-out", "server.crt", cwd=tmp_path)
    port = free_port()
    server = subprocess.Popen([REDIS_SERVER, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                               "--tls-cert-file", "server.crt", "--tls-key-file", "server.key",
                               "--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no", "--requirepass", PASSWORD,
                               "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        (tmp_path / "redis-password").write_text(PASSWORD + "\n")
        url = f"rediss://localhost:{port}/0?ssl_ca_certs={tmp_path / 'ca.crt'}"
        for _ in range(100):
            try:
                redis.Redis.from_url(url, password=PASSWORD).ping()
                break
            except redis.RedisError:
                time.sleep(0.05)
        yield url, port, tmp_path
    finally:
        stop(server)


def test_redis_over_tls_with_auth_from_a_password_file(tls_redis, monkeypatch):
    url, port, folder = tls_redis
    with pytest.raises(redis.AuthenticationError):  # TLS without the password
        redis.Redis.from_url(url).ping()
    with pytest.raises(redis.ConnectionError):  # no TLS: refused
        redis.Redis.from_url(f"redis://localhost:{port}/0", password=PASSWORD, socket_timeout=2).ping()
    with pytest.raises(redis.ConnectionError):  # TLS to a server whose certificate we do not trust
        redis.Redis.from_url(f"rediss://localhost:{port}/0", password=PASSWORD, socket_timeout=2).ping()
    monkeypatch.setenv(PASSWORD_FILE_ENV, str(folder / "redis-password"))
    assert connect(url).ping()

    # The whole service over it: every filing answered through one door.
    client = connect(url)
    filings = list(generate(GeneratorSpec(count=40, seed=71, resubmission_rate=0)))
    for f in filings:
        client.xadd(KEYS.filings, {"filing": f.data, "id": f.name})
    s = Settings().with_redis_url(url)
    run_service(replace(s, streams=replace(s.streams, once=True)), ["tls"])
    doors = Counter()
    for key in client.scan_iter(f"{KEYS.prefix}:answers:*"):
        for _, fields in client.xrange(key):
            body = json.loads(fields[b"body"])
            if body["message_type"] in set(ACCEPTING_ANSWERS) | set(REJECTING_ANSWERS):
                doors[body["submission_id"]] += 1
    assert set(doors) == {f.name for f in filings} and set(doors.values()) == {1}


def test_logs_name_ids_never_filing_content(redis_server, redis_client, tmp_path):
    """A verbose service run over filings with distinctive parties, addresses and goods: the log has
    submission ids and counts, and none of the content (nor the Redis password, nor a token)."""
    filings = list(generate(GeneratorSpec(count=60, seed=72, resubmission_rate=0)))
    secrets_in_filings = set()
    for f in filings:
        if not any(d["layer"] == "envelope" for d in f.label["defects"]):  # the broken ones do not parse
            root = etree.fromstring(f.data)
            for tag in ("Name", "StreetAndNumber", "Description", "City"):
                secrets_in_filings |= {e.text for e in root.iter(f"{{*}}{tag}") if e.text and len(e.text) >= 8}
        redis_client.xadd(KEYS.filings, {"filing": f.data, "id": f.name})
    assert len(secrets_in_filings) > 50
    log = subprocess.run([sys.executable, "-m", "cargoscreen.cli", "-v", "run", "--once", "--redis-url",
                          redis_server.url, "--consumer", "logs"], capture_output=True, text=True, timeout=300)
    assert log.returncode == 0, log.stderr[-2000:]
    text = log.stdout + log.stderr
    assert len(text.splitlines()) > 5  # verbose: it did log
    leaked = sorted(s for s in secrets_in_filings if s in text)
    assert not leaked, leaked[:5]
    assert not re.search(r"<\?xml|<IE3", text)  # no XML either


def test_the_ingress_and_the_service_take_the_redis_url_from_the_environment(redis_server, redis_client, tmp_path,
                                                                             processes):
    """CARGOSCREEN_REDIS_URL instead of --redis-url, where `ps` would show it (and its password):
    a filing goes in through `cargoscreen ingress serve`, is screened by `cargoscreen run --follow`
    and its answer comes back through the ingress, neither command line naming Redis."""
    from .test_ingress import _call, start_ingress

    env = {**os.environ, URL_ENV: redis_server.url}
    port, tokens = start_ingress(processes, tmp_path, env=env)
    filer, token = next(iter(tokens.items()))
    filing = next(iter(generate(GeneratorSpec(count=1, seed=5, defect_rate=0, envelope_rate=0, resubmission_rate=0))))
    status, receipt = _call(port, "POST", "/v1/filings", filing.data, token)
    assert status == 202 and sum(redis_client.xlen(k) for k in KEYS.filing_streams) == 1
    worker = processes.start([sys.executable, "-m", "cargoscreen.cli", "run", "--follow", "--consumer", "env",
                              "--metrics_port=0"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline, answers = time.monotonic() + 120, []
    while not any(a["submission_id"] == receipt["submission_id"] for a in answers):
        assert time.monotonic() < deadline and worker.poll() is None, worker.stderr.read().decode()[-2000:]
        time.sleep(0.2)
        answers = _call(port, "GET", "/v1/answers", token=token)[1]["answers"]
    assert not [p.args for p in processes if redis_server.url in " ".join(p.args)]
    worker.terminate()
    assert worker.wait(timeout=60) == 0, worker.stderr.read().decode()[-2000:]


def test_filings_at_rest_are_readable_by_their_owner_only(tmp_path):
    """A batch run under the usual umask (022): the embedded Redis's folder and dump, the run's
    folder and its Parquet archive are the owner's alone (they hold every filing)."""
    filings = tmp_path / "corpus"
    for f in generate(GeneratorSpec(count=20, seed=73, resubmission_rate=0)):
        (filings / f.name).parent.mkdir(parents=True, exist_ok=True)
        (filings / f.name).write_bytes(f.data)
    run = subprocess.run([sys.executable, "-m", "cargoscreen.cli", "run", "--input", str(filings), "--output",
                          str(tmp_path / "out")], capture_output=True, text=True, timeout=300,
                         preexec_fn=lambda: os.umask(0o022))
    assert run.returncode == 0, run.stderr[-2000:]
    mode = lambda p: p.stat().st_mode & 0o777  # noqa: E731
    out = tmp_path / "out"
    dumps = list((out / "redis").glob("*.rdb"))
    archive = out / "latest" / "archive"
    parquet = list(archive.rglob("*.parquet"))
    folders = [p for p in archive.rglob("*") if p.is_dir()] + [archive]
    assert dumps and parquet and len(folders) > 4
    assert mode(out / "redis") == 0o700 and {mode(p) for p in dumps} == {0o600}
    assert mode(out / "latest") == 0o700  # the run's folder: its dead letters hold payloads too
    assert {mode(p) for p in folders} == {0o700} and {mode(p) for p in parquet} == {0o600}
