"""The gateway's own CPU per request, in process: the whole server (stages, codecs, output
signals, metrics, request log and its rollups on SQLite) driven through its ASGI app, the
provider a canned answer, no sockets. CPU seconds (not wall time) per request, so a busy
machine moves it far less than a load test; compare builds in the same run.

    .venv/bin/python bench/gateway_cpu.py                       # this checkout
    .venv/bin/python bench/gateway_cpu.py --src before=/tmp/old/src --rounds 5

Each round runs every build once, in turn, in a fresh process (`--requests` chat calls,
non-streamed and streamed, after a warm-up); the report gives each build's median µs per
request and its ratio to the first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import asyncio, json, sys, time
from pathlib import Path

import httpx, orjson

from pilothouse.config import load_config_file
from pilothouse.settings import Settings
from pilothouse.policy import keys as key_policy
try:
    from pilothouse.policy import admin_token
except ImportError:  # a build from before the admin token lived in the store
    admin_token = None
from pilothouse.server import create_server
from pilothouse.store import open_store

ANSWER = orjson.dumps({
    "id": "c1", "object": "chat.completion", "created": 1, "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant",
        "content": "Your ticket is about billing; the billing team will reply within a day."},
        "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 14, "total_tokens": 26}})
CHUNKS = [b'data: {"id":"s","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"Your ticket "},"finish_reason":null}]}\n\n',
          b'data: {"id":"s","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"is about billing."},"finish_reason":null}]}\n\n',
          b'data: {"id":"s","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n',
          b'data: {"id":"s","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}\n\n',
          b"data: [DONE]\n\n"]


class Answer:
    def __init__(self, stream):
        self.status, self.headers = 200, {}
        self.content_type = "text/event-stream" if stream else "application/json"
        self._stream = stream
    async def read(self):
        return b"".join(CHUNKS) if self._stream else ANSWER
    async def chunks(self):
        for piece in (CHUNKS if self._stream else [ANSWER]):
            yield piece
    def release(self):
        pass


class Transport:
    async def post(self, url, payload):
        return Answer(bool(payload.get("stream")))
    async def close(self):
        pass


async def main(data_dir, requests):
    config = data_dir / "config.yaml"
    config.write_text('providers:\n  sim: {type: openai, base_url: "http://sim.invalid/v1"}\n'
                      'models:\n  fast: {provider: sim, model: m, pricing: {input_per_mtok: 1, output_per_mtok: 2}}\n')
    settings = Settings(data_dir=data_dir, config_path=config, config=load_config_file(config))
    store = open_store(settings.effective_database_url)
    store.upgrade()
    prepare = getattr(admin_token, "prepare", None)  # older builds kept the token elsewhere
    if prepare is not None:
        prepare(store, data_dir, "pha-bench-admin")
    server = create_server(settings, store, transport_for=lambda name, spec: Transport())
    _, secret = key_policy.create_key(store, name="bench")
    headers = {"Authorization": f"Bearer {secret}"}
    body = {"model": "fast", "messages": [{"role": "user", "content": "Where is my refund?"}]}
    async with server.running():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server), base_url="http://gw") as client:
            async def batch(n):
                for i in range(n):
                    r = await client.post("/v1/chat/completions", headers=headers,
                                          json={**body, "stream": bool(i % 2)})
                    assert r.status_code == 200, r.text
            await batch(300)
            await server.writer.flush()
            started = time.process_time()
            await batch(requests)
            await server.writer.flush()
            spent = time.process_time() - started
    store.close()
    print(json.dumps({"us_per_request": spent * 1e6 / requests}))


asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
"""


def run_once(src: Path | None, requests: int) -> float:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    with tempfile.TemporaryDirectory(prefix="gateway-cpu-") as data_dir:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, data_dir, str(requests)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    if done.returncode != 0:
        raise SystemExit(f"the run failed ({src or 'this checkout'}):\n{done.stderr[-3000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["us_per_request"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", action="append", default=[], help="NAME=PATH to a src tree")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    builds: list[tuple[str, Path | None]] = [("this checkout", None)]
    for item in args.src:
        name, _, path = item.partition("=")
        builds.append((name, Path(path).resolve()))
    samples: dict[str, list[float]] = {name: [] for name, _ in builds}
    for _ in range(args.rounds):
        for name, src in builds:
            samples[name].append(run_once(src, args.requests))
    first = statistics.median(samples[builds[0][0]])
    print(f"{'build':<16}{'µs CPU/request (median)':>26}{'ratio':>8}   rounds")
    for name, _ in builds:
        median = statistics.median(samples[name])
        rounds = " ".join(f"{s:.0f}" for s in samples[name])
        print(f"{name:<16}{median:>26.0f}{median / first:>8.3f}   {rounds}")


if __name__ == "__main__":
    main()
