"""The Anthropic Messages front door (`POST /v1/messages`): requests translated to chat
completions and answers back to Anthropic's shapes, for every alias (an Anthropic-backed
one is translated twice: Messages → chat → Anthropic, and back). Pure: no I/O.

Request (`to_chat`): `system` (text or text blocks) → a system message; text, image
(base64 or URL), `tool_use` and `tool_result` blocks; `max_tokens`, `temperature`,
`top_p`, `stop_sequences` → `stop`; `tools` → function tools; `tool_choice`
auto/any/tool/none → auto/required/named/none, `disable_parallel_tool_use` →
`parallel_tool_calls: false`; `metadata.user_id` → `user`. Dropped: `top_k`, `thinking`,
`cache_control`. Refused (400, naming the field, as Anthropic would): document and other
block types; a `tool_use` without its id or name; a `tool_result` answering no `tool_use`
earlier in the messages; a `tool_choice`, `metadata` or `input_schema` that is not an
object; a base64 image without its media type and data.

Answer (`to_message`; the stream: `messages_stream.MessagesStream`): content text → a
text block, tool calls → `tool_use` blocks with parsed input; finish reasons → stop
reasons. Errors use Anthropic's shape (`error_body`).
"""

from __future__ import annotations

from typing import Any

import orjson

from pilothouse import errors
from pilothouse.errors import InvalidRequest
from pilothouse.gateway.doors.ids_and_chunks import item_id
from pilothouse.gateway.validation import optional, type_error
from pilothouse.providers.types import token_count

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def error_body(exc: errors.PilothouseError) -> bytes:
    """Anthropic's error shape, so the official `anthropic` SDK raises its matching error."""
    message = f"{exc.message}. {exc.hint}" if exc.hint else exc.message
    kind = ERROR_TYPES.get(
        exc.status, "api_error" if exc.status >= 500 else "invalid_request_error"
    )
    error: dict[str, Any] = {"type": kind, "message": message}
    if exc.details:
        error.update(exc.details)
    return orjson.dumps({"type": "error", "error": error})


_USER_OBJECT = 'an object such as {"user_id": "..."}'
_CHOICE_OBJECT = 'an object such as {"type": "auto"}'


def to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The chat completions body for a Messages request; InvalidRequest names the field."""
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise InvalidRequest("`max_tokens` is required: an integer", param="max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        raise type_error("max_tokens", "an integer", max_tokens)
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": _system_text(system)})
    raw = body.get("messages")
    if raw is None:
        raise InvalidRequest("`messages` is required: a non-empty list", param="messages")
    if not isinstance(raw, list) or not raw:
        raise type_error("messages", "a non-empty list", raw)
    calls: set[str] = set()  # the ids of the tool_use blocks so far
    for index, message in enumerate(raw):
        messages += _turn(message, f"messages.{index}", calls)
    chat: dict[str, Any] = {"messages": messages, "max_tokens": body["max_tokens"]}
    if "model" in body:
        chat["model"] = body["model"]
    for field in ("temperature", "top_p", "stream"):
        if body.get(field) is not None:
            chat[field] = body[field]
    if body.get("stop_sequences"):
        chat["stop"] = body["stop_sequences"]
    metadata = optional("metadata", body.get("metadata"), dict, _USER_OBJECT) or {}
    user = optional("metadata.user_id", metadata.get("user_id"), str, "a string (an end user's id)")
    if user is not None:
        chat["user"] = user
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
    choice = optional("tool_choice", body.get("tool_choice"), dict, _CHOICE_OBJECT)
    if choice is not None:
        chat["tool_choice"] = _tool_choice(choice)
        if choice.get("disable_parallel_tool_use"):
            chat["parallel_tool_calls"] = False
    if body.get("stream"):
        chat["stream_options"] = {"include_usage": True}
    if "pilothouse" in body:
        chat["pilothouse"] = body["pilothouse"]
    return chat


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return "\n\n".join(
            str(block.get("text") or "")
            for block in system
            if isinstance(block, dict) and block.get("type") == "text"
        )
    raise InvalidRequest("`system` must be text or a list of text blocks", param="system")


def _turn(message: Any, where: str, calls_so_far: set[str]) -> list[dict[str, Any]]:
    """One message's chat messages; adds its tool_use ids to `calls_so_far`, which a
    tool_result must name."""
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
        raise InvalidRequest(f"`{where}.role` must be user or assistant", param=f"{where}.role")
    role = message["role"]
    content = message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise InvalidRequest(
            f"`{where}.content` must be text or a list of blocks", param=f"{where}.content"
        )
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for index, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        at = f"{where}.content.{index}"
        if kind == "text":
            parts.append({"type": "text", "text": str(block.get("text") or "")})
        elif kind == "image":
            parts.append(
                {"type": "image_url", "image_url": {"url": _image_url(block.get("source"), at)}}
            )
        elif kind == "tool_use" and role == "assistant":
            call_id, name = str(block.get("id") or ""), str(block.get("name") or "")
            for field, value in (("id", call_id), ("name", name)):
                if not value:
                    raise InvalidRequest(
                        f"`{at}.{field}` is required on a tool_use block", param=f"{at}.{field}"
                    )
            calls_so_far.add(call_id)
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {
                        "name": name,
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
        elif kind == "tool_result" and role == "user":
            call_id = str(block.get("tool_use_id") or "")
            if not call_id:
                raise InvalidRequest(
                    f"`{at}.tool_use_id` is required: the tool_use this result answers",
                    param=f"{at}.tool_use_id",
                )
            if call_id not in calls_so_far:
                # Refused as the providers would (each in its own words, after the call).
                raise InvalidRequest(
                    f"`{at}.tool_use_id` {call_id[:80]!r} answers no tool_use block earlier "
                    "in the messages",
                    hint="send the assistant message with the tool_use block before its result",
                    param=f"{at}.tool_use_id",
                )
            results.append(
                {
                    "role": "tool",
                    "tool_call_id": call_id,
                    "content": _result_text(block.get("content")),
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            raise InvalidRequest(
                f"`{at}.type` {kind!r:.60} is not supported here (text, image, tool_use, tool_result)",
                param=f"{at}.type",
            )
    out: list[dict[str, Any]] = list(results)  # tool results answer the turn before
    if role == "assistant" and (parts or calls):
        turn: dict[str, Any] = {"role": "assistant", "content": _joined(parts) if parts else None}
        if calls:
            turn["tool_calls"] = calls
        out.append(turn)
    elif role == "user" and parts:
        out.append({"role": "user", "content": _joined(parts)})
    return out


def _joined(parts: list[dict[str, Any]]) -> Any:
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _image_url(source: Any, where: str) -> str:
    if isinstance(source, dict) and source.get("type") == "base64":
        media_type, data = source.get("media_type"), source.get("data")
        for field, value in (("media_type", media_type), ("data", data)):
            if not isinstance(value, str) or not value:
                raise InvalidRequest(
                    f"`{where}.source.{field}` is required with a base64 source: a string",
                    param=f"{where}.source.{field}",
                )
        return f"data:{media_type};base64,{data}"
    if (
        isinstance(source, dict)
        and source.get("type") == "url"
        and isinstance(source.get("url"), str)
    ):
        return str(source["url"])
    raise InvalidRequest(f"`{where}.source` must be base64 data or a URL", param=f"{where}.source")


def _result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(b.get("text") or "")
            for b in content
            if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise InvalidRequest("`tools` must be a list", param="tools")
    out = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise type_error(f"tools.{index}", "an object with a name", tool)
        if not tool.get("name"):
            raise InvalidRequest(
                f"`tools.{index}.name` is required: the tool's name", param=f"tools.{index}.name"
            )
        where = f"tools.{index}.input_schema"
        schema = optional(where, tool.get("input_schema"), dict, "a JSON Schema object")
        function = {
            "name": tool["name"],
            "parameters": schema or {"type": "object", "properties": {}},
        }
        if tool.get("description"):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: dict[str, Any]) -> Any:
    kind = choice.get("type")
    if kind == "auto":
        return "auto"
    if kind == "any":
        return "required"
    if kind == "none":
        return "none"
    if kind == "tool" and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidRequest("`tool_choice.type` must be auto, any, tool or none", param="tool_choice")


def to_message(completion: dict[str, Any], *, message_id: str, model: str) -> dict[str, Any]:
    """An Anthropic message for a chat completion."""
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if isinstance(message.get("content"), str) and message["content"]:
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or item_id("toolu"),
                "name": function.get("name") or "",
                "input": _arguments(function.get("arguments")),
            }
        )
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASONS.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": usage(completion.get("usage")),
    }


def _arguments(arguments: Any) -> dict[str, Any]:
    try:
        parsed = orjson.loads(arguments or "{}")
    except (orjson.JSONDecodeError, TypeError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def usage(chat_usage: Any) -> dict[str, Any]:
    chat_usage = chat_usage if isinstance(chat_usage, dict) else {}
    details = chat_usage.get("prompt_tokens_details")
    cached = token_count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    return {  # counts as the request log reads them: an odd value reads as 0
        "input_tokens": max(0, token_count(chat_usage.get("prompt_tokens")) - cached),
        "output_tokens": token_count(chat_usage.get("completion_tokens")),
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    }
