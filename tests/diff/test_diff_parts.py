"""The pieces of a diff on their own: reading an answer's behaviour, label paths, the
lexical similarity, the binomial tail of the noise floor, and the summary's shape."""

from __future__ import annotations

import json
import math

import pytest

from pilothouse.behaviour import summarise
from pilothouse.behaviour.compare import changes, identical
from pilothouse.behaviour.noise import upper_tail
from pilothouse.behaviour.observe import LabelPathError, key_paths, observe, parse_label_path
from pilothouse.behaviour.report import CaseResult, build, compare_pair
from pilothouse.behaviour.similarity import lexical
from pilothouse.evals.types import Case, Output


@pytest.mark.parametrize(
    ("path", "parts"),
    [
        ("label", ("label",)),
        ("$.label", ("label",)),
        ("result.label", ("result", "label")),
        ("$.choices[0].label", ("choices", 0, "label")),
        ("choices.0.label", ("choices", "0", "label")),
        ("grid[1][2]", ("grid", 1, 2)),
    ],
)
def test_label_paths_in_both_spellings(path: str, parts: tuple[object, ...]) -> None:
    assert parse_label_path(path) == parts


@pytest.mark.parametrize("path", ["", "$", "a..b", ".a", "a.", "[0]", "a[x]", "a b]"])
def test_a_malformed_label_path_is_refused(path: str) -> None:
    with pytest.raises(LabelPathError, match="label path"):
        parse_label_path(path)


def test_an_answer_is_read_for_its_behaviour() -> None:
    path = parse_label_path("$.result.choices[0].label")
    doc = {"result": {"choices": [{"label": "bug"}], "score": 3}}
    seen = observe(Output(text=json.dumps(doc)), path)
    assert seen.json_valid and seen.label == "bug" and not seen.refused
    assert seen.keys == {"result", "result.choices", "result.choices[].label", "result.score"}
    assert observe(Output(text='{"label": 3}'), ("label",)).label == "3"
    assert observe(Output(text='{"label": null}'), ("label",)).label is None
    assert not observe(Output(text='"just a string"')).json_valid
    assert not observe(Output(text='```json\n{"label": "bug"}\n```')).json_valid


def test_refusals_tool_calls_and_failures() -> None:
    structured = observe(Output(text=None, refusal="I can't help with that."))
    assert structured.refused and structured.text == "I can't help with that."
    assert observe(Output(text="Sure, here it is", finish_reason="content_filter")).refused
    assert observe(Output(text="I'm sorry, but I won't do that.")).refused
    assert not observe(Output(text="Fine: the refund is on its way.")).refused
    call = {"function": {"name": "lookup", "arguments": "{not json"}}
    (tool,) = observe(Output(text=None, tool_calls=[call])).tools
    assert (tool.name, tool.arguments) == ("lookup", "{not json")
    assert observe(Output(text=None, error="HTTP 503", error_kind="infra")).failed == "HTTP 503"
    refused = observe(Output(text=None, error="HTTP 400: too long", error_kind="refused"))
    assert refused.failed is None and refused.gateway_refused == "HTTP 400: too long"


def test_identical_ignores_whitespace_and_key_order_but_not_values() -> None:
    a = observe(Output(text='{"a": 1, "b": [1, 2]}'))
    b = observe(Output(text='{"b": [1, 2],\n "a": 1.0}'))
    assert identical(a, b) and not changes(a, b, labels=False)
    assert identical(observe(Output(text="Hello  there\n")), observe(Output(text="Hello there")))
    assert not identical(a, observe(Output(text='{"a": 2, "b": [1, 2]}')))


def test_the_lexical_measure_sees_shared_words() -> None:
    assert lexical("Check the payment history.", "Check the payment history.") == 1.0
    rephrased = lexical(
        "Refunds are processed within 5 business days.",
        "A refund is processed within five business days.",
    )
    unrelated = lexical("Refunds are processed within 5 business days.", "The app crashes.")
    assert rephrased >= 0.5 > unrelated == 0.0
    assert lexical("", "") == 1.0 and lexical("the", "a") == 0.0


def test_the_binomial_tail() -> None:
    assert upper_tail(0, 10, 0.3) == 1.0
    assert upper_tail(1, 10, 0.0) == 0.0
    assert math.isclose(upper_tail(1, 10, 0.5), 1 - 1 / 1024)
    assert math.isclose(upper_tail(10, 10, 0.5), 1 / 1024)
    assert math.isclose(upper_tail(5, 10, 1 / 6), 0.01546, abs_tol=1e-4)
    assert 0.0 < upper_tail(600, 1000, 0.5) < 1e-9  # large n, in log space


def test_the_summary_counts_each_behaviour_and_the_label_flips() -> None:
    cases = [Case(id=f"c{i}", inputs={}) for i in range(4)]
    old = ['{"label": "a"}', '{"label": "a"}', '{"label": "b"}', "Plain words here."]
    new = ['{"label": "a"}', "A.", '{"label": "c"}', "Plain words over here."]
    results = []
    for case, before, after in zip(cases, old, new, strict=True):
        o, n = observe(Output(text=before), ("label",)), observe(Output(text=after), ("label",))
        result = CaseResult(case, o, n)
        result.versus = compare_pair(
            o, n, labels=True, similarity=lexical(o.text, n.text), threshold=0.5
        )
        results.append(result)
    header = {"old": {"name": "p@1/fast"}, "new": {"name": "p@2/fast"}, "dataset": None}
    summary = summarise(build(results, header, label_path="label"))
    assert summary == {
        "old": "p@1/fast",
        "new": "p@2/fast",
        "dataset": {"source": None, "hash": None},
        "cases": 4,
        "compared": 4,
        "incomplete": 0,
        "changed": True,
        "changed_cases": 2,
        "behaviour": {
            "json_validity": 1, "json_keys": 0, "label": 2, "tool_calls": 0, "refusal": 0,
            "gateway_refusal": 0, "meaning": 0,
        },
        "meaning": {"same": 1, "rephrased": 1, "changed": 2},
        "label_path": "label",
        "label_flips": {"a -> (none)": 1, "b -> c": 1},
        "length_ratio_p50": summary["length_ratio_p50"],
        "similarity": None,
        "noise_floor": False,
    }  # fmt: skip
    assert json.loads(json.dumps(summary)) == summary
    assert key_paths([{"a": {"b": 1}}]) == ["[].a", "[].a.b"]
