"""Scorers on what the output says: exact text, substrings, patterns, JSON shape and labels.

Each factory checks its options and returns `async score(case, output, ctx) -> Score`.
All of them score a failed call (`output.error` set) as a fail, "call failed: ...";
value is 1.0 on pass and 0.0 on fail.
"""

from __future__ import annotations

import re
from typing import Any

from pilothouse.evals.scorers_options import (
    NotJson,
    ScorerConfigError,
    checks_cases,
    clip,
    guard,
    is_number,
    json_equal,
    option_error,
    parse_json,
    text_of,
    want_bool,
    want_str,
    want_str_list,
)
from pilothouse.evals.scorers_schema import check_schema, validate
from pilothouse.evals.types import Case, Output, Score, ScoreFn, ScoringContext


def _expected_text(case: Case) -> str | None:
    e = case.expected
    if isinstance(e, str):
        return e
    if is_number(e):
        return str(e)
    return None


def equals(*, value: Any = None, ignore_case: bool = False, strip: bool = True) -> ScoreFn:
    """Passes when the output text equals `value` (or the case's `expected`) exactly.

    With `strip` (default) surrounding whitespace is removed from both sides first; with
    `ignore_case` both are case-folded. Nothing else is normalized: inner whitespace,
    punctuation, quotes and Unicode forms must match. A number as value or expected is
    compared as its text (`42` equals "42"). Invalid when there is neither `value` nor a
    text or number `expected`.
    """
    if value is not None and not (isinstance(value, str) or is_number(value)):
        raise option_error("equals", "value", "a string or a number", value)
    ignore_case = want_bool("equals", "ignore_case", ignore_case)
    strip = want_bool("equals", "strip", strip)
    fixed = None if value is None else str(value)

    def norm(s: str) -> str:
        s = s.strip() if strip else s
        return s.casefold() if ignore_case else s

    @guard
    async def score(case: Case, output: Output, ctx: ScoringContext) -> Score:
        target = fixed if fixed is not None else _expected_text(case)
        if target is None:
            return Score.invalid_because("no value to compare: set `value` or a text `expected`")
        got = text_of(output)
        if norm(got) == norm(target):
            return Score.of(True)
        return Score.of(False, f"expected {clip(target)!r}, got {clip(got)!r}")

    if fixed is None:
        return checks_cases(
            score,
            lambda case: (
                None
                if _expected_text(case) is not None
                else "`expected` must be a text or a number (the scorer has no `value`)"
            ),
        )
    return score


def contains(*, value: Any = None, any: bool = False, ignore_case: bool = False) -> ScoreFn:
    """Passes when every string in `value` appears in the output text (with `any`, at least one).

    `value` is a string or a list of strings; without it the case's `expected` (a string
    or list of strings) is used. Plain substring search: no word boundaries, no
    whitespace normalization; `ignore_case` case-folds both sides.
    """
    fixed = None if value is None else want_str_list("contains", "value", value)
    any_ = want_bool("contains", "any", any)
    ignore_case = want_bool("contains", "ignore_case", ignore_case)

    @guard
    async def score(case: Case, output: Output, ctx: ScoringContext) -> Score:
        needles = fixed
        if needles is None:
            e = case.expected
            if isinstance(e, str) and e:
                needles = [e]
            elif isinstance(e, list) and e and all(isinstance(x, str) and x for x in e):
                needles = list(e)
            else:
                return Score.invalid_because("nothing to look for: set `value` or `expected`")
        hay = text_of(output)
        if ignore_case:
            hay = hay.casefold()
        found = [n for n in needles if (n.casefold() if ignore_case else n) in hay]
        if any_:
            return Score.of(bool(found), None if found else "none of the strings appear")
        missing = [n for n in needles if n not in found]
        return Score.of(
            not missing, f"missing: {', '.join(map(repr, missing))}" if missing else None
        )

    if fixed is None:
        return checks_cases(score, _check_needles)
    return score


def _check_needles(case: Case) -> str | None:
    e = case.expected
    if (isinstance(e, str) and e) or (
        isinstance(e, list) and e and all(isinstance(x, str) and x for x in e)
    ):
        return None
    return "`expected` must be a text or a list of texts (the scorer has no `value`)"


_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE, "a": re.ASCII}


def regex(*, pattern: Any = None, flags: Any = "") -> ScoreFn:
    """Passes when `pattern` (Python `re` syntax) matches anywhere in the output (`re.search`).

    Anchor with ^ and $ (or \\A and \\Z) to match the whole text. `flags` is a string of
    letters: i (ignore case), m (multiline ^ and $), s (dot matches newline), x (verbose),
    a (ASCII classes). A pattern that does not compile is a config error.
    """
    pattern = want_str("regex", "pattern", pattern)
    if not isinstance(flags, str) or not set(flags) <= set(_FLAGS):
        raise option_error("regex", "flags", f"letters from {''.join(_FLAGS)!r}", flags)
    bits = 0
    for letter in flags:
        bits |= _FLAGS[letter]
    try:
        compiled = re.compile(pattern, bits)
    except re.error as e:
        raise ScorerConfigError(
            f"scorer 'regex': pattern {pattern!r} does not compile: {e}"
        ) from None

    @guard
    async def score(case: Case, output: Output, ctx: ScoringContext) -> Score:
        if compiled.search(text_of(output)):
            return Score.of(True)
        return Score.of(False, f"no match for {clip(pattern)!r}")

    return score


def json_valid(*, allow_fence: bool = False) -> ScoreFn:
    """Passes when the whole output text is one JSON object or array (strict RFC 8259 JSON).

    Surrounding whitespace is allowed. Not accepted: a bare string, number, true, false or
    null; prose before or after the JSON; NaN, comments, single quotes, trailing commas;
    and a ```json fenced block, unless `allow_fence: true`, which accepts a reply that is
    exactly one fence (still nothing outside it).
    """
    allow_fence = want_bool("json_valid", "allow_fence", allow_fence)

    @guard
    async def score(case: Case, output: Output, ctx: ScoringContext) -> Score:
        try:
            doc = parse_json(text_of(output), allow_fence=allow_fence)
        except NotJson as e:
            return Score.of(False, str(e))
        if not isinstance(doc, dict | list):
            return Score.of(False, f"JSON is a {type(doc).__name__}, not an object or array")
        return Score.of(True)

    return score


def json_schema(*, schema: Any = None, allow_fence: bool = False) -> ScoreFn:
    """Passes when the output parses as JSON (as in `json_valid`, any JSON value) and fits `schema`.

    Only this subset of JSON Schema is understood; any other keyword is a config error,
    so a schema never passes something it would reject elsewhere:
    `type` (object, array, string, number, integer, boolean, null, or a list of them;
    integer accepts 3.0; booleans are never numbers), `enum` (JSON equality), `properties`,
    `required`, `additionalProperties` (true, false or a schema, for keys not in
    `properties`), `items` (one schema for every element; the tuple form is not supported),
    `minimum`/`maximum` (inclusive, numbers only), `minLength`/`maxLength` (strings only,
    counted in code points), and `true`/`false` as schemas. Annotations (`title`,
    `description`, `default`, `examples`, `$schema`, `$id`, `$comment`) are ignored.
    Not supported: $ref, allOf/anyOf/oneOf/not, pattern, format, const, minItems,
    exclusiveMinimum, patternProperties, and the rest.
    """
    if not isinstance(schema, dict | bool):
        raise option_error("json_schema", "schema", "a JSON schema object", schema)
    check_schema(schema)
    allow_fence = want_bool("json_schema", "allow_fence", allow_fence)

    @guard
    async def score(case: Case, output: Output, ctx: ScoringContext) -> Score:
        try:
            doc = parse_json(text_of(output), allow_fence=allow_fence)
        except NotJson as e:
            return Score.of(False, str(e))
        errors = validate(doc, schema)
        if not errors:
            return Score.of(True)
        more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
        return Score.of(False, "; ".join(errors[:3]) + more)

    return score


_MISSING = object()


def _at_path(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            return _MISSING
    return doc


def label_in(
    *,
    path: Any = None,
    labels: Any = None,
    expected_from: Any = None,
    allow_fence: bool = False,
) -> ScoreFn:
    """Reads the value at a dotted `path` in the JSON output and checks it.

    The output must parse as JSON (as in `json_valid`); `path` is keys joined by dots
    (`label`, `result.label`), a numeric part indexes a list (`choices.0.label`).
    Passes when the value is one of `labels` and, with `expected_from: expected`, equals
    the case's expected value: `expected[path]` (or the same dotted path inside it) when
    expected is an object, else `expected` itself. Comparison is exact JSON equality (case
    sensitive, "1" is not 1). Fails when the output is not JSON or has nothing at the
    path; invalid when `expected_from` is set and the case has no expected value there.
    At least one of `labels` and `expected_from` is required.
    """
    path = want_str("label_in", "path", path)
    parts = path.split(".")
    if not all(parts):
        raise option_error("label_in", "path", "keys joined by single dots", path)
    if labels is not None and (not isinstance(labels, list) or not labels):
        raise option_error("label_in", "labels", "a non-empty list of allowed values", labels)
    if expected_from not in (None, "expected"):
        raise option_error("label_in", "expected_from", '"expected"', expected_from)
    if labels is None and expected_from is None:
        raise ScorerConfigError("scorer 'label_in': set `labels`, `expected_from`, or both")
    allow_fence = want_bool("label_in", "allow_fence", allow_fence)

    @guard
    async def score(case: Case, output: Output, ctx: ScoringContext) -> Score:
        try:
            doc = parse_json(text_of(output), allow_fence=allow_fence)
        except NotJson as e:
            return Score.of(False, str(e))
        got = _at_path(doc, parts)
        if got is _MISSING:
            return Score.of(False, f"no value at {path!r}")
        if labels is not None and not any(json_equal(got, x) for x in labels):
            return Score.of(False, f"{clip(repr(got))} is not one of the labels")
        if expected_from is None:
            return Score.of(True)
        exp = case.expected
        want = exp.get(path, _at_path(exp, parts)) if isinstance(exp, dict) else exp
        if want is None or want is _MISSING:
            return Score.invalid_because(f"case has no expected value for {path!r}")
        if json_equal(got, want):
            return Score.of(True)
        return Score.of(False, f"expected {clip(repr(want))}, got {clip(repr(got))}")

    if expected_from is not None:

        def check(case: Case) -> str | None:
            exp = case.expected
            want = exp.get(path, _at_path(exp, parts)) if isinstance(exp, dict) else exp
            if want is None or want is _MISSING:
                return f"`expected` has no value for {path!r} (label_in reads it)"
            return None

        return checks_cases(score, check)
    return score
