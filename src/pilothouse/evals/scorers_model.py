"""Scorers that need a model (a judge, an embedding model) or all the repeats of a case.

Model calls go through the `ScoringContext` the runner lends; an error raised by
`ctx.judge` or `ctx.embed` propagates to the runner, which records the verdict as invalid.
A failed call under test (`output.error` set) scores as a fail, "call failed: ...".
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from pilothouse.evals.scorers_options import (
    NotJson,
    ScorerConfigError,
    as_group,
    checks_cases,
    clip,
    failed_call,
    guard,
    is_number,
    option_error,
    parse_json,
    text_of,
    want_number,
    want_str,
)
from pilothouse.evals.types import Case, GroupScoreFn, Output, Score, ScoreFn, ScoringContext

_NORMALIZERS = ("strip", "lower", "json")


def _normalize(text: str, how: str) -> str:
    text = text.strip()
    if how == "lower":
        return " ".join(text.casefold().split())
    if how == "json":
        try:
            return orjson.dumps(parse_json(text), option=orjson.OPT_SORT_KEYS).decode()
        except NotJson:
            return text
    return text


def self_consistency(*, min_agreement: Any = 0.6, normalize: Any = "strip") -> GroupScoreFn:
    """Group scorer: value is the share of a case's repeats that give the most common answer.

    Passes when that share is at least `min_agreement` (default 0.6). Answers are compared
    after `normalize`: `strip` (default; surrounding whitespace), `lower` (also case-folded,
    inner whitespace runs collapsed to one space) or `json` (parsed and re-serialized with
    sorted keys, so key order and spacing do not matter; text that is not JSON is compared
    stripped). Failed calls are left out of the share; when every call failed the case
    fails ("call failed: ..."), and it is invalid when fewer than 2 calls succeeded.
    Not a semantic comparison: "Paris" and "It is Paris." disagree.
    """
    share = want_number("self_consistency", "min_agreement", min_agreement, low=0, high=1)
    if normalize not in _NORMALIZERS:
        raise option_error("self_consistency", "normalize", " or ".join(_NORMALIZERS), normalize)
    how = str(normalize)

    async def score(case: Case, outputs: Sequence[Output], ctx: ScoringContext) -> Score:
        ok = [o for o in outputs if o.error is None]
        if outputs and not ok:
            return failed_call(outputs[0])
        if len(ok) < 2:
            return Score.invalid_because(f"{len(ok)} successful repeat(s); need at least 2")
        answer, count = Counter(_normalize(text_of(o), how) for o in ok).most_common(1)[0]
        value = count / len(ok)
        return Score(value, value >= share, f"{count}/{len(ok)} agree on {clip(answer)!r}")

    return as_group(score, min_repeats=2)


def embedding_similarity(*, min_similarity: Any = 0.8) -> ScoreFn:
    """Cosine similarity between the embeddings of the output text and the case's `expected`.

    One `ctx.embed([output, expected])` call; value is the cosine clipped to [0, 1];
    passes when it is at least `min_similarity` (default 0.8). Fails on an empty output
    (nothing is embedded); invalid when `expected` is not a non-empty string or the
    embedding reply is malformed (wrong count, mismatched lengths, a zero vector).
    Similarity is topical closeness, not correctness: "Paris" and "Lyon" may score high.
    """
    floor = want_number("embedding_similarity", "min_similarity", min_similarity, low=0, high=1)

    @guard
    async def score(case: Case, output: Output, ctx: ScoringContext) -> Score:
        expected = case.expected
        if not isinstance(expected, str) or not expected.strip():
            return Score.invalid_because("no expected text to compare with")
        text = text_of(output)
        if not text.strip():
            return Score.of(False, "empty output")
        vectors = await ctx.embed([text, expected])
        if len(vectors) != 2 or len(vectors[0]) != len(vectors[1]) or not vectors[0]:
            return Score.invalid_because("embedding reply is not two vectors of equal length")
        a, b = np.asarray(vectors[0], dtype=float), np.asarray(vectors[1], dtype=float)
        na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
        if na == 0.0 or nb == 0.0 or not math.isfinite(na * nb):
            return Score.invalid_because("embedding reply has a zero or non-finite vector")
        cosine = float(a @ b) / (na * nb)
        value = min(1.0, max(0.0, cosine))
        return Score(value, value >= floor, f"cosine similarity {cosine:.3f}")

    score.uses_embeddings = True  # type: ignore[attr-defined]
    return checks_cases(
        score,
        lambda case: (
            None
            if isinstance(case.expected, str) and case.expected.strip()
            else "`expected` must be a non-empty text to compare the output with"
        ),
    )


_SCALES: dict[str, tuple[float, float, str]] = {
    "1-5": (1.0, 5.0, "a number from 1 (fails the rubric completely) to 5 (fully meets it)"),
    "0-1": (0.0, 1.0, "a number from 0.0 (fails the rubric completely) to 1.0 (fully meets it)"),
    "pass_fail": (0.0, 1.0, "1 if the answer meets the rubric, 0 if it does not"),
}


_RUBRIC_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def rubric_fields(rubric: str) -> list[str]:
    """The `{{name}}` placeholders of a rubric: case variables, or `expected`."""
    return sorted(set(_RUBRIC_PLACEHOLDER.findall(rubric)))


def _rubric_value(case: Case, name: str) -> Any:
    if name == "expected":
        return case.expected
    variables = case.inputs.get("variables")
    return variables.get(name) if isinstance(variables, dict) else None


def rubric_problem(rubric: str, case: Case) -> str | None:
    """Why `rubric` cannot be filled in for `case` (a missing or null value), or None."""
    missing = [name for name in rubric_fields(rubric) if _rubric_value(case, name) is None]
    if not missing:
        return None
    where = ", ".join("expected" if name == "expected" else f"variables.{name}" for name in missing)
    return f"the judge's rubric needs {where}, which the case does not give (or gives null)"


def fill_rubric(rubric: str, case: Case) -> str:
    return _RUBRIC_PLACEHOLDER.sub(lambda m: _render(_rubric_value(case, m.group(1))), rubric)


def verdict_format(scale: str) -> dict[str, Any]:
    """The JSON schema response_format asking the judge for exactly the verdict object."""
    low, high, _ = _SCALES[scale]
    score: dict[str, Any] = (
        {"type": "integer", "enum": [0, 1]}
        if scale == "pass_fail"
        else {"type": "number", "minimum": low, "maximum": high}
    )
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "verdict",
            "schema": {
                "type": "object",
                "properties": {"score": score, "reason": {"type": "string"}},
                "required": ["score", "reason"],
                "additionalProperties": False,
            },
        },
    }


def judge_messages(rubric: str, scale: str, case: Case, output: Output) -> list[dict[str, Any]]:
    """The judge conversation: the rubric (its `{{placeholders}}` filled from the case) and
    the reply format, then the case and the answer."""
    rubric = fill_rubric(rubric, case)
    system = (
        "You grade one answer produced by an AI system, using the rubric below.\n\n"
        f"Rubric:\n{rubric}\n\n"
        f"Score: {_SCALES[scale][2]}.\n\n"
        "Reply with exactly one JSON object and nothing else:\n"
        '{"score": <number>, "reason": "<one sentence>"}'
    )
    parts = [f"## Input\n{_render_inputs(case.inputs)}"]
    if case.expected is not None:
        parts.append(f"## Expected answer\n{_render(case.expected)}")
    answer = text_of(output)
    if output.tool_calls:
        answer += f"\n\nTool calls:\n{_render(output.tool_calls)}"
    parts.append(f"## Answer to grade\n{answer}")
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]


def _render(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=2)


def _render_inputs(inputs: dict[str, Any]) -> str:
    messages = inputs.get("messages")
    if isinstance(messages, list) and all(isinstance(m, dict) for m in messages):
        return "\n".join(
            f"[{m.get('role', '?')}] {_render(m.get('content', ''))}" for m in messages
        )
    variables = inputs.get("variables")
    if isinstance(variables, dict):
        return "\n".join(f"{k}: {_render(v)}" for k, v in variables.items())
    return _render(inputs)


def parse_judge_reply(reply: Any, scale: str) -> tuple[float, str | None] | str:
    """The score and reason in `reply`, or why there is none (a str).

    Read only as: the whole reply (stripped) as JSON, else the JSON value that starts at
    the first "{" in it. It must be an object whose `score` is a number (not a boolean
    or a numeric string) within the scale; on `pass_fail` exactly 0 or 1.
    """
    if not isinstance(reply, str):
        return "reply is not text"
    text = reply.strip()
    try:
        doc = json.loads(text)
    except ValueError:
        start = text.find("{")
        if start < 0:
            return "no JSON object"
        try:
            doc, _ = json.JSONDecoder().raw_decode(text, start)
        except ValueError:
            return "no JSON object"
    if not isinstance(doc, dict):
        return "not a JSON object"
    if "score" not in doc:
        return "no score"
    raw = doc["score"]
    if not is_number(raw):
        return "score is not a number"
    low, high, _ = _SCALES[scale]
    if not low <= raw <= high or (scale == "pass_fail" and raw not in (0, 1)):
        return f"score {raw} is outside the {scale} scale"
    reason = doc.get("reason")
    return float(raw), reason if isinstance(reason, str) and reason else None


def llm_judge(*, rubric: Any = None, scale: Any = "1-5", pass_at: Any = None) -> ScoreFn:
    """Asks the suite's pinned judge model to grade the output against `rubric`.

    The rubric may name case values as `{{variable}}` or `{{expected}}`; every case must
    give them (checked before any call). The judge gets a system message with the rubric,
    the scale and the required reply
    (exactly one JSON object `{"score": <number>, "reason": "<one sentence>"}`), and a
    user message with the case inputs, the expected answer (if any) and the output.
    `scale`: `1-5` (default; value (score-1)/4, passes at score >= `pass_at`, default 4),
    `0-1` (value = score, `pass_at` default 0.5) or `pass_fail` (score 0 or 1; passes on
    1; no `pass_at`). The reply is read only as in `parse_judge_reply`; anything else
    (prose, a missing or non-numeric score, a score off the scale) is invalid, "judge
    reply could not be parsed: <first 80 chars> (<why>)", never a number. The judge's
    `reason` becomes the Score reason. The judge is asked for the verdict object with a
    JSON-schema `response_format` unless the suite's judge sets `structured: false`.
    """
    rubric = want_str("llm_judge", "rubric", rubric)
    if scale not in _SCALES:
        raise option_error("llm_judge", "scale", '"1-5", "0-1" or "pass_fail"', scale)
    scale = str(scale)
    low, high, _ = _SCALES[scale]
    if scale == "pass_fail":
        if pass_at is not None:
            raise ScorerConfigError("scorer 'llm_judge': pass_at does not apply to pass_fail")
        threshold = 1.0
    elif pass_at is None:
        threshold = 4.0 if scale == "1-5" else 0.5
    else:
        threshold = want_number("llm_judge", "pass_at", pass_at, low=low, high=high)

    reply_format = verdict_format(scale)

    @guard
    async def score(case: Case, output: Output, ctx: ScoringContext) -> Score:
        reply = await ctx.judge(judge_messages(rubric, scale, case, output), reply_format)
        parsed = parse_judge_reply(reply, scale)
        if isinstance(parsed, str):
            shown = reply[:80] if isinstance(reply, str) else repr(reply)[:80]
            return Score.invalid_because(f"judge reply could not be parsed: {shown} ({parsed})")
        points, reason = parsed
        return Score((points - low) / (high - low), points >= threshold, reason)

    score.uses_judge = True  # type: ignore[attr-defined]
    score.rubric = rubric  # type: ignore[attr-defined]
    return checks_cases(score, lambda case: rubric_problem(rubric, case))
