"""A front door as the gateway's stages see it: how a request becomes the chat completions
request the stages serve, and how the answer, the stream and the errors go back in the
door's own shapes. One `Door` per API (`DOORS`); chat completions itself has none.

A stream is translated per upstream attempt (`DoorStream` wraps the attempt's
`ChatStream`, with a fresh event writer), so an attempt that fails before any content and
is answered by another deployment leaves nothing behind; what the relay sees is the
door's own events, with the same CONTENT marks the TTFT and the failover rules read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from pilothouse import errors
from pilothouse.gateway.doors import (
    messages,
    messages_stream,
    responses,
    responses_answer,
    responses_stream,
)
from pilothouse.gateway.doors.ids_and_chunks import answer_id
from pilothouse.gateway.http_io import error_body as openai_error_body
from pilothouse.providers.types import (
    ChatResult,
    ChatStream,
    EventKind,
    OutputSample,
    StreamEvent,
    Usage,
)


class EventWriter(Protocol):
    """Turns one attempt's chat chunk events into the door's stream events. An event may
    carry several SSE frames; `merged_frames` counts the frames beyond one per event."""

    merged_frames: int

    def start(self) -> list[StreamEvent]: ...

    def feed(self, event: StreamEvent) -> list[StreamEvent]: ...

    def feed_batch(self, batch: list[StreamEvent]) -> list[StreamEvent]:
        """`feed` for each event of one upstream read, in order."""
        ...

    def finish(self) -> list[StreamEvent]: ...

    def error(self, exc: errors.PilothouseError) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Door:
    """One front door. `request` is always the client's own (untranslated) body; an
    answer's id is made from the request id (`common.answer_id`)."""

    endpoint: str  # the request log's `endpoint`
    to_chat: Callable[[dict[str, Any]], dict[str, Any]]
    answer: Callable[[dict[str, Any], dict[str, Any], str, int, str], bytes]  # its JSON
    writer: Callable[[dict[str, Any], str, int, str], EventWriter]
    error_body: Callable[[errors.PilothouseError], bytes]

    def answer_json(
        self,
        result: ChatResult,
        request: dict[str, Any],
        model: str,
        created_at: int,
        request_id: str,
    ) -> bytes:
        """The door's answer to `request` for a chat result, as JSON."""
        completion = result.completion
        if completion is None:
            completion = orjson.loads(result.body)
        return self.answer(completion, request, model, created_at, request_id)


BeforeClosing = Callable[["EventWriter"], Awaitable[None]]


class DoorStream:
    """A `ChatStream` whose events are the door's: the writer's opening events before the
    first batch, each batch translated, the closing events in the batch of the upstream's
    `[DONE]` (after its last batch, when it sent none), and nothing the upstream sends
    after that. The closing events come after `before_closing`, when given, has run (a
    stored response is kept before the client reads its end). A failure mid-stream ends
    it without closing events (the gateway writes the door's error)."""

    def __init__(
        self, stream: ChatStream, writer: EventWriter, before_closing: BeforeClosing | None = None
    ):
        self.stream = stream
        self.writer = writer
        self.before_closing = before_closing

    @property
    def chunks_in(self) -> int:
        return self.stream.chunks_in

    @chunks_in.setter
    def chunks_in(self, value: int) -> None:
        self.stream.chunks_in = value

    @property
    def usage(self) -> Usage | None:
        return self.stream.usage

    @property
    def finish_reason(self) -> str | None:
        return self.stream.finish_reason

    @property
    def sample(self) -> OutputSample:
        return self.stream.sample

    async def __aiter__(self) -> AsyncIterator[StreamEvent]:
        async for batch in self.batches():
            for event in batch:
                yield event

    async def batches(self) -> AsyncIterator[list[StreamEvent]]:
        writer = self.writer
        opening = writer.start()
        ended = False
        async for batch in self.stream.batches():
            if ended:
                continue  # past the upstream's `[DONE]`: nothing more is the answer's
            out = writer.feed_batch(batch)
            if opening:
                out, opening = opening + out, []
            if batch and batch[-1].kind is EventKind.DONE:
                # The end, nearly always in the read that carried the last chunks: the
                # closing events go out in the same write (one send fewer per stream).
                out += await self._closing()
                ended = True
            if out:
                yield out
        if not ended:
            yield [*opening, *await self._closing()]

    async def _closing(self) -> list[StreamEvent]:
        if self.before_closing is not None:
            await self.before_closing(self.writer)
        return self.writer.finish()

    async def aclose(self) -> None:
        await self.stream.aclose()


def _responses_writer(
    request: dict[str, Any], model: str, created_at: int, request_id: str
) -> EventWriter:
    return responses_stream.ResponsesStream(
        request,
        response_id=answer_id("resp", request_id),
        model=model,
        created_at=created_at,
    )


def _responses_answer(
    completion: dict[str, Any],
    request: dict[str, Any],
    model: str,
    created_at: int,
    request_id: str,
) -> bytes:
    return responses_answer.answer_json(
        completion,
        request,
        response_id=answer_id("resp", request_id),
        model=model,
        created_at=created_at,
    )


def _messages_writer(
    request: dict[str, Any], model: str, created_at: int, request_id: str
) -> EventWriter:
    return messages_stream.MessagesStream(message_id=answer_id("msg", request_id), model=model)


def _messages_answer(
    completion: dict[str, Any],
    request: dict[str, Any],
    model: str,
    created_at: int,
    request_id: str,
) -> bytes:
    message = messages.to_message(completion, message_id=answer_id("msg", request_id), model=model)
    return orjson.dumps(message)


DOORS = {
    "responses": Door(
        "responses", responses.to_chat, _responses_answer, _responses_writer, openai_error_body
    ),
    "messages": Door(
        "messages", messages.to_chat, _messages_answer, _messages_writer, messages.error_body
    ),
}
