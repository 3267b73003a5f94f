"""What every scorer shares: the config error, option checks, the failed-call rule, JSON parsing.

Factories validate their options when they are built (not when they first score), so a
typo in a suite file fails before any model is called.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from pilothouse.evals.types import Case, GroupScoreFn, Output, Score, ScoreFn, ScoringContext


class ScorerConfigError(ValueError):
    """A scorer's type or options are wrong; the message names the scorer and the option."""


def option_error(scorer: str, option: str, expected: str, got: Any) -> ScorerConfigError:
    return ScorerConfigError(
        f"scorer {scorer!r}: option {option!r} must be {expected}, got {_show(got)}"
    )


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def want_bool(scorer: str, option: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise option_error(scorer, option, "true or false", value)
    return value


def want_str(scorer: str, option: str, value: Any) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise option_error(scorer, option, "a non-empty string", value)
    return value


def is_number(value: Any) -> bool:
    """An int or float (never a bool), finite."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def want_number(
    scorer: str,
    option: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    integer: bool = False,
) -> float:
    """A finite number in [low, high] (inclusive); with `integer`, a whole number."""
    kind = "a whole number" if integer else "a number"
    if low is not None and high is not None:
        kind += f" from {low:g} to {high:g}"
    elif low is not None:
        kind += f" of at least {low:g}"
    ok = is_number(value) and (not integer or float(value).is_integer())
    if ok and ((low is not None and value < low) or (high is not None and value > high)):
        ok = False
    if not ok:
        raise option_error(scorer, option, kind, value)
    return float(value)


def want_str_list(scorer: str, option: str, value: Any) -> list[str]:
    """One non-empty string or a non-empty list of them."""
    items = [value] if isinstance(value, str) else value
    if (
        not isinstance(items, list | tuple)
        or not items
        or not all(isinstance(v, str) and v for v in items)
    ):
        raise option_error(
            scorer, option, "a non-empty string or a list of non-empty strings", value
        )
    return list(items)


def text_of(output: Output) -> str:
    """The output's text; an answer with no text (e.g. only tool calls) reads as ""."""
    return output.text or ""


def failed_call(output: Output) -> Score:
    return Score.of(False, f"call failed: {output.error}")


def guard(fn: ScoreFn) -> ScoreFn:
    """Scores a failed call (`output.error` set) as a fail, without running `fn`."""

    @functools.wraps(fn)
    async def score(case: Case, output: Output, ctx: ScoringContext) -> Score:
        if output.error is not None:
            return failed_call(output)
        return await fn(case, output, ctx)

    return score


def as_group(
    fn: Callable[[Case, Sequence[Output], ScoringContext], Any], *, min_repeats: int = 1
) -> GroupScoreFn:
    """Marks a scorer as a group scorer: the runner calls it once per case with all repeats.

    `min_repeats`: a suite whose `repeat` is lower is refused when it is loaded.
    """
    fn.group = True  # type: ignore[attr-defined]
    fn.min_repeats = min_repeats  # type: ignore[attr-defined]
    return fn


CaseCheck = Callable[[Case], "str | None"]


def checks_cases(fn: Any, check: CaseCheck) -> Any:
    """Attach `check(case) -> problem or None`: what the scorer needs from every case.

    The runner calls it for every case before the first model call, so a case the scorer
    could never score (no `expected`, say) is reported up front instead of as an invalid
    verdict after the run has been paid for.
    """
    fn.check_case = check
    return fn


def case_problems(scorer: Any, case: Case) -> str | None:
    """What `scorer` finds wrong with `case` before any call, or None."""
    check = getattr(scorer, "check_case", None)
    return check(case) if callable(check) else None


class NotJson(ValueError):
    """The text is not JSON; the message says why, for a Score reason."""


_FENCE = re.compile(r"\A\s*```[A-Za-z]*[ \t]*\n(.*?)\n?[ \t]*```\s*\Z", re.DOTALL)


def parse_json(text: str, *, allow_fence: bool = False) -> Any:
    """Strict JSON (RFC 8259: no NaN, no comments, no trailing commas) of the whole text.

    Surrounding whitespace is ignored. With `allow_fence`, a text that is exactly one
    Markdown code fence (```json ... ``` or ``` ... ```) is read as the fence's content;
    a fence with prose around it is never accepted. Raises `NotJson`.
    """
    body = text
    if allow_fence and (m := _FENCE.match(text)):
        body = m.group(1)
    if not body.strip():
        raise NotJson("output is empty")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        fence = "" if allow_fence or "```" not in text else " (a ``` fence is not accepted)"
        raise NotJson(f"output is not JSON: {e}{fence}") from None


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON sees it: true is not 1, 1 equals 1.0, containers compared deeply."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if is_number(a) and is_number(b):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


def clip(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."
