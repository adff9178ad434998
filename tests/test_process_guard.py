"""The session's guard (conftest.no_process_outlives_the_tests) sees what a test started even after it
left the test's process tree: a daemonised redis-server, whose title overwrites its environment."""
from __future__ import annotations

import os
import tempfile

from cargoscreen.connectors.redis_store import EmbeddedRedis

from .conftest import TEST_PROCESS_ENV, started_by


def test_the_guard_sees_a_daemonised_redis_server_until_it_is_stopped(tmp_path):
    server = EmbeddedRedis(tmp_path / "redis")
    try:
        found = started_by(os.environ[TEST_PROCESS_ENV], tempfile.gettempdir())
        assert server.pid in {p.pid for p in found}
        assert all(p.ppid() != os.getpid() for p in found if p.pid == server.pid)  # not our child any more
    finally:
        server.close()
    assert server.pid not in {p.pid for p in started_by(os.environ[TEST_PROCESS_ENV], tempfile.gettempdir())}
