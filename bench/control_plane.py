"""Control-plane benchmark: what configuration changes cost as the catalogue grows.

The curve: catalogues of N prompts (two versions each) and R routes with 5,000 API keys,
at 10/1, 100/10, 1,000/200 and 10,000/2,000, on SQLite and on PostgreSQL, each size a
database grown from the previous one (cp_catalogue.py). At each size, on copies of it:

1. promote (cp_promote.py): two Pilothouse servers in this process on the one database,
   A taking the writes, B another instance (on SQLite with no bus: the poll reads the
   change log; on PostgreSQL with Redis, and NOTIFY). CP_PROMOTES promotions of random
   routes through `POST /api/routes/{route}/promote` on A: the API's answer time, and
   the time until A's and B's gateways serve the new release. Mode `incremental` is this
   code; `full` (up to CP_FULL_UP_TO prompts) the same code loading every change in full,
   the behaviour before incremental snapshots, as the same-run baseline.
2. storm (cp_storm.py): `pilothouse serve` processes (SQLite: one instance; PostgreSQL:
   A taking the writes on LOADGEN_CPU, B serving on TARGET_CPU, sharing Redis), the
   nginx upstream and wrk on LOADGEN_CPU; wrk c32 on a route of the serving instance with
   and without one promotion a second on the writer, interleaved rounds.
3. feed (cp_feed.py): CP_FEED_CLIENTS clients (CP_FEED_SDK of them real SDK clients, the
   rest raw SSE clients doing what the SDK does) on the serving instance follow one
   prompt's label; the writer moves it CP_FEED_MOVES times: seconds until each client
   heard the event and until it fetched the new version (the SDK's on_change).

Also: the snapshot's memory per part and a key lookup at 5,000 and 100,000 keys.

    bash bench/setup.sh      # nginx, wrk, the bench venv (aiohttp, matplotlib)
    .venv/bin/python bench/control_plane.py    # about 25 minutes on 2 cores

Knobs: CP_SIZES ("10:1,100:10,1000:200,10000:2000"), CP_KEYS (5000), CP_BACKENDS
("sqlite,postgresql"), CP_PARTS ("promote,storm,feed"), CP_PROMOTES (60), CP_FULL_UP_TO
(1000), CP_STORM_ROUNDS (5), CP_STORM_S (8), CP_FEED_CLIENTS (1000), CP_FEED_SDK (20),
CP_FEED_PROCS (2), CP_FEED_MOVES (10), CP_POSTGRES_URL (postgresql://postgres@127.0.0.1:5432),
PILOTHOUSE_REDIS_URL (redis://127.0.0.1:6379), TARGET_CPU (1), LOADGEN_CPU (0), CP_PLOT
(docs/images/control-plane.svg).
Prints Markdown tables; raw JSON goes to bench/results/, the plot (cp_plot.py, run under
the bench venv) to docs/images/control-plane.svg.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cp_report
from cp_catalogue import Postgres, SQLite, build_databases, caller_key, free_port, redis_answers
from cp_feed import feed_moves
from cp_instances import instances, start_upstream
from cp_promote import key_lookup_ns, promotions, snapshot_memory
from cp_storm import storm_rounds

import harness
from harness import log

ENV = os.environ.get
SIZES = [
    (int(p), int(r))
    for p, r in (
        pair.split(":") for pair in ENV("CP_SIZES", "10:1,100:10,1000:200,10000:2000").split(",")
    )
]
KEYS = int(ENV("CP_KEYS", "5000"))
BACKENDS = ENV("CP_BACKENDS", "sqlite,postgresql").split(",")
PARTS = set(ENV("CP_PARTS", "promote,storm,feed").split(","))
PROMOTES = int(ENV("CP_PROMOTES", "60"))
FULL_UP_TO = int(ENV("CP_FULL_UP_TO", "1000"))
STORM_ROUNDS = int(ENV("CP_STORM_ROUNDS", "5"))
STORM_S = int(ENV("CP_STORM_S", "8"))
FEED_CLIENTS = int(ENV("CP_FEED_CLIENTS", "1000"))
FEED_SDK = int(ENV("CP_FEED_SDK", "20"))
FEED_PROCS = int(ENV("CP_FEED_PROCS", "2"))
FEED_MOVES = int(ENV("CP_FEED_MOVES", "10"))
POSTGRES_URL = ENV("CP_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = ENV("PILOTHOUSE_REDIS_URL", "redis://127.0.0.1:6379")
HERE = Path(__file__).parent
RESULTS = HERE / "results"
PLOT = Path(ENV("CP_PLOT", str(HERE.parent / "docs" / "images" / "control-plane.svg")))


def load_average() -> float:
    return os.getloadavg()[0]


def start_simulator() -> tuple[subprocess.Popen[bytes], str]:
    """`pilothouse simulate` for the in-process servers' upstream."""
    port = free_port()
    simulator = subprocess.Popen(
        [sys.executable, "-m", "pilothouse", "simulate", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
            break
        time.sleep(0.1)
    return simulator, f"http://127.0.0.1:{port}/v1"


def measure_size(
    backend: SQLite | Postgres,
    work: Path,
    database: str,
    size: tuple[int, int],
    redis: str | None,
    upstream: str,
) -> dict[str, Any]:
    """Every part at one catalogue size, each on its own copy of `database`."""
    prompts, routes = size
    row: dict[str, Any] = {"backend": backend.name, "prompts": prompts, "routes": routes}
    row["bus"] = "Redis + NOTIFY" if redis else "none (poll + change log)"
    if "promote" in PARTS:
        modes = ["incremental"] + (["full"] if prompts <= FULL_UP_TO else [])
        for mode in modes:
            row[mode] = asyncio.run(
                promotions(backend, work, database, routes, upstream, redis, mode, PROMOTES)
            )
            log(f"{backend.name} {prompts}/{routes} promote {mode}: done")
    two = backend.name == "PostgreSQL"
    for part in ("storm", "feed"):
        if part not in PARTS:
            continue
        copy = backend.copy(database, f"{part}-{prompts}-{routes}")
        secret = caller_key(copy)
        with instances(str(work), copy, redis, two) as (writer, served):
            load_before = load_average()
            if part == "storm":
                row["storm"] = storm_rounds(
                    str(work), writer, served, secret, routes, STORM_ROUNDS, STORM_S
                )
            else:
                row["feed"] = feed_moves(
                    writer, served, secret, FEED_CLIENTS, FEED_SDK, FEED_PROCS, FEED_MOVES
                )
            row[f"{part}_load"] = [load_before, load_average()]
        if isinstance(backend, Postgres):
            backend.drop(copy)
        log(f"{backend.name} {prompts}/{routes} {part}: done")
    return row


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="pilothouse-cp-"))
    signal.signal(signal.SIGTERM, lambda s, f: (harness.stop_all(), sys.exit(128 + s)))
    redis = REDIS_URL if redis_answers(REDIS_URL) else None
    if "postgresql" in BACKENDS and not redis:
        log(f"Redis does not answer at {REDIS_URL}: PostgreSQL instances use NOTIFY only")
    simulator, upstream = start_simulator()
    rows: list[dict[str, Any]] = []
    memory: dict[str, dict[str, int]] = {}
    started = dt.datetime.now(dt.UTC)
    loads = [load_average()]
    try:
        if PARTS & {"storm", "feed"}:
            start_upstream(str(work))
        for which in BACKENDS:
            backend = SQLite(work) if which == "sqlite" else Postgres(POSTGRES_URL)
            try:
                databases = build_databases(backend, work, SIZES, KEYS)
                for size, database in databases.items():
                    bus = redis if isinstance(backend, Postgres) else None
                    rows.append(measure_size(backend, work, database, size, bus, upstream))
                    loads.append(load_average())
                if not memory:
                    memory = {f"{p}:{r}": snapshot_memory(url) for (p, r), url in databases.items()}
            finally:
                backend.close()
    finally:
        harness.stop_all()
        simulator.terminate()
        simulator.wait(10)
    result = {
        "started": started.isoformat(timespec="seconds"),
        "minutes": (dt.datetime.now(dt.UTC) - started).total_seconds() / 60,
        "load_average_1m": loads,
        "cpus": os.cpu_count(),
        "keys": KEYS,
        "rows": rows,
        "memory": memory,
        "key_lookup_ns": {str(n): key_lookup_ns(n) for n in (5_000, 100_000)},
    }
    print(cp_report.markdown(result))
    RESULTS.mkdir(exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%S")
    path = RESULTS / f"control_plane-{stamp}.json"
    path.write_text(json.dumps(result, indent=1))
    cp_report.plot(path, PLOT)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
