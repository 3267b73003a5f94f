"""Anthropic stream events re-framed as OpenAI `chat.completion.chunk` SSE frames."""

from __future__ import annotations

import time
from typing import Any

import orjson

from pilothouse.providers.anthropic_request import STRUCTURED_OUTPUT_TOOL
from pilothouse.providers.anthropic_response import (
    DONE_FRAME,
    finish_reason_of,
    openai_usage,
    usage_of,
)
from pilothouse.providers.types import (
    EventKind,
    MalformedAnswer,
    OutputSample,
    StreamErrorEvent,
    StreamEvent,
    Usage,
)


class StreamTranslator:
    """Turns Anthropic stream events into OpenAI `chat.completion.chunk` SSE frames.

    Feed every event in order; read `usage`, `finish_reason` and `done` as it goes.
    `thinking`, `signature` and `citations` deltas and unknown event types yield nothing.
    Each event keeps the chunk it carries (`StreamEvent.chunk`), and a text delta its
    text (`StreamEvent.text`), so a front door reads neither from the frame again.
    """

    def __init__(self, *, created: int | None = None):
        self.created = int(time.time()) if created is None else created
        self.id = ""
        self.model = ""
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.done = False
        self.sample = OutputSample()
        self._raw_usage: dict[str, Any] = {}
        self._tool_index: dict[int, int] = {}  # Anthropic block index → OpenAI tool index
        self._answer_blocks: set[int] = set()  # structured-output blocks: streamed as content

    def feed(self, event_name: str, data: dict[str, Any]) -> list[StreamEvent]:
        kind = event_name or str(data.get("type") or "")
        if kind == "error":
            error = data.get("error")
            if not isinstance(error, dict):
                error = {"message": error}
            raise StreamErrorEvent(
                str(error.get("type") or "error"), str(error.get("message") or data), error
            )
        if kind == "message_start":
            message = data.get("message")
            if not isinstance(message, dict):
                raise MalformedAnswer("message_start has no `message`")
            self.id = "chatcmpl-" + str(message.get("id") or "")
            self.model = str(message.get("model") or "")
            self._update_usage(message.get("usage"))
            return [self._chunk({"role": "assistant", "content": ""}, EventKind.OTHER)]
        if not self.id:
            if kind == "ping":
                return []
            raise MalformedAnswer(f"the stream sent {kind!r} before message_start")
        if kind == "content_block_start":
            block = data.get("content_block")
            if not isinstance(block, dict):
                raise MalformedAnswer("content_block_start has no `content_block`")
            if block.get("type") == "tool_use" and block.get("name") == STRUCTURED_OUTPUT_TOOL:
                self._answer_blocks.add(self._block_index(data))
                return []
            if block.get("type") == "tool_use":
                index = self._tool_index[self._block_index(data)] = len(self._tool_index)
                call = {
                    "index": index,
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""},
                }
                self.sample.add_tool(index, str(block.get("name") or ""), "")
                return [self._chunk({"tool_calls": [call]}, EventKind.OTHER)]
            if block.get("type") == "text" and block.get("text"):
                text = str(block["text"])
                self.sample.add_text(text)
                return [self._chunk({"content": text}, EventKind.CONTENT, text=text)]
            return []
        if kind == "content_block_delta":
            delta = data.get("delta")
            if not isinstance(delta, dict):
                raise MalformedAnswer("content_block_delta has no `delta`")
            if delta.get("type") == "text_delta":
                text = str(delta.get("text") or "")
                self.sample.add_text(text)
                return [self._chunk({"content": text}, EventKind.CONTENT, text=text or None)]
            if (
                delta.get("type") == "input_json_delta"
                and self._block_index(data) in self._answer_blocks
            ):
                partial = str(delta.get("partial_json") or "")
                self.sample.add_text(partial)
                answer_kind = EventKind.CONTENT if partial else EventKind.OTHER
                return [self._chunk({"content": partial}, answer_kind, text=partial or None)]
            if delta.get("type") == "input_json_delta":
                block_index = self._block_index(data)
                if block_index not in self._tool_index:
                    raise MalformedAnswer("input_json_delta for a block that is not a tool_use")
                partial = str(delta.get("partial_json") or "")
                call = {"index": self._tool_index[block_index], "function": {"arguments": partial}}
                self.sample.add_tool(self._tool_index[block_index], None, partial)
                # An empty first fragment carries no text, so it must not count as the first token.
                chunk_kind = EventKind.CONTENT if partial else EventKind.OTHER
                return [self._chunk({"tool_calls": [call]}, chunk_kind)]
            return []
        if kind == "message_delta":
            delta = data.get("delta")
            if not isinstance(delta, dict):
                raise MalformedAnswer("message_delta has no `delta`")
            self._update_usage(data.get("usage"))
            self.finish_reason = finish_reason_of(delta.get("stop_reason"))
            if self._answer_blocks and not self._tool_index:
                self.finish_reason = "stop"  # only the structured-output answer was called
            return [self._chunk({}, EventKind.OTHER, self.finish_reason)]
        if kind == "message_stop":
            self.done = True
            usage = openai_usage(self.usage or Usage())
            chunk = self._envelope([]) | {"usage": usage}
            return [
                StreamEvent(b"data: " + orjson.dumps(chunk) + b"\n\n", EventKind.USAGE_ONLY, chunk),
                StreamEvent(DONE_FRAME, EventKind.DONE),
            ]
        return []  # content_block_stop, ping, and event types newer than this adapter

    def _update_usage(self, usage: Any) -> None:
        # message_delta usage is cumulative and may repeat or omit the input counts.
        if isinstance(usage, dict):
            self._raw_usage.update({k: v for k, v in usage.items() if v is not None})
            self.usage = usage_of(self._raw_usage)

    def _block_index(self, data: dict[str, Any]) -> int:
        index = data.get("index")
        if not isinstance(index, int):
            raise MalformedAnswer("a content block event has no integer `index`")
        return index

    def _envelope(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def _chunk(
        self,
        delta: dict[str, Any],
        kind: EventKind,
        finish_reason: str | None = None,
        *,
        text: str | None = None,
    ) -> StreamEvent:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        chunk = self._envelope([choice])
        return StreamEvent(b"data: " + orjson.dumps(chunk) + b"\n\n", kind, chunk, text)
