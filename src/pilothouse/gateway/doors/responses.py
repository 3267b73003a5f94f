"""The Responses API front door (`POST /v1/responses`): its request translated to chat
completions. Pure: no I/O.

Request (`to_chat`): `input` as text or items (messages with `input_text` / `input_image`
/ `output_text` parts, `function_call` and `function_call_output` items), `instructions`
→ a leading system message, function `tools` and `tool_choice`, `text.format` (text,
json_object, json_schema) → `response_format`, `max_output_tokens` →
`max_completion_tokens`, `temperature`, `top_p`, `parallel_tool_calls` (with tools),
`reasoning.effort` → `reasoning_effort`, `user`, `stream`. Refused (400, naming the
field): built-in tools (web search, file search, computer use, ...), item types this door
does not know, a `function_call_output` answering no call earlier in the input, a function
tool without its name, a json_schema format without its schema, a field of the wrong type
(checked under the door's own names: `max_output_tokens`, not chat's), and what this
gateway does not keep: `conversation`, `background: true`, OpenAI-stored `prompt`s.
Echoed, not sent: `metadata`. `previous_response_id`, `item_reference` items and `store`
are the gateway's (`stored.py`): by the time a request is translated here, they have been
replaced by what they name (a `ContinuedRequest`, so faults are still named where the
client sent them).

The answer, the Responses object, is `responses_answer.py`'s; the stream
`responses_stream.py`'s.
"""

from __future__ import annotations

from typing import Any

import orjson

from pilothouse.errors import InvalidRequest
from pilothouse.gateway.validation import optional, positive_int

_ROLES = {"user", "system", "developer", "assistant"}


def _refuse_unserved_state(body: dict[str, Any]) -> None:
    """What this gateway does not keep is a clear 400, never ignored."""
    if body.get("conversation") is not None:
        raise InvalidRequest(
            "`conversation` (an OpenAI-stored conversation) is not supported: continue a "
            "stored response with `previous_response_id`, or send the whole conversation "
            "in `input`",
            param="conversation",
        )
    if body.get("background") is True:
        raise InvalidRequest(
            "`background: true` is not supported: responses are answered while you wait",
            hint="leave `background` out, or stream the response",
            param="background",
        )
    if body.get("prompt") is not None:
        raise InvalidRequest(
            "`prompt` (an OpenAI-stored prompt) is not supported: use a route "
            "(`model: route:NAME`) for prompts kept by Pilothouse",
            param="prompt",
        )


_EFFORT_OBJECT = 'an object such as {"effort": "low"}'
_EFFORT = "a string such as low, medium or high"


def to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The chat completions body for a Responses request; InvalidRequest names the field.
    `previous_response_id` and `item_reference` items must have been replaced by what
    they name already (`gateway/doors/stored.py`); `store` is the gateway's to decide."""
    _refuse_unserved_state(body)
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise InvalidRequest("`instructions` must be a string", param="instructions")
        messages.append({"role": "system", "content": instructions})
    stored = body.stored_items if isinstance(body, ContinuedRequest) else 0
    messages += _input_messages(body.get("input"), stored)
    chat: dict[str, Any] = {"messages": messages}
    if "model" in body:
        chat["model"] = body["model"]
    for field in ("temperature", "top_p", "user", "stream"):
        if body.get(field) is not None:
            chat[field] = body[field]
    if body.get("max_output_tokens") is not None:  # checked under the client's name
        chat["max_completion_tokens"] = positive_int("max_output_tokens", body["max_output_tokens"])
    reasoning = optional("reasoning", body.get("reasoning"), dict, _EFFORT_OBJECT) or {}
    effort = optional("reasoning.effort", reasoning.get("effort"), str, _EFFORT)
    if effort:
        chat["reasoning_effort"] = effort
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
        if body.get("parallel_tool_calls") is not None:
            chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    text = optional("text", body.get("text"), dict, 'an object such as {"format": {...}}') or {}
    fmt = optional("text.format", text.get("format"), dict, 'an object such as {"type": "text"}')
    response_format = _format(fmt) if fmt is not None else None
    if response_format is not None:
        chat["response_format"] = response_format
    if body.get("stream"):
        chat["stream_options"] = {"include_usage": True}
    if "pilothouse" in body:
        chat["pilothouse"] = body["pilothouse"]
    return chat


class ContinuedRequest(dict[str, Any]):
    """A request continuing stored state (`stored.Keeper.prepare`): its `input` is the
    stored conversation's `stored_items` items, then the client's own, so that a fault is
    named where the client sent it (`input[0]` is the client's first item)."""

    def __init__(self, body: dict[str, Any], stored_items: int):
        super().__init__(body)
        self.stored_items = stored_items


def _input_messages(value: Any, stored_items: int = 0) -> list[dict[str, Any]]:
    if value is None:
        raise InvalidRequest("`input` is required: text, or a list of input items", param="input")
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise InvalidRequest("`input` must be a string or a list of items", param="input")
    messages: list[dict[str, Any]] = []
    calls: set[str] = set()  # the call ids of the function calls so far
    for index, item in enumerate(value):
        if index < stored_items:
            where = f"item {index} of the stored conversation (previous_response_id)"
        else:
            where = f"input[{index - stored_items}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"`{where}` must be an object", param=where)
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in _ROLES:
                raise InvalidRequest(
                    f"`{where}.role` must be one of {', '.join(sorted(_ROLES))}",
                    param=f"{where}.role",
                )
            messages.append({"role": role, "content": _content(item.get("content"), where)})
        elif kind == "function_call":
            call_id = str(item.get("call_id") or item.get("id") or "")
            name = str(item.get("name") or "")
            call = {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": str(item.get("arguments") or "{}")},
            }
            if not call_id or not name:
                raise InvalidRequest(f"`{where}` needs a call_id and a name", param=where)
            calls.add(call_id)
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                # Parallel calls, or text then calls: one assistant turn, as chat has it.
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            if not item.get("call_id"):
                raise InvalidRequest(
                    f"`{where}.call_id` is required: the call this output answers",
                    param=f"{where}.call_id",
                )
            if str(item["call_id"]) not in calls:
                # Refused as the providers would (each in its own words, after the call).
                raise InvalidRequest(
                    f"`{where}.call_id` {str(item['call_id'])[:80]!r} answers no function_call "
                    "earlier in the input",
                    hint="send the function_call item before its output, or continue the "
                    "stored response that made the call with `previous_response_id`",
                    param=f"{where}.call_id",
                )
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": str(item["call_id"]),
                    "content": _output_text(item.get("output")),
                }
            )
        elif kind == "reasoning":
            continue  # a model's reasoning summary: nothing for the next model to read
        elif kind == "item_reference":
            raise InvalidRequest(
                f"`{where}` is an item_reference, but this gateway keeps no stored items "
                "for it to name",
                hint="send the item itself, or store responses (docs/gateway.md)",
                param=where,
            )
        else:
            raise InvalidRequest(
                f"`{where}.type` {kind!r:.60} is not supported by this gateway's Responses door "
                "(message, function_call, function_call_output, item_reference)",
                param=f"{where}.type",
            )
    if not messages:
        raise InvalidRequest("`input` is empty", param="input")
    return messages


def _output_text(output: Any) -> str:
    """A function call's output: text as it is, text parts joined, anything else as JSON."""
    if isinstance(output, str):
        return output
    if isinstance(output, list) and all(
        isinstance(part, dict) and part.get("type") in ("input_text", "output_text", "text")
        for part in output
    ):
        return "".join(str(part.get("text") or "") for part in output)
    return orjson.dumps(output).decode()


def _content(content: Any, where: str) -> Any:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(
            f"`{where}.content` must be text or a list of parts", param=f"{where}.content"
        )
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": str(part.get("text") or "")})
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str):
                raise InvalidRequest(
                    f"`{where}.content[{index}]`: give input_image an image_url",
                    param=f"{where}.content[{index}]",
                )
            parts.append({"type": "image_url", "image_url": {"url": url}})
        elif kind == "refusal":
            continue
        else:
            raise InvalidRequest(
                f"`{where}.content[{index}].type` {kind!r:.60} is not supported "
                "(input_text, output_text, input_image)",
                param=f"{where}.content[{index}].type",
            )
    return parts


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise InvalidRequest("`tools` must be a list", param="tools")
    out = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise InvalidRequest(
                f"`tools[{index}]`: only function tools pass through this gateway, got {kind!r:.60}",
                param=f"tools[{index}]",
            )
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest(
                f"`tools[{index}].name` is required: the function's name",
                param=f"tools[{index}].name",
            )
        where = f"tools[{index}].parameters"
        parameters = optional(where, tool.get("parameters"), dict, "a JSON Schema object")
        function = {
            "name": name,
            "parameters": parameters or {"type": "object", "properties": {}},
        }
        if tool.get("description"):
            function["description"] = tool["description"]
        if tool.get("strict") is not None:
            function["strict"] = tool["strict"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidRequest(
        '`tool_choice` must be auto, none, required or {"type": "function", "name": ...}',
        param="tool_choice",
    )


def _format(fmt: dict[str, Any]) -> dict[str, Any] | None:
    kind = fmt.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = fmt.get("schema")
        if not isinstance(schema, dict):
            raise InvalidRequest(
                "`text.format.schema` is required with json_schema: the JSON Schema the "
                "answer must follow",
                hint='or ask for any JSON object with {"type": "json_object"}',
                param="text.format.schema",
            )
        spec = {"name": fmt.get("name") or "response", "schema": schema}
        if fmt.get("description"):
            spec["description"] = fmt["description"]
        if fmt.get("strict") is not None:
            spec["strict"] = fmt["strict"]
        return {"type": "json_schema", "json_schema": spec}
    raise InvalidRequest(
        f"`text.format.type` {kind!r:.60} is not supported", param="text.format.type"
    )
