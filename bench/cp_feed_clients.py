"""Prompt-feed clients for the control-plane benchmark: N raw SSE clients that do what a
`pilothouse.Client` does for one cached prompt (run under the bench venv: aiohttp).

Each client, like the SDK: fetches the prompt by label (keeping its ETag), opens
`GET /api/prompts/stream` on a connection of its own, and on a `prompt` event for its
prompt and label takes the prompt the event carries, or (an event that carries none)
refetches it with `If-None-Match`: then it has the new version (the SDK's `on_change`).

Driven over stdin/stdout, one line each way:
  -> `ready N` once every client has fetched and its stream is open;
  <- `expect V` before a label move to version V; -> `expecting V`;
  -> `done {"heard": [...], "fetched": [...], "missed": M}` (wall-clock seconds, one per
     client that heard the move's event, and that then had version V) when every
     client has V, or after --timeout seconds;
  <- EOF: close everything and exit.

    python cp_feed_clients.py --url URL --key KEY --prompt P --label L --clients N
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from typing import Any

import aiohttp


class Feed:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.expected: int | None = None
        self.heard: dict[int, float] = {}
        self.fetched: dict[int, float] = {}
        self.connected = 0
        self.changed = asyncio.Event()

    async def client(self, index: int) -> None:
        args = self.args
        headers = {"Authorization": f"Bearer {args.key}", "User-Agent": "pilothouse-sdk"}
        prompt_url = f"{args.url}/api/prompts/{args.prompt}"
        connector = aiohttp.TCPConnector(limit=2)  # the SDK: one for fetches, one stream
        async with aiohttp.ClientSession(
            connector=connector, headers=headers, timeout=aiohttp.ClientTimeout(total=None)
        ) as session:

            async def fetch(etag: str | None) -> tuple[int | None, str | None]:
                extra = {"If-None-Match": etag} if etag else {}
                async with session.get(
                    prompt_url, params={"label": args.label}, headers=extra
                ) as r:
                    if r.status == 304:
                        return None, etag
                    r.raise_for_status()
                    body: dict[str, Any] = await r.json()
                    return int(body["version"]), r.headers.get("etag")

            _, etag = await fetch(None)
            stream_headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            async with session.get(f"{args.url}/api/prompts/stream", headers=stream_headers) as s:
                s.raise_for_status()
                await fetch(etag)  # the SDK revalidates what it holds on connecting
                self.connected += 1
                event, data = "", ""
                async for raw in s.content:
                    line = raw.decode().rstrip("\r\n")
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data = line[5:].strip()
                    elif not line and event == "prompt" and data:
                        found = json.loads(data)
                        event, data = "", ""
                        if found.get("name") != args.prompt or found.get("label") not in (
                            None,
                            args.label,
                        ):
                            continue
                        expected = self.expected
                        if expected is not None and found.get("version") == expected:
                            self.heard.setdefault(index, time.time())
                        carried = found.get("prompt")
                        if (
                            found.get("label") == args.label
                            and isinstance(carried, dict)
                            and carried.get("name") == args.prompt
                            and carried.get("version") == found.get("version")
                            and isinstance(found.get("etag"), str)
                        ):  # the SDK takes the prompt the event carries
                            version, etag = carried["version"], found["etag"]
                        else:
                            version, etag = await fetch(etag)
                        if version is not None and version == self.expected:
                            self.fetched.setdefault(index, time.time())
                            if len(self.fetched) == self.args.clients:
                                self.changed.set()
                    elif not line:
                        event, data = "", ""

    async def run(self) -> None:
        tasks = [asyncio.create_task(self.client(i)) for i in range(self.args.clients)]
        while self.connected < self.args.clients:
            failed = [t for t in tasks if t.done()]
            if failed:
                raise SystemExit(f"a client failed: {failed[0].exception()!r}")
            await asyncio.sleep(0.05)
        print(f"ready {self.connected}", flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := (await reader.readline()).decode().strip():
            command, _, value = line.partition(" ")
            if command != "expect":
                continue
            self.heard, self.fetched = {}, {}
            self.changed = asyncio.Event()
            self.expected = int(value)
            print(f"expecting {value}", flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), self.args.timeout)
            missed = self.args.clients - len(self.fetched)
            heard, fetched = list(self.heard.values()), list(self.fetched.values())
            self.expected = None
            print("done " + json.dumps({"heard": heard, "fetched": fetched, "missed": missed}))
            sys.stdout.flush()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--label", default="production")
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=15.0)
    args = parser.parse_args()
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(Feed(args).run())


if __name__ == "__main__":
    main()
