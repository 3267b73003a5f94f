"""The parameters a release may fix, each with the range its value must be in.

Bounded so a value can never break what is built from it: an integer beyond what the
providers (and the request log) take, a float that is not finite, a stop list longer
than the APIs allow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from pilothouse import errors

INT32_MAX = 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_STOP_SEQUENCES = 4
MAX_STOP_CHARS = 1000


def _number(low: float, high: float) -> Callable[[Any], bool]:
    def valid(value: Any) -> bool:
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and low <= value <= high
        )

    return valid


def _integer(low: int, high: int) -> Callable[[Any], bool]:
    def valid(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high

    return valid


def _stop(value: Any) -> bool:
    items = [value] if isinstance(value, str) else value
    return (
        isinstance(items, list)
        and 1 <= len(items) <= MAX_STOP_SEQUENCES
        and all(isinstance(s, str) and 0 < len(s) <= MAX_STOP_CHARS for s in items)
    )


PARAMS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "temperature": ("a number from 0 to 2", _number(0, 2)),
    "top_p": ("a number from 0 to 1", _number(0, 1)),
    "max_tokens": (f"an integer from 1 to {INT32_MAX}", _integer(1, INT32_MAX)),
    "max_completion_tokens": (f"an integer from 1 to {INT32_MAX}", _integer(1, INT32_MAX)),
    "presence_penalty": ("a number from -2 to 2", _number(-2, 2)),
    "frequency_penalty": ("a number from -2 to 2", _number(-2, 2)),
    "seed": (f"an integer from {INT64_MIN} to {INT64_MAX}", _integer(INT64_MIN, INT64_MAX)),
    "stop": (
        f"a string or a list of 1 to {MAX_STOP_SEQUENCES} non-empty strings of at most "
        f"{MAX_STOP_CHARS} characters",
        _stop,
    ),
    "reasoning_effort": (
        "minimal, low, medium or high",
        lambda v: v in ("minimal", "low", "medium", "high"),
    ),
    "parallel_tool_calls": ("true or false", lambda v: isinstance(v, bool)),
}


def check_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Refuse unknown parameters (a typo would silently do nothing) and values out of range."""
    for name, value in params.items():
        if name not in PARAMS:
            raise errors.InvalidRequest(
                f"unknown release parameter {str(name)[:100]!r}; allowed: "
                f"{', '.join(sorted(PARAMS))}",
                param="params",
            )
        expected, valid = PARAMS[name]
        if not valid(value):
            shown = repr(value)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise errors.InvalidRequest(
                f"parameter {name} must be {expected}, got {shown}", param=f"params.{name}"
            )
    return dict(params)
