"""Output signals (telemetry/signals.py): the semantic failures on a 200 the fleet counts,
the other signals, and the fleet's cross-provider comparison of them, on plain values."""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse.clock import ManualClock
from pilothouse.fleet import compare
from pilothouse.providers.types import OutputSample
from pilothouse.telemetry import signals as output_signals

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def sample(
    text: str = "", refusal: str | None = None, tool: tuple[str, str] | None = None
) -> OutputSample:
    s = OutputSample()
    if text:
        s.add_text(text)
    s.refusal = refusal
    if tool:
        s.add_tool(0, *tool)
    return s


@pytest.mark.parametrize(
    ("body", "answer", "finish", "expected"),
    [
        ({}, sample("hi"), "stop", None),
        ({}, sample(""), "stop", "empty_answer"),
        ({}, sample("", refusal="I can't"), "stop", None),  # a refusal is an answer
        ({"response_format": {"type": "json_object"}}, sample("{oops"), "stop", "invalid_json"),
        ({"response_format": {"type": "json_object"}}, sample("{oops"), "length", None),
        ({"response_format": {"type": "text"}}, sample("{oops"), "stop", None),
        ({"tools": TOOLS}, sample(tool=("weather", '{"city": "Paris"}')), "tool_calls", None),
        ({"tools": TOOLS}, sample(tool=("weather", "{}")), "tool_calls", "invalid_tool_arguments"),
        (
            {"tools": TOOLS},
            sample(tool=("weather", "{city")),
            "tool_calls",
            "invalid_tool_arguments",
        ),
        ({"tools": TOOLS}, sample(tool=("stocks", "{}")), "tool_calls", "invalid_tool_arguments"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": 7}}}]},
            sample(tool=("f", "{}")),
            "tool_calls",
            None,  # the caller's own schema is invalid: nothing to hold the answer to
        ),
    ],
)
def test_semantic_failures(
    body: dict[str, Any], answer: OutputSample, finish: str, expected: str | None
) -> None:
    verdict = output_signals.compute(body, answer, finish).failure()
    assert (verdict[0] if verdict else None) == expected


def test_an_answer_too_deep_to_check_is_not_judged_and_never_raises() -> None:
    """A provider's answer nested past Python's recursion limit (orjson reads 1 024 levels)
    leaves the schema signal unjudged; it used to raise, and the answer became a 500."""
    recursive = {"type": "array", "items": {"$ref": "#"}}
    body = {"response_format": {"type": "json_schema", "json_schema": {"schema": recursive}}}
    deep = output_signals.compute(body, sample("[" * 1000 + "]" * 1000), "stop")
    assert deep.json_valid is True and deep.schema_valid is None and deep.failure() is None
    shallow = output_signals.compute(body, sample('[[], [[]], "x"]'), "stop")
    assert shallow.schema_valid is False  # the same schema still judges what it can
    invalid = {"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": 7}}}}
    unjudged = output_signals.compute(invalid, sample('{"a": 1}'), "stop")
    assert unjudged.json_valid is True and unjudged.schema_valid is None  # not "valid"


def test_refusals_are_recognised_at_the_start_only() -> None:
    assert output_signals.is_refusal(sample("I'm sorry, but I can't help with that."))
    assert output_signals.is_refusal(sample("", refusal="no"))
    assert not output_signals.is_refusal(
        sample("Paris is the capital. " * 20 + "I cannot say more.")
    )


SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "q",
        "schema": {
            "type": "object",
            "properties": {"label": {"enum": ["a", "b"]}},
            "required": ["label"],
        },
    },
}


@pytest.mark.parametrize(
    ("body", "answer", "finish", "expected"),
    [
        ({}, sample("Paris."), "stop", {"hedging": False, "refusal": False, "json_valid": None}),
        ({}, sample("I think it might be Paris."), "stop", {"hedging": True}),
        ({}, sample("Perhaps."), "stop", {"hedging": True}),
        ({}, sample("Paris" * 5), "length", {"truncated": True}),
        ({}, sample("Here it is"), "content_filter", {"refusal": True}),
        (
            {"response_format": SCHEMA},
            sample('{"label": "a"}'),
            "stop",
            {"json_valid": True, "schema_valid": True},
        ),
        (
            {"response_format": SCHEMA},
            sample('{"label": "z"}'),
            "stop",
            {"json_valid": True, "schema_valid": False},
        ),
        (
            {"response_format": SCHEMA},
            sample("{nope"),
            "stop",
            {"json_valid": False, "schema_valid": None},
        ),
        (
            {"response_format": SCHEMA},
            sample('{"label'),
            "length",
            {"json_valid": None, "truncated": True},
        ),
        (
            {"tools": TOOLS},
            sample(tool=("weather", '{"city": "Rome"}')),
            "tool_calls",
            {"tool_call": True, "tool_args_valid": True},
        ),
        (
            {"tools": TOOLS},
            sample(tool=("weather", '{"ci')),
            "length",
            {"tool_call": True, "tool_args_valid": None},
        ),
        ({}, sample(""), "stop", {"empty": True, "chars": 0}),
    ],
)
def test_each_signal(
    body: dict[str, Any], answer: OutputSample, finish: str, expected: dict[str, Any]
) -> None:
    computed = output_signals.compute(body, answer, finish)
    assert {name: getattr(computed, name) for name in expected} == expected


def signals(
    answers: int, refusals: int = 0, length: int = 100, json_ok: int | None = None
) -> compare.OutputSignals:
    out = compare.OutputSignals(60, ManualClock())
    for i in range(answers):
        text = ("I'm sorry, but no. " if i < refusals else "") + "x" * (length + i % 7)
        body: dict[str, Any] = {}
        if json_ok is not None:
            body = {"response_format": {"type": "json_object"}}
            text = '{"a": 1}' if i < json_ok else "{nope"
        out.add(output_signals.compute(body, sample(text), "stop"))
    return out


def flagged(*deployments: compare.OutputSignals) -> dict[str, list[str]]:
    totals = {f"d{i}": d.totals() for i, d in enumerate(deployments)}
    return compare.outliers(totals, min_samples=30)


def test_a_deployment_that_refuses_more_than_its_peers_is_flagged() -> None:
    result = flagged(signals(60, refusals=30), signals(60, refusals=1))
    assert list(result) == ["d0"] and "refusal rate 50%" in result["d0"][0]


def test_too_few_answers_flag_nothing() -> None:
    assert flagged(signals(20, refusals=20), signals(60)) == {}


def test_alike_deployments_are_not_flagged() -> None:
    assert flagged(signals(80, refusals=4), signals(80, refusals=6), signals(80, refusals=5)) == {}


def test_with_three_only_the_odd_one_is_flagged() -> None:
    result = flagged(signals(60, length=100), signals(60, length=400), signals(60, length=105))
    assert list(result) == ["d1"] and "mean length" in result["d1"][0]


def test_invalid_json_more_often_than_its_peers_is_flagged() -> None:
    result = flagged(signals(50, json_ok=20), signals(50, json_ok=50))
    assert list(result) == ["d0"] and "valid JSON 40%" in result["d0"][0]
