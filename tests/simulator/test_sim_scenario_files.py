"""Loading scenario files: defaults, merging and precise errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilothouse.simulator.scenario import (
    DEMO_SCENARIO_PATH,
    FixedLatency,
    LognormalLatency,
    ScenarioError,
    UniformLatency,
    load_scenario,
    parse_scenario,
)
from pilothouse.simulator.server import run


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error_for(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    return str(caught.value)


def test_demo_scenario_loads_and_is_realistic() -> None:
    scenario = load_scenario(DEMO_SCENARIO_PATH)
    profile = scenario.profile_for("gpt-4o")
    assert isinstance(profile.ttft, LognormalLatency)
    assert profile.tokens_per_second == 60
    # The models a newcomer (and the docs' examples) call never fail; the demo traffic's
    # own models have rare faults and each an incident that passes.
    for model in ("gpt-4o-mini", "gpt-4o", "claude-sonnet-4-5", "text-embedding-3-small"):
        assert scenario.profile_for(model).faults == {}
        assert not [p for p in scenario.drift if p.model in (None, model)]
    assert scenario.profile_for("gpt-4.1-mini").faults
    burst, drift = scenario.drift
    assert (burst.model, burst.faults, burst.until_seconds) == (
        "claude-haiku-4-5",
        {"429": 1.0},
        60,
    )
    assert drift.model == "gpt-4.1-mini" and drift.until_seconds and drift.length_multiplier
    assert scenario.replies


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    profile = load_scenario(write(tmp_path, "")).profile_for("anything")
    assert profile.ttft == FixedLatency(ms=0)
    assert profile.tokens_per_second is None
    assert profile.reply_tokens == 40
    assert profile.faults == {}


def test_model_settings_fall_back_to_defaults_and_globs(tmp_path: Path) -> None:
    scenario = load_scenario(
        write(
            tmp_path,
            "defaults: {reply_tokens: 10, tokens_per_second: 50}\n"
            'faults: {"500": 0.1, "503": 0.1}\n'
            "models:\n"
            "  exact: {reply_tokens: 99}\n"
            '  "claude-*": {ttft_ms: 120, faults: {"500": 0.3}}\n',
        )
    )
    exact = scenario.profile_for("exact")
    assert (exact.reply_tokens, exact.tokens_per_second) == (99, 50)
    claude = scenario.profile_for("claude-haiku")
    assert claude.ttft == FixedLatency(ms=120)
    assert claude.reply_tokens == 10
    assert claude.faults == {"500": 0.3, "503": 0.1}


def test_wrong_type_names_file_line_and_field(tmp_path: Path) -> None:
    message = error_for(
        tmp_path,
        "seed: 1\nmodels:\n  gpt-4o:\n    reply_tokens: 20\n    tokens_per_second: fast\n",
    )
    assert message.startswith(f"{tmp_path / 'scenario.yaml'}:5: models.gpt-4o.tokens_per_second: ")
    assert "valid number" in message and "'fast'" in message


def test_unknown_fault_name_points_at_its_key(tmp_path: Path) -> None:
    message = error_for(tmp_path, 'faults:\n  "429": 0.1\n  explode: 0.2\n')
    assert message.startswith(f"{tmp_path / 'scenario.yaml'}:3: faults.explode: ")
    assert "'429'" in message and "'slow'" in message


def test_missing_distribution_field_points_at_the_mapping(tmp_path: Path) -> None:
    message = error_for(
        tmp_path,
        "models:\n  m:\n    ttft_ms:\n      dist: lognormal\n      median_ms: 200\n",
    )
    assert (
        message
        == f"{tmp_path / 'scenario.yaml'}:4: models.m.ttft_ms.p99_ms: required field is missing"
    )


def test_misspelt_field_and_bad_rule_are_all_reported(tmp_path: Path) -> None:
    message = error_for(
        tmp_path,
        "replies:\n  - match: hello\n    reply: hi\n  - match: '(oops'\n    reply: x\n"
        "drift:\n  - hedging: 0.5\n    after_request: 3\n",
    )
    lines = message.splitlines()
    path = tmp_path / "scenario.yaml"
    assert f"{path}:4: replies[1].match: not a valid regular expression" in lines[0]
    assert len(lines) == 2
    assert (
        f"{path}:8: drift[0].after_request: unknown field; check its spelling against docs/simulator.md"
        in lines
    )


def test_a_bad_system_filter_is_reported_at_its_line(tmp_path: Path) -> None:
    message = error_for(tmp_path, "replies:\n  - match: hello\n    system: '[oops'\n    reply: x\n")
    path = tmp_path / "scenario.yaml"
    assert f"{path}:3: replies[0].system: not a valid regular expression" in message


def test_drift_phase_needs_a_trigger(tmp_path: Path) -> None:
    message = error_for(tmp_path, "drift:\n  - name: x\n    hedging: 0.5\n")
    assert message == (
        f"{tmp_path / 'scenario.yaml'}:2: drift[0]: "
        "a drift phase needs `after_requests` or `after_seconds`"
    )


def test_a_drift_phase_ends_after_it_starts(tmp_path: Path) -> None:
    message = error_for(
        tmp_path, "drift:\n  - name: x\n    after_requests: 10\n    until_requests: 10\n"
    )
    assert message == (
        f"{tmp_path / 'scenario.yaml'}:2: drift[0]: "
        "until_requests (10) must be after after_requests (10)"
    )


def test_rates_must_add_up_to_at_most_one(tmp_path: Path) -> None:
    message = error_for(tmp_path, "models:\n  m:\n    faults: {'500': 0.7, '503': 0.6}\n")
    assert message.startswith(
        f"{tmp_path / 'scenario.yaml'}:3: models.m.faults: fault rates add up to 1.3"
    )


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    message = error_for(tmp_path, "seed: 1\nmodels:\n  m: {ttft_ms: 3\n")
    assert message.startswith(f"{tmp_path / 'scenario.yaml'}:4: invalid YAML")


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    assert "expected a mapping" in error_for(tmp_path, "- just\n- a list\n")


def test_run_refuses_a_bad_scenario_with_exit_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        run("127.0.0.1", 0, write(tmp_path, "seed: [1]\n"))
    assert caught.value.code == 2
    assert ":1: seed: " in capsys.readouterr().err


def test_the_documented_full_example_is_valid() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "simulator.md").read_text(encoding="utf-8")
    example = doc.split("### Full example", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    scenario = parse_scenario(example, source="docs/simulator.md")
    assert scenario.profile_for("claude-haiku").ttft == UniformLatency(
        dist="uniform", min_ms=150, max_ms=450
    )
    assert scenario.profile_for("gpt-4o").faults == {"500": 0.005, "malformed": 0.002, "429": 0.02}
    assert [rule.kind for rule in scenario.replies] == ["text", "tool_call", "json", "text", "text"]
    keyed = scenario.replies[4]
    assert keyed.applies("gpt-4o", "refund please", "Answer in one word.")
    assert not keyed.applies("gpt-4o", "refund please", "Answer with JSON.")
    assert not keyed.applies("gpt-4o", "refund please")
