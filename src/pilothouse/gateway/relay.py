"""Relaying an upstream stream to the client, frame by frame.

Frames pass through unmerged and in order. Until the first content arrives, nothing but
SSE keep-alive comments reaches the client: the frames before it (the role chunk) are
held, so a stream that fails or ends before any content can still be answered by another
deployment. The response itself starts lazily (`SseResponse`), on the first keep-alive or
the first content. The usage chunk the gateway asked for is dropped unless the client
asked for it too; a failure is left in the result for the caller to answer.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from pilothouse.gateway.http_io import Headers, Send, error_body
from pilothouse.providers.types import (
    ChatStream,
    ErrorClass,
    EventKind,
    StreamEvent,
    UpstreamError,
)

KEEPALIVE = b": keep-alive\n\n"


class SseResponse:
    """An SSE response that starts (status 200, headers) on its first write."""

    __slots__ = ("_headers", "_send", "started")

    def __init__(self, send: Send, headers: Headers):
        self._send = send
        self._headers = headers
        self.started = False

    async def write(self, body: bytes) -> None:
        if not self.started:
            self.started = True
            await self._send(
                {"type": "http.response.start", "status": 200, "headers": self._headers}
            )
        await self._send({"type": "http.response.body", "body": body, "more_body": True})

    async def end(self) -> None:
        if not self.started:
            self.started = True
            await self._send(
                {"type": "http.response.start", "status": 200, "headers": self._headers}
            )
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})


@dataclass(slots=True)
class RelayResult:
    chunks_out: int = 0
    first_content_upstream: float | None = None  # perf_counter when content arrived
    first_content_written: float | None = None  # perf_counter when it was sent on
    error: UpstreamError | None = None
    held: list[bytes] = field(default_factory=list)  # frames before any content, not sent

    @property
    def delivered(self) -> bool:
        """Content reached the client: the stream can no longer be answered by another."""
        return self.first_content_written is not None


async def relay(
    stream: ChatStream,
    response: SseResponse,
    result: RelayResult,
    *,
    include_usage: bool,
    keepalive_seconds: float,
    provider: str,
    first_content_within_seconds: float | None = None,
) -> None:
    """Send the stream's frames on `response` until it ends or fails.

    Frames that arrived from the provider in one read go out in one write; nothing is held
    back after the first content. `result` is filled as it goes, so a caller whose relay
    was cancelled still knows what was delivered. A failure (or no content within
    `first_content_within_seconds`, a TIMEOUT) is left in `result.error`; if the stream
    ended without content, its frames are in `result.held`. The caller ends the response.
    """
    batches = aiter(stream.batches())
    pending: asyncio.Future[list[StreamEvent]] | None = None
    loop = asyncio.get_running_loop()
    deadline = (
        loop.time() + first_content_within_seconds
        if first_content_within_seconds is not None
        else None
    )
    try:
        # Until the first token, wait with a timeout so keep-alives can go out meanwhile.
        while result.first_content_written is None:
            pending = asyncio.ensure_future(anext(batches))
            while True:
                wait = keepalive_seconds
                if deadline is not None:
                    wait = min(wait, max(0.0, deadline - loop.time()))
                if (await asyncio.wait({pending}, timeout=wait))[0]:
                    break
                if deadline is not None and loop.time() >= deadline:
                    raise UpstreamError(
                        ErrorClass.TIMEOUT,
                        f"provider {provider!r} sent no content within "
                        f"{first_content_within_seconds:g} s",
                        provider=provider,
                    )
                await response.write(KEEPALIVE)
            batch = pending.result()
            pending = None
            await _forward(batch, response, result, include_usage)
        async for batch in batches:
            await _forward(batch, response, result, include_usage)
    except StopAsyncIteration:
        pass  # ended before any content: the held frames are the caller's to send or drop
    except UpstreamError as exc:
        result.error = exc
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
        await stream.aclose()


async def _forward(
    batch: list[StreamEvent], response: SseResponse, result: RelayResult, include_usage: bool
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
    if result.first_content_upstream is None:
        result.held += frames  # nothing the client can use yet
        return
    if has_first_content and result.held:
        frames[:0] = result.held
        result.held = []
    if not frames:
        return
    await response.write(b"".join(frames))
    result.chunks_out += len(frames)
    if has_first_content:
        result.first_content_written = time.perf_counter()


async def flush_held(response: SseResponse, result: RelayResult) -> None:
    """Deliver the frames of a stream that ended without content (no one else will answer)."""
    if result.held:
        await response.write(b"".join(result.held))
        result.chunks_out += len(result.held)
        result.held = []


def error_frame(exc: UpstreamError) -> bytes:
    """An SSE event carrying an OpenAI-shaped error; the OpenAI SDK raises it as APIError."""
    return b"data: " + error_body(exc) + b"\n\n"
