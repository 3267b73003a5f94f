"""A matrix in one run, and a compare that gates: on real runs through the gateway.

The simulator answers a JSON-schema prompt with a label drawn from the schema's enum,
as a pure function of the request and its seed. So the same prompt under another seed is
noise (about a third of the labels right, flipping both ways), and a prompt whose enum
holds only a wrong label is a regression (every label wrong)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eval_harness import Setup, artifact, rows, suite_text, triage_prompt, write_jsonl
from scipy import stats as sps

EXPECTED = "  - {type: label_in, path: label, expected_from: expected, threshold: 0.2}"
MATRIX = """\
targets:
  - {name: current, prompt: 'triage@1', model: fast}
  - {name: next, prompt: 'spam@1', model: fast, candidate: true}
"""


@pytest.fixture(scope="module", autouse=True)
def prompts(setup: Setup) -> None:
    setup.push_prompt("triage", triage_prompt())
    setup.push_prompt("spam", triage_prompt(labels=["spam"]))


def _suite(
    tmp_path: Path, *, target: str = "{prompt: 'triage@1', model: fast}", seed: int = 1
) -> Path:
    path = tmp_path / f"suite-{seed}.yaml"
    text = suite_text(
        target=target, extra=f"seed: {seed}\n", scorers=EXPECTED, gate="{min_verdicts: 10}"
    )
    path.write_text(text.replace("target: MATRIX\n", MATRIX))
    return path


def test_a_two_target_matrix_gates_the_candidate_and_reports_both(
    setup: Setup, tmp_path: Path
) -> None:
    write_jsonl(tmp_path / "cases.jsonl", rows(30))
    suite = _suite(tmp_path, target="MATRIX")
    result = setup.cli(
        "eval",
        "run",
        suite.name,
        "--output",
        "m.json",
        "--html",
        "m.html",
        "--no-store",
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "\ncurrent (reported): passed" in result.stdout
    assert "\nnext (candidate): FAILED" in result.stdout
    assert "next: label_in: pass rate 0.0% is below 20.0%" in result.stdout
    run = artifact(tmp_path / "m.json")
    assert run["summary"]["gated_targets"] == ["next"]
    assert set(run["summary"]["targets"]) == {"current", "next"}
    assert run["summary"]["calls"] == 60
    assert all(set(c["targets"]) == {"current", "next"} for c in run["results"]["cases"])
    # Per tag, everywhere: the summary, the console, the HTML page.
    tags = run["summary"]["targets"]["current"]["tags"]
    assert set(tags) == {"billing", "bug", "question", "even", "odd"}
    assert tags["billing"]["cases"] == 10
    html = (tmp_path / "m.html").read_text()
    assert "<h2>next <small>(candidate" in html and "t29" in html

    # Within the run, the candidate against the other target: a significant regression.
    compared = setup.cli(
        "eval", "compare", "m.json#current", "m.json#next", "--fail-on-regression", "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert compared.returncode == 1, compared.stdout + compared.stderr
    label = json.loads(compared.stdout)["scorers"]["label_in"]
    assert label["regression"] and label["pass_rate_b"] == 0.0
    gained, lost = label["pass_test"]["gained"], label["pass_test"]["lost"]
    assert gained == 0 and lost >= 6
    assert label["p_value"] == pytest.approx(sps.binomtest(gained, gained + lost).pvalue)

    # Marking the other target as the candidate moves the gate to it.
    suite.write_text(
        suite.read_text()
        .replace("model: fast, candidate: true}", "model: fast}")
        .replace(
            "{name: current, prompt: 'triage@1', model: fast}",
            "{name: current, prompt: 'triage@1', model: fast, candidate: true}",
        )
    )
    moved = setup.cli("eval", "run", suite.name, "--no-store", cwd=tmp_path)
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert "\nnext (reported): FAILED" in moved.stdout


def test_compare_fails_on_a_simulated_regression_and_passes_noise(
    setup: Setup, tmp_path: Path
) -> None:
    write_jsonl(tmp_path / "cases.jsonl", rows(30))
    runs = {}
    for name, target, seed in (
        ("base", "{prompt: 'triage@1', model: fast}", 1),
        ("noise", "{prompt: 'triage@1', model: fast}", 2),
        ("regressed", "{prompt: 'spam@1', model: fast}", 1),
    ):
        suite = _suite(tmp_path, target=target, seed=seed)
        result = setup.cli("eval", "run", suite.name, "--output", f"{name}.json", cwd=tmp_path)
        assert result.returncode in (0, 1), result.stdout + result.stderr
        runs[name] = artifact(tmp_path / f"{name}.json")

    noise = setup.cli(
        "eval", "compare", "base.json", "noise.json", "--fail-on-regression", cwd=tmp_path
    )
    assert noise.returncode == 0, noise.stdout + noise.stderr
    assert "no significant regression" in noise.stdout
    as_json = json.loads(
        setup.cli("eval", "compare", "base.json", "noise.json", "--json", cwd=tmp_path).stdout
    )
    label = as_json["scorers"]["label_in"]
    assert label["fixed"] and label["broken"], "noise flips cases both ways"
    assert label["p_value"] > 0.05 and label["pass_test"]["test"] == "mcnemar_exact"
    assert set(as_json["tags"]) == {"billing", "bug", "question", "even", "odd"}

    regressed = setup.cli(
        "eval", "compare", runs["base"]["id"], runs["regressed"]["id"], "--fail-on-regression",
        cwd=tmp_path,
    )  # fmt: skip
    assert regressed.returncode == 1, regressed.stdout + regressed.stderr
    assert "significant regression (p < 0.05, drop >= 0.0): label_in" in regressed.stdout
    assert "label_in: broken in B:" in regressed.stdout
    # A drop smaller than --min-delta is not a regression.
    drop = runs["base"]["summary"]["targets"]["triage@1/fast"]["scorers"]["label_in"]["pass_rate"]
    tolerant = setup.cli(
        "eval", "compare", "base.json", "regressed.json", "--fail-on-regression",
        "--min-delta", f"{min(1.0, drop + 0.01):.2f}", cwd=tmp_path,
    )  # fmt: skip
    assert tolerant.returncode == 0, tolerant.stdout

    # The same in one command: a run against a baseline.
    suite = _suite(tmp_path, target="{prompt: 'spam@1', model: fast}", seed=1)
    gated = setup.cli(
        "eval", "run", suite.name, "--baseline", "base.json", "--output", "g.json", "--no-store",
        cwd=tmp_path,
    )  # fmt: skip
    assert gated.returncode == 1
    assert "against baseline" in gated.stdout and "significant regression" in gated.stdout
    assert artifact(tmp_path / "g.json")["summary"]["baseline"]["regressions"] == ["label_in"]


def test_compare_refuses_runs_that_are_not_comparable(setup: Setup, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "cases.jsonl", rows(12))
    a = setup.cli(
        "eval", "run", _suite(tmp_path).name, "--output", "a.json", "--no-store", cwd=tmp_path
    )
    assert a.returncode in (0, 1)
    write_jsonl(tmp_path / "cases.jsonl", rows(12, marker="other "))
    b = setup.cli(
        "eval", "run", _suite(tmp_path).name, "--output", "b.json", "--no-store", cwd=tmp_path
    )
    assert b.returncode in (0, 1)
    refused = setup.cli("eval", "compare", "a.json", "b.json", "--fail-on-regression", cwd=tmp_path)
    assert refused.returncode == 2
    assert "the runs are not comparable: different datasets" in refused.stderr
    allowed = setup.cli("eval", "compare", "a.json", "b.json", "--allow-incomparable", cwd=tmp_path)
    assert allowed.returncode == 0 and "compared anyway: different datasets" in allowed.stderr
    baseline = setup.cli(
        "eval", "run", _suite(tmp_path).name, "--baseline", "a.json", "--no-store", cwd=tmp_path
    )
    assert baseline.returncode == 2 and "is not comparable with this suite" in baseline.stderr


def test_a_route_active_and_canary_in_one_run(setup: Setup, tmp_path: Path) -> None:
    admin = setup.gw.admin
    assert (
        admin.post(
            "/api/routes/queue/promote", json={"prompt": "triage@1", "model": "fast"}
        ).status_code
        == 201
    )
    canary = admin.post(
        "/api/routes/queue/canary", json={"prompt": "spam@1", "model": "fast", "weight": 10}
    )
    assert canary.status_code == 200, canary.text
    write_jsonl(tmp_path / "cases.jsonl", rows(15))
    suite = _suite(tmp_path, target="{route: queue, release: [active, canary]}")
    result = setup.cli("eval", "run", suite.name, "--output", "r.json", "--no-store", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr  # no candidate: both gated
    run = artifact(tmp_path / "r.json")
    parts = {t["name"]: t for t in run["manifest"]["targets"]}
    assert parts["queue/active"]["prompt"] == "triage@1"
    assert parts["queue/canary"]["served_release_ids"] == [canary.json()["canary"]["id"]]
    summaries = run["summary"]["targets"]
    assert summaries["queue/active"]["passed"] and not summaries["queue/canary"]["passed"]
    assert "queue/canary: label_in: pass rate 0.0%" in result.stdout


def test_requalify_checks_the_model_first_and_stores_both_runs(
    setup: Setup, tmp_path: Path
) -> None:
    admin = setup.gw.admin
    promoted = admin.post(
        "/api/routes/intake/promote", json={"prompt": "triage@1", "model": "fast"}
    )
    assert promoted.status_code == 201
    write_jsonl(tmp_path / "evals" / "cases.jsonl", rows(12))
    suite = _suite(tmp_path / "evals", target="{route: intake}")
    suite.write_text(suite.read_text().replace("name: triage", "name: intake-quality"))
    before = setup.sim_calls()
    typo = setup.cli(
        "models", "requalify", "intake", "--to", "smrat", "--suites", "evals", cwd=tmp_path
    )
    assert typo.returncode == 2, typo.stdout + typo.stderr
    assert "--to 'smrat': the gateway serves no such model" in typo.stderr
    assert setup.sim_calls() == before
    result = setup.cli(
        "models", "requalify", "intake", "--to", "smart", "--suites", "evals", cwd=tmp_path
    )
    assert result.returncode in (0, 1), result.stdout + result.stderr
    assert "suite-1.yaml: current" in result.stdout and "on smart" in result.stdout
    stored = admin.get("/api/evals/runs", params={"suite": "intake-quality"}).json()["data"]
    assert len(stored) == 2, "the current and the candidate run are both stored"
