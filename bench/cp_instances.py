"""`pilothouse serve` processes for the control-plane benchmark: one instance on SQLite,
or two on PostgreSQL sharing Redis (A takes the admin writes, B serves the measured
traffic), each pinned to a core, all on one catalogue database; and the fixed nginx
upstream they call (harness.nginx_conf). Only the processes started here are stopped."""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import payloads
from cp_catalogue import ADMIN, config_text, free_port

import harness
from harness import HOST, LOADGEN_CPU, TARGET_CPU, Proc, log

PORT_UP_JSON, PORT_UP_STREAM = 19381, 19382


def start_upstream(run_dir: str) -> Proc:
    """nginx answering every chat completion with the same JSON, on LOADGEN_CPU."""
    conf = harness.nginx_conf(run_dir, PORT_UP_JSON, PORT_UP_STREAM)
    proc = Proc(
        "upstream",
        ["nginx", "-c", conf, "-p", run_dir, "-e", f"{run_dir}/nginx.err"],
        LOADGEN_CPU,
        os.path.join(run_dir, "nginx.log"),
    )
    deadline = time.time() + 10
    while not harness.port_open(PORT_UP_JSON):
        if time.time() > deadline or not proc.alive():
            raise SystemExit(f"nginx did not start: {proc.tail()}")
        time.sleep(0.1)
    return proc


@dataclass
class Instance:
    name: str
    port: int
    proc: Proc

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any], float]:
        """An admin API call: (status, JSON answer, seconds)."""
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"},
        )
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        return status, json.loads(raw or b"{}"), time.perf_counter() - started


def start_instance(run_dir: str, name: str, database: str, redis: str | None, cpu: str) -> Instance:
    data = os.path.join(run_dir, f"serve-{name}")
    os.makedirs(data, exist_ok=True)
    config = os.path.join(data, "config.yaml")
    with open(config, "w") as f:
        f.write(config_text(f"http://{HOST}:{PORT_UP_JSON}/v1", payloads.MODEL_JSON))
    port = free_port()
    argv = [harness.PILOTHOUSE_BIN, "serve", "--config", config, "--data-dir", data]
    argv += ["--host", HOST, "--port", str(port)]
    env = {
        "PILOTHOUSE_ADMIN_TOKEN": ADMIN,
        "PILOTHOUSE_DATABASE_URL": database,
        "PILOTHOUSE_REDIS_URL": redis or "",
    }
    proc = Proc(f"serve-{name}", argv, cpu, os.path.join(run_dir, f"serve-{name}.log"), env=env)
    deadline = time.time() + 180
    while True:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://{HOST}:{port}/readyz", timeout=2) as r,
        ):
            if r.status == 200:
                break
        if time.time() > deadline or not proc.alive():
            raise SystemExit(f"instance {name} did not start: {proc.tail()}")
        time.sleep(0.2)
    return Instance(name, port, proc)


@contextlib.contextmanager
def instances(
    run_dir: str, database: str, redis: str | None, two: bool
) -> Iterator[tuple[Instance, Instance]]:
    """(writer, served): one instance on TARGET_CPU that is both, or A on LOADGEN_CPU
    taking the writes and B on TARGET_CPU serving the measured traffic."""
    started: list[Instance] = []
    try:
        if two:
            started.append(start_instance(run_dir, "a", database, redis, LOADGEN_CPU))
            started.append(start_instance(run_dir, "b", database, redis, TARGET_CPU))
        else:
            started.append(start_instance(run_dir, "a", database, redis, TARGET_CPU))
        log(f"instances up: {', '.join(f'{i.name} :{i.port}' for i in started)}")
        yield started[0], started[-1]
    finally:
        for one in reversed(started):
            one.proc.stop()
