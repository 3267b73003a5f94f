"""Anthropic Messages API answers, translated to OpenAI chat.completions. Pure: no I/O.

`to_openai_completion` (and `StreamTranslator` in `anthropic_stream.py`): text blocks are joined into
`message.content`, `tool_use` blocks become `tool_calls`; `thinking` and server-tool blocks
are dropped. Cached prompt tokens (read and creation) count as prompt tokens, as OpenAI's
`prompt_tokens` includes cached tokens.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from pilothouse.gateway.providers.base import Usage

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

DONE_FRAME = b"data: [DONE]\n\n"


class MalformedAnswer(ValueError):
    """An Anthropic answer that is not what the API promises (the provider says MALFORMED)."""


class StreamErrorEvent(Exception):
    """Anthropic sent an `error` event mid-stream (e.g. `overloaded_error`)."""

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def finish_reason_of(stop_reason: Any) -> str | None:
    """OpenAI's finish_reason for an Anthropic stop_reason (unknown ones read as "stop")."""
    if stop_reason is None:
        return None
    return FINISH_REASONS.get(stop_reason, "stop")


def usage_of(usage: Any) -> Usage:
    """Pilothouse usage from an Anthropic `usage` object; cached input counts as prompt."""
    if not isinstance(usage, dict):
        return Usage()
    cache_read = int(usage.get("cache_read_input_tokens") or 0)
    cache_write = int(usage.get("cache_creation_input_tokens") or 0)
    return Usage(
        prompt_tokens=int(usage.get("input_tokens") or 0) + cache_read + cache_write,
        completion_tokens=int(usage.get("output_tokens") or 0),
        cached_tokens=cache_read,
    )


def openai_usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


def to_openai_completion(message: dict[str, Any], *, created: int | None = None) -> dict[str, Any]:
    """An OpenAI `chat.completion` for an Anthropic message; MalformedAnswer if it is not one."""
    content = message.get("content")
    if not isinstance(content, list):
        raise MalformedAnswer("the message has no `content` list")
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in content:
        if not isinstance(block, dict):
            raise MalformedAnswer("a content block is not an object")
        if block.get("type") == "text":
            texts.append(str(block.get("text") or ""))
        elif block.get("type") == "tool_use":
            tool_calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
        # thinking / redacted_thinking / server-tool blocks have no OpenAI equivalent.
    reply: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not tool_calls else None,
    }
    if tool_calls:
        reply["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-" + str(message.get("id") or ""),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": message.get("model") or "",
        "choices": [
            {
                "index": 0,
                "message": reply,
                "logprobs": None,
                "finish_reason": finish_reason_of(message.get("stop_reason")) or "stop",
            }
        ],
        "usage": openai_usage(usage_of(message.get("usage"))),
    }
