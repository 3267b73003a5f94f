"""Control-plane benchmark: what a promotion costs as the catalogue grows.

A catalogue of N prompts (two versions each) and R routes, with 5,000 API keys, on
SQLite (and PostgreSQL, CP_BACKENDS); two Pilothouse servers on that one database (A takes the writes, B is another
instance), in this process, each behind `httpx.ASGITransport`, the change bus on Redis
when PILOTHOUSE_REDIS_URL (default redis://127.0.0.1:6379) answers, else the poll; the
simulator (`pilothouse simulate`, a subprocess) as the upstream. For each size, PROMOTES
promotions of a random route through `POST /api/routes/{route}/promote` on A:

- promote API: the promotion's answer time on A;
- obeyed on A / on B: from sending the promotion until that instance's gateway answers a
  call to the route with the new release (B is polled every 2 ms).

Two modes in the same run, on copies of the same database: `incremental` (this code) and
`full` (the same code with every change loaded as a full rebuild: the behaviour before
incremental snapshots, the same-run baseline). Also printed: the snapshot's memory per
1,000 prompts (tracemalloc, a full load) and a key lookup at 5,000 and 100,000 keys.

    .venv/bin/python bench/control_plane.py    # about 4 minutes (8 with CP_BACKENDS=sqlite,postgresql)

Knobs: CP_SIZES ("10:1,100:10,1000:200"), CP_KEYS (5000), CP_PROMOTES (40),
CP_BACKENDS ("sqlite"; "sqlite,postgresql" adds the same curve on PostgreSQL, one
database per copy, made and dropped on the server at CP_POSTGRES_URL, default
postgresql://postgres@127.0.0.1:5432), PILOTHOUSE_REDIS_URL. Prints Markdown tables; raw
JSON goes to bench/results/.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from pilothouse.config import Settings, load_config_file
from pilothouse.policy import admin_token
from pilothouse.policy import keys as key_policy
from pilothouse.registry import prompts as registry
from pilothouse.registry.prompt_content import parse_content
from pilothouse.releases.promotion import Promoter
from pilothouse.server import Server, create_server
from pilothouse.snapshot import PARTS, SnapshotHolder, full_snapshot
from pilothouse.store import Store, open_store

SIZES = [
    tuple(int(n) for n in pair.split(":"))
    for pair in os.environ.get("CP_SIZES", "10:1,100:10,1000:200").split(",")
]
KEYS = int(os.environ.get("CP_KEYS", "5000"))
PROMOTES = int(os.environ.get("CP_PROMOTES", "40"))
REDIS_URL = os.environ.get("PILOTHOUSE_REDIS_URL", "redis://127.0.0.1:6379")
BACKENDS = os.environ.get("CP_BACKENDS", "sqlite").split(",")
POSTGRES_URL = os.environ.get("CP_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
ADMIN = "pha-bench-control-plane"
RESULTS = Path(__file__).parent / "results"


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


def config_text(sim_port: int) -> str:
    return f"""
providers:
  sim: {{type: openai, base_url: "http://127.0.0.1:{sim_port}/v1"}}
models:
  fast: {{provider: sim, model: sim-small}}
gateway:
  config_check_interval_seconds: 0
"""


def content(n: int, version: int) -> Any:
    text = f"Prompt {n}, version {version}: answer {{{{q}}}}"
    return parse_content({"variables": {"q": {}}, "messages": [{"role": "user", "content": text}]})


def grow(store: Store, prompts: tuple[int, int], routes: tuple[int, int], models: Any) -> None:
    """Add prompts [from, to) with two versions each, and routes [from, to) on them."""
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
    """Databases on the PostgreSQL server at CP_POSTGRES_URL, each its own database,
    named after this process; a copy is CREATE DATABASE ... TEMPLATE. Dropped on close."""

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

    def close(self) -> None:
        for name in reversed(self.made):
            self.admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.admin.close()


def build_databases(backend: SQLite | Postgres, work: Path) -> dict[tuple[int, int], str]:
    """One database per size, each grown from the previous (keys made once)."""
    base = work / "base"
    base.mkdir(exist_ok=True)
    (base / "config.yaml").write_text(config_text(0))
    models = load_config_file(base / "config.yaml").models
    base_url = backend.url("base")
    store = open_store(base_url)
    store.upgrade()
    admin_token.prepare(store, base, ADMIN)
    started = time.perf_counter()
    for n in range(KEYS):
        key_policy.create_key(store, name=f"key-{n}")
    print(f"# {KEYS} keys in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    made: dict[tuple[int, int], str] = {}
    have = (0, 0)
    for prompts, routes in SIZES:
        started = time.perf_counter()
        grow(store, (have[0], prompts), (have[1], routes), models)
        have = (prompts, routes)
        store.engine.dispose()  # a PostgreSQL template must have no connections
        made[(prompts, routes)] = backend.copy(base_url, f"db-{prompts}-{routes}")
        print(
            f"# catalogue {prompts} prompts / {routes} routes in "
            f"{time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
    store.close()
    return made


def as_full_rebuild(holder: SnapshotHolder) -> None:
    """The baseline: every change loads the whole snapshot, as before incremental loads."""
    holder._update = lambda base, version, items: holder._build()  # type: ignore[method-assign]


@contextlib.asynccontextmanager
async def instance(
    work: Path, name: str, database: str, sim_port: int, redis: str | None, mode: str
) -> AsyncIterator[tuple[Server, httpx.AsyncClient]]:
    data_dir = work / name
    data_dir.mkdir(exist_ok=True)
    (data_dir / "config.yaml").write_text(config_text(sim_port))
    settings = Settings(
        data_dir=data_dir,
        database_url=database,
        redis_url=redis,
        config_path=data_dir / "config.yaml",
        config=load_config_file(data_dir / "config.yaml"),
    )
    server = create_server(settings)
    async with server.running():
        assert server.holder is not None
        if mode == "full":
            as_full_rebuild(server.holder)
        transport = httpx.ASGITransport(app=server)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            yield server, client
    server.store.close()


async def release_served(client: httpx.AsyncClient, route: str, key: str) -> str:
    answer = await client.post(
        "/v1/chat/completions",
        json={"model": f"route:{route}", "messages": [], "pilothouse": {"variables": {"q": "x"}}},
        headers={"Authorization": f"Bearer {key}"},
    )
    return answer.headers.get("x-pilothouse-release", "")


async def obeyed(
    client: httpx.AsyncClient, route: str, key: str, release: str, started: float
) -> float:
    """Seconds from `started` until `client`'s gateway serves `release` on `route`."""
    while await release_served(client, route, key) != release:
        await asyncio.sleep(0.002)
    return time.perf_counter() - started


async def measure(
    backend: SQLite | Postgres,
    work: Path,
    database: str,
    routes: int,
    sim_port: int,
    redis: str | None,
    mode: str,
) -> dict[str, list[float]]:
    copy = backend.copy(database, f"run-{mode}-{routes}")
    store = open_store(copy)
    _, secret = key_policy.create_key(store, name="bench-caller")
    store.close()
    admin = {"Authorization": f"Bearer {ADMIN}"}
    out: dict[str, list[float]] = {"api": [], "obeyed_a": [], "obeyed_b": []}
    rng = random.Random(7)
    async with (
        instance(work, f"a-{mode}-{routes}", copy, sim_port, redis, mode) as (_, a),
        instance(work, f"b-{mode}-{routes}", copy, sim_port, redis, mode) as (_, b),
    ):
        versions = dict.fromkeys(range(routes), 1)
        for _ in range(PROMOTES):
            n = rng.randrange(routes)
            versions[n] = 3 - versions[n]
            route = f"route-{n}"
            started = time.perf_counter()
            made = await a.post(
                f"/api/routes/{route}/promote",
                json={"prompt": f"prompt-{n}@{versions[n]}", "model": "fast"},
                headers=admin,
            )
            out["api"].append(time.perf_counter() - started)
            assert made.status_code == 201, made.text
            release = made.json()["id"]

            on_a, on_b = await asyncio.wait_for(
                asyncio.gather(
                    obeyed(a, route, secret, release, started),
                    obeyed(b, route, secret, release, started),
                ),
                30,
            )
            out["obeyed_a"].append(on_a)
            out["obeyed_b"].append(on_b)
            await asyncio.sleep(0.05)
        out["full_loads"] = [await full_loads(a) + await full_loads(b)]
    return out


async def full_loads(client: httpx.AsyncClient) -> float:
    """Full snapshot loads this instance made after its start (pilothouse_config_loads)."""
    text = (await client.get("/metrics")).text
    prefix = 'pilothouse_config_loads_total{mode="full"'
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


def snapshot_memory(database: str) -> dict[str, int]:
    """Bytes each part of a full snapshot of this database keeps (tracemalloc)."""
    store = open_store(database)
    sizes = {}
    with store.connect() as conn:
        full_snapshot(conn, PARTS, {})  # warm imports and caches
        for part in PARTS:
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            snapshot = full_snapshot(conn, (part,), {})
            sizes[part.kind] = tracemalloc.get_traced_memory()[0] - before
            tracemalloc.stop()
            del snapshot
    store.close()
    return sizes


def key_lookup_ns(count: int) -> float:
    """ns per lookup of a present key hash in a snapshot part of `count` keys."""
    from immutables import Map

    hashes = [f"{n:064x}" for n in range(count)]
    part = Map({h: n for n, h in enumerate(hashes)})
    probe = random.Random(1).sample(hashes, 1000)
    started = time.perf_counter_ns()
    for _ in range(100):
        for h in probe:
            part.get(h)
    return (time.perf_counter_ns() - started) / 100_000


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="pilothouse-cp-"))
    sim_port = free_port()
    simulator = subprocess.Popen(
        [sys.executable, "-m", "pilothouse", "simulate", "--port", str(sim_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    redis = REDIS_URL if redis_answers(REDIS_URL) else None
    rows: list[dict[str, Any]] = []
    memory: dict[tuple[int, int], dict[str, int]] = {}
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", sim_port)):
                break
            time.sleep(0.1)
        for which in BACKENDS:
            backend = SQLite(work) if which == "sqlite" else Postgres(POSTGRES_URL)
            try:
                databases = build_databases(backend, work)
                for (prompts, routes), database in databases.items():
                    for mode in ("incremental", "full"):
                        found = await measure(
                            backend, work, database, routes, sim_port, redis, mode
                        )
                        rows.append(
                            {
                                "backend": backend.name,
                                "prompts": prompts,
                                "routes": routes,
                                "mode": mode,
                                **found,
                            }
                        )
                        print(f"# {backend.name} {prompts}/{routes} {mode}", file=sys.stderr)
                if not memory:
                    memory = {size: snapshot_memory(url) for size, url in databases.items()}
            finally:
                backend.close()
    finally:
        simulator.terminate()
        simulator.wait(10)
    bus = "Redis" if redis else "poll only"
    print(f"\n### Promote and change obeyed (two instances, bus: {bus}, {KEYS} keys)\n")
    print(
        "| database | prompts | routes | mode | promote API p50 | obeyed on A p50 / p99 | "
        "obeyed on B p50 / p99 | full loads |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['backend']} | {row['prompts']} | {row['routes']} | {row['mode']} | "
            f"{statistics.median(row['api']) * 1000:.1f} ms | "
            f"{pct(row['obeyed_a'], 0.5):.1f} / {pct(row['obeyed_a'], 0.99):.1f} ms | "
            f"{pct(row['obeyed_b'], 0.5):.1f} / {pct(row['obeyed_b'], 0.99):.1f} ms | "
            f"{row['full_loads'][0]:.0f} |"
        )
    print("\n### Snapshot memory (a full load, tracemalloc)\n")
    print("| prompts | routes | keys | key part | route part | per 1,000 served prompts |")
    print("|---:|---:|---:|---:|---:|---:|")
    for (prompts, routes), sizes in memory.items():
        print(
            f"| {prompts} | {routes} | {KEYS} | {sizes['key'] / 1e6:.2f} MB | "
            f"{sizes['route'] / 1e6:.2f} MB | {sizes['route'] / routes * 1000 / 1e6:.2f} MB |"
        )
    lookups = {count: key_lookup_ns(count) for count in (5_000, 100_000)}
    print("\n### Key lookup (the snapshot's key part)\n")
    print("| keys | lookup |")
    print("|---:|---:|")
    for count, ns in lookups.items():
        print(f"| {count:,} | {ns:.0f} ns |")
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    (RESULTS / f"control_plane-{stamp}.json").write_text(
        json.dumps(
            {
                "bus": bus,
                "keys": KEYS,
                "rows": rows,
                "memory": {f"{p}:{r}": sizes for (p, r), sizes in memory.items()},
                "key_lookup_ns": lookups,
            },
            indent=1,
        )
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
