"""The Responses API stream (`POST /v1/responses` with `stream: true`): chat completion
stream events rewritten as the Responses event sequence, with sequence numbers. Pure: no
I/O. The answer's items and envelope are `responses.py`'s, so a stream ends with exactly
the response a non-streamed call would have answered.
"""

from __future__ import annotations

from typing import Any

import orjson

from pilothouse.errors import PilothouseError
from pilothouse.gateway.doors.chunk_writer import ChunkWriter
from pilothouse.gateway.doors.ids_and_chunks import item_id as new_id
from pilothouse.gateway.doors.ids_and_chunks import output_item_id
from pilothouse.gateway.doors.responses_answer import (
    MESSAGE_ITEM,
    OUTPUT_TEXT_PART,
    echoed,
    envelope_json,
    function_item,
    usage_json,
)
from pilothouse.providers.types import EventKind, StreamEvent

# A text delta's frame around the item's id and place (fixed once the item opens), which
# leaves the frame around the two values that change: its number and the text.
_TEXT_DELTA = (
    b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
    b'"sequence_number":%%d,"item_id":"%s","output_index":%d,"content_index":0,'
    b'"delta":%%s,"logprobs":[]}\n\n'
)
# The opening frames of a message item, around its place and id (what `_frame` would
# write, key for key, for the item in progress and empty).
_MESSAGE_ADDED = (
    b'event: response.output_item.added\ndata: {"type":"response.output_item.added",'
    b'"sequence_number":%d,"output_index":%d,"item":{"type":"message","id":"%s",'
    b'"status":"in_progress","role":"assistant","content":[]}}\n\n'
)
_PART_ADDED = (
    b'event: response.content_part.added\ndata: {"type":"response.content_part.added",'
    b'"sequence_number":%d,"item_id":"%s","output_index":%d,"content_index":0,'
    b'"part":{"type":"output_text","text":"","annotations":[]}}\n\n'
)
# The closing frames of a message item, around its id, place and text (what `_frame`
# would write, key for key): the text is encoded once for all of them.
_TEXT_DONE = (
    b'event: response.output_text.done\ndata: {"type":"response.output_text.done",'
    b'"sequence_number":%d,"item_id":"%s","output_index":%d,"content_index":0,"text":%s,'
    b'"logprobs":[]}\n\n'
)
_PART_DONE = (
    b'event: response.content_part.done\ndata: {"type":"response.content_part.done",'
    b'"sequence_number":%d,"item_id":"%s","output_index":%d,"content_index":0,"part":%s}\n\n'
)
_ITEM_DONE = (
    b'event: response.output_item.done\ndata: {"type":"response.output_item.done",'
    b'"sequence_number":%d,"output_index":%d,"item":%s}\n\n'
)  # around the item's JSON
# A frame carrying the whole response (opening, closing, failed), around its JSON.
_RESPONSE = b'event: %s\ndata: {"type":"%s","sequence_number":%d,"response":%s}\n\n'
# A message item's three closing frames, their values in that order.
_MESSAGE_CLOSE = _TEXT_DONE + _PART_DONE + _ITEM_DONE


class ResponsesStream(ChunkWriter):
    """Turns OpenAI chat chunk frames into the Responses event stream.

    `start()` gives the opening events; `feed(event)` (`ChunkWriter`) each chunk's events;
    `finish()` the closing ones (output items done, response.completed with usage)."""

    def __init__(self, request: dict[str, Any], *, response_id: str, model: str, created_at: int):
        self.request = request
        self.response_id = response_id
        self.model = model
        self.created_at = created_at
        self.sequence = 0
        self.text_item: dict[str, Any] | None = None
        self.text_parts: list[str] = []
        self._delta_frame = b""  # set when the message item opens
        self.calls: dict[int, dict[str, Any]] = {}  # chat tool index → function_call item
        self.items: list[dict[str, Any]] = []
        self.usage = b"null"  # the JSON usage, once a chunk carried it
        self.settings = echoed(request)  # the request's settings every snapshot repeats
        self.closed_status: str | None = None  # set once the items are completed
        # Frames sent inside another one's StreamEvent (several frames in one): the relay
        # counts events, so the gateway adds these to the frames the client received.
        self.merged_frames = 0

    def _frame(self, kind: str, data: dict[str, Any]) -> bytes:
        data = {"type": kind, "sequence_number": self.sequence, **data}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def _event(
        self, kind: str, data: dict[str, Any], event_kind: EventKind = EventKind.OTHER
    ) -> StreamEvent:
        return StreamEvent(self._frame(kind, data), event_kind)

    def _merged(self, frames: list[bytes], kind: EventKind) -> StreamEvent:
        """Several frames as one event: one object and one relay step instead of many
        (most of what a text delta cost)."""
        self.merged_frames += len(frames) - 1
        return StreamEvent(b"".join(frames), kind)

    def _snapshot(
        self, status: str, output: bytes | None = None, error: dict[str, Any] | None = None
    ) -> bytes:
        """The response as JSON; its output the items as they are, unless given."""
        return envelope_json(
            self.request,
            response_id=self.response_id,
            model=self.model,
            status=status,
            output=orjson.dumps(self.items) if output is None else output,
            usage=self.usage,
            created_at=self.created_at,
            error=error,
            settings=self.settings,
        )

    def _response_frame(self, kind: bytes, response: bytes) -> bytes:
        sequence = self.sequence
        self.sequence = sequence + 1
        return _RESPONSE % (kind, kind, sequence, response)

    def error(self, exc: PilothouseError) -> bytes:
        """The end of a failed stream: an `error` event, then `response.failed` carrying
        the same error (the SDK raises on the first; the second closes the response)."""
        message = f"{exc.message}. {exc.hint}" if exc.hint else exc.message
        code = exc.code or exc.type
        error = self._frame("error", {"code": code, "message": message, "param": exc.param})
        failed = self._snapshot("failed", error={"code": code, "message": message})
        return error + self._response_frame(b"response.failed", failed)

    def start(self) -> list[StreamEvent]:
        # Both opening events carry the same response: written once, in one piece.
        response, sequence = self._snapshot("in_progress", b"[]"), self.sequence
        self.sequence += 2
        created, in_progress = b"response.created", b"response.in_progress"
        opening = (_RESPONSE + _RESPONSE) % (
            *(created, created, sequence, response),
            *(in_progress, in_progress, sequence + 1, response),
        )
        self.merged_frames += 1
        return [StreamEvent(opening, EventKind.OTHER)]

    def _text(self, content: str) -> list[StreamEvent]:
        frames = []
        if self.text_item is None:
            index = len(self.items)
            item_id = output_item_id("msg", self.response_id, index)
            self.text_item = {
                "type": "message",
                "id": item_id,
                "status": "in_progress",
                "role": "assistant",
                "content": [],  # the text's part, once it is complete (`_close`)
            }
            self.items.append(self.text_item)
            ident, sequence = item_id.encode(), self.sequence
            frames.append(_MESSAGE_ADDED % (sequence, index, ident))
            frames.append(_PART_ADDED % (sequence + 1, ident, index))
            self.sequence += 2
            self._delta_frame = _TEXT_DELTA % (ident, index)
            self.text_open = True
        frames.append(self._text_frame(content))
        return [self._merged(frames, EventKind.CONTENT)]

    def _text_frame(self, text: str) -> bytes:
        self.text_parts.append(text)
        sequence = self.sequence
        self.sequence = sequence + 1
        return self._delta_frame % (sequence, orjson.dumps(text))

    def _usage(self, chat_usage: Any) -> None:
        self.usage = usage_json(chat_usage)

    def _tool(self, call: dict[str, Any]) -> list[StreamEvent]:
        index = call.get("index", 0)
        function = call.get("function") or {}
        out = []
        item = self.calls.get(index)
        if item is None:
            item = function_item(
                output_item_id("fc", self.response_id, len(self.items)),
                call.get("id") or new_id("call"),
                function.get("name"),
                "",
                "in_progress",
            )
            self.calls[index] = item
            self.items.append(item)
            out.append(
                self._event(
                    "response.output_item.added",
                    {"output_index": len(self.items) - 1, "item": item},
                )
            )
        arguments = function.get("arguments") or ""
        if arguments:
            item["arguments"] += arguments
            out.append(
                self._event(
                    "response.function_call_arguments.delta",
                    {
                        "item_id": item["id"],
                        "output_index": self.items.index(item),
                        "delta": arguments,
                    },
                    EventKind.CONTENT,
                )
            )
        return out

    def _close(self) -> str:
        """The items completed (the message's text joined); the response's final status."""
        if self.closed_status is None:
            text = "".join(self.text_parts)
            for item in self.items:
                if item["type"] == "message":
                    item["content"] = [{"type": "output_text", "text": text, "annotations": []}]
                item["status"] = "completed"
            self.closed_status = "incomplete" if self.finish_reason == "length" else "completed"
        return self.closed_status

    def result(self) -> dict[str, Any]:
        """The whole response as its closing event will carry it (after the last `feed`)."""
        return orjson.loads(self._snapshot(self._close()))

    def finish(self) -> list[StreamEvent]:
        status = self._close()
        frames, output = [], []
        for index, item in enumerate(self.items):
            if item["type"] == "message":
                item_id, text = item["id"].encode(), orjson.dumps(item["content"][0]["text"])
                part = OUTPUT_TEXT_PART % text
                done = MESSAGE_ITEM % (item_id, part)
                sequence = self.sequence
                frames.append(  # its three closing frames, in one piece
                    _MESSAGE_CLOSE
                    % (
                        *(sequence, item_id, index, text),
                        *(sequence + 1, item_id, index, part),
                        *(sequence + 2, index, done),
                    )
                )
                self.sequence += 3
                self.merged_frames += 2
            else:
                arguments = {
                    "item_id": item["id"],
                    "output_index": index,
                    "arguments": item["arguments"],
                }
                frames.append(self._frame("response.function_call_arguments.done", arguments))
                done = orjson.dumps(item)
                frames.append(_ITEM_DONE % (self.sequence, index, done))
                self.sequence += 1
            output.append(done)
        kind = b"response.incomplete" if status == "incomplete" else b"response.completed"
        response = self._snapshot(status, b"[%s]" % b",".join(output))
        frames.append(self._response_frame(kind, response))
        return [self._merged(frames, EventKind.OTHER)]
