"""Validation of OpenAI chat-completion requests into a `Conversation`.

Refusals follow OpenAI's wording and `param` naming closely enough that a client
(or a gateway under test) sees the same 400s it would see from the real API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pilothouse.simulator.errors import RequestError
from pilothouse.simulator.generation import Conversation, ToolSpec
from pilothouse.simulator.text import canonical_bytes, count_tokens

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
# Per-message and per-reply overheads, as in OpenAI's published token-counting recipe.
_MESSAGE_OVERHEAD = 3
_REPLY_PRIMING = 3
_IMAGE_TOKENS = 85


@dataclass
class ChatRequest:
    """A validated chat-completion request: the conversation plus transport options."""

    conversation: Conversation
    stream: bool
    include_usage: bool


def parse_chat_request(data: dict[str, Any]) -> ChatRequest:
    """Validate an OpenAI `/v1/chat/completions` body.

    Accepts the documented fields (model, messages, tools, tool_choice, response_format,
    n, max_tokens / max_completion_tokens, seed, stop, stream, stream_options); others
    are ignored. Raises `RequestError` (400, with `param`) for missing or mistyped ones.
    """
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("you must provide a model parameter", param="model")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(
            "Invalid 'messages': expected a non-empty array of message objects.",
            param="messages",
            code="invalid_type" if messages is not None else "missing_required_parameter",
        )
    prompt_tokens = _REPLY_PRIMING
    last_user_text = ""
    system_parts: list[str] = []
    for position, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise RequestError(
                f"Invalid 'messages[{position}]': expected an object with 'role' one of "
                f"{', '.join(sorted(_ROLES))}.",
                param=f"messages[{position}]",
            )
        text, extra = _content_text(message.get("content"), f"messages[{position}].content")
        prompt_tokens += (
            _MESSAGE_OVERHEAD + count_tokens(message["role"]) + count_tokens(text) + extra
        )
        calls = message.get("tool_calls")
        for call in calls if isinstance(calls, list) else []:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                prompt_tokens += count_tokens(str(function.get("name", "")))
                prompt_tokens += count_tokens(str(function.get("arguments", "")))
        if message["role"] == "user":
            last_user_text = text
        elif message["role"] in ("system", "developer"):
            system_parts.append(text)
    tools = _tools(data.get("tools"))
    prompt_tokens += sum(
        count_tokens(canonical_bytes(spec.parameters).decode()) + count_tokens(spec.name)
        for spec in tools
    )
    tool_choice, forced = _tool_choice(data.get("tool_choice"), tools)
    response_format, schema = _response_format(data.get("response_format"))
    stream = data.get("stream") is True
    stream_options = data.get("stream_options")
    if stream_options is not None and not stream:
        raise RequestError(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )
    include_usage = isinstance(stream_options, dict) and stream_options.get("include_usage") is True
    seed = data.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise RequestError("Invalid 'seed': expected an integer.", param="seed")
    conversation = Conversation(
        model=model,
        fingerprint={
            "messages": messages,
            "tools": data.get("tools"),
            "response_format": data.get("response_format"),
            "seed": seed,
        },
        last_user_text=last_user_text,
        system_text="\n".join(system_parts),
        ends_with_tool_result=messages[-1].get("role") in ("tool", "function"),
        prompt_tokens=prompt_tokens,
        tools=tools,
        tool_choice=tool_choice,
        forced_tool=forced,
        response_format=response_format,
        json_schema=schema,
        n=_int_param(data, "n", 1, 128) or 1,
        max_tokens=_int_param(data, "max_completion_tokens", 1, None)
        or _int_param(data, "max_tokens", 1, None),
        stop=_stop(data.get("stop")),
    )
    return ChatRequest(conversation=conversation, stream=stream, include_usage=include_usage)


def _content_text(content: Any, param: str) -> tuple[str, int]:
    """The text of a message's content and extra tokens for non-text parts (images)."""
    if content is None:
        return "", 0
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        raise RequestError(
            f"Invalid '{param}': expected a string or an array of parts.", param=param
        )
    texts: list[str] = []
    extra = 0
    for part in content:
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part, dict) and part.get("type") in ("image_url", "input_image"):
            extra += _IMAGE_TOKENS
    return "\n".join(texts), extra


def _tools(raw: Any) -> list[ToolSpec]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise RequestError("Invalid 'tools': expected an array.", param="tools")
    specs: list[ToolSpec] = []
    for position, tool in enumerate(raw):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise RequestError(
                f"Missing required parameter: 'tools[{position}].function.name'.",
                param=f"tools[{position}].function.name",
                code="missing_required_parameter",
            )
        parameters = function.get("parameters")
        specs.append(ToolSpec(function["name"], parameters if isinstance(parameters, dict) else {}))
    return specs


def _tool_choice(raw: Any, tools: list[ToolSpec]) -> tuple[Any, str | None]:
    if raw is None:
        return ("auto" if tools else "none"), None
    if raw in ("auto", "none", "required"):
        if raw == "required" and not tools:
            raise RequestError(
                "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
                param="tool_choice",
            )
        return raw, None
    function = raw.get("function") if isinstance(raw, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str):
        raise RequestError(
            "Invalid 'tool_choice': expected 'none', 'auto', 'required' or a function object.",
            param="tool_choice",
        )
    if name not in {spec.name for spec in tools}:
        raise RequestError(
            f"Invalid 'tool_choice': function '{name}' is not among the provided tools.",
            param="tool_choice",
        )
    return "required", name


def _response_format(raw: Any) -> tuple[Any, dict[str, Any] | None]:
    if raw is None:
        return "text", None
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind in ("text", "json_object"):
        return kind, None
    if kind == "json_schema":
        spec = raw.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise RequestError(
                "Missing required parameter: 'response_format.json_schema.name'.",
                param="response_format.json_schema.name",
                code="missing_required_parameter",
            )
        schema = spec.get("schema")
        return "json_schema", schema if isinstance(schema, dict) else {}
    raise RequestError(
        "Invalid 'response_format.type': expected 'text', 'json_object' or 'json_schema'.",
        param="response_format.type",
    )


def _int_param(data: dict[str, Any], name: str, low: int, high: int | None) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < low
        or (high is not None and value > high)
    ):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise RequestError(f"Invalid '{name}': expected an integer {bounds}.", param=name)
    return value


def _stop(raw: Any) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw) and len(raw) <= 4:
        return list(raw)
    raise RequestError("Invalid 'stop': expected a string or up to 4 strings.", param="stop")
