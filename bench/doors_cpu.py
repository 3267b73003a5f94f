"""The front doors' CPU per request in process: the whole server (stages, codecs, output
signals, metrics, request log on SQLite) called through its ASGI interface, the provider
a canned answer (payloads.py's completion and stream), no sockets. CPU seconds of the
event loop's thread, not wall time, so a busy machine moves it far less than a load test
(bench/doors.py). The request log's threads are left out: a row costs them the same
whichever door it came through, so leaving it out of both sides of a ratio only makes
the ratio larger (the conservative side).

    .venv/bin/python bench/doors_cpu.py              # --block 10 --blocks 1000, ~1 min
    .venv/bin/python bench/doors_cpu.py --words 300  # a longer streamed answer

The paths are each door plain and streamed, the stream either arriving in one read (all
frames at once) or one frame per read (as a provider sends tokens). They are interleaved
finely: each block runs every path for `--block` requests, the order rotating from block
to block, so a slow spell of a busy machine or a background thread's burst lands on every
path alike. Per path the report gives the median and the mean of its blocks' µs of CPU
per request and each as a ratio to the chat path's (same shape); the mean counts the
garbage collections a path's allocations cause, the median is steadier.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import payloads

from pilothouse.config import load_config_file
from pilothouse.policy import admin_token
from pilothouse.policy import keys as key_policy
from pilothouse.server import create_server
from pilothouse.settings import Settings
from pilothouse.store import open_store

DOORS = ("chat", "responses", "messages")
CONFIG = """
providers:
  up: {type: openai, base_url: "http://up.invalid/v1"}
models:
  bench-json: {provider: up, model: bench-json, pricing: {input_per_mtok: 1, output_per_mtok: 2}}
"""


SHAPES = ("", "-stream", "-stream-frames")
# The upstream's reads per answer shape. Made once: building the canned stream per
# request (21 json.dumps) cost ~160 µs, as much as half of what the chat path itself
# costs, and counted it as the gateway's CPU.
_READS: dict[str, list[bytes]] = {}


def canned(words: int | None) -> None:
    """The answers: payloads.py's completion, and its stream (of `words` words)."""
    frames = [f"data: {event}\n\n".encode() for event in payloads.sse_events(words)]
    _READS.update({"": [payloads.completion().encode()], "-stream": [b"".join(frames)]})
    _READS["-stream-frames"] = frames


canned(None)


class _Answer:
    def __init__(self, shape: str):
        self.status, self.headers = 200, {}
        self.content_type = "text/event-stream" if shape else "application/json"
        self._reads = _READS[shape]

    async def read(self) -> bytes:
        return self._reads[0]

    async def chunks(self) -> AsyncIterator[bytes]:
        for read in self._reads:
            yield read

    def release(self) -> None:
        pass


class _Upstream:
    shape = ""  # which answer the path being measured gets (set before each path's block)

    async def post(self, url: str, payload: dict[str, Any]) -> _Answer:
        return _Answer(self.shape if payload.get("stream") else "")

    async def close(self) -> None:
        pass


async def run(block: int, blocks: int) -> dict[str, list[float]]:
    """µs of CPU per request, one value per block, for every door and answer shape."""
    names = [f"{door}{shape}" for door in DOORS for shape in SHAPES]
    samples: dict[str, list[float]] = {name: [] for name in names}
    upstream = _Upstream()
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
        server = create_server(settings, store, transport_for=lambda name, spec: upstream)
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

        paths = {
            f"{door}{shape}": (
                door,
                shape,
                payloads.door_body(door, "bench-json", stream=bool(shape)),
            )
            for door in DOORS
            for shape in SHAPES
        }

        async def measure(name: str, count: int) -> float:
            door, shape, body = paths[name]
            upstream.shape = shape
            started = time.thread_time()
            for _ in range(count):
                await call(door, body)
            return (time.thread_time() - started) * 1e6 / count

        async with server.running():
            for name in names:  # warm-up
                await measure(name, 300)
            gc.collect()
            gc.freeze()  # the server's long-lived objects: no full collection walks them
            for number in range(blocks):
                shift = number % len(names)
                for name in names[shift:] + names[:shift]:
                    samples[name].append(await measure(name, block))
        store.close()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--block", type=int, default=10, help="requests per path per block")
    parser.add_argument("--blocks", type=int, default=1000)
    parser.add_argument(
        "--words", type=int, help="a streamed answer of this many words (default: 17)"
    )
    args = parser.parse_args()
    canned(args.words)
    samples = asyncio.run(run(args.block, args.blocks))
    words = args.words or len(payloads.WORDS)
    print(
        f"{args.blocks} blocks of {args.block} requests per path, interleaved; "
        f"streamed answers of {words} words"
    )
    print("| path | µs CPU/request, median | x chat | mean | x chat |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, values in samples.items():
        shape = next(s for s in reversed(SHAPES) if name.endswith(s))
        base = samples[f"chat{shape}"]
        median, mean = statistics.median(values), statistics.fmean(values)
        print(
            f"| {name} | {median:.1f} | {median / statistics.median(base):.3f} "
            f"| {mean:.1f} | {mean / statistics.fmean(base):.3f} |"
        )


if __name__ == "__main__":
    sys.exit(main())
