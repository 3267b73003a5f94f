"""Promotions on a catalogue: the promote API's answer time and the time until each of
two instances serves the new release. Both instances run in this process, each behind
`httpx.ASGITransport`, on one database; the simulator is the upstream. Also the snapshot's
memory per part and a key lookup's cost. Imports Pilothouse: run under the project's .venv.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from cp_catalogue import ADMIN, Backend, caller_key, config_text

from pilothouse.config import load_config_file
from pilothouse.server import Server, create_server
from pilothouse.settings import Settings
from pilothouse.snapshot import PARTS, full_snapshot
from pilothouse.snapshot_holder import SnapshotHolder
from pilothouse.store import open_store


def as_full_rebuild(holder: SnapshotHolder) -> None:
    """The baseline: every change loads the whole snapshot, as before incremental loads."""
    holder._update = lambda base, version, items: holder._build()  # type: ignore[method-assign]


@contextlib.asynccontextmanager
async def instance(
    work: Path, name: str, database: str, upstream: str, redis: str | None, mode: str
) -> AsyncIterator[tuple[Server, httpx.AsyncClient]]:
    data_dir = work / name
    data_dir.mkdir(exist_ok=True)
    (data_dir / "config.yaml").write_text(config_text(upstream))
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


async def full_loads(client: httpx.AsyncClient) -> float:
    """Full snapshot loads this instance made after its start (pilothouse_config_loads)."""
    text = (await client.get("/metrics")).text
    prefix = 'pilothouse_config_loads_total{mode="full"'
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


async def promotions(
    backend: Backend,
    work: Path,
    database: str,
    routes: int,
    upstream: str,
    redis: str | None,
    mode: str,
    count: int,
) -> dict[str, list[float]]:
    """`count` promotions of random routes on instance A of two (on a copy of `database`):
    seconds to the API's answer, and until A and B serve the new release; and the full
    loads the two made meanwhile."""
    copy = backend.copy(database, f"run-{mode}-{routes}")
    secret = caller_key(copy)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    out: dict[str, list[float]] = {"api": [], "obeyed_a": [], "obeyed_b": []}
    rng = random.Random(7)
    async with (
        instance(work, f"a-{mode}-{routes}", copy, upstream, redis, mode) as (_, a),
        instance(work, f"b-{mode}-{routes}", copy, upstream, redis, mode) as (_, b),
    ):
        versions = dict.fromkeys(range(routes), 1)
        for _ in range(count):
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
    if hasattr(backend, "drop"):
        backend.drop(copy)
    return out


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
