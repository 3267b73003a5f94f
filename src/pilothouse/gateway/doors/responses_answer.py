"""The Responses API's answer: the Responses object (plain answer, the stream's
snapshots, the stored copy) written around its values, from a chat completion. Pure: no
I/O. The request side is `responses.py`; the stream, `responses_stream.py`.

The chat message becomes a `message` output item with one `output_text` part, each tool
call a `function_call` item (item ids made from the response id:
`ids_and_chunks.output_item_id`); `finish_reason: length` makes the response `incomplete`
(max_output_tokens); usage maps to input/output tokens.
"""

from __future__ import annotations

from typing import Any

import orjson

from pilothouse.gateway.doors.ids_and_chunks import item_id as new_id
from pilothouse.gateway.doors.ids_and_chunks import output_item_id
from pilothouse.providers.types import token_count

# The Responses object and its one-message output item, written around their values:
# what `orjson.dumps` of the object would write, key for key. One definition for the
# plain answer, the stream's snapshots and the stored copy (the gateway and the stream's
# `result()` read it back when it is to be kept).
# Ids are the gateway's own (letters, digits, `_`), so they go in as they are.
_ENVELOPE = (
    b'{"id":"%s","object":"response","created_at":%d,"status":"%s","model":%s,'
    b'"output":%s,%s,"incomplete_details":%s,"error":%s,"usage":%s,"store":%s}'
)
_INCOMPLETE = b'{"reason":"max_output_tokens"}'
_TEXT_FORMAT = {"format": {"type": "text"}}
OUTPUT_TEXT_PART = b'{"type":"output_text","text":%s,"annotations":[]}'  # around the text
# A completed message item, around its id and its content parts.
MESSAGE_ITEM = (
    b'{"type":"message","id":"%s","status":"completed","role":"assistant","content":[%s]}'
)
_USAGE = (
    b'{"input_tokens":%d,"input_tokens_details":{"cached_tokens":%d},"output_tokens":%d,'
    b'"output_tokens_details":{"reasoning_tokens":0},"total_tokens":%d}'
)


def answer_json(
    completion: dict[str, Any],
    request: dict[str, Any],
    *,
    response_id: str,
    model: str,
    created_at: int,
) -> bytes:
    """The Responses object for a chat completion answering `request`, as JSON."""
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    output: list[bytes] = []
    text = message.get("content")
    if isinstance(text, str) and text:
        part = OUTPUT_TEXT_PART % orjson.dumps(text)
        output.append(MESSAGE_ITEM % (output_item_id("msg", response_id, 0).encode(), part))
    elif isinstance(message.get("refusal"), str) and message["refusal"]:
        part = orjson.dumps({"type": "refusal", "refusal": message["refusal"]})
        output.append(MESSAGE_ITEM % (output_item_id("msg", response_id, 0).encode(), part))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        item = function_item(
            output_item_id("fc", response_id, len(output)),
            call.get("id") or new_id("call"),
            function.get("name"),
            function.get("arguments") or "",
        )
        output.append(orjson.dumps(item))
    return envelope_json(
        request,
        response_id=response_id,
        model=model,
        status="incomplete" if choice.get("finish_reason") == "length" else "completed",
        output=b"[%s]" % b",".join(output),
        usage=usage_json(completion.get("usage")),
        created_at=created_at,
    )


def echoed(request: dict[str, Any]) -> bytes:
    """The request's settings as a Responses object repeats them: JSON members, no braces."""
    text = request.get("text")
    settings = {
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": request.get("previous_response_id"),
        "temperature": request.get("temperature"),
        "top_p": request.get("top_p"),
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools") or [],
        "text": text if isinstance(text, dict) else _TEXT_FORMAT,
        "metadata": request.get("metadata") or {},
    }
    return orjson.dumps(settings)[1:-1]


def envelope_json(
    request: dict[str, Any],
    *,
    response_id: str,
    model: str,
    status: str,
    output: bytes,
    usage: bytes,
    created_at: int,
    error: dict[str, Any] | None = None,
    settings: bytes | None = None,
) -> bytes:
    """A whole Responses object as JSON, echoing the request's settings as the API does
    (`settings`: `echoed(request)`, when the caller has it already). `output` is the JSON
    list of output items, `usage` the JSON usage (`usage_json`)."""
    return _ENVELOPE % (
        response_id.encode(),
        created_at,
        status.encode(),
        orjson.dumps(model),
        output,
        echoed(request) if settings is None else settings,
        _INCOMPLETE if status == "incomplete" else b"null",
        orjson.dumps(error),
        usage,
        # True only once the gateway decided to keep it (`stored.Keeper.turn`).
        b"true" if request.get("store") is True else b"false",
    )


def function_item(
    item_id: str, call_id: str, name: Any, arguments: str, status: str = "completed"
) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": str(name or ""),
        "arguments": arguments,
        "status": status,
    }


def usage_json(chat_usage: Any) -> bytes:
    """A chat completion's usage as the Responses usage, as JSON (`null` without one)."""
    if not isinstance(chat_usage, dict):
        return b"null"
    # Counts as the request log reads them (`token_count`): a provider's odd value (a
    # string, a list, a negative) reads as 0 rather than failing the answer.
    prompt = token_count(chat_usage.get("prompt_tokens"))
    completion = token_count(chat_usage.get("completion_tokens"))
    details = chat_usage.get("prompt_tokens_details")
    cached = token_count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    return _USAGE % (prompt, cached, completion, prompt + completion)
