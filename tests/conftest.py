"""Shared fixtures: real databases, a real simulator process, real gateway processes.

PostgreSQL and Redis are found through PILOTHOUSE_TEST_DATABASE_URL and
PILOTHOUSE_TEST_REDIS_URL, defaulting to the local services. In CI (CI=true) a service
that cannot be reached fails the run; elsewhere those tests skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from harness import (
    TEST_SCENARIO,
    Gateway,
    Simulator,
    fresh_schema,
    gateway_config,
    service_url,
    start_gateway,
    start_simulator,
    stop_process,
    unavailable,
)


@pytest.fixture(scope="session")
def postgres_base_url() -> str:
    url = service_url("PILOTHOUSE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    if url is None:
        unavailable("PostgreSQL", "PILOTHOUSE_TEST_DATABASE_URL", "not set")
    assert url is not None
    try:
        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        unavailable("PostgreSQL", "PILOTHOUSE_TEST_DATABASE_URL", f"cannot connect: {exc}")
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = service_url("PILOTHOUSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    if url is None:
        unavailable("Redis", "PILOTHOUSE_TEST_REDIS_URL", "not set")
    assert url is not None
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:
        unavailable("Redis", "PILOTHOUSE_TEST_REDIS_URL", f"cannot connect: {exc}")
    return url


@pytest.fixture
def postgres_url(postgres_base_url: str) -> Iterator[str]:
    with fresh_schema(postgres_base_url) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every store test runs on both databases."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'pilothouse.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="session")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    """One simulator process for the whole session, with the test scenario."""
    scenario = tmp_path_factory.mktemp("scenario") / "scenario.yaml"
    scenario.write_text(TEST_SCENARIO)
    sim = start_simulator(scenario)
    yield sim
    stop_process(sim.process)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def gateway(
    request: pytest.FixtureRequest, simulator: Simulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """A gateway on the simulator, once on SQLite and once on PostgreSQL (per test module)."""
    data_dir = tmp_path_factory.mktemp("gw")
    if request.param == "sqlite":
        gw = start_gateway(gateway_config(simulator), f"sqlite:///{data_dir / 'p.db'}", data_dir)
        yield gw
        gw.stop()
        return
    base = request.getfixturevalue("postgres_base_url")
    with fresh_schema(base) as url:
        gw = start_gateway(gateway_config(simulator), url, data_dir)
        yield gw
        gw.stop()


@pytest.fixture
def anyio_backend() -> str:
    """In-process async tests run on asyncio (the server's loop), not trio."""
    return "asyncio"
