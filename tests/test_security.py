"""Security: Redis over TLS with AUTH (Debian's redis-server, certificates made here), secrets from
files and the environment, and logs that name ids but never carry a filing's content."""
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
from cargoscreen.connectors.redis_store import PASSWORD_FILE_ENV, connect
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
