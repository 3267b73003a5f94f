"""What a stream's frames are, per front door: chat chunks as they came, or the door's
events written by a fresh writer per upstream attempt; and the frame that ends a failure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pilothouse import errors
from pilothouse.gateway.doors.door import Door, DoorStream, EventWriter
from pilothouse.gateway.doors.responses_stream import ResponsesStream
from pilothouse.gateway.doors.stored import Turn
from pilothouse.gateway.relay import error_frame
from pilothouse.providers.types import ChatStream, UpstreamError


@dataclass(frozen=True, slots=True)
class StreamFrames:
    """What a stream's frames are: chat chunks as they came (no door), or the door's
    events, written per attempt by a fresh writer; and the frame that ends a failure."""

    door: Door | None
    request: dict[str, Any]  # the client's own body
    created_at: int
    request_id: str
    turn: Turn | None = None  # a Responses answer to keep before its closing events

    def wrap(self, stream: ChatStream) -> ChatStream:
        if self.door is None:
            return stream
        return DoorStream(stream, self._writer(), self._keep if self.turn else None)

    async def _keep(self, writer: EventWriter) -> None:
        assert self.turn is not None and isinstance(writer, ResponsesStream)
        if not await self.turn.keep(writer.result()):
            writer.request = {**writer.request, "store": False}  # the closing events say so

    def error(self, stream: ChatStream | None, exc: errors.PilothouseError) -> bytes:
        if self.door is None:
            assert isinstance(exc, UpstreamError)
            return error_frame(exc)
        if isinstance(stream, DoorStream):
            return stream.writer.error(exc)
        return self._writer().error(exc)

    def _writer(self) -> EventWriter:
        assert self.door is not None
        return self.door.writer(
            self.request, self.request["model"], self.created_at, self.request_id
        )
