"""POST /api/diff: the behaviour diff of two sets of answers to the same cases, as JSON.

`pilothouse diff` collects both sides' answers through the gateway and compares them in
its own process; this endpoint compares answers a caller already has (a CI job that ran
both versions, a notebook), with the same code and the same report. The server embeds
nothing, so meaning is judged by the lexical measure (the report says so).
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import Field, field_validator

from pilothouse.behaviour.observe import LabelPathError, parse_label_path
from pilothouse.behaviour.similarity import DEFAULT_THRESHOLDS
from pilothouse.evals.types import Case, Output
from pilothouse.web.auth import Access
from pilothouse.web.endpoint import Api, Body, Call
from pilothouse.web.fields import Json, Name, Text

api = Api()
MAX_CASES = 10_000


class Answer(Body):
    """One answer as the chat completions API gives it, or the call's failure."""

    text: Text | None = None
    tool_calls: list[Json] | None = None
    refusal: Text | None = None
    finish_reason: Name | None = None
    error: Text | None = None  # the call failed: the case is not compared...
    error_kind: Literal["infra", "refused"] = "infra"  # ...unless the gateway refused it


class DiffCase(Body):
    id: Name
    tags: list[Name] = Field(default_factory=list, max_length=100)
    inputs: dict[str, Json] = Field(default_factory=dict)
    old: Answer
    new: Answer
    old_again: Answer | None = None  # the old side answered again: the noise floor


class DiffBody(Body):
    old: Name = "old"  # what the report calls each side
    new: Name = "new"
    cases: list[DiffCase] = Field(min_length=1, max_length=MAX_CASES)
    label_path: Name | None = None
    rephrase_threshold: float = Field(default=DEFAULT_THRESHOLDS["lexical"], ge=0, le=1)

    @field_validator("cases")
    @classmethod
    def _distinct(cls, cases: list[DiffCase]) -> list[DiffCase]:
        ids = [c.id for c in cases]
        repeated = (
            sorted({i for i in ids if ids.count(i) > 1})[:5] if len(set(ids)) < len(ids) else []
        )
        if repeated:
            raise ValueError(f"case ids must be distinct; repeated: {', '.join(repeated)}")
        again = {c.old_again is None for c in cases}
        if len(again) > 1:
            raise ValueError("give `old_again` for every case (the noise floor) or for none")
        return cases

    @field_validator("label_path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_label_path(value)
            except LabelPathError as exc:
                raise ValueError(str(exc)) from None
        return value


def _output(answer: Answer) -> Output:
    return Output(
        text=answer.text,
        tool_calls=answer.tool_calls,
        refusal=answer.refusal,
        finish_reason=answer.finish_reason,
        error=answer.error,
        error_kind=answer.error_kind if answer.error is not None else None,
    )


@api.post("/api/diff", Access.EVALS)
async def diff(call: Call, body: DiffBody) -> dict[str, Any]:
    # Comparing thousands of answers is CPU work: off the event loop.
    return await call.run(report, body)


def report(body: DiffBody) -> dict[str, Any]:
    """The diff report of the body's answers (lexical similarity)."""
    # Imported here: the comparison brings the eval runner and its statistics (scipy),
    # a quarter of the server's start-up, for an endpoint few deployments call.
    from pilothouse.behaviour.report import build
    from pilothouse.behaviour.run import compare_all

    cases = [Case(id=c.id, inputs=c.inputs, tags=tuple(c.tags)) for c in body.cases]
    noise = body.cases[0].old_again is not None
    results = asyncio.run(
        compare_all(
            cases,
            [_output(c.old) for c in body.cases],
            [_output(c.new) for c in body.cases],
            [_output(c.old_again) for c in body.cases if c.old_again is not None]
            if noise
            else None,
            label_path=body.label_path,
            threshold=body.rephrase_threshold,
        )
    )
    header = {
        "kind": "pilothouse.diff",
        "old": {"name": body.old},
        "new": {"name": body.new},
        "dataset": None,
        "similarity": {"method": "lexical", "model": None, "threshold": body.rephrase_threshold},
    }
    return build(results, header, label_path=body.label_path)
