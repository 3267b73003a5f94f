"""Server-Sent Events framing: split a byte stream into whole events, nothing more."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator


async def frame_batches(chunks: AsyncIterable[bytes]) -> AsyncIterator[list[bytes]]:
    """Complete SSE events (each ending in a blank line), grouped by the read that completed
    them, so what arrived together can be written on together in one write.

    A trailing partial event at end of input is yielded alone, without its terminator, so
    the caller can tell a stream that was cut mid-event (it does not end in b"\n\n").
    """
    buffer = b""
    async for chunk in chunks:
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n")
        buffer = buffer + chunk if buffer else chunk
        batch = []
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            batch.append(buffer[start : end + 2])
            start = end + 2
        buffer = buffer[start:]
        if batch:
            yield batch
    if buffer.strip():
        yield [buffer]


async def frames(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Each complete SSE event, one at a time (see `frame_batches`)."""
    async for batch in frame_batches(chunks):
        for frame in batch:
            yield frame


def data_of(frame: bytes) -> bytes | None:
    """The joined `data:` payload of one event; None for a comment-only or empty event."""
    if frame.startswith(b"data: ") and frame.count(b"\n") <= 2:
        return frame[6:].rstrip(b"\n")  # the common single-line case, without splitting
    parts = [
        line[5:].removeprefix(b" ") for line in frame.split(b"\n") if line.startswith(b"data:")
    ]
    return b"\n".join(parts) if parts else None


def event_name(frame: bytes) -> bytes | None:
    """The `event:` field of one event, if any (Anthropic names every event)."""
    for line in frame.split(b"\n"):
        if line.startswith(b"event:"):
            return line[6:].strip()
    return None
