"""Relaying an upstream stream to the client, frame by frame.

Frames pass through unmerged and in order. While no content has arrived, SSE comments
keep the connection warm; the usage chunk the gateway asked for is dropped unless the
client asked for it too; a mid-stream failure ends the stream with an error event.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from pilothouse.gateway.http_io import Send, error_body
from pilothouse.providers.types import ChatStream, EventKind, StreamEvent, UpstreamError

KEEPALIVE = b": keep-alive\n\n"


@dataclass(slots=True)
class RelayResult:
    chunks_out: int = 0
    first_content_upstream: float | None = None  # perf_counter when content arrived
    first_content_written: float | None = None  # perf_counter when it was sent on
    error: UpstreamError | None = None


async def relay(
    stream: ChatStream,
    send: Send,
    result: RelayResult,
    *,
    include_usage: bool,
    keepalive_seconds: float,
) -> None:
    """Send the stream's frames as the body of an already-started SSE response.

    Frames that arrived from the provider in one read go out in one write; nothing is held
    back waiting for more. `result` is filled as it goes, so a caller whose relay was
    cancelled still knows what was delivered. The caller ends the response (the final
    empty body) after this.
    """
    batches = aiter(stream.batches())
    pending: asyncio.Future[list[StreamEvent]] | None = None
    try:
        # Until the first token, wait with a timeout so keep-alives can go out meanwhile.
        while result.first_content_written is None:
            pending = asyncio.ensure_future(anext(batches))
            while not (await asyncio.wait({pending}, timeout=keepalive_seconds))[0]:
                await send({"type": "http.response.body", "body": KEEPALIVE, "more_body": True})
            batch = pending.result()
            pending = None
            await _forward(batch, send, result, include_usage)
        async for batch in batches:
            await _forward(batch, send, result, include_usage)
    except StopAsyncIteration:
        pass  # ended before any content: nothing more to send
    except UpstreamError as exc:
        result.error = exc
        await send({"type": "http.response.body", "body": error_frame(exc), "more_body": True})
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
        await stream.aclose()


async def _forward(
    batch: list[StreamEvent], send: Send, result: RelayResult, include_usage: bool
) -> None:
    frames = []
    has_first_content = False
    for event in batch:
        if event.kind is EventKind.USAGE_ONLY and not include_usage:
            continue
        if event.kind is EventKind.CONTENT and result.first_content_upstream is None:
            result.first_content_upstream = time.perf_counter()
            has_first_content = True
        frames.append(event.data)
    if not frames:
        return
    await send({"type": "http.response.body", "body": b"".join(frames), "more_body": True})
    result.chunks_out += len(frames)
    if has_first_content:
        result.first_content_written = time.perf_counter()


def error_frame(exc: UpstreamError) -> bytes:
    """An SSE event carrying an OpenAI-shaped error; the OpenAI SDK raises it as APIError."""
    return b"data: " + error_body(exc) + b"\n\n"
