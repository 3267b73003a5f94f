"""Server-sent event streams, paced in real time, with streaming faults applied.

Each API module describes its stream as a list of `StreamEvent`s; `stream_response`
sends them one by one at the times the plan's pacer chooses, and:
- `truncate` stops after a few token-bearing events, never sending the terminal ones,
  and closes the connection;
- `malformed` cuts the JSON of the first token-bearing event in half, then carries on;
- `slow` (inside the pacer) drips every token-bearing event after a long gap.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass

from starlette.responses import StreamingResponse

from pilothouse.simulator.errors import Api, request_id
from pilothouse.simulator.faults import simulator_headers
from pilothouse.simulator.latency import Pacer
from pilothouse.simulator.plan import Plan


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One SSE event: its JSON payload, optional event name, tokens carried, and whether it ends the stream."""

    payload: bytes
    tokens: int = 0
    terminal: bool = False
    event: str | None = None

    def render(self, payload: bytes | None = None) -> bytes:
        """The event as it goes on the wire (`payload` replaces the stored one when given)."""
        data = self.payload if payload is None else payload
        if self.event is None:
            return b"data: " + data + b"\n\n"
        return b"event: " + self.event.encode() + b"\ndata: " + data + b"\n\n"


async def paced_events(
    events: Sequence[StreamEvent], plan: Plan, pacer: Pacer
) -> AsyncIterator[bytes]:
    """Yield rendered events at the pacer's times, applying the plan's streaming faults."""
    truncate = plan.fault == "truncate"
    corrupt_pending = plan.fault == "malformed"
    content_sent = 0
    for position, event in enumerate(events):
        # `truncate` keeps the opening events and the first few token-bearing ones,
        # then stops before anything that would tell the client the reply is complete.
        if truncate and (
            event.terminal or (event.tokens > 0 and content_sent >= plan.truncate_after_chunks)
        ):
            return
        if position == 0:
            await pacer.first_chunk()
        else:
            await pacer.next_chunk(event.tokens)
        payload = None
        if corrupt_pending and (event.tokens > 0 or event.terminal):
            payload = event.payload[: len(event.payload) // 2]
            corrupt_pending = False
        if event.tokens > 0:
            content_sent += 1
        yield event.render(payload)


def stream_response(
    api: Api, events: Sequence[StreamEvent], plan: Plan, pacer: Pacer
) -> StreamingResponse:
    """A `text/event-stream` response sending `events` under `plan`."""
    name, value = request_id(api)
    headers = {name: value, "cache-control": "no-cache", **simulator_headers(plan)}
    if plan.fault == "truncate":
        # The body ends early and the server then drops the connection.
        headers["connection"] = "close"
    return StreamingResponse(
        paced_events(events, plan, pacer),
        media_type="text/event-stream; charset=utf-8",
        headers=headers,
    )


def token_groups(tokens: Sequence[str], size: int) -> Iterator[tuple[str, int]]:
    """(text, token count) for consecutive groups of `size` tokens: one stream chunk each."""
    for start in range(0, len(tokens), size):
        group = tokens[start : start + size]
        yield "".join(group), len(group)
