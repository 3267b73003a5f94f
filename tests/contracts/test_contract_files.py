"""Contract files and contract JSON: every fault named with its file, line and field (or
its field, over the API), before anything is stored or called."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pilothouse import errors
from pilothouse.contracts import checks, spec
from pilothouse.evals.types import Output
from pilothouse.yamlfile import FileError

GOOD = """\
name: billing-router
consumer: billing
prompt: triage
model: fast
params: {temperature: 0}
samples:
  - {id: refund, variables: {ticket: "Refund my plan"}}
  - {id: crash, variables: {ticket: "The app crashes"}}
tolerance: {min_pass_rate: 0.98, repeats: 3}
expect:
  json_schema: {type: object, required: [label]}
  labels: {path: label, allowed: [billing, bug, question]}
  forbidden_phrases: ["As an AI"]
  patterns: ['^\\{', {pattern: "label", flags: i}]
  length: {max_chars: 400}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "billing-router.yaml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(FileError) as caught:
        spec.load_file(write(tmp_path, text))
    return caught.value.problems


def test_a_good_file_loads_to_a_canonical_contract_with_a_stable_hash(tmp_path: Path) -> None:
    contract = spec.load_file(write(tmp_path, GOOD))
    assert (contract.kind, contract.subject, contract.ref) == (
        "prompt",
        "triage",
        "billing/billing-router",
    )
    assert contract.spec["expect"]["patterns"] == [
        {"pattern": "^\\{", "flags": ""},
        {"pattern": "label", "flags": "i"},
    ]
    assert spec.parse(contract.spec).spec_hash == contract.spec_hash, "file and JSON agree"
    reordered = spec.load_file(write(tmp_path, GOOD.replace("model: fast\n", "") + "model: fast\n"))
    assert reordered.spec_hash == contract.spec_hash


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("patterns: ['^\\{', {pattern: \"label\", flags: i}]", "patterns: ['(unclosed']"),
            ":14: expect.patterns[0]: 'regex': pattern '(unclosed' does not compile",
        ),
        (
            (
                "json_schema: {type: object, required: [label]}",
                "json_schema: {type: object, oneOf: []}",
            ),
            ":11: expect.json_schema: 'json_schema': option 'schema' at #: unsupported keyword(s) oneOf",
        ),
        (("model: fast\n", ""), ":1: (top level): a prompt contract needs `model`"),
        (("prompt: triage", "prompt: triage\nroute: support"), "give exactly one"),
        (("min_pass_rate: 0.98", "min_pass_rate: 1.5"), ":9: tolerance.min_pass_rate: "),
        (("repeats: 3", "repeats: 30"), ":9: tolerance.repeats: "),
        (("consumer: billing", "consumer: bill ing"), ":2: consumer: String should match pattern"),
        (("id: crash", "id: refund"), "samples: samples[1]: id 'refund' is used already"),
        (
            (
                '{id: crash, variables: {ticket: "The app crashes"}}',
                "{id: crash, expected: bug, variables: {}}",
            ),
            ":8: samples[1]: contract samples take no `expected`",
        ),
        (("length: {max_chars: 400}", "length: {}"), "expect.length: 'length': set at least one"),
        (
            ("params: {temperature: 0}", "params: {temprature: 0}"),
            ":5: params: unknown release parameter",
        ),
        (("expect:", "expects:"), "expects: unknown field"),
    ],
)
def test_a_bad_file_names_file_line_and_field(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    old, new = change
    assert old in GOOD
    found = problems(tmp_path, GOOD.replace(old, new))
    assert any(expected in p for p in found), found
    assert all(p.startswith(str(tmp_path / "billing-router.yaml")) for p in found), found


def test_broken_yaml_and_nothing_to_expect_are_refused(tmp_path: Path) -> None:
    assert ":3: invalid YAML" in problems(tmp_path, "name: x\nconsumer: [\n  - : :\n")[0]
    assert "expected a mapping" in problems(tmp_path, "- a list\n")[0]
    empty = GOOD.split("expect:")[0] + "expect: {}\n"
    assert any("expect at least one of" in p for p in problems(tmp_path, empty))


def test_the_api_refuses_the_same_faults_naming_the_field() -> None:
    body = {
        "name": "r",
        "consumer": "billing",
        "route": "support",
        "samples": {"dataset": "triage", "version": 2},
        "expect": {"forbidden_patterns": ["(?i)as an ai"]},
    }
    parsed = spec.parse(body)
    assert parsed.kind == "route" and parsed.spec["samples"] == {"dataset": "triage", "version": 2}
    for broken, field in [
        ({**body, "model": "fast"}, "(body)"),
        ({**body, "expect": {"forbidden_patterns": ["("]}}, "expect.forbidden_patterns[0]"),
        ({**body, "samples": {"dataset": "triage"}}, "samples"),
        ({**body, "samples": []}, "samples"),
        ({**body, "consumer": "bad\x00name"}, "consumer"),
    ]:
        with pytest.raises(errors.InvalidRequest) as caught:
            spec.parse(broken)
        assert caught.value.param is not None and caught.value.param.startswith(field), (
            caught.value.message
        )
    with pytest.raises(errors.InvalidRequest, match="JSON object"):
        spec.parse(["not", "an", "object"])


@pytest.mark.parametrize("text", [None, "", "  \n"])
def test_an_empty_output_never_meets_a_contract_that_only_forbids(text: str | None) -> None:
    """A contract of forbidden phrases and a maximum length is not met by no answer at all:
    a verification of empty outputs is not evidence."""
    only_forbids = checks.build({"forbidden_phrases": ["As an AI"], "length": {"max_chars": 50}})
    empty = asyncio.run(checks.failures(only_forbids, Output(text=text)))
    assert empty == ["no answer: the output has no text, tool call or refusal"]
    assert asyncio.run(checks.failures(only_forbids, Output(text="billing"))) == []
    called = Output(text=None, tool_calls=[{"name": "route", "arguments": "{}"}])
    assert asyncio.run(checks.failures(only_forbids, called)) == []
