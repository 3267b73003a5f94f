"""Fixtures for the SDK tests: registries (real `pilothouse serve` processes on SQLite),
clients that are always closed, and a fault proxy."""

from __future__ import annotations

import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sdk_harness import FaultProxy, Registry

from pilothouse import Client


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """One registry per module, for tests that never stop it (each uses its own prompts)."""
    reg = Registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()


@pytest.fixture
def own_registry(tmp_path: Path) -> Iterator[Registry]:
    """A registry this test may stop and restart."""
    reg = Registry(tmp_path / "registry")
    yield reg
    reg.stop(signal.SIGKILL)


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A prompt name unique to the test."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")[:60]


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "prompt-cache"


@pytest.fixture
def make_client(cache_dir: Path) -> Iterator[Callable[..., Client]]:
    """Client(...) with this test's cache dir by default; closed at the end of the test."""
    clients: list[Client] = []

    def make(base_url: str, api_key: str | None = None, **options: Any) -> Client:
        options.setdefault("cache_dir", cache_dir)
        client = Client(base_url, api_key, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def proxy(registry: Registry) -> Iterator[FaultProxy]:
    """A fault proxy in front of the module's registry."""
    fault_proxy = FaultProxy(registry.url)
    yield fault_proxy
    fault_proxy.close()
