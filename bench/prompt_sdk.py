"""Benchmark of the prompt SDK against a real `pilothouse serve` (SQLite, loopback).

    .venv/bin/python bench/prompt_sdk.py [--calls 100000] [--clients 50] [--moves 10]

Measures:
  1. `get_prompt` served from memory: p50/p99/p99.9 over N calls (µs, one call per sample);
  2. a label move seen by C SDK clients (each its own Client, hence its own stream thread and
     connection), from just before the admin POST to each client's `on_change`: p50/p99/max
     over M moves;
  3. a cold start: the first `get_prompt` of a new Client with the registry up (from the
     server), then with the registry down (from the disk cache): served yes/no and time.

It starts and stops its own server in a temp dir; it stops only that process.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from pilothouse import Client

ADMIN_TOKEN = "bench-admin-token"
CONFIG = """
providers:
  nowhere: {type: openai, base_url: 'http://127.0.0.1:9/v1'}
models:
  m: {provider: nowhere, model: m}
"""
PROMPT = "bench-support"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    data = work / "data"
    data.mkdir()
    (work / "config.yaml").write_text(CONFIG)
    port = free_port()
    env = {
        **os.environ,
        "PILOTHOUSE_ADMIN_TOKEN": ADMIN_TOKEN,
        "PILOTHOUSE_DATABASE_URL": f"sqlite:///{data / 'pilothouse.db'}",
    }
    argv = [sys.executable, "-m", "pilothouse", "serve", "--port", str(port)]
    argv += ["--config", str(work / "config.yaml"), "--data-dir", str(data)]
    with open(work / "serve.log", "wb") as log:
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited:\n{(work / 'serve.log').read_text()}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    stop_server(process)
    raise SystemExit("server did not become ready in 60 s")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL: the registry goes down the way an outage takes it down."""
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def bench_cache(url: str, key: str, cache_dir: Path, calls: int) -> dict[str, float]:
    with Client(url, key, cache_dir=cache_dir) as client:
        client.get_prompt(PROMPT)
        get = client.get_prompt
        clock = time.perf_counter_ns
        samples = [0] * calls
        for _ in range(1000):  # warm up
            get(PROMPT)
        started = clock()
        for i in range(calls):
            t0 = clock()
            get(PROMPT)
            samples[i] = clock() - t0
        wall = (clock() - started) / 1e9
    us = sorted(s / 1000 for s in samples)
    return {
        "p50_us": percentile(us, 0.50),
        "p99_us": percentile(us, 0.99),
        "p999_us": percentile(us, 0.999),
        "max_us": us[-1],
        "calls_per_s": calls / wall,
    }


def bench_propagation(
    url: str, key: str, admin: httpx.Client, work: Path, n_clients: int, moves: int
) -> dict[str, float]:
    seen: list[dict[int, float]] = [{} for _ in range(n_clients)]  # client -> version -> time

    def recorder(i: int) -> Any:
        def on_change(name: str, label: str | None, old: int, new: int) -> None:
            seen[i][new] = time.monotonic()

        return on_change

    clients = [
        Client(url, key, cache_dir=work / f"cache-{i}", on_change=recorder(i))
        for i in range(n_clients)
    ]
    latencies: list[float] = []
    missed = 0
    try:
        for client in clients:
            assert client.get_prompt(PROMPT).version == 1
        deadline = time.monotonic() + 30
        while not all(c.stream_connected for c in clients):
            if time.monotonic() > deadline:
                raise SystemExit("not every client connected its stream within 30 s")
            time.sleep(0.01)
        time.sleep(0.5)
        versions = [2, 1] * moves
        for move, version in enumerate(versions[:moves]):
            for s in seen:
                s.pop(version, None)
            start = time.monotonic()
            response = admin.post(
                f"/api/prompts/{PROMPT}/labels/production",
                json={"version": version, "reason": f"bench move {move}"},
            )
            response.raise_for_status()
            deadline = time.monotonic() + 10
            while not all(version in s for s in seen) and time.monotonic() < deadline:
                time.sleep(0.002)
            for s in seen:
                if version in s:
                    latencies.append((s[version] - start) * 1000)
                else:
                    missed += 1
            time.sleep(0.3)
    finally:
        for client in clients:
            client.close()
    ms = sorted(latencies)
    return {
        "samples": len(ms),
        "missed": missed,
        "p50_ms": percentile(ms, 0.50),
        "p99_ms": percentile(ms, 0.99),
        "max_ms": ms[-1],
    }


COLD_START = """
import json, sys, time
t0 = time.perf_counter()
from pilothouse import Client
t1 = time.perf_counter()
client = Client(sys.argv[1], sys.argv[2], cache_dir=sys.argv[3])
prompt = client.get_prompt(sys.argv[4])
t2 = time.perf_counter()
client.close()
print(json.dumps({"source": prompt.source, "version": prompt.version,
                  "import_ms": (t1 - t0) * 1000, "get_ms": (t2 - t1) * 1000}))
"""


def bench_cold_start(url: str, key: str, cache_dir: Path) -> dict[str, Any]:
    """A new process: import the SDK, make a Client, get one prompt."""
    result = subprocess.run(
        [sys.executable, "-c", COLD_START, url, key, str(cache_dir), PROMPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--moves", type=int, default=10)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pilothouse-sdk-bench-") as tmp:
        work = Path(tmp)
        process, url = start_server(work)
        try:
            admin = httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
            )
            key = admin.post("/api/keys", json={"name": "bench"}).json()["secret"]
            for i, labels in ((1, ["production"]), (2, [])):
                admin.post(
                    f"/api/prompts/{PROMPT}/versions",
                    json={
                        "messages": [
                            {"role": "system", "content": f"You are support agent v{i}."},
                            {"role": "user", "content": "{{ticket}}"},
                        ],
                        "variables": {"ticket": {"required": True}},
                        "labels": labels,
                    },
                ).raise_for_status()

            cache = bench_cache(url, key, work / "cache-hot", args.calls)
            propagation = bench_propagation(url, key, admin, work, args.clients, args.moves)
            cold_up = bench_cold_start(url, key, work / "cache-cold")
            admin.close()
        finally:
            stop_server(process)
        cold_down = bench_cold_start(url, key, work / "cache-cold")

    results = {
        "get_prompt_from_memory": {"calls": args.calls, **cache},
        "label_move_propagation": {"clients": args.clients, "moves": args.moves, **propagation},
        "cold_start_registry_up": cold_up,
        "cold_start_registry_down": cold_down,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    rows = [
        ("get_prompt from memory, p50", f"{cache['p50_us']:.2f} µs"),
        ("get_prompt from memory, p99", f"{cache['p99_us']:.2f} µs"),
        ("get_prompt from memory, p99.9", f"{cache['p999_us']:.2f} µs"),
        ("get_prompt from memory, throughput", f"{cache['calls_per_s'] / 1e6:.2f} M calls/s"),
        (
            f"label move seen by {args.clients} clients, p50",
            f"{propagation['p50_ms']:.1f} ms",
        ),
        (f"label move seen by {args.clients} clients, p99", f"{propagation['p99_ms']:.1f} ms"),
        (f"label move seen by {args.clients} clients, max", f"{propagation['max_ms']:.1f} ms"),
        (
            "label move samples (missed)",
            f"{propagation['samples']} ({propagation['missed']})",
        ),
        ("new process: import pilothouse.sdk", f"{cold_up['import_ms']:.1f} ms"),
        (
            "cold start, registry up: Client() + get_prompt",
            f"{cold_up['source']}, {cold_up['get_ms']:.1f} ms",
        ),
        (
            "cold start, registry down: served from disk",
            f"{'yes' if cold_down['source'] == 'disk' else 'NO: ' + cold_down['source']}, "
            f"{cold_down['get_ms']:.1f} ms",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print(
        f"\nPilothouse prompt SDK ({args.calls} calls, {args.clients} clients, {args.moves} moves)"
    )
    print("-" * (width + 20))
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
