"""Semantic failures: a 200 whose content the client cannot use, even though the API's shape
is right. A body that is not JSON or not the API's shape is already an `UpstreamError`
(malformed) from the codecs; this adds what only the request explains:

- `empty_answer`: no content, no tool call and no refusal;
- `invalid_json`: JSON was asked for (`response_format` json_object / json_schema) and
  the text does not parse;
- `invalid_tool_arguments`: a tool call names an undeclared tool, or its arguments do not
  parse, or violate the tool's `parameters` schema (jsonschema).

An answer cut by the caller's own `max_tokens` (finish reason `length`) is not judged on
its JSON, nor is text or arguments longer than the bounded sample.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from pilothouse.providers.types import OutputSample

EMPTY = "empty_answer"
INVALID_JSON = "invalid_json"
INVALID_TOOL_ARGUMENTS = "invalid_tool_arguments"
CLASSES = (EMPTY, INVALID_JSON, INVALID_TOOL_ARGUMENTS)


def wants_json(body: dict[str, Any]) -> bool:
    """Did the request ask for JSON output?"""
    fmt = body.get("response_format")
    return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")


def failure(
    body: dict[str, Any], sample: OutputSample, finish_reason: str | None
) -> tuple[str, str] | None:
    """(class, why) when the answer in `sample` is unusable for `body`, else None."""
    if sample.chars == 0 and not sample.tool_calls and not sample.refusal:
        return EMPTY, "the answer has no content and no tool call"
    if finish_reason == "length":
        return None
    if sample.chars and sample.chars <= sample.limit and not sample.refusal and wants_json(body):
        try:
            orjson.loads(sample.text)
        except orjson.JSONDecodeError:
            return INVALID_JSON, "JSON was requested and the answer is not valid JSON"
    if sample.tool_calls:
        return _tool_failure(body.get("tools"), sample)
    return None


def _tool_failure(tools: Any, sample: OutputSample) -> tuple[str, str] | None:
    declared = _declared(tools)
    for name, arguments in sample.tool_calls.values():
        if len(arguments) >= sample.limit:
            continue  # only part of it was kept
        if name not in declared:
            return INVALID_TOOL_ARGUMENTS, f"the answer calls the undeclared tool {name!r}"
        try:
            value = orjson.loads(arguments or "{}")
        except orjson.JSONDecodeError:
            return INVALID_TOOL_ARGUMENTS, f"the arguments of tool {name!r} are not valid JSON"
        schema = declared[name]
        if schema is None:
            continue
        validator = _validator(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))
        if validator is None:
            continue  # the caller's schema is itself invalid: nothing to hold the answer to
        error = next(iter(validator.iter_errors(value)), None)
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
            return (
                INVALID_TOOL_ARGUMENTS,
                f"the arguments of tool {name!r} violate its schema at {where}: "
                f"{error.message[:200]}",
            )
    return None


def _declared(tools: Any) -> dict[str, Any]:
    """Tool name → its parameters schema (None when it declared none)."""
    out: dict[str, Any] = {}
    for tool in tools if isinstance(tools, list) else ():
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            parameters = function.get("parameters")
            out[function["name"]] = parameters if isinstance(parameters, dict) else None
    return out


@lru_cache(maxsize=256)
def _validator(schema_json: bytes) -> Draft202012Validator | None:
    # Keyed by the schema's canonical JSON: the same tools arrive with every request.
    schema = orjson.loads(schema_json)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError:
        return None
    return Draft202012Validator(schema)


# Output signals for the cross-provider comparison (see compare.py).
REFUSAL_WINDOW = 200
_REFUSAL = re.compile(
    r"(?<!\w)(?:I['\u2019]m sorry, but|I am sorry, but|I apologi[sz]e, but|I can['\u2019]t|"
    r"I cannot|I can not|I won['\u2019]t|I will not|I['\u2019]m unable|I am unable|"
    r"I['\u2019]m not able to|I am not able to|I must decline|as an AI)(?!\w)",
    re.IGNORECASE,
)


def is_refusal(sample: OutputSample) -> bool:
    """The model declined: an explicit `refusal`, or a refusal phrase at the start (the
    phrase list of the eval scorer `refusal`)."""
    if sample.refusal:
        return True
    head = ""
    for part in sample.text_parts:
        head += part
        if len(head) >= REFUSAL_WINDOW + 50:  # room for leading whitespace
            break
    return _REFUSAL.search(head.lstrip()[:REFUSAL_WINDOW]) is not None


def is_valid_json(sample: OutputSample) -> bool | None:
    """Whether the text parses as JSON (None when only part of it was kept)."""
    if sample.chars > sample.limit:
        return None
    try:
        orjson.loads(sample.text)
    except orjson.JSONDecodeError:
        return False
    return True
