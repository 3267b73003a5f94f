"""The floor for a Python gateway: the least an aiohttp proxy can do per request.

Reads the body, picks the upstream by the JSON `model` field, forwards the bytes over a
keep-alive pool and relays the answer (chunk by chunk for text/event-stream). No auth,
no request log, no metrics, no validation, no per-event parsing. Pilothouse's throughput
is compared with this, in the same run, on the same core.

    FLOOR_PORT=19091 FLOOR_ROUTES='{"model": "http://127.0.0.1:19081/v1"}' python floor_proxy.py
"""

from __future__ import annotations

import asyncio
import json
import os

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

ROUTES: dict[str, str] = {
    model: base.rstrip("/") + "/chat/completions"
    for model, base in json.loads(os.environ["FLOOR_ROUTES"]).items()
}
SESSION = web.AppKey("session", ClientSession)


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    try:
        url = ROUTES[json.loads(body)["model"]]
    except (ValueError, KeyError, TypeError):
        return web.json_response({"error": {"message": "unknown model"}}, status=404)
    session = request.app[SESSION]
    headers = {"Content-Type": "application/json"}
    async with session.post(url, data=body, headers=headers) as upstream:
        ctype = upstream.headers.get("Content-Type", "application/json")
        if not ctype.startswith("text/event-stream"):
            raw = await upstream.read()
            return web.Response(status=upstream.status, body=raw, headers={"Content-Type": ctype})
        resp = web.StreamResponse(
            status=upstream.status, headers={"Content-Type": ctype, "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        async for chunk in upstream.content.iter_any():
            await resp.write(chunk)
        await resp.write_eof()
        return resp


async def session_ctx(app: web.Application):  # type: ignore[no-untyped-def]
    app[SESSION] = ClientSession(
        connector=TCPConnector(limit=256, keepalive_timeout=60),
        timeout=ClientTimeout(total=60),
        auto_decompress=False,
    )
    yield
    await app[SESSION].close()


def main() -> None:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.cleanup_ctx.append(session_ctx)
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    web.run_app(
        app,
        host="127.0.0.1",
        port=int(os.environ.get("FLOOR_PORT", "19091")),
        access_log=None,
        print=None,
        loop=loop,
    )


if __name__ == "__main__":
    main()
