"""A contract's expectations as checks on one output, built from the eval scorers (so a
JSON schema, a label at a path, a phrase, a pattern or a length bound means exactly what
it means in a suite; docs/evals.md, "Scorers").

| expectation | scorer | an output meets it when |
| --- | --- | --- |
| `json_schema` | json_schema | it is JSON that fits the schema |
| `labels: {path, allowed}` | label_in | the value at `path` is one of `allowed` |
| `required_phrases` | contains | every phrase appears (case-sensitive) |
| `forbidden_phrases` | contains | none of them appears |
| `patterns` | regex | every pattern matches (`re.search`) |
| `forbidden_patterns` | regex | none of them matches |
| `length` | length | it is within every bound given |

A failed call meets no expectation, forbidden ones included: a missing answer is not
evidence that a phrase is absent. Only the scorer modules that need nothing beyond the
server's packages are imported here (the server judges verifications).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pilothouse.evals.scorers_behavior import length
from pilothouse.evals.scorers_options import ScorerConfigError, clip, failed_call
from pilothouse.evals.scorers_text import contains, json_schema, label_in, regex
from pilothouse.evals.types import Case, Output, Score, ScoreFn, ScoringContext

EXPECTATIONS = (
    "json_schema",
    "labels",
    "required_phrases",
    "forbidden_phrases",
    "patterns",
    "forbidden_patterns",
    "length",
)


class CheckError(ValueError):
    """An expectation that cannot be checked; `loc` is where it is in the contract."""

    def __init__(self, loc: tuple[str | int, ...], message: str):
        super().__init__(message)
        self.loc = loc
        self.message = message


@dataclass(frozen=True)
class Check:
    """One expectation: the scorer that tests it, read the other way round when it is a
    `forbidden` one (the scorer finds the phrase or pattern; the output must not)."""

    name: str  # how a failure names it, e.g. `labels at label`
    score: ScoreFn
    forbidden: bool = False


class _NoContext:
    """The scorers a contract uses never call a model."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        raise RuntimeError("contract checks do not use embeddings")

    async def judge(
        self, messages: list[dict[str, Any]], response_format: dict[str, Any] | None = None
    ) -> str:
        raise RuntimeError("contract checks do not use a judge")


NO_CONTEXT = _NoContext()
_CASE = Case(id="-", inputs={})


def build(expect: dict[str, Any]) -> list[Check]:
    """The checks of an `expect:` mapping (already shaped by spec.Expectations); raises
    CheckError naming the expectation whose options the scorer refuses (a regex that
    does not compile, a JSON-schema keyword it does not support)."""
    checks: list[Check] = []

    def add(loc: tuple[str | int, ...], name: str, make: Any, forbidden: bool = False) -> None:
        try:
            checks.append(Check(name, make(), forbidden))
        except ScorerConfigError as exc:
            raise CheckError(("expect", *loc), str(exc).removeprefix("scorer ")) from None

    if expect.get("json_schema") is not None:
        add(("json_schema",), "json_schema", lambda: json_schema(schema=expect["json_schema"]))
    labels = expect.get("labels")
    if labels is not None:
        add(
            ("labels",),
            f"labels at {labels['path']}",
            lambda: label_in(path=labels["path"], labels=labels["allowed"]),
        )
    for index, phrase in enumerate(expect.get("required_phrases") or ()):
        add(("required_phrases", index), f"phrase {phrase!r}", lambda p=phrase: contains(value=p))
    for index, phrase in enumerate(expect.get("forbidden_phrases") or ()):
        add(
            ("forbidden_phrases", index),
            f"forbidden phrase {phrase!r}",
            lambda p=phrase: contains(value=p),
            forbidden=True,
        )
    for key, forbidden in (("patterns", False), ("forbidden_patterns", True)):
        for index, entry in enumerate(expect.get(key) or ()):
            pattern, flags = entry["pattern"], entry.get("flags") or ""
            add(
                (key, index),
                f"{'forbidden ' if forbidden else ''}pattern {pattern!r}",
                lambda p=pattern, f=flags: regex(pattern=p, flags=f),
                forbidden=forbidden,
            )
    bounds = expect.get("length")
    if bounds is not None:
        add(("length",), "length", lambda: length(**bounds))
    return checks


async def failures(checks: Sequence[Check], output: Output) -> list[str]:
    """Why `output` does not meet the contract: one reason per expectation it misses."""
    if output.error is not None:
        return [str(failed_call(output).reason)]
    if not (output.text or "").strip() and not output.tool_calls and output.refusal is None:
        # Checks that only forbid (phrases, a maximum length) pass an empty output: no
        # answer is no evidence that the consumer's expectations hold.
        return ["no answer: the output has no text, tool call or refusal"]
    reasons = []
    for check in checks:
        score = await check.score(_CASE, output, NO_CONTEXT)
        if check.forbidden:
            if score.passed:
                reasons.append(f"{check.name}: found in {clip(output.text or '', 80)!r}")
        elif not score.passed:
            reasons.append(f"{check.name}: {score.reason or 'not met'}")
    return reasons


def contract_scorer(checks: Sequence[Check]) -> ScoreFn:
    """The whole contract as one eval scorer: passes when an output meets every expectation
    (what `pilothouse contracts verify` hands the eval runner)."""

    async def score(case: Case, output: Output, ctx: ScoringContext) -> Score:
        reasons = await failures(checks, output)
        return Score.of(not reasons, "; ".join(reasons) or None)

    return score
