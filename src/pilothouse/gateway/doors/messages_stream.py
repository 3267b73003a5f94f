"""The Anthropic Messages stream (`POST /v1/messages` with `stream: true`): chat
completion stream events rewritten as Anthropic's event sequence (message_start, content
blocks, message_delta, message_stop). Pure: no I/O. Stop reasons, usage and the error
shape are `messages.py`'s, so a stream ends as a plain answer would.
"""

from __future__ import annotations

from typing import Any

import orjson

from pilothouse import errors
from pilothouse.gateway.doors.chunk_writer import ChunkWriter
from pilothouse.gateway.doors.ids_and_chunks import item_id
from pilothouse.gateway.doors.messages import STOP_REASONS, error_body, usage
from pilothouse.providers.types import EventKind, StreamEvent

_TEXT_DELTA_START = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
_TEXT_DELTA_MIDDLE = b',"delta":{"type":"text_delta","text":'


class MessagesStream(ChunkWriter):
    """Turns OpenAI chat chunk frames into Anthropic's stream events."""

    def __init__(self, *, message_id: str, model: str):
        self.model = model
        self.message_id = message_id
        self.block = -1  # index of the open content block
        self.tools: dict[int, int] = {}  # chat tool index → content block index
        self.usage: dict[str, Any] = usage(None)

    def _event(
        self, kind: str, data: dict[str, Any], event_kind: EventKind = EventKind.OTHER
    ) -> StreamEvent:
        return StreamEvent(
            b"event: "
            + kind.encode()
            + b"\ndata: "
            + orjson.dumps({"type": kind, **data})
            + b"\n\n",
            event_kind,
        )

    def start(self) -> list[StreamEvent]:
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [self._event("message_start", {"message": message}), self._event("ping", {})]

    def _text(self, text: str) -> list[StreamEvent]:
        out = [] if self.text_open else self._open({"type": "text", "text": ""})
        self.text_open = True
        out.append(StreamEvent(self._text_frame(text), EventKind.CONTENT))
        return out

    def _usage(self, chat_usage: Any) -> None:
        self.usage = usage(chat_usage)

    def _text_frame(self, text: str) -> bytes:
        """The most frequent event, assembled around its two values (as `_event` would
        write it, key for key)."""
        return b"%s%d%s%s}}\n\n" % (
            _TEXT_DELTA_START,
            self.block,
            _TEXT_DELTA_MIDDLE,
            orjson.dumps(text),
        )

    def _open(self, block: dict[str, Any]) -> list[StreamEvent]:
        out = self._close()
        self.block += 1
        out.append(
            self._event("content_block_start", {"index": self.block, "content_block": block})
        )
        return out

    def _close(self) -> list[StreamEvent]:
        if self.block < 0:
            return []
        self.text_open = False
        return [self._event("content_block_stop", {"index": self.block})]

    def _tool(self, call: dict[str, Any]) -> list[StreamEvent]:
        index = call.get("index", 0)
        function = call.get("function") or {}
        out = []
        if index not in self.tools:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": call.get("id") or item_id("toolu"),
                "name": function.get("name") or "",
                "input": {},
            }
            out += self._open(block)
            self.tools[index] = self.block
        arguments = function.get("arguments")
        if arguments:
            out.append(
                self._event(
                    "content_block_delta",
                    {
                        "index": self.tools[index],
                        "delta": {"type": "input_json_delta", "partial_json": arguments},
                    },
                    EventKind.CONTENT,
                )
            )
        return out

    def error(self, exc: errors.PilothouseError) -> bytes:
        """Anthropic's `error` event; the `anthropic` SDK raises it as an APIError."""
        return b"event: error\ndata: " + error_body(exc) + b"\n\n"

    def finish(self) -> list[StreamEvent]:
        out = self._close()
        self.block = -1
        stop = STOP_REASONS.get(self.finish_reason or "stop", "end_turn")
        out.append(
            self._event(
                "message_delta",
                {"delta": {"stop_reason": stop, "stop_sequence": None}, "usage": self.usage},
            )
        )
        out.append(self._event("message_stop", {}))
        return out
