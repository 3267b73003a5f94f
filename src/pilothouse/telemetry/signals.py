"""Output signals: cheap facts about every answer that need no label, computed once per
response from the bounded `OutputSample` the codecs keep, and stored with the request-log
row. Drift detection, SLOs on signal rates, the fleet's health (a 200 the client cannot use
is a failure) and its cross-provider comparison all read these.

- `empty`: no content, no tool call and no refusal.
- `refusal`: the provider's own refusal (a `refusal` field, a `content_filter` finish) or a
  refusal phrase (phrases.py, the eval scorer's list) in the first 200 characters.
- `hedging`: a hedging phrase (phrases.py) in the first 2,000 characters. Not a failure;
  a drift signal.
- `truncated`: the answer stopped at `max_tokens` (finish reason `length`).
- `json_valid`, `schema_valid`: when JSON was asked for (`response_format` json_object or
  json_schema), whether the text parses, and matches the schema; None when not asked, when
  the answer was truncated, refused, or longer than the sample.
- `tool_call`, `tool_args_valid`: whether the answer calls a tool, and whether every call
  names a declared tool with arguments that parse and fit its `parameters` schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from pilothouse.phrases import HEDGING, REFUSAL
from pilothouse.providers.types import OutputSample

REFUSAL_WINDOW = 200
HEDGING_WINDOW = 2000


@dataclass(frozen=True, slots=True)
class Signals:
    chars: int
    empty: bool
    refusal: bool
    hedging: bool
    truncated: bool
    json_valid: bool | None
    schema_valid: bool | None
    tool_call: bool
    tool_args_valid: bool | None
    problem: str | None = None  # what made JSON, schema or tool arguments invalid

    def failure(self) -> tuple[str, str] | None:
        """(class, why) when the client cannot use this answer: the fleet counts it as a
        failure of the deployment and may ask another. A truncated answer is the caller's
        `max_tokens`, not the provider's fault."""
        if self.empty:
            return "empty_answer", "the answer has no content and no tool call"
        if self.json_valid is False:
            return "invalid_json", "JSON was requested and the answer is not valid JSON"
        if self.tool_args_valid is False:
            return "invalid_tool_arguments", self.problem or "invalid tool arguments"
        return None


def wants_json(body: dict[str, Any]) -> bool:
    """Did the request ask for JSON output?"""
    fmt = body.get("response_format")
    return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")


def compute(body: dict[str, Any], sample: OutputSample, finish_reason: str | None) -> Signals:
    """The signals of one answer to `body`."""
    refusal = is_refusal(sample) or finish_reason == "content_filter"
    truncated = finish_reason == "length"
    json_valid = schema_valid = None
    problem = None
    complete = sample.chars <= sample.limit
    if wants_json(body) and not refusal and not truncated and complete and sample.chars:
        try:
            value = orjson.loads(sample.text)
            json_valid = True
        except orjson.JSONDecodeError:
            json_valid = False
        if json_valid:
            schema = _response_schema(body)
            if schema is not None:
                try:
                    problem = _violation(schema, value, "the answer")
                    schema_valid = problem is None
                except _Unjudged:
                    pass  # schema_valid stays None: not checked
    tool_args_valid = None
    if sample.tool_calls and not truncated:  # arguments cut by max_tokens prove nothing
        tool_problem = _tool_problem(body.get("tools"), sample)
        tool_args_valid = tool_problem is None
        problem = problem or tool_problem
    return Signals(
        chars=sample.chars,
        empty=sample.chars == 0 and not sample.tool_calls and not sample.refusal,
        refusal=refusal,
        hedging=HEDGING.first(_head(sample, HEDGING_WINDOW)) is not None,
        truncated=truncated,
        json_valid=json_valid,
        schema_valid=schema_valid,
        tool_call=bool(sample.tool_calls),
        tool_args_valid=tool_args_valid,
        problem=problem,
    )


def is_refusal(sample: OutputSample) -> bool:
    """The model declined: an explicit `refusal`, or a refusal phrase at the start."""
    if sample.refusal:
        return True
    head = _head(sample, REFUSAL_WINDOW + 50).lstrip()[:REFUSAL_WINDOW]
    return REFUSAL.first(head) is not None


def _head(sample: OutputSample, chars: int) -> str:
    head = ""
    for part in sample.text_parts:
        head += part
        if len(head) >= chars:
            break
    return head[:chars]


def _response_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    fmt = body.get("response_format")
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    spec = fmt.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return schema if isinstance(schema, dict) else None


def _tool_problem(tools: Any, sample: OutputSample) -> str | None:
    declared = _declared(tools)
    for name, arguments in sample.tool_calls.values():
        if len(arguments) >= sample.limit:
            continue  # only part of it was kept
        if name not in declared:
            return f"the answer calls the undeclared tool {name!r}"
        try:
            value = orjson.loads(arguments or "{}")
        except orjson.JSONDecodeError:
            return f"the arguments of tool {name!r} are not valid JSON"
        schema = declared[name]
        if schema is not None:
            try:
                problem = _violation(schema, value, f"the arguments of tool {name!r}")
            except _Unjudged:
                continue  # nothing to hold these arguments to
            if problem:
                return problem
    return None


class _Unjudged(Exception):
    """The value cannot be held to the schema: a signal is a judgement of the answer, never
    a reason for the request to fail, and never a verdict it did not reach."""


def _violation(schema: dict[str, Any], value: Any, what: str) -> str | None:
    """Where `value` breaks `schema`, None when it holds; _Unjudged when it cannot tell."""
    try:
        validator = _validator(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))
        error = next(iter(validator.iter_errors(value)), None) if validator else None
    except (RecursionError, orjson.JSONEncodeError):
        raise _Unjudged from None  # an answer (or a schema) nested too deeply to check
    if validator is None:
        raise _Unjudged  # the caller's schema is itself invalid: nothing to hold it to
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
    return f"{what} violate(s) the schema at {where}: {error.message[:200]}"


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
