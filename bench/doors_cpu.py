"""The front doors' CPU per request in process: the whole server (stages, codecs, output
signals, metrics, request log on SQLite) called through its ASGI interface, the provider
a canned answer (payloads.py's completion and stream), no sockets. CPU seconds, not wall
time, so a busy machine moves it far less than a load test (bench/doors.py).

    .venv/bin/python bench/doors_cpu.py            # --requests 2000 --rounds 5

Each round calls every door in turn (the order rotates) with `--requests` requests, plain
and streamed; the report gives each door's median µs of CPU per request and its ratio to
the chat path's, per round then the median of those ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import payloads

from pilothouse.config import Settings, load_config_file
from pilothouse.policy import admin_token
from pilothouse.policy import keys as key_policy
from pilothouse.server import create_server
from pilothouse.store import open_store

DOORS = ("chat", "responses", "messages")
CONFIG = """
providers:
  up: {type: openai, base_url: "http://up.invalid/v1"}
models:
  bench-json: {provider: up, model: bench-json, pricing: {input_per_mtok: 1, output_per_mtok: 2}}
"""


# Made once: building the canned stream per request (21 json.dumps) cost ~160 µs, as much
# as half of what the chat path itself costs, and counted it as the gateway's CPU.
_BODIES = {True: payloads.sse_body().encode(), False: payloads.completion().encode()}


class _Answer:
    def __init__(self, stream: bool):
        self.status, self.headers = 200, {}
        self.content_type = "text/event-stream" if stream else "application/json"
        self._body = _BODIES[stream]

    async def read(self) -> bytes:
        return self._body

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self._body

    def release(self) -> None:
        pass


class _Upstream:
    async def post(self, url: str, payload: dict[str, Any]) -> _Answer:
        return _Answer(bool(payload.get("stream")))

    async def close(self) -> None:
        pass


async def run(requests: int, rounds: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {f"{d}{s}": [] for d in DOORS for s in ("", "-stream")}
    with tempfile.TemporaryDirectory(prefix="doors-cpu-") as tmp:
        data = Path(tmp)
        (data / "config.yaml").write_text(CONFIG)
        settings = Settings(
            data_dir=data,
            config_path=data / "config.yaml",
            config=load_config_file(data / "config.yaml"),
        )
        store = open_store(settings.effective_database_url)
        store.upgrade()
        admin_token.prepare(store, data, "pha-bench-admin")
        server = create_server(settings, store, transport_for=lambda name, spec: _Upstream())
        _, secret = key_policy.create_key(store, name="bench")
        auth = (b"authorization", f"Bearer {secret}".encode())

        async def call(door: str, body: bytes) -> None:
            sent: list[dict[str, Any]] = []
            given = False

            async def receive() -> dict[str, Any]:
                nonlocal given
                if not given:
                    given = True
                    return {"type": "http.request", "body": body, "more_body": False}
                await asyncio.sleep(3600)
                return {"type": "http.disconnect"}

            async def send(message: dict[str, Any]) -> None:
                sent.append(message)

            scope = {
                "type": "http",
                "method": "POST",
                "path": payloads.DOOR_PATHS[door],
                "headers": [auth, (b"content-length", str(len(body)).encode())],
            }
            await server(scope, receive, send)
            assert sent[0]["status"] == 200, sent

        bodies = {
            f"{door}{suffix}": (door, payloads.door_body(door, "bench-json", stream=bool(suffix)))
            for door in DOORS
            for suffix in ("", "-stream")
        }
        async with server.running():
            assert server.writer is not None
            for door, body in bodies.values():  # warm-up
                for _ in range(300):
                    await call(door, body)
            names = list(bodies)
            for rnd in range(rounds):
                shift = rnd % len(names)
                for name in names[shift:] + names[:shift]:
                    door, body = bodies[name]
                    await server.writer.flush()
                    started = time.process_time()
                    for _ in range(requests):
                        await call(door, body)
                    await server.writer.flush()
                    samples[name].append((time.process_time() - started) * 1e6 / requests)
        store.close()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    samples = asyncio.run(run(args.requests, args.rounds))
    print("| path | µs CPU/request (median) | x chat (median of per-round ratios) | rounds |")
    print("| --- | ---: | ---: | --- |")
    for name, values in samples.items():
        base = samples["chat-stream" if name.endswith("-stream") else "chat"]
        ratio = statistics.median(v / b for v, b in zip(values, base, strict=True))
        rounds = " ".join(f"{v:.0f}" for v in values)
        print(f"| {name} | {statistics.median(values):.1f} | {ratio:.3f} | {rounds} |")


if __name__ == "__main__":
    sys.exit(main())
