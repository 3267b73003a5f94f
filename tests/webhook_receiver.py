"""A webhook receiver on loopback for tests: records each request's headers (lower-case)
and body, and answers the statuses it is given in turn (then 200)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Receiver:
    url: str
    statuses: list[int] = field(default_factory=list)
    seen: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def bodies(self) -> list[Any]:
        return [orjson.loads(body) for _, body in self.seen]


@asynccontextmanager
async def receiving() -> AsyncIterator[Receiver]:
    holder: list[Receiver] = []

    async def handle(request: web.Request) -> web.Response:
        hook = holder[0]
        headers = {k.lower(): v for k, v in request.headers.items()}
        hook.seen.append((headers, await request.read()))
        return web.Response(status=hook.statuses.pop(0) if hook.statuses else 200, text="ok")

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    holder.append(Receiver(f"http://127.0.0.1:{port}/hook"))
    try:
        yield holder[0]
    finally:
        await runner.cleanup()


def verified(headers: dict[str, str], body: bytes, secret: str) -> bool:
    """What a receiver does with `X-Pilothouse-Signature`: recompute the HMAC of
    `<t>.<body>` and compare in constant time."""
    parts = dict(p.split("=", 1) for p in headers["x-pilothouse-signature"].split(","))
    mac = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(mac.hexdigest(), parts["v1"])
