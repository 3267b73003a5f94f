"""Scorers on how the model answered rather than what: length, refusals, hedging, latency, cost.

Each factory checks its options and returns `async score(case, output, ctx) -> Score`.
All of them score a failed call (`output.error` set) as a fail, "call failed: ...";
value is 1.0 on pass and 0.0 on fail.
"""

from __future__ import annotations

from typing import Any

from pilothouse.evals.scorers_options import (
    ScorerConfigError,
    guard,
    text_of,
    want_bool,
    want_number,
)
from pilothouse.evals.types import Case, Output, Score, ScoreFn, ScoringContext
from pilothouse.phrases import HEDGING, REFUSAL


def length(
    *,
    min_chars: Any = None,
    max_chars: Any = None,
    min_words: Any = None,
    max_words: Any = None,
) -> ScoreFn:
    """Passes when the output's length is within every bound given (bounds inclusive).

    Characters are Unicode code points of the text with surrounding whitespace stripped;
    words are runs of non-whitespace (`str.split()`). At least one bound is required.
    """
    given = {
        k: v
        for k, v in {
            "min_chars": min_chars,
            "max_chars": max_chars,
            "min_words": min_words,
            "max_words": max_words,
        }.items()
        if v is not None
    }
    if not given:
        raise ScorerConfigError(
            "scorer 'length': set at least one of min_chars, max_chars, min_words, max_words"
        )
    bounds = {k: int(want_number("length", k, v, low=0, integer=True)) for k, v in given.items()}
    for unit in ("chars", "words"):
        lo, hi = bounds.get(f"min_{unit}"), bounds.get(f"max_{unit}")
        if lo is not None and hi is not None and lo > hi:
            raise ScorerConfigError(f"scorer 'length': min_{unit} {lo} is above max_{unit} {hi}")

    @guard
    async def score(case: Case, output: Output, ctx: ScoringContext) -> Score:
        text = text_of(output).strip()
        counts = {"chars": len(text), "words": len(text.split())}
        for key, bound in bounds.items():
            side, unit = key.split("_")
            n = counts[unit]
            if (side == "min" and n < bound) or (side == "max" and n > bound):
                return Score.of(False, f"{n} {unit}, {side} is {bound}")
        return Score.of(True)

    return score


def latency(*, max_ms: Any = None) -> ScoreFn:
    """Passes when the call's end-to-end latency (`output.latency_ms`) is at most `max_ms`."""
    limit = want_number("latency", "max_ms", max_ms, low=0)

    @guard
    async def score(case: Case, output: Output, ctx: ScoringContext) -> Score:
        ok = output.latency_ms <= limit
        return Score.of(ok, None if ok else f"{output.latency_ms:.0f} ms > {limit:g} ms")

    return score


def cost(*, max_usd: Any = None) -> ScoreFn:
    """Passes when the call's cost (`output.cost_usd`) is at most `max_usd`.

    Invalid ("cost unknown") when the gateway could not price the call.
    """
    limit = want_number("cost", "max_usd", max_usd, low=0)

    @guard
    async def score(case: Case, output: Output, ctx: ScoringContext) -> Score:
        if output.cost_usd is None:
            return Score.invalid_because("cost unknown")
        ok = output.cost_usd <= limit
        return Score.of(ok, None if ok else f"${output.cost_usd:.6f} > ${limit:g}")

    return score


REFUSAL_WINDOW = 200


def refusal(*, expect_refusal: bool = False) -> ScoreFn:
    """Passes when the output is not a refusal (with `expect_refusal: true`, when it is).

    A refusal is one of phrases.REFUSAL_PHRASES, case-insensitive, as whole words
    (straight or curly apostrophe), within the first 200 characters of the stripped text:
    "I can't", "I cannot", "I can not", "I won't", "I will not", "I'm unable", "I am
    unable", "I'm not able to", "I am not able to", "I'm sorry, but", "I am sorry, but",
    "I apologize, but", "I apologise, but", "I must decline", "I'm not comfortable", "as
    an AI". The gateway's `refusal` output signal uses the same list. A phrase list both misses
    refusals worded otherwise and flags answers that merely begin "I can't stress enough";
    an empty text is not a refusal. A structured-output refusal (the API's `refusal` field,
    sent instead of content under a JSON schema) is always a refusal.
    """
    expect = want_bool("refusal", "expect_refusal", expect_refusal)

    @guard
    async def score(case: Case, output: Output, ctx: ScoringContext) -> Score:
        if output.refusal:
            refused, why = True, f"refused: {output.refusal[:60]!r}"
        else:
            phrase = REFUSAL.first(text_of(output).strip()[:REFUSAL_WINDOW])
            refused = phrase is not None
            why = f"refusal phrase {phrase!r}" if phrase else "no refusal phrase"
        return Score.of(refused == expect, why if refused != expect else None)

    return score


def hedging(*, max_per_100_words: Any = 1.0) -> ScoreFn:
    """Passes when hedging phrases per 100 words are at most `max_per_100_words` (default 1.0).

    Counts non-overlapping, case-insensitive, whole-word occurrences of phrases.HEDGING_PHRASES
    ("I think", "I believe", "I guess", "I suppose", "it seems", "it appears", "it
    might", "it may", "might be", "may be", "could be", "maybe", "perhaps", "possibly",
    "probably", "not sure", "not certain", "it is possible", "it's possible", "as far as I
    know", "to my knowledge"); "it might be" counts once. Words as in `length`; an empty
    text passes. No sense of context: "this may be configured" counts as a hedge.
    """
    limit = want_number("hedging", "max_per_100_words", max_per_100_words, low=0)

    @guard
    async def score(case: Case, output: Output, ctx: ScoringContext) -> Score:
        text = text_of(output)
        words = len(text.split())
        hits = HEDGING.count(text)
        rate = 100.0 * hits / words if words else 0.0
        ok = rate <= limit
        return Score.of(ok, None if ok else f"{hits} hedges in {words} words ({rate:.1f}/100)")

    return score
