"""The control-plane benchmark's catalogues: N prompts (two versions each), R routes and
K API keys, one database per size, each grown from the previous one, on SQLite files or
PostgreSQL databases (a copy per run, so every measurement starts from the same state).
Imports Pilothouse: run under the project's .venv."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any

from pilothouse.config import load_config_file
from pilothouse.policy import admin_token
from pilothouse.policy import keys as key_policy
from pilothouse.registry import prompts as registry
from pilothouse.registry.prompt_content import parse_content
from pilothouse.releases.promotion import Promoter
from pilothouse.store import Store, open_store

ADMIN = "pha-bench-control-plane"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_answers(url: str) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:
        return False


def config_text(base_url: str, model: str = "sim-small") -> str:
    """The config every instance runs: one provider, the alias `fast` the routes use."""
    return f"""
providers:
  up: {{type: openai, base_url: "{base_url}"}}
models:
  fast: {{provider: up, model: {model}}}
gateway:
  config_check_interval_seconds: 0
"""


def content(n: int, version: int) -> Any:
    text = f"Prompt {n}, version {version}: answer {{{{q}}}}"
    return parse_content({"variables": {"q": {}}, "messages": [{"role": "user", "content": text}]})


def grow(store: Store, prompts: tuple[int, int], routes: tuple[int, int], models: Any) -> None:
    """Add prompts [from, to) with two versions each (production on 1), and routes
    [from, to), route-n serving prompt-n@1."""
    start, end = prompts
    for chunk in range(start, end, 200):
        names = range(chunk, min(chunk + 200, end))
        for version in (1, 2):
            items = [registry.PushItem(f"prompt-{n}", content(n, version)) for n in names]
            registry.push(store, items, labels=["production"] if version == 1 else ())
    promoter = Promoter(store, models)
    for n in range(*routes):
        promoter.promote(f"route-{n}", prompt=f"prompt-{n}@1", model="fast", params={}, reason=None)


class SQLite:
    """Databases as SQLite files in `work`; a copy is a file copy."""

    name = "SQLite"

    def __init__(self, work: Path):
        self.work = work

    def url(self, label: str) -> str:
        return f"sqlite:///{self.work / label}.db"

    def copy(self, source: str, label: str) -> str:
        engine = open_store(source)
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.close()
        shutil.copy(source.removeprefix("sqlite:///"), self.work / f"{label}.db")
        return self.url(label)

    def close(self) -> None:
        pass


class Postgres:
    """Databases on the PostgreSQL server at `server_url`, each its own database, named
    after this process; a copy is CREATE DATABASE ... TEMPLATE. Dropped on close."""

    name = "PostgreSQL"

    def __init__(self, server_url: str):
        import psycopg

        self.server_url = server_url.rstrip("/")
        self.prefix = f"pilothouse_cp_{os.getpid()}"
        self.admin = psycopg.connect(f"{self.server_url}/postgres", autocommit=True)
        self.made: list[str] = []

    def _create(self, label: str, template: str | None = None) -> str:
        name = f"{self.prefix}_{label}".replace("-", "_")
        extra = f" TEMPLATE {template}" if template else ""
        self.admin.execute(f"CREATE DATABASE {name}{extra}")
        self.made.append(name)
        return f"{self.server_url}/{name}"

    def url(self, label: str) -> str:
        return self._create(label)

    def copy(self, source: str, label: str) -> str:
        return self._create(label, template=source.rsplit("/", 1)[1])

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self.admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if name in self.made:
            self.made.remove(name)

    def close(self) -> None:
        for name in reversed(self.made):
            self.admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.admin.close()


Backend = SQLite | Postgres


def build_databases(
    backend: Backend, work: Path, sizes: list[tuple[int, int]], keys: int
) -> dict[tuple[int, int], str]:
    """One database per (prompts, routes) size, each grown from the previous; `keys` API
    keys and the admin token made once. Prints how long each step took."""
    base = work / "base"
    base.mkdir(exist_ok=True)
    (base / "config.yaml").write_text(config_text("http://127.0.0.1:9/v1"))
    models = load_config_file(base / "config.yaml").models
    base_url = backend.url("base")
    store = open_store(base_url)
    store.upgrade()
    admin_token.prepare(store, base, ADMIN)
    started = time.perf_counter()
    for n in range(keys):
        key_policy.create_key(store, name=f"key-{n}")
    print(f"# {keys} keys in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    made: dict[tuple[int, int], str] = {}
    have = (0, 0)
    for prompts, routes in sizes:
        started = time.perf_counter()
        grow(store, (have[0], prompts), (have[1], routes), models)
        have = (prompts, routes)
        store.engine.dispose()  # a PostgreSQL template must have no connections
        made[(prompts, routes)] = backend.copy(base_url, f"db-{prompts}-{routes}")
        print(
            f"# {backend.name}: catalogue {prompts} prompts / {routes} routes in "
            f"{time.perf_counter() - started:.1f} s",
            file=sys.stderr,
            flush=True,
        )
    store.close()
    return made


def caller_key(database: str, name: str = "bench-caller") -> str:
    """A new API key's secret in `database` (made before the instances start)."""
    store = open_store(database)
    try:
        _, secret = key_policy.create_key(store, name=name)
    finally:
        store.close()
    return secret
