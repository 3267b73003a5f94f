"""Scorers: the types a suite file can name, `build` for a `ScorerSpec`, custom scorers.

The built-in scorers live in scorers_text (what the output says), scorers_behavior (how
it answered: length, refusal, hedging, latency, cost) and scorers_model (judge,
embeddings, self-consistency); this module is the one to import.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pilothouse.evals import (
    scorers_behavior,
    scorers_model,
    scorers_options,
    scorers_schema,
    scorers_text,
)
from pilothouse.evals.scorers_behavior import cost, hedging, latency, length, refusal
from pilothouse.evals.scorers_model import embedding_similarity, llm_judge, self_consistency
from pilothouse.evals.scorers_options import (
    ScorerConfigError,
    as_group,
    checks_cases,
    clip,
    failed_call,
)
from pilothouse.evals.scorers_text import contains, equals, json_schema, json_valid, label_in, regex
from pilothouse.evals.types import (
    Case,
    GroupScoreFn,
    Output,
    Score,
    ScoreFn,
    ScorerSpec,
    ScoringContext,
)

__all__ = [
    "SCORERS",
    "SCORER_CODE_VERSION",
    "ScorerConfigError",
    "build",
    "contains",
    "cost",
    "custom",
    "embedding_similarity",
    "equals",
    "hedging",
    "json_schema",
    "json_valid",
    "label_in",
    "latency",
    "length",
    "llm_judge",
    "refusal",
    "regex",
    "self_consistency",
]

SCORERS: dict[str, Callable[..., ScoreFn | GroupScoreFn]] = {
    "equals": equals,
    "contains": contains,
    "regex": regex,
    "json_valid": json_valid,
    "json_schema": json_schema,
    "label_in": label_in,
    "length": length,
    "latency": latency,
    "cost": cost,
    "refusal": refusal,
    "hedging": hedging,
    "self_consistency": self_consistency,
    "embedding_similarity": embedding_similarity,
    "llm_judge": llm_judge,
}


def build(spec: ScorerSpec) -> ScoreFn | GroupScoreFn:
    """The scorer function for `spec`; raises ScorerConfigError for a bad type or options.

    `spec.type` is a key of SCORERS or `module:function` (see `custom`). Options the
    factory does not take are errors (a typo never silently falls back to a default).
    """
    if not isinstance(spec.options, dict):
        raise ScorerConfigError(f"scorer {spec.type!r}: options must be a mapping")
    if ":" in spec.type:
        return custom(spec.type, spec.options)
    factory = SCORERS.get(spec.type)
    if factory is None:
        raise ScorerConfigError(
            f"unknown scorer type {spec.type!r}; known: {', '.join(sorted(SCORERS))}, "
            "or module:function for a custom scorer"
        )
    takes = list(inspect.signature(factory).parameters)
    unknown = sorted(str(k) for k in spec.options if k not in takes)
    if unknown:
        raise ScorerConfigError(
            f"scorer {spec.type!r}: unknown option(s) {', '.join(unknown)}; "
            f"it takes {', '.join(takes)}"
        )
    return factory(**spec.options)


def custom(target: str, options: dict[str, Any]) -> ScoreFn | GroupScoreFn:
    """A scorer from your code: `target` is `module:function` (module importable by name).

    The function is called as `function(case, output, **options)`, sync or async, and
    returns a Score, a bool (Score.of) or a number in [0, 1] (value; passes at >= 0.5).
    A function with attribute `group = True` is a group scorer, called with all the
    case's outputs (failed ones included; it decides). Otherwise a failed call scores as
    a fail without calling it. Any other return value, or an exception, is an invalid
    verdict naming the function. Import failures, a missing or non-callable attribute,
    and options the function's signature cannot take are config errors. A function may
    carry `check_case(case) -> problem or None` (run for every case before any call) and,
    as a group scorer, `min_repeats` (the least `repeat` the suite may set).
    """
    module_name, _, attr = target.partition(":")
    if not module_name or not attr or ":" in attr:
        raise ScorerConfigError(f"custom scorer {target!r}: expected the form module:function")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:
        raise ScorerConfigError(
            f"custom scorer {target!r}: cannot import module {module_name!r}: "
            f"{type(e).__name__}: {e}"
        ) from e
    try:
        fn = functools.reduce(getattr, attr.split("."), module)
    except AttributeError:
        raise ScorerConfigError(
            f"custom scorer {target!r}: module {module_name!r} has no {attr!r}"
        ) from None
    if not callable(fn):
        raise ScorerConfigError(f"custom scorer {target!r}: {attr!r} is not callable")
    try:
        inspect.signature(fn).bind(None, None, **options)
    except TypeError as e:
        raise ScorerConfigError(
            f"custom scorer {target!r} cannot take options {sorted(options)}: {e}"
        ) from None
    except ValueError:  # no signature to check (some builtins); calls will tell
        pass

    async def call(case: Case, subject: Any) -> Score:
        try:
            result = fn(case, subject, **options)
            if inspect.isawaitable(result):
                result = await result
        except Exception as e:
            return Score.invalid_because(f"custom scorer {target} raised {type(e).__name__}: {e}")
        return _as_score(result, target)

    check = getattr(fn, "check_case", None)
    built: ScoreFn | GroupScoreFn
    if getattr(fn, "group", False):

        async def group_score(case: Case, outputs: Sequence[Output], ctx: ScoringContext) -> Score:
            return await call(case, list(outputs))

        built = as_group(group_score, min_repeats=int(getattr(fn, "min_repeats", 1)))
    else:

        async def score(case: Case, output: Output, ctx: ScoringContext) -> Score:
            if output.error is not None:
                return failed_call(output)
            return await call(case, output)

        built = score
    return checks_cases(built, check) if callable(check) else built


def _as_score(result: Any, target: str) -> Score:
    if isinstance(result, Score):
        return result
    if isinstance(result, bool):
        return Score.of(result)
    if scorers_options.is_number(result) and 0 <= result <= 1:
        return Score(float(result), result >= 0.5)
    return Score.invalid_because(
        f"custom scorer {target} returned {clip(repr(result))}; "
        "expected a Score, a bool or a number in [0, 1]"
    )


def _code_version() -> str:
    """A short hash of the scorer modules' source, for the run manifest."""
    digest = hashlib.sha256()
    modules = (
        scorers_options,
        scorers_schema,
        scorers_text,
        scorers_behavior,
        scorers_model,
        sys.modules[__name__],
    )
    for module in modules:
        try:
            source = Path(str(module.__file__)).read_bytes().replace(b"\r\n", b"\n")
        except OSError:
            return "unknown"
        digest.update(module.__name__.encode() + b"\0" + source + b"\0")
    return digest.hexdigest()[:12]


SCORER_CODE_VERSION = _code_version()
