"""The one stream loop every provider API shares: upstream bytes → SSE frames → events
(through the API's decoder) → a truncation check at the end.

The decoder is the only part that knows an API: it turns one frame into the OpenAI
`chat.completion.chunk` frames to send on, and keeps the usage, the finish reason and a
bounded sample of the output as they go by.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from pilothouse.providers import sse
from pilothouse.providers.transport import UpstreamResponse, malformed
from pilothouse.providers.types import (
    ErrorClass,
    MalformedAnswer,
    OutputSample,
    StreamErrorEvent,
    StreamEvent,
    UpstreamError,
    Usage,
)


class StreamDecoder(Protocol):
    """Per-API decoding of one stream. `feed` may raise MalformedAnswer (the frame is not
    what the API promises) or StreamErrorEvent (the provider reported an error)."""

    end_marker: str  # named in the truncation error

    @property
    def usage(self) -> Usage | None: ...

    @property
    def finish_reason(self) -> str | None: ...

    @property
    def done(self) -> bool:
        """The API's end marker arrived ([DONE], message_stop)."""
        ...

    @property
    def sample(self) -> OutputSample: ...

    def feed(self, frame: bytes, data: bytes) -> list[StreamEvent]: ...


class UpstreamStream:
    """An open upstream stream: iterate for OpenAI-shaped events; read the counters after.

    `chunks_in` counts upstream events that carry data (pings included); `usage` is kept
    from the first event that reports it, so a stream cut short still says what it cost.
    """

    def __init__(self, provider: str, response: UpstreamResponse, decoder: StreamDecoder):
        self._provider = provider
        self._response = response
        self._decoder = decoder
        self.chunks_in = 0

    @property
    def usage(self) -> Usage | None:
        return self._decoder.usage

    @property
    def finish_reason(self) -> str | None:
        return self._decoder.finish_reason

    @property
    def sample(self) -> OutputSample:
        return self._decoder.sample

    async def __aiter__(self) -> AsyncIterator[StreamEvent]:
        async for batch in self.batches():
            for event in batch:
                yield event

    async def batches(self) -> AsyncIterator[list[StreamEvent]]:
        """The events of what arrived in one upstream read, in order, together."""
        decoder = self._decoder
        try:
            async for frames in sse.frame_batches(self._response.chunks()):
                batch: list[StreamEvent] = []
                cut = False
                for frame in frames:
                    data = sse.data_of(frame)
                    if data is None:
                        continue  # upstream keep-alive comments: the gateway sends its own
                    self.chunks_in += 1
                    # A last frame without its blank line was cut mid-event, unless it
                    # still decodes (some servers end `data: [DONE]` with one newline).
                    terminated = frame.endswith(b"\n\n")
                    try:
                        batch.extend(decoder.feed(frame, data))
                    except (MalformedAnswer, StreamErrorEvent) as exc:
                        if not terminated and isinstance(exc, MalformedAnswer):
                            cut = True
                            break
                        if batch:
                            yield batch  # what came before the broken frame still goes out
                        raise self._failure(exc) from None
                if batch:
                    yield batch
                if cut:
                    break
        finally:
            self._response.release()
        if not decoder.done:
            raise UpstreamError(
                ErrorClass.TRUNCATED,
                f"provider {self._provider!r} ended the stream without {decoder.end_marker}",
                provider=self._provider,
            )

    def _failure(self, exc: MalformedAnswer | StreamErrorEvent) -> UpstreamError:
        if isinstance(exc, MalformedAnswer):
            return malformed(self._provider, str(exc))
        return UpstreamError(
            ErrorClass.UPSTREAM_5XX,
            f"provider {self._provider!r} failed mid-stream ({exc.error_type}): {exc.message}",
            provider=self._provider,
            upstream_error=exc.error,
        )

    async def aclose(self) -> None:
        self._response.release()
