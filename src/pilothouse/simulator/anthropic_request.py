"""Validation of Anthropic Messages requests into a `Conversation`.

Error messages follow Anthropic's `field.path: problem` style, e.g.
`max_tokens: Field required`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pilothouse.simulator.errors import RequestError
from pilothouse.simulator.generation import Conversation, ToolSpec
from pilothouse.simulator.text import canonical_bytes, count_tokens

_MESSAGE_OVERHEAD = 3
_IMAGE_TOKENS = 85


@dataclass
class MessagesRequest:
    """A validated Messages request: the conversation and whether to stream."""

    conversation: Conversation
    stream: bool


def parse_messages_request(
    data: dict[str, Any], *, require_max_tokens: bool = True
) -> MessagesRequest:
    """Validate an Anthropic `/v1/messages` body.

    Accepts model, max_tokens (required unless `require_max_tokens` is False, as for
    count_tokens), messages (user/assistant; string or block content including
    tool_use and tool_result), system (string or text blocks), tools, tool_choice,
    stop_sequences and stream. Raises `RequestError` (400) naming the bad field.
    """
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("model: Field required")
    max_tokens = data.get("max_tokens")
    if max_tokens is None and require_max_tokens:
        raise RequestError("max_tokens: Field required")
    if max_tokens is not None and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        raise RequestError("max_tokens: Input should be a valid integer greater than or equal to 1")
    messages = data.get("messages")
    if messages is None:
        raise RequestError("messages: Field required")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages: Input should be a non-empty list")
    system_text = _system_text(data.get("system"))
    prompt_tokens = count_tokens(system_text)
    last_user_text = ""
    ends_with_tool_result = False
    for position, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise RequestError(f"messages.{position}.role: Input should be 'user' or 'assistant'")
        text, tool_text, extra, has_result = _blocks_text(message.get("content"), position)
        prompt_tokens += _MESSAGE_OVERHEAD + count_tokens(text) + count_tokens(tool_text) + extra
        if message["role"] == "user":
            last_user_text = text or tool_text
        ends_with_tool_result = message["role"] == "user" and has_result
    tools = _tools(data.get("tools"))
    prompt_tokens += sum(
        count_tokens(canonical_bytes(spec.parameters).decode()) + count_tokens(spec.name)
        for spec in tools
    )
    tool_choice, forced = _tool_choice(data.get("tool_choice"), tools)
    stops = data.get("stop_sequences") or []
    if not isinstance(stops, list) or not all(isinstance(stop, str) for stop in stops):
        raise RequestError("stop_sequences: Input should be a valid list of strings")
    conversation = Conversation(
        model=model,
        fingerprint={
            "system": data.get("system"),
            "messages": messages,
            "tools": data.get("tools"),
        },
        last_user_text=last_user_text,
        system_text=system_text,
        ends_with_tool_result=ends_with_tool_result,
        prompt_tokens=prompt_tokens,
        tools=tools,
        tool_choice=tool_choice,
        forced_tool=forced,
        max_tokens=max_tokens,
        stop=list(stops),
    )
    return MessagesRequest(conversation=conversation, stream=data.get("stream") is True)


def _system_text(system: Any) -> str:
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return "\n".join(
            b["text"] for b in system if isinstance(b, dict) and isinstance(b.get("text"), str)
        )
    raise RequestError("system: Input should be a valid string or a list of text blocks")


def _blocks_text(content: Any, position: int) -> tuple[str, str, int, bool]:
    """(text, tool text, extra tokens, has tool_result) of one message's content."""
    if isinstance(content, str):
        return content, "", 0, False
    if not isinstance(content, list):
        raise RequestError(
            f"messages.{position}.content: Input should be a valid string or list of content blocks"
        )
    texts: list[str] = []
    tool_texts: list[str] = []
    extra = 0
    has_result = False
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_use":
            tool_texts.append(
                f"{block.get('name', '')} {canonical_bytes(block.get('input', {})).decode()}"
            )
        elif kind == "tool_result":
            has_result = True
            inner = block.get("content")
            if isinstance(inner, str):
                tool_texts.append(inner)
            elif isinstance(inner, list):
                tool_texts.extend(
                    b["text"]
                    for b in inner
                    if isinstance(b, dict) and isinstance(b.get("text"), str)
                )
        elif kind in ("image", "document"):
            extra += _IMAGE_TOKENS
        elif kind is None:
            raise RequestError(f"messages.{position}.content: each content block needs a 'type'")
    return "\n".join(texts), "\n".join(tool_texts), extra, has_result


def _tools(raw: Any) -> list[ToolSpec]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise RequestError("tools: Input should be a valid list")
    specs: list[ToolSpec] = []
    for position, tool in enumerate(raw):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise RequestError(f"tools.{position}.name: Field required")
        schema = tool.get("input_schema")
        if schema is None and tool.get("type") not in (None, "custom"):
            continue  # a server tool (web search and the like): nothing for us to call
        if not isinstance(schema, dict):
            raise RequestError(f"tools.{position}.input_schema: Field required")
        specs.append(ToolSpec(tool["name"], schema))
    return specs


def _tool_choice(raw: Any, tools: list[ToolSpec]) -> tuple[Any, str | None]:
    if raw is None:
        return ("auto" if tools else "none"), None
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind in ("auto", "none"):
        return kind, None
    if kind == "any":
        return "required", None
    if kind == "tool":
        name = raw.get("name")
        if not isinstance(name, str) or name not in {spec.name for spec in tools}:
            raise RequestError(f"tool_choice.name: tool {name!r} is not among the provided tools")
        return "required", name
    raise RequestError("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
