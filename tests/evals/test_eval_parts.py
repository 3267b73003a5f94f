"""The eval's parts that need no process: the gate's arithmetic, the paired tests against
scipy, suite and dataset loading, the disk cache and journal, JUnit escaping."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from scipy import stats as sps

from pilothouse.evals import datasets, gate, report, stats
from pilothouse.evals import suite as suite_module
from pilothouse.evals.cache import Journal, ResponseCache
from pilothouse.evals.scorers import build
from pilothouse.evals.scorers_model import judge_messages, verdict_format
from pilothouse.evals.scorers_options import case_problems
from pilothouse.evals.suite import GateSpec
from pilothouse.evals.types import Case, Output, ScorerSpec
from pilothouse.yamlfile import FileError

# --- the gate ------------------------------------------------------------------------


def _verdicts(valid_passes: int, valid_fails: int, invalid: int) -> list[dict[str, Any]]:
    return (
        [{"value": 1.0, "passed": True, "invalid": False}] * valid_passes
        + [{"value": 0.0, "passed": False, "invalid": False}] * valid_fails
        + [
            {
                "value": None,
                "passed": None,
                "invalid": True,
                "reason": "judge reply could not be parsed",
            }
        ]
        * invalid
    )


def test_one_valid_verdict_of_30_is_not_evidence() -> None:
    spec = ScorerSpec(type="llm_judge", threshold=0.85)
    summary = gate.scorer_summary(spec, _verdicts(1, 0, 29), GateSpec(max_invalid_rate=0.5))
    assert summary["pass_rate"] == 1.0 and not summary["ok"]
    assert summary["reasons"][0] == "1 valid verdict of 30; the gate needs at least 10"
    assert summary["reasons"][1].startswith("29 of 30 verdicts invalid (96.7%, limit 50.0%)")


def test_the_evidence_rules_apply_per_scorer_and_only_to_gated_ones() -> None:
    ungated = gate.scorer_summary(ScorerSpec(type="length"), _verdicts(0, 0, 30), GateSpec())
    assert ungated["ok"] and ungated["pass_rate"] is None and ungated["pass_rate_ci95"] is None
    relaxed = ScorerSpec(type="llm_judge", threshold=0.5, min_verdicts=1, max_invalid_rate=1.0)
    assert gate.scorer_summary(relaxed, _verdicts(1, 0, 29), GateSpec())["ok"]
    nothing = ScorerSpec(type="llm_judge", threshold=0.5, min_verdicts=0, max_invalid_rate=1.0)
    summary = gate.scorer_summary(nothing, _verdicts(0, 0, 5), GateSpec())
    assert summary["reasons"] == ["no verdicts to hold against the threshold"]


def test_a_threshold_on_the_mean_and_a_clipped_interval() -> None:
    verdicts = [{"value": v, "passed": v >= 0.5, "invalid": False} for v in [1.0] * 11 + [0.0]]
    summary = gate.scorer_summary(ScorerSpec(type="x", min_mean=0.95), verdicts, GateSpec())
    assert summary["mean"] == pytest.approx(11 / 12)
    assert summary["mean_ci95"][1] == 1.0  # the t interval would pass 1.0
    assert summary["reasons"] == [f"mean {11 / 12:.3f} is below 0.950"]
    _, _, high = stats.mean_interval([1.0] * 11 + [0.0])
    assert high > 1.0


# --- paired tests --------------------------------------------------------------------


def test_mcnemar_exact_counts_discordant_pairs() -> None:
    a = [True] * 10 + [False] * 3 + [True] * 5
    b = [False] * 10 + [True] * 3 + [True] * 5
    result = stats.mcnemar_exact(a, b)
    assert (result["gained"], result["lost"], result["n"]) == (3, 10, 18)
    assert result["p_value"] == pytest.approx(sps.binomtest(3, 13).pvalue)
    assert result["delta"] == pytest.approx(-7 / 18)


@pytest.mark.parametrize("test", ["t", "wilcoxon"])
def test_paired_scores_match_scipy(test: str) -> None:
    rng = np.random.default_rng(3)
    a = rng.uniform(0, 1, 25)
    b = np.clip(a - 0.1 + rng.normal(0, 0.1, 25), 0, 1)
    result = stats.paired_scores(list(a), list(b), test)  # type: ignore[arg-type]
    expected = sps.ttest_rel(b, a).pvalue if test == "t" else sps.wilcoxon(b, a).pvalue
    assert result["p_value"] == pytest.approx(expected)
    assert result["delta"] == pytest.approx(float(np.mean(b - a)))
    assert stats.paired_scores([0.2, 0.4], [0.2, 0.4], test)["p_value"] == 1.0  # type: ignore[arg-type]


# --- suites --------------------------------------------------------------------------


def _suite(tmp_path: Path, text: str) -> suite_module.Suite:
    (tmp_path / "d.jsonl").write_text('{"variables": {}}\n')
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ndataset: d.jsonl\nscorers: [{type: length, max_chars: 9}]\n" + text)
    return suite_module.load(path)


def test_a_matrix_expands_prompts_models_and_parameter_sets(tmp_path: Path) -> None:
    suite = _suite(
        tmp_path,
        "targets:\n"
        "  - {prompt: [p@1, p@2], model: [fast, smart], params: [{temperature: 0}, {temperature: 1}]}\n"
        "  - {name: live, route: r, release: [active, canary]}\n",
    )
    names = [t.name for t in suite.targets]
    assert len(names) == 10 and len(set(names)) == 10
    assert "p@2/smart/temperature=1" in names and "live:r/canary" in names
    assert suite.gated_targets() == suite.targets


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("targets: [{prompt: p@1, model: [a, b], candidate: true}]\n", "expands into 2 targets"),
        (
            "targets: [{prompt: p@1, model: a, candidate: true}, {prompt: p@2, model: a, candidate: true}]\n",
            "more than one target is marked",
        ),
        ("targets: [{prompt: p@1, model: a}, {prompt: p@1, model: a}]\n", "both named p@1/a"),
        ("target: {route: r, params: {temperature: 0}}\n", "`params` is for prompt targets"),
        ("target: {prompt: p@1, model: a, params: {temprature: 0}}\n", "unknown release parameter"),
        (
            "target: {prompt: p@1, model: a}\ntargets: [{prompt: p@2, model: a}]\n",
            "exactly one of them",
        ),
    ],
)
def test_bad_targets_are_refused_with_file_and_line(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(FileError) as caught:
        _suite(tmp_path, text)
    assert message in str(caught.value) and "s.yaml:" in str(caught.value)


def test_a_suite_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"variables": {}}\n')
    path = tmp_path / "s.yaml"
    text = "name: s\ndataset: d.jsonl\ntarget: {prompt: p@1, model: a}\nscorers: [{type: length, max_chars: 9}]\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert suite_module.load(path).name == "s"


# --- datasets ------------------------------------------------------------------------


def test_a_jsonl_with_a_byte_order_mark_and_a_non_utf8_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": "a", "variables": {"x": "1"}}\n')
    rows, where = datasets.load_located(path)
    assert rows == [{"id": "a", "variables": {"x": "1"}}] and where == [f"{path}:1"]
    path.write_bytes(b'{"variables": {}}\n{"variables": {"x": "caf\xe9"}}\n')
    with pytest.raises(FileError, match=r"d.jsonl:2: not UTF-8 text \(byte 0xe9 at column 25\)"):
        datasets.load_located(path)


def test_repeated_ids_name_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"id": "a", "variables": {}}\n{"id": "b", "variables": {}}\n{"id": "a", "variables": {}}\n'
    )
    rows, where = datasets.load_located(path)
    with pytest.raises(FileError, match=r"d.jsonl:3: id 'a' is used already \(.*d.jsonl:1\)"):
        datasets.cases(rows, where)


def test_unique_variables_drops_eval_traffic_and_repeats() -> None:
    logged = [
        {"id": "1", "variables": {"t": "x"}, "source": None},
        {"id": "2", "variables": {"t": "x"}},
        {"id": "3", "variables": {"t": "y"}, "source": "eval"},
        {"id": "4", "variables": {"t": "z"}, "source": "app"},
    ]
    assert [r["id"] for r in datasets.unique_variables(logged)] == ["1", "4"]


# --- scorers' checks before any call -------------------------------------------------


def test_scorers_say_up_front_what_a_case_lacks() -> None:
    case = Case(id="c", inputs={"variables": {"ticket": "hi"}})
    assert "`expected`" in (case_problems(build(ScorerSpec("equals")), case) or "")
    assert case_problems(build(ScorerSpec("equals", {"value": "x"})), case) is None
    judge = build(ScorerSpec("llm_judge", {"rubric": "Is {{ticket}} about {{expected}}?"}))
    assert case_problems(judge, case) == (
        "the judge's rubric needs expected, which the case does not give (or gives null)"
    )
    labelled = Case(id="c", inputs={"variables": {"ticket": "hi"}}, expected="billing")
    assert case_problems(judge, labelled) is None
    system = judge_messages("Is {{ticket}} about {{expected}}?", "1-5", labelled, Output(text="x"))
    assert "Is hi about billing?" in system[0]["content"]


def test_the_judge_is_asked_for_the_verdict_schema_and_refusals_count() -> None:
    schema = verdict_format("pass_fail")["json_schema"]["schema"]
    assert schema["properties"]["score"] == {"type": "integer", "enum": [0, 1]}
    refusal = build(ScorerSpec("refusal"))
    case = Case(id="c", inputs={})
    score = asyncio.run(refusal(case, Output(text=None, refusal="I can't help"), None))  # type: ignore[arg-type]
    assert score.passed is False and "refused" in (score.reason or "")


# --- the disk cache and the journal --------------------------------------------------


def test_the_cache_survives_a_torn_file_and_the_journal_a_torn_line(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache")
    cache.put("ab" + "0" * 62, {"output": {"text": "hi"}})
    assert cache.get("ab" + "0" * 62) == {"output": {"text": "hi"}}
    (tmp_path / "cache" / "cd").mkdir()
    (tmp_path / "cache" / "cd" / ("cd" + "1" * 62 + ".json")).write_text('{"outp')
    assert cache.get("cd" + "1" * 62) is None
    journal = Journal.create(tmp_path / "j.jsonl", {"run_id": "r"})
    journal.append("k1", {"output": {"text": "a"}})
    journal.close()
    with open(tmp_path / "j.jsonl", "a") as handle:
        handle.write('{"key": "k2", "rec')  # a crash mid-line
    header, records = Journal.read(tmp_path / "j.jsonl")
    assert header == {"run_id": "r"} and list(records) == ["k1"]


# --- JUnit ---------------------------------------------------------------------------


def test_junit_replaces_characters_xml_cannot_hold() -> None:
    verdict = {"value": 0.0, "passed": False, "invalid": False, "reason": "bad \x00 byte"}
    target = {
        "gated": True,
        "passed": False,
        "reasons": ["x: pass rate 0.0% is below 50.0%"],
        "scorers": {"x": {"ok": False}},
    }
    artifact = {
        "suite": "s\x01",
        "summary": {"targets": {"t": target}},
        "results": {"cases": [{"id": "c\x1f", "targets": {"t": {"scores": {"x": verdict}}}}]},
    }
    root = ET.fromstring(report.junit(artifact).split("?>", 1)[1])
    (case, gate_case) = list(root[0])
    assert case.get("name") == "c\ufffd" and case.find("failure") is not None
    assert gate_case.get("name") == "gate" and root.get("failures") == "2"


def test_the_exact_binomial_and_the_t_test_match_scipy_stats() -> None:
    for n in (1, 2, 5, 13, 40, 301):
        for k in {0, 1, n // 3, n // 2, n - 1, n}:
            assert stats.binomial_half_p(k, n) == pytest.approx(
                sps.binomtest(k, n).pvalue, rel=1e-9
            )
    rng = np.random.default_rng(5)
    for size in (3, 10, 200):
        a, b = rng.normal(0.5, 0.2, size), rng.normal(0.55, 0.2, size)
        assert stats.paired_t_p(b - a) == pytest.approx(sps.ttest_rel(b, a).pvalue, rel=1e-9)
    lo, hi = stats.wilson_interval(6, 20, 0.99)
    z = sps.norm.ppf(0.995)
    assert hi - lo == pytest.approx(
        2 * z / (1 + z * z / 20) * np.sqrt(0.3 * 0.7 / 20 + z * z / 1600)
    )


def test_eval_run_diff_and_contracts_verify_share_one_response_cache_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pilothouse.cli.eval_api import cache_dir

    monkeypatch.delenv("PILOTHOUSE_EVAL_CACHE_DIR", raising=False)
    monkeypatch.setenv("PILOTHOUSE_DATA_DIR", str(tmp_path / "data"))
    assert cache_dir() == tmp_path / "data" / "eval-cache"
    monkeypatch.setenv("PILOTHOUSE_EVAL_CACHE_DIR", str(tmp_path / "shared"))
    assert cache_dir() == tmp_path / "shared"
    assert cache_dir(tmp_path / "chosen") == tmp_path / "chosen"
