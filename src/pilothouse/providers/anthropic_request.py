"""OpenAI chat.completions requests, translated for the Anthropic Messages API. Pure: no
I/O; `anthropic.py` posts them and `anthropic_response.py` translates the answers.

Request (`to_anthropic_request`), translated:
  system/developer messages → top-level `system` (several are joined with a blank line,
  wherever they appear in the conversation); user/assistant turns, with consecutive
  same-role messages merged because Anthropic requires strict alternation; content as a
  string or as parts (text; `image_url` data URLs → base64 image blocks, http(s) URLs →
  url image blocks); assistant `tool_calls` → `tool_use` blocks; `role: tool` messages →
  `tool_result` blocks in a user turn; function `tools` → Anthropic tools; `tool_choice`
  auto/none/required/named → auto/none/any/tool; `parallel_tool_calls: false` →
  `disable_parallel_tool_use`; `max_completion_tokens` or `max_tokens` → `max_tokens`
  (4096 when absent, because Anthropic requires it); `temperature` and `top_p` as they
  are (Anthropic accepts temperature 0 to 1 only and answers 400 above that); `stop` →
  `stop_sequences`; `user` → `metadata.user_id`.
Structured output: `response_format` json_schema becomes a tool whose input schema is the
  requested schema (json_object: an open object schema), named STRUCTURED_OUTPUT_TOOL and
  forced with `tool_choice`, so the model must answer with JSON that fits; the answer's
  `tool_use` input comes back as the message `content` (`anthropic_response`,
  `anthropic_stream`). With tools of the caller's own too, the model must call one of
  them or the answer tool (`tool_choice: any`).
Refused (InvalidRequest): `n` > 1, tool-call arguments that are not a JSON object, content
  parts other than text and images, non-function tools, unknown roles.
Dropped silently: `seed`, `logprobs`, `top_logprobs`, `frequency_penalty`,
  `presence_penalty`, `logit_bias`, `stream_options`, `service_tier`, `store`, OpenAI
  `metadata`, `reasoning_effort`, `modalities`, `audio`, `prediction`, message `name`
  fields, assistant `refusal` parts, `tool_choice` without `tools`, and any other field
  Anthropic has no equivalent for.
"""

from __future__ import annotations

from typing import Any

import orjson

from pilothouse.errors import InvalidRequest

DEFAULT_MAX_TOKENS = 4096
# The tool a structured-output request is answered through; its input is the answer.
STRUCTURED_OUTPUT_TOOL = "pilothouse_structured_output"


def to_anthropic_request(body: dict[str, Any], model: str) -> dict[str, Any]:
    """The Anthropic Messages body for an OpenAI chat.completions body (no `stream` key)."""
    n = body.get("n")
    if n is not None and n != 1:
        raise InvalidRequest("n > 1 is not supported by Anthropic models", param="n")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise InvalidRequest("`messages` must be a non-empty list", param="messages")

    system_parts: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(raw_messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{i}] is not an object", param=f"messages[{i}]")
        role = message.get("role")
        if role in ("system", "developer"):
            text = _system_text(message.get("content"), i)
            if text:
                system_parts.append(text)
            continue
        if role == "user":
            blocks = _content_blocks(message.get("content"), i)
        elif role == "assistant":
            blocks = _content_blocks(message.get("content"), i)
            blocks += _tool_use_blocks(message.get("tool_calls"), i)
        elif role == "tool":
            blocks = [_tool_result_block(message, i)]
            role = "user"  # Anthropic carries tool results in a user turn
        else:
            raise InvalidRequest(
                f"messages[{i}] has unsupported role {role!r}", param=f"messages[{i}].role"
            )
        if not blocks:
            continue  # Anthropic rejects empty turns; an empty message says nothing anyway
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)  # Anthropic requires user/assistant alternation
        else:
            turns.append({"role": role, "content": blocks})
    if not turns:
        raise InvalidRequest("at least one user or assistant message is required", param="messages")
    for turn in turns:
        if turn["role"] == "user":
            # Anthropic wants tool results before any other content of the same user turn.
            content = turn["content"]
            turn["content"] = [b for b in content if b["type"] == "tool_result"] + [
                b for b in content if b["type"] != "tool_result"
            ]

    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    out: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": turns}
    if system_parts:
        out["system"] = "\n\n".join(system_parts)
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            out[key] = body[key]
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop_sequences"] = [str(s) for s in stop]
    if body.get("user"):
        out["metadata"] = {"user_id": str(body["user"])}
    tools = body.get("tools")
    choice = None
    if tools:
        out["tools"] = _tools(tools)
        choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    answer_tool = _structured_output_tool(body.get("response_format"))
    if answer_tool is not None:
        out["tools"] = [*out.get("tools", []), answer_tool]
        if choice is None or choice["type"] == "none":
            choice = {"type": "tool", "name": STRUCTURED_OUTPUT_TOOL}
        elif choice["type"] == "auto":
            choice = {**choice, "type": "any"}  # one of the caller's tools, or the answer
    if choice is not None:
        out["tool_choice"] = choice
    return out


def _system_text(content: Any, i: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise InvalidRequest(
                    f"messages[{i}]: system messages may only contain text parts",
                    param=f"messages[{i}].content",
                )
            texts.append(str(part.get("text") or ""))
        return "\n".join(t for t in texts if t)
    if content is None:
        return ""
    raise InvalidRequest(f"messages[{i}].content is not a string or a list", param=f"messages[{i}]")


def _content_blocks(content: Any, i: int) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        # Anthropic rejects empty text blocks.
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest(
            f"messages[{i}].content is not a string or a list", param=f"messages[{i}].content"
        )
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                blocks.append({"type": "text", "text": str(part["text"])})
        elif kind == "image_url":
            blocks.append(_image_block(part.get("image_url"), f"messages[{i}].content[{j}]"))
        elif kind == "refusal":
            continue  # an assistant's earlier refusal: nothing for the model to read
        else:
            raise InvalidRequest(
                f"messages[{i}].content[{j}] has type {kind!r}; Anthropic models accept "
                "only text and image_url parts here",
                param=f"messages[{i}].content[{j}].type",
            )
    return blocks


def _image_block(image: Any, where: str) -> dict[str, Any]:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"{where}: image_url.url is missing", param=f"{where}.image_url")
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not media_type or not data:
            raise InvalidRequest(
                f"{where}: image data URLs must look like data:<media type>;base64,<data>",
                param=f"{where}.image_url",
            )
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequest(
        f"{where}: image_url.url must be a data: or http(s) URL", param=f"{where}.image_url"
    )


def _tool_use_blocks(tool_calls: Any, i: int) -> list[dict[str, Any]]:
    if not tool_calls:
        return []
    if not isinstance(tool_calls, list):
        raise InvalidRequest(f"messages[{i}].tool_calls is not a list", param=f"messages[{i}]")
    blocks = []
    for j, call in enumerate(tool_calls):
        where = f"messages[{i}].tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not function.get("name") or not call.get("id"):
            raise InvalidRequest(f"{where} needs an id and a function name", param=where)
        arguments = function.get("arguments") or "{}"  # models may send "" for no arguments
        try:
            # Some clients send the arguments already parsed; accept that too.
            parsed = arguments if isinstance(arguments, dict) else orjson.loads(arguments)
        except (orjson.JSONDecodeError, TypeError):
            parsed = None
        if not isinstance(parsed, dict):
            raise InvalidRequest(
                f"messages[{i}]: tool call {call['id']!r} has arguments that are not a JSON "
                "object; Anthropic needs them parsed",
                param=f"{where}.function.arguments",
            )
        blocks.append(
            {"type": "tool_use", "id": call["id"], "name": function["name"], "input": parsed}
        )
    return blocks


def _tool_result_block(message: dict[str, Any], i: int) -> dict[str, Any]:
    tool_call_id = message.get("tool_call_id")
    if not tool_call_id:
        raise InvalidRequest(
            f"messages[{i}] (role tool) needs a tool_call_id", param=f"messages[{i}].tool_call_id"
        )
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_call_id}
    content = message.get("content")
    if isinstance(content, str):
        if content:
            block["content"] = content
    elif content:
        block["content"] = _content_blocks(content, i)
    return block


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise InvalidRequest("`tools` must be a list", param="tools")
    out = []
    for j, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type") != "function":
            raise InvalidRequest(
                f"tools[{j}]: only function tools are supported with Anthropic models",
                param=f"tools[{j}]",
            )
        if not function.get("name"):
            raise InvalidRequest(f"tools[{j}] has no function name", param=f"tools[{j}].function")
        entry: dict[str, Any] = {
            "name": function["name"],
            # Anthropic requires a schema; OpenAI allows omitting it for argument-less tools.
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            entry["description"] = function["description"]
        out.append(entry)
    return out


def _tool_choice(choice: Any, parallel_tool_calls: Any) -> dict[str, Any] | None:
    mapped: dict[str, Any] | None
    if choice is None:
        mapped = None
    elif choice == "auto":
        mapped = {"type": "auto"}
    elif choice == "none":
        mapped = {"type": "none"}
    elif choice == "required":
        mapped = {"type": "any"}
    elif (
        isinstance(choice, dict)
        and choice.get("type") == "function"
        and isinstance(choice.get("function"), dict)
        and choice["function"].get("name")
    ):
        mapped = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise InvalidRequest(
            "tool_choice must be auto, none, required or "
            '{"type": "function", "function": {"name": ...}}',
            param="tool_choice",
        )
    if parallel_tool_calls is False:
        mapped = mapped or {"type": "auto"}
        if mapped["type"] != "none":
            mapped["disable_parallel_tool_use"] = True
    return mapped


def _structured_output_tool(response_format: Any) -> dict[str, Any] | None:
    """The answer tool for a `response_format` asking for JSON, else None."""
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        schema: Any = {"type": "object", "additionalProperties": True}
    elif kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict) or schema.get("type", "object") != "object":
            raise InvalidRequest(
                "response_format.json_schema.schema must be a JSON Schema of an object for "
                "Anthropic models (the answer is given as a tool input, which is an object)",
                param="response_format.json_schema.schema",
            )
    else:
        return None
    return {
        "name": STRUCTURED_OUTPUT_TOOL,
        "description": "Give your final answer by calling this tool; its input is the answer.",
        "input_schema": schema,
    }
