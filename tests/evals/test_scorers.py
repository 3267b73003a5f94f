"""The scorers: what each passes and fails, its edge cases, and its config errors."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from pilothouse.evals import scorers
from pilothouse.evals.scorers import SCORERS, ScorerConfigError, build
from pilothouse.evals.types import Case, Output, Score, ScorerSpec


class FakeContext:
    """A ScoringContext test double: canned judge replies and embedding vectors."""

    def __init__(self, replies: Sequence[str] = (), vectors: list[list[float]] | None = None):
        self.replies = list(replies)
        self.vectors = vectors
        self.judged: list[list[dict[str, Any]]] = []
        self.embedded: list[list[str]] = []
        self.formats: list[dict[str, Any] | None] = []

    async def judge(
        self, messages: list[dict[str, Any]], response_format: dict[str, Any] | None = None
    ) -> str:
        self.judged.append(messages)
        self.formats.append(response_format)
        return self.replies.pop(0)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.embedded.append(list(texts))
        assert self.vectors is not None
        return self.vectors


CASE = Case(id="c1", inputs={"variables": {"question": "Capital of France?"}})


def make(type_: str, **options: Any) -> Any:
    return build(ScorerSpec(type=type_, options=options))


def score(
    type_: str,
    text: str | None,
    *,
    case: Case = CASE,
    ctx: FakeContext | None = None,
    output: Output | None = None,
    **options: Any,
) -> Score:
    fn = make(type_, **options)
    return asyncio.run(fn(case, output or Output(text=text), ctx or FakeContext()))


def expecting(expected: Any) -> Case:
    return Case(id="c", inputs={}, expected=expected)


def passes(s: Score) -> bool:
    assert not s.invalid, s.reason
    assert s.value == (1.0 if s.passed else 0.0)
    return bool(s.passed)


# --- build and the registry --------------------------------------------------------


def test_unknown_type_lists_the_known_ones() -> None:
    with pytest.raises(ScorerConfigError) as err:
        make("exact_match")
    message = str(err.value)
    assert "'exact_match'" in message
    for known in ("equals", "llm_judge", "self_consistency", "module:function"):
        assert known in message


def test_unknown_option_is_named() -> None:
    with pytest.raises(ScorerConfigError, match=r"unknown option\(s\) ignorecase; it takes"):
        make("equals", value="x", ignorecase=True)


def test_missing_and_mistyped_options_name_the_option_and_expectation() -> None:
    with pytest.raises(ScorerConfigError, match=r"'regex': option 'pattern' must be a non-empty"):
        make("regex")
    with pytest.raises(ScorerConfigError, match=r"option 'ignore_case' must be true or false"):
        make("equals", value="x", ignore_case="yes")
    with pytest.raises(ScorerConfigError, match=r"option 'max_ms' must be a number"):
        make("latency", max_ms=True)


def test_options_must_be_a_mapping() -> None:
    with pytest.raises(ScorerConfigError, match="mapping"):
        build(ScorerSpec(type="equals", options=["x"]))  # type: ignore[arg-type]


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ScorerConfigError, ValueError)


VALID_OPTIONS: dict[str, dict[str, Any]] = {
    "equals": {"value": "x"},
    "contains": {"value": "x"},
    "regex": {"pattern": "x"},
    "json_valid": {},
    "json_schema": {"schema": {"type": "object"}},
    "label_in": {"path": "label", "labels": ["a"]},
    "length": {"max_chars": 10},
    "latency": {"max_ms": 1000},
    "cost": {"max_usd": 1.0},
    "refusal": {},
    "hedging": {},
    "self_consistency": {},
    "embedding_similarity": {},
    "llm_judge": {"rubric": "Is it right?"},
}


def test_every_registered_scorer_is_covered_here() -> None:
    assert set(VALID_OPTIONS) == set(SCORERS)


@pytest.mark.parametrize("type_", sorted(VALID_OPTIONS))
def test_a_failed_call_fails_every_scorer_without_calling_a_model(type_: str) -> None:
    fn = make(type_, **VALID_OPTIONS[type_])
    failed = Output(text=None, error="HTTP 503 after 3 retries", cost_usd=None)
    ctx = FakeContext()  # no replies, no vectors: a model call would raise
    if getattr(fn, "group", False):
        result = asyncio.run(fn(CASE, [failed, failed], ctx))
    else:
        result = asyncio.run(fn(CASE, failed, ctx))
    assert result == Score(0.0, False, "call failed: HTTP 503 after 3 retries")
    assert ctx.judged == [] and ctx.embedded == []


def test_only_group_scorers_are_marked_group() -> None:
    groups = {t for t in VALID_OPTIONS if getattr(make(t, **VALID_OPTIONS[t]), "group", False)}
    assert groups == {"self_consistency"}


def test_scorer_code_version_hashes_the_scorer_sources(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert re.fullmatch(r"[0-9a-f]{12}", scorers.SCORER_CODE_VERSION)
    assert scorers._code_version() == scorers.SCORER_CODE_VERSION
    changed = tmp_path / "scorers_text.py"
    changed.write_text(Path(scorers.scorers_text.__file__).read_text() + "\n# changed\n")
    monkeypatch.setattr(scorers.scorers_text, "__file__", str(changed))
    assert scorers._code_version() != scorers.SCORER_CODE_VERSION


# --- equals ------------------------------------------------------------------------


def test_equals_value_strips_by_default_and_respects_case() -> None:
    assert passes(score("equals", "  Paris\n", value="Paris"))
    assert not passes(score("equals", "paris", value="Paris"))
    assert passes(score("equals", "paris", value="Paris", ignore_case=True))
    assert not passes(score("equals", " Paris", value="Paris", strip=False))


def test_equals_is_exact_beyond_case_and_ends() -> None:
    s = score("equals", "Paris.", value="Paris")
    assert not passes(s)
    assert s.reason == "expected 'Paris', got 'Paris.'"
    assert not passes(score("equals", "The answer is Paris", value="Paris"))


def test_equals_falls_back_to_expected_and_compares_numbers_as_text() -> None:
    assert passes(score("equals", "Paris", case=expecting("Paris")))
    assert not passes(score("equals", "Lyon", case=expecting("Paris")))
    assert passes(score("equals", "42", case=expecting(42)))
    assert passes(score("equals", "42", value=42))


def test_equals_without_anything_to_compare_is_invalid() -> None:
    assert score("equals", "Paris").invalid
    assert score("equals", "Paris", case=expecting({"label": "x"})).invalid
    assert score("equals", "true", case=expecting(True)).invalid


def test_equals_rejects_a_list_value() -> None:
    with pytest.raises(ScorerConfigError, match="'value' must be a string or a number"):
        make("equals", value=["a"])


# --- contains ----------------------------------------------------------------------


def test_contains_needs_every_string_by_default() -> None:
    assert passes(score("contains", "Paris is in France", value=["Paris", "France"]))
    s = score("contains", "Paris is lovely", value=["Paris", "France", "Europe"])
    assert not passes(s)
    assert s.reason == "missing: 'France', 'Europe'"


def test_contains_any_and_ignore_case() -> None:
    assert passes(score("contains", "It is Lyon", value=["Paris", "Lyon"], any=True))
    assert not passes(score("contains", "It is Nice", value=["Paris", "Lyon"], any=True))
    assert not passes(score("contains", "PARIS", value="paris"))
    assert passes(score("contains", "PARIS", value="paris", ignore_case=True))


def test_contains_uses_expected_when_no_value() -> None:
    assert passes(score("contains", "a b c", case=expecting(["a", "c"])))
    assert not passes(score("contains", "a b", case=expecting("c")))
    assert score("contains", "a b").invalid


def test_contains_rejects_empty_strings() -> None:
    with pytest.raises(ScorerConfigError, match="list of non-empty strings"):
        make("contains", value=["a", ""])
    with pytest.raises(ScorerConfigError, match="'value'"):
        make("contains", value=[])


# --- regex -------------------------------------------------------------------------


def test_regex_searches_anywhere_unless_anchored() -> None:
    assert passes(score("regex", "Order #1234 shipped", pattern=r"#\d{4}\b"))
    assert not passes(score("regex", "Order #12 shipped", pattern=r"#\d{4}\b"))
    assert not passes(score("regex", "Order #1234 shipped", pattern=r"^#\d{4}$"))


def test_regex_flags() -> None:
    assert not passes(score("regex", "YES", pattern="^yes$"))
    assert passes(score("regex", "YES", pattern="^yes$", flags="i"))
    assert passes(score("regex", "a\nyes", pattern="^yes$", flags="im"))


def test_regex_config_errors() -> None:
    with pytest.raises(ScorerConfigError, match="does not compile"):
        make("regex", pattern="(unclosed")
    with pytest.raises(ScorerConfigError, match="'flags'"):
        make("regex", pattern="x", flags="q")


# --- json_valid --------------------------------------------------------------------


def test_json_valid_accepts_objects_and_arrays_with_whitespace() -> None:
    assert passes(score("json_valid", '  {"a": 1}\n'))
    assert passes(score("json_valid", "[1, 2]"))


@pytest.mark.parametrize(
    "text",
    ["42", '"text"', "null", '{"a": NaN}', '{"a": 1,}', "{'a': 1}", "", 'Here: {"a": 1}'],
)
def test_json_valid_rejects_scalars_and_non_json(text: str) -> None:
    assert not passes(score("json_valid", text))


def test_json_valid_rejects_fences_unless_allowed() -> None:
    fenced = '```json\n{"a": 1}\n```'
    s = score("json_valid", fenced)
    assert not passes(s)
    assert s.reason is not None and "fence is not accepted" in s.reason
    assert passes(score("json_valid", fenced, allow_fence=True))
    assert passes(score("json_valid", "```\n[1]\n```", allow_fence=True))
    assert not passes(score("json_valid", "Sure!\n" + fenced, allow_fence=True))


def test_json_valid_no_text_fails() -> None:
    assert not passes(score("json_valid", None))


# --- json_schema -------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"enum": ["spam", "ham"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "count": {"type": "integer"},
        "note": {"type": "string", "minLength": 2, "maxLength": 5},
        "tags": {"type": "array", "items": {"type": "string"}},
        "extra": {"type": ["string", "null"]},
    },
    "required": ["label", "confidence"],
    "additionalProperties": False,
    "title": "A classification",
}


def js(doc: Any) -> Score:
    return score("json_schema", json.dumps(doc), schema=SCHEMA)


def test_json_schema_passes_a_conforming_document() -> None:
    doc = {"label": "spam", "confidence": 0.9, "count": 3.0, "note": "ok", "tags": ["a"]}
    assert passes(js(doc))
    assert passes(js({"label": "ham", "confidence": 1, "extra": None}))


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ({"label": "spam"}, "$: missing required property 'confidence'"),
        ({"label": "eggs", "confidence": 0.5}, "$.label: 'eggs' is not one of"),
        ({"label": "spam", "confidence": 1.5}, "$.confidence: 1.5 is above the maximum 1"),
        ({"label": "spam", "confidence": -1}, "$.confidence: -1 is below the minimum 0"),
        ({"label": "spam", "confidence": "high"}, "$.confidence: expected number, got string"),
        ({"label": "spam", "confidence": True}, "$.confidence: expected number, got boolean"),
        ({"label": "spam", "confidence": 0, "count": 2.5}, "$.count: expected integer"),
        ({"label": "spam", "confidence": 0, "note": "x"}, "$.note: shorter than 2"),
        ({"label": "spam", "confidence": 0, "note": "abcdef"}, "$.note: longer than 5"),
        ({"label": "spam", "confidence": 0, "tags": ["a", 1]}, "$.tags[1]: expected string"),
        ({"label": "spam", "confidence": 0, "why": "x"}, "$: property 'why' is not allowed"),
        ([1, 2], "$: expected object, got array"),
    ],
)
def test_json_schema_failures_say_where(doc: Any, problem: str) -> None:
    s = js(doc)
    assert not passes(s)
    assert s.reason is not None and problem in s.reason


def test_json_schema_reports_at_most_three_problems() -> None:
    s = js({"a": 1, "b": 2, "c": 3, "d": 4})
    assert s.reason is not None and s.reason.endswith("(+3 more)")


def test_json_schema_additional_properties_schema_and_bool_schemas() -> None:
    schema = {"type": "object", "additionalProperties": {"type": "integer"}}
    assert passes(score("json_schema", '{"a": 1, "b": 2}', schema=schema))
    assert not passes(score("json_schema", '{"a": "x"}', schema=schema))
    assert not passes(score("json_schema", "[1]", schema={"items": False}))
    assert passes(score("json_schema", "[]", schema={"items": False}))


def test_json_schema_not_json_fails() -> None:
    assert not passes(score("json_schema", "label: spam", schema=SCHEMA))


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "string", "pattern": "^a"}, "unsupported keyword"),
        (
            {"properties": {"a": {"$ref": "#/x"}}},
            r"at #/properties/a: unsupported keyword\(s\) \$ref",
        ),
        ({"type": "array", "items": [{"type": "string"}]}, "tuple validation"),
        ({"type": "str"}, "type must be one of"),
        ({"required": "label"}, "required must be a list"),
        ({"enum": []}, "enum must be a non-empty list"),
        ({"minLength": -1}, "minLength must be a whole number"),
        ({"maximum": "10"}, "maximum must be a number"),
        ("object", "'schema' must be a JSON schema object"),
    ],
)
def test_json_schema_outside_the_subset_is_a_config_error(schema: Any, message: str) -> None:
    with pytest.raises(ScorerConfigError, match=message):
        make("json_schema", schema=schema)


# --- label_in ----------------------------------------------------------------------


def test_label_in_checks_the_value_at_the_path() -> None:
    assert passes(score("label_in", '{"label": "spam"}', path="label", labels=["spam", "ham"]))
    s = score("label_in", '{"label": "Spam"}', path="label", labels=["spam", "ham"])
    assert not passes(s)
    assert s.reason == "'Spam' is not one of the labels"


def test_label_in_dotted_paths_and_list_indexes() -> None:
    doc = '{"result": {"label": "b"}, "choices": [{"label": "a"}]}'
    assert passes(score("label_in", doc, path="result.label", labels=["b"]))
    assert passes(score("label_in", doc, path="choices.0.label", labels=["a"]))
    s = score("label_in", doc, path="choices.1.label", labels=["a"])
    assert not passes(s)
    assert s.reason == "no value at 'choices.1.label'"


def test_label_in_is_json_exact() -> None:
    assert not passes(score("label_in", '{"n": "1"}', path="n", labels=[1]))
    assert not passes(score("label_in", '{"n": true}', path="n", labels=[1]))
    assert passes(score("label_in", '{"n": 1.0}', path="n", labels=[1]))


def test_label_in_not_json_fails() -> None:
    assert not passes(score("label_in", "spam", path="label", labels=["spam"]))


def test_label_in_expected_from_expected() -> None:
    opts: dict[str, Any] = {
        "path": "result.label",
        "labels": ["spam", "ham"],
        "expected_from": "expected",
    }
    doc = '{"result": {"label": "spam"}}'
    assert passes(score("label_in", doc, case=expecting("spam"), **opts))
    assert not passes(score("label_in", doc, case=expecting("ham"), **opts))
    assert passes(score("label_in", doc, case=expecting({"result.label": "spam"}), **opts))
    assert passes(score("label_in", doc, case=expecting({"result": {"label": "spam"}}), **opts))
    assert score("label_in", doc, case=expecting({"other": "spam"}), **opts).invalid
    assert score("label_in", doc, **opts).invalid


def test_label_in_expected_from_without_labels() -> None:
    assert passes(
        score("label_in", '{"x": 3}', path="x", expected_from="expected", case=expecting(3))
    )


def test_label_in_config_errors() -> None:
    with pytest.raises(ScorerConfigError, match="set `labels`, `expected_from`, or both"):
        make("label_in", path="label")
    with pytest.raises(ScorerConfigError, match="'expected_from' must be \"expected\""):
        make("label_in", path="label", expected_from="inputs")
    with pytest.raises(ScorerConfigError, match="'path' must be keys joined by single dots"):
        make("label_in", path="a..b", labels=["x"])
    with pytest.raises(ScorerConfigError, match="'labels' must be a non-empty list"):
        make("label_in", path="a", labels="x")


# --- length, latency, cost ---------------------------------------------------------


def test_length_bounds_are_inclusive_on_stripped_text() -> None:
    assert passes(score("length", "  abcde  ", min_chars=5, max_chars=5))
    assert not passes(score("length", "abcdef", max_chars=5))
    assert not passes(score("length", "abcd", min_chars=5))


def test_length_words() -> None:
    assert passes(score("length", "one two\nthree", min_words=3, max_words=3))
    s = score("length", "one two three four", max_words=3)
    assert not passes(s)
    assert s.reason == "4 words, max is 3"
    assert not passes(score("length", None, min_words=1))


def test_length_config_errors() -> None:
    with pytest.raises(ScorerConfigError, match="at least one of"):
        make("length")
    with pytest.raises(ScorerConfigError, match="min_words 5 is above max_words 2"):
        make("length", min_words=5, max_words=2)
    with pytest.raises(ScorerConfigError, match="'max_chars' must be a whole number"):
        make("length", max_chars=2.5)
    with pytest.raises(ScorerConfigError, match="'min_chars' must be a whole number of at least"):
        make("length", min_chars=-1)


def test_latency() -> None:
    assert passes(score("latency", "x", output=Output(text="x", latency_ms=800), max_ms=800))
    s = score("latency", "x", output=Output(text="x", latency_ms=801), max_ms=800)
    assert not passes(s)
    assert s.reason == "801 ms > 800 ms"
    with pytest.raises(ScorerConfigError, match="'max_ms'"):
        make("latency")


def test_cost() -> None:
    assert passes(score("cost", "x", output=Output(text="x", cost_usd=0.01), max_usd=0.01))
    assert not passes(score("cost", "x", output=Output(text="x", cost_usd=0.02), max_usd=0.01))
    unknown = score("cost", "x", output=Output(text="x", cost_usd=None), max_usd=0.01)
    assert unknown == Score.invalid_because("cost unknown")
    with pytest.raises(ScorerConfigError, match="'max_usd' must be a number of at least 0"):
        make("cost", max_usd=-1)


# --- refusal and hedging -----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "I can't help with that.",
        "i cannot do that",
        "I\u2019m sorry, but that is not something I can assist with.",
        "Hmm. As an AI language model, I do not have opinions.",
        "I WON'T write that.",
    ],
)
def test_refusals_fail_by_default_and_pass_when_expected(text: str) -> None:
    s = score("refusal", text)
    assert not passes(s)
    assert s.reason is not None and s.reason.startswith("refusal phrase")
    assert passes(score("refusal", text, expect_refusal=True))


@pytest.mark.parametrize(
    "text",
    [
        "Paris is the capital of France.",
        "",
        "x" * 200 + " I can't say more.",  # beyond the first 200 characters
        "Join us as an AIM member.",  # "as an AI" only as whole words
    ],
)
def test_non_refusals_pass_by_default_and_fail_when_refusal_expected(text: str) -> None:
    assert passes(score("refusal", text))
    s = score("refusal", text, expect_refusal=True)
    assert not passes(s)
    assert s.reason == "no refusal phrase"


def test_hedging_rate_per_hundred_words() -> None:
    confident = " ".join(["word"] * 99) + " perhaps"  # 1 hedge in 100 words
    assert passes(score("hedging", confident))
    hedgy = "I think it might be Paris, but maybe Lyon."  # 3 hedges in 9 words
    s = score("hedging", hedgy)
    assert not passes(s)
    assert s.reason == "3 hedges in 9 words (33.3/100)"
    assert passes(score("hedging", hedgy, max_per_100_words=40))


def test_hedging_counts_overlapping_phrases_once_and_whole_words_only() -> None:
    s = score("hedging", "It might be so.", max_per_100_words=0)
    assert s.reason == "1 hedges in 4 words (25.0/100)"
    assert passes(score("hedging", "Mayber possiblyx unthinkable", max_per_100_words=0))
    assert passes(score("hedging", "", max_per_100_words=0))


def test_hedging_config_error() -> None:
    with pytest.raises(ScorerConfigError, match="'max_per_100_words'"):
        make("hedging", max_per_100_words="1")


# --- self_consistency --------------------------------------------------------------


def group(texts: Sequence[str | None], errors: Sequence[str | None] = (), **options: Any) -> Score:
    errs = list(errors) or [None] * len(texts)
    outs = [Output(text=t, error=e) for t, e in zip(texts, errs, strict=True)]
    return asyncio.run(make("self_consistency", **options)(CASE, outs, FakeContext()))


def test_self_consistency_value_is_the_share_of_the_most_common_answer() -> None:
    s = group(["Paris", "Paris ", "Lyon", "Paris", "Nice"])
    assert s.value == pytest.approx(0.6) and s.passed is True
    assert s.reason == "3/5 agree on 'Paris'"
    s = group(["Paris", "Lyon", "Nice", "Paris", "Rome"])
    assert s.value == pytest.approx(0.4) and s.passed is False


def test_self_consistency_normalizers() -> None:
    assert group(["Paris", "paris", "PARIS  "]).value == pytest.approx(1 / 3)
    assert group(["Paris", "paris", "PARIS  "], normalize="lower").value == 1.0
    docs = ['{"a": 1, "b": 2}', '{"b":2,"a":1}', "not json"]
    assert group(docs).value == pytest.approx(1 / 3)
    assert group(docs, normalize="json").value == pytest.approx(2 / 3)


def test_self_consistency_threshold_option() -> None:
    assert group(["a", "a", "b"], min_agreement=0.7).passed is False
    assert group(["a", "a", "b"], min_agreement=0.6).passed is True


def test_self_consistency_leaves_failed_calls_out() -> None:
    s = group(["a", "a", None], errors=[None, None, "timeout"])
    assert s.value == 1.0 and s.passed is True
    one = group(["a", None], errors=[None, "timeout"])
    assert one.invalid and one.reason == "1 successful repeat(s); need at least 2"
    assert group(["a"]).invalid


def test_self_consistency_config_errors() -> None:
    with pytest.raises(ScorerConfigError, match="'normalize' must be strip or lower or json"):
        make("self_consistency", normalize="semantic")
    with pytest.raises(ScorerConfigError, match="'min_agreement' must be a number from 0 to 1"):
        make("self_consistency", min_agreement=1.5)


# --- embedding_similarity ----------------------------------------------------------


def embed_score(
    vectors: list[list[float]], text: str = "Paris", expected: Any = "Paris, France", **opts: Any
) -> tuple[Score, FakeContext]:
    ctx = FakeContext(vectors=vectors)
    s = score("embedding_similarity", text, case=expecting(expected), ctx=ctx, **opts)
    return s, ctx


def test_embedding_similarity_cosine_of_output_and_expected() -> None:
    s, ctx = embed_score([[1.0, 0.0], [0.8, 0.6]])
    assert ctx.embedded == [["Paris", "Paris, France"]]
    assert s.value == pytest.approx(0.8) and s.passed is True
    assert s.reason == "cosine similarity 0.800"
    s, _ = embed_score([[1.0, 0.0], [0.6, 0.8]])
    assert s.value == pytest.approx(0.6) and s.passed is False
    s, _ = embed_score([[1.0, 0.0], [0.6, 0.8]], min_similarity=0.5)
    assert s.passed is True


def test_embedding_similarity_clips_negative_cosine_to_zero() -> None:
    s, _ = embed_score([[1.0, 0.0], [-1.0, 0.0]])
    assert s.value == 0.0 and s.passed is False


def test_embedding_similarity_invalid_and_failing_inputs() -> None:
    assert embed_score([[1.0], [1.0]], expected=None)[0].invalid
    assert embed_score([[1.0], [1.0]], expected=["a"])[0].invalid
    s, ctx = embed_score([[1.0], [1.0]], text="  ")
    assert s == Score.of(False, "empty output") and ctx.embedded == []
    assert embed_score([[1.0, 0.0], [1.0]])[0].invalid
    assert embed_score([[0.0, 0.0], [1.0, 0.0]])[0].invalid
    assert embed_score([[1.0, 0.0]])[0].invalid


def test_embedding_similarity_config_error() -> None:
    with pytest.raises(ScorerConfigError, match="'min_similarity' must be a number from 0 to 1"):
        make("embedding_similarity", min_similarity=80)


# --- llm_judge ---------------------------------------------------------------------

RUBRIC = "The answer names the correct capital city."
JUDGED_CASE = Case(
    id="q1", inputs={"variables": {"question": "Capital of France?"}}, expected="Paris"
)


def judge(reply: str, **options: Any) -> tuple[Score, FakeContext]:
    ctx = FakeContext(replies=[reply])
    opts = {"rubric": RUBRIC, **options}
    s = score("llm_judge", "It is Paris.", case=JUDGED_CASE, ctx=ctx, **opts)
    return s, ctx


def test_llm_judge_valid_json_reply() -> None:
    s, _ = judge('{"score": 5, "reason": "Names Paris."}')
    assert s == Score(1.0, True, "Names Paris.")
    s, _ = judge('{"score": 3, "reason": "Vague."}')
    assert s == Score(0.5, False, "Vague.")
    s, _ = judge('{"score": 4}')
    assert s == Score(0.75, True, None)


def test_llm_judge_json_embedded_in_prose_or_a_fence() -> None:
    s, _ = judge('Sure. Here is my grade: {"score": 4, "reason": "Mostly right."} Thanks!')
    assert s == Score(0.75, True, "Mostly right.")
    s, _ = judge('```json\n{"score": 2, "reason": "Wrong city."}\n```')
    assert s == Score(0.25, False, "Wrong city.")


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ('{"score": 7, "reason": "Great."}', "score 7 is outside the 1-5 scale"),
        ('{"score": 0}', "score 0 is outside the 1-5 scale"),
        ("The answer is good, I'd say 4 out of 5.", "no JSON object"),
        ('{"reason": "no score here"}', "no score"),
        ('{"score": "4"}', "score is not a number"),
        ('{"score": true}', "score is not a number"),
        ('{"score": NaN}', "score is not a number"),
        ("[4]", "not a JSON object"),
        ('Score: {4} then {"score": 4}', "no JSON object"),
        ("", "no JSON object"),
    ],
)
def test_llm_judge_unparseable_replies_are_invalid_never_numbers(reply: str, why: str) -> None:
    s, _ = judge(reply)
    assert s.invalid and s.value is None and s.passed is None
    assert s.reason == f"judge reply could not be parsed: {reply[:80]} ({why})"


def test_llm_judge_invalid_reason_shows_only_the_first_80_chars() -> None:
    reply = "x" * 200
    s, _ = judge(reply)
    assert s.reason == f"judge reply could not be parsed: {'x' * 80} (no JSON object)"


def test_llm_judge_zero_to_one_scale() -> None:
    s, _ = judge('{"score": 0.7, "reason": "ok"}', scale="0-1")
    assert s == Score(0.7, True, "ok")
    s, _ = judge('{"score": 0.7, "reason": "ok"}', scale="0-1", pass_at=0.8)
    assert s == Score(0.7, False, "ok")
    assert judge('{"score": 3}', scale="0-1")[0].invalid


def test_llm_judge_pass_fail_scale() -> None:
    assert judge('{"score": 1, "reason": "yes"}', scale="pass_fail")[0] == Score(1.0, True, "yes")
    assert judge('{"score": 0, "reason": "no"}', scale="pass_fail")[0] == Score(0.0, False, "no")
    s, _ = judge('{"score": 0.5}', scale="pass_fail")
    assert s.invalid and s.reason is not None and "outside the pass_fail scale" in s.reason


def test_llm_judge_custom_pass_at_on_one_to_five() -> None:
    assert judge('{"score": 3}', pass_at=3)[0].passed is True
    assert judge('{"score": 4.5}', pass_at=5)[0] == Score(0.875, False, None)


def test_llm_judge_messages_carry_rubric_format_inputs_expected_and_output() -> None:
    _, ctx = judge('{"score": 5}', scale="pass_fail")
    [messages] = ctx.judged
    assert [m["role"] for m in messages] == ["system", "user"]
    system, user = messages[0]["content"], messages[1]["content"]
    assert RUBRIC in system
    assert '{"score": <number>, "reason": "<one sentence>"}' in system
    assert "exactly one JSON object" in system
    assert "1 if the answer meets the rubric, 0 if it does not" in system
    assert "question: Capital of France?" in user
    assert "## Expected answer\nParis" in user
    assert user.endswith("## Answer to grade\nIt is Paris.")


def test_llm_judge_messages_without_expected_and_with_chat_inputs() -> None:
    ctx = FakeContext(replies=['{"score": 5}'])
    case = Case(id="m", inputs={"messages": [{"role": "user", "content": "Hi there"}]})
    asyncio.run(make("llm_judge", rubric=RUBRIC)(case, Output(text="Hello!"), ctx))
    user = ctx.judged[0][1]["content"]
    assert "[user] Hi there" in user
    assert "Expected" not in user
    assert "from 1 (fails the rubric completely) to 5" in ctx.judged[0][0]["content"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "'rubric' must be a non-empty string"),
        ({"rubric": "r", "scale": "1-10"}, "'scale' must be"),
        ({"rubric": "r", "scale": "pass_fail", "pass_at": 1}, "pass_at does not apply"),
        ({"rubric": "r", "pass_at": 6}, "'pass_at' must be a number from 1 to 5"),
        ({"rubric": "r", "scale": "0-1", "pass_at": 2}, "'pass_at' must be a number from 0 to 1"),
    ],
)
def test_llm_judge_config_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ScorerConfigError, match=message):
        make("llm_judge", **options)


def test_llm_judge_errors_from_the_judge_call_propagate() -> None:
    class Down(FakeContext):
        async def judge(
            self, messages: list[dict[str, Any]], response_format: dict[str, Any] | None = None
        ) -> str:
            raise ConnectionError("gateway down")

    fn = make("llm_judge", rubric=RUBRIC)
    with pytest.raises(ConnectionError):
        asyncio.run(fn(CASE, Output(text="x"), Down()))


# --- custom scorers ----------------------------------------------------------------


def test_custom_sync_bool_scorer_with_options() -> None:
    assert passes(score("custom_scorer_example:mentions", "all ok"))
    assert not passes(score("custom_scorer_example:mentions", "all ok", word="fine"))
    assert passes(score("custom_scorer_example:mentions", "fine", word="fine"))


def test_custom_async_float_scorer() -> None:
    assert score("custom_scorer_example:half_credit", "x") == Score(0.5, True)
    assert score("custom_scorer_example:half_credit", "") == Score(0.25, False)


def test_custom_scorer_returning_a_score_gets_options() -> None:
    s = score("custom_scorer_example:full_score", "x", a=1, b=2)
    assert s == Score(0.75, True, "options ['a', 'b']")


def test_custom_scorer_bad_results_and_exceptions_are_invalid() -> None:
    s = score("custom_scorer_example:returns_text", "x")
    assert s.invalid and s.reason is not None and "returned 'yes'" in s.reason
    assert score("custom_scorer_example:out_of_range", "x").invalid
    s = score("custom_scorer_example:explodes", "x")
    assert s.invalid
    assert s.reason == "custom scorer custom_scorer_example:explodes raised RuntimeError: kaboom"


def test_custom_group_scorer() -> None:
    fn = make("custom_scorer_example:all_nonempty")
    assert getattr(fn, "group", False) is True
    good = asyncio.run(fn(CASE, [Output(text="a"), Output(text="b")], FakeContext()))
    bad = asyncio.run(fn(CASE, [Output(text="a"), Output(text="")], FakeContext()))
    assert good == Score.of(True) and bad == Score.of(False)


@pytest.mark.parametrize(
    ("target", "options", "message"),
    [
        ("no_such_module_xyz:score", {}, "cannot import module 'no_such_module_xyz'"),
        ("custom_scorer_example:missing", {}, "module 'custom_scorer_example' has no 'missing'"),
        ("custom_scorer_example:NOT_CALLABLE", {}, "'NOT_CALLABLE' is not callable"),
        ("custom_scorer_example:mentions", {"words": "x"}, r"cannot take options \['words'\]"),
        (":score", {}, "expected the form module:function"),
        ("custom_scorer_example:", {}, "expected the form module:function"),
    ],
)
def test_custom_scorer_config_errors(target: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ScorerConfigError, match=message):
        make(target, **options)
