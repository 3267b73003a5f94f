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

from pilothouse.providers.anthropic_request import STRUCTURED_OUTPUT_TOOL
from pilothouse.providers.types import (
    MalformedAnswer,
    OutputSample,
    StreamErrorEvent,
    Usage,
    token_count,
)

__all__ = [
    "DONE_FRAME",
    "MalformedAnswer",
    "StreamErrorEvent",
    "finish_reason_of",
    "openai_usage",
    "to_openai_completion",
    "usage_of",
]

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


def finish_reason_of(stop_reason: Any) -> str | None:
    """OpenAI's finish_reason for an Anthropic stop_reason (unknown ones read as "stop")."""
    if stop_reason is None:
        return None
    if not isinstance(stop_reason, str):
        return "stop"  # an odd value is still an end; the body keeps what was said
    return FINISH_REASONS.get(stop_reason, "stop")


def usage_of(usage: Any) -> Usage:
    """Pilothouse usage from an Anthropic `usage` object; cached input counts as prompt."""
    if not isinstance(usage, dict):
        return Usage()
    cache_read = token_count(usage.get("cache_read_input_tokens"))
    cache_write = token_count(usage.get("cache_creation_input_tokens"))
    return Usage(
        prompt_tokens=token_count(usage.get("input_tokens")) + cache_read + cache_write,
        completion_tokens=token_count(usage.get("output_tokens")),
        cached_tokens=cache_read,
    )


def openai_usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


def to_openai_completion(
    message: dict[str, Any], *, created: int | None = None, sample: OutputSample | None = None
) -> dict[str, Any]:
    """An OpenAI `chat.completion` for an Anthropic message; MalformedAnswer if it is not one.

    With `sample`, what the model said is also kept there (for output signals)."""
    content = message.get("content")
    if not isinstance(content, list):
        raise MalformedAnswer("the message has no `content` list")
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    answered = False  # a structured-output answer came through its tool
    for block in content:
        if not isinstance(block, dict):
            raise MalformedAnswer("a content block is not an object")
        if block.get("type") == "text":
            texts.append(str(block.get("text") or ""))
            if sample is not None:
                sample.add_text(texts[-1])
        elif block.get("type") == "tool_use" and block.get("name") == STRUCTURED_OUTPUT_TOOL:
            # A structured-output answer: the tool's input is the message content.
            texts.append(orjson.dumps(block.get("input") or {}).decode())
            answered = True
            if sample is not None:
                sample.add_text(texts[-1])
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
            if sample is not None:
                function = tool_calls[-1]["function"]
                sample.add_tool(len(tool_calls) - 1, str(function["name"]), function["arguments"])
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
                "finish_reason": (
                    "stop"
                    if answered and not tool_calls
                    else finish_reason_of(message.get("stop_reason")) or "stop"
                ),
            }
        ],
        "usage": openai_usage(usage_of(message.get("usage"))),
    }
