"""What an answer *does*, as opposed to what it says: whether it is JSON and with which
keys, the label at a path, the tools it calls and with which arguments, whether it
refuses, how long it is. Two answers are compared on these (compare.py), never on text.

The readings reuse the eval scorers' rules, so a diff and a suite agree: JSON is strict
(`scorers_options.parse_json`, no fence), a refusal is the API's `refusal` field, a
`content_filter` finish, or a refusal phrase (phrases.py) in the first 200 characters.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any

import orjson

from pilothouse.evals.scorers_behavior import REFUSAL_WINDOW
from pilothouse.evals.scorers_options import NotJson, parse_json
from pilothouse.evals.types import Output
from pilothouse.phrases import REFUSAL


class LabelPathError(ValueError):
    """A label path that cannot be read; the message says what a path looks like."""


_PART = re.compile(r"[^.\[\]]+|\[\d+\]")
NO_LABEL = "(none)"  # how a missing label shows in the matrix


def parse_label_path(path: str) -> tuple[str | int, ...]:
    """`label`, `$.label`, `result.label`, `$.choices[0].label` or `choices.0.label` as
    keys and list indexes; raises LabelPathError for an empty or malformed path."""
    text = path.strip()
    if text.startswith("$"):
        text = text[1:].lstrip(".")
    if not text or ".." in text or text.startswith(".") or text.endswith("."):
        raise LabelPathError(
            f"label path {path!r}: give keys joined by dots, as `label`, `$.label` or "
            "`result.choices[0].label`"
        )
    parts: list[str | int] = []
    for segment in text.split("."):
        pieces = _PART.findall(segment)
        if "".join(pieces) != segment or not pieces or pieces[0].startswith("["):
            raise LabelPathError(
                f"label path {path!r}: {segment!r} is not a key (optionally followed by [N])"
            )
        for piece in pieces:
            parts.append(int(piece[1:-1]) if piece.startswith("[") else piece)
    return tuple(parts)


@dataclass(frozen=True)
class ToolCall:
    """One tool call: the tool's name and its arguments (parsed JSON, or the raw text when
    the arguments are not JSON)."""

    name: str
    arguments: Any

    def shown(self) -> str:
        args = self.arguments
        text = args if isinstance(args, str) else orjson.dumps(args, option=orjson.OPT_SORT_KEYS)
        return f"{self.name}({text if isinstance(text, str) else text.decode()})"


@dataclass(frozen=True)
class Observation:
    """One answer's behaviour. `failed` is set when the call failed for infrastructure
    reasons (nothing else is read then); `gateway_refused` when the gateway refused the
    request for what it contained (a behaviour of the prompt, compared like the rest)."""

    failed: str | None = None
    gateway_refused: str | None = None
    text: str = ""
    json_valid: bool = False
    document: Any = None  # the parsed JSON when json_valid
    keys: frozenset[str] | None = None  # every key path when the answer is JSON
    label: str | None = None  # the label at the path as shown, None when absent
    tools: tuple[ToolCall, ...] = ()
    refused: bool = False
    length_chars: int = 0

    @property
    def comparable(self) -> bool:
        return self.failed is None


def observe(output: Output, label_path: tuple[str | int, ...] | None = None) -> Observation:
    """Read `output` (an eval Output) into an Observation; never raises."""
    if output.error is not None:
        if output.error_kind == "refused":
            return Observation(gateway_refused=output.error)
        return Observation(failed=output.error)
    text = output.text or ""
    document: Any = None
    valid = False
    try:
        document = parse_json(text)
        valid = isinstance(document, dict | list)
    except NotJson:
        document = None
    tools = tuple(_tool_calls(output.tool_calls))
    refused = bool(output.refusal) or output.finish_reason == "content_filter"
    if not refused:
        refused = REFUSAL.first(text.strip()[:REFUSAL_WINDOW]) is not None
    label = None
    if label_path is not None and valid:
        label = _label_at(document, label_path)
    length = len(text) + sum(len(t.shown()) for t in tools)
    return Observation(
        text=text if text or not output.refusal else output.refusal,
        json_valid=valid,
        document=document if valid else None,
        keys=frozenset(key_paths(document)) if valid else None,
        label=label,
        tools=tools,
        refused=refused,
        length_chars=length,
    )


def key_paths(document: Any, prefix: str = "") -> list[str]:
    """Every object key as a dotted path, list items as `[]`: `{"a": [{"b": 1}]}` gives
    `a` and `a[].b`."""
    out: list[str] = []
    if isinstance(document, dict):
        for key, value in document.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            out.append(path)
            out.extend(key_paths(value, path))
    elif isinstance(document, list):
        for item in document:
            out.extend(key_paths(item, f"{prefix}[]"))
    return out


def _label_at(document: Any, path: tuple[str | int, ...]) -> str | None:
    value = document
    for part in path:
        if isinstance(value, dict) and str(part) in value:
            value = value[str(part)]
        elif isinstance(value, list) and isinstance(part, int) and part < len(value):
            value = value[part]
        elif isinstance(value, list) and isinstance(part, str) and part.isdigit():
            index = int(part)
            if index >= len(value):
                return None
            value = value[index]
        else:
            return None
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _tool_calls(raw: list[dict[str, Any]] | None) -> list[ToolCall]:
    calls = []
    for call in raw or []:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        arguments: Any = function.get("arguments")
        if isinstance(arguments, str):
            with contextlib.suppress(orjson.JSONDecodeError):
                arguments = orjson.loads(arguments)  # else kept as the raw text
        calls.append(ToolCall(str(function.get("name") or ""), arguments))
    return calls
