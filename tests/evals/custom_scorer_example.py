"""Custom scorers the scorer tests load by `module:function` name."""

from __future__ import annotations

from collections.abc import Sequence

from pilothouse.evals.types import Case, Output, Score


def mentions(case: Case, output: Output, word: str = "ok") -> bool:
    return word in (output.text or "")


async def half_credit(case: Case, output: Output) -> float:
    return 0.5 if output.text else 0.25


def full_score(case: Case, output: Output, **options: object) -> Score:
    return Score(0.75, True, f"options {sorted(options)}")


def returns_text(case: Case, output: Output) -> str:
    return "yes"


def out_of_range(case: Case, output: Output) -> float:
    return 1.5


def explodes(case: Case, output: Output) -> bool:
    raise RuntimeError("kaboom")


def all_nonempty(case: Case, outputs: Sequence[Output]) -> bool:
    return all(o.text for o in outputs)


all_nonempty.group = True  # type: ignore[attr-defined]

NOT_CALLABLE = 3
