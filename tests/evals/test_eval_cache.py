"""The response cache and resume, counted at the provider: the simulator's own request
counter (GET /simulator/stats) says how many calls a run really made."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from eval_harness import Setup, artifact, rows, suite_text, triage_prompt, write_jsonl

LABEL = "  - {type: label_in, path: label, labels: [billing, bug, question], threshold: 0.2}"


@pytest.fixture(scope="module", autouse=True)
def prompts(setup: Setup) -> None:
    setup.push_prompt("triage", triage_prompt())
    setup.push_prompt("triage2", triage_prompt(system="Pick the queue. JSON only."))


def test_an_unchanged_rerun_makes_no_provider_call(setup: Setup, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "cases.jsonl", rows(12))
    (tmp_path / "suite.yaml").write_text(
        suite_text(
            extra="repeat: 2\njudge: {model: judge}\n",
            scorers=LABEL + '\n  - {type: llm_judge, rubric: "Plausible?", threshold: 0.5}',
        )
    )
    before = setup.sim_calls()
    first = setup.cli("eval", "run", "suite.yaml", "--output", "a.json", "--no-store", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    made = setup.sim_calls() - before
    a = artifact(tmp_path / "a.json")
    assert a["summary"]["cache"]["misses"] == made > 24  # 24 target calls and the judge's
    assert a["summary"]["cache"]["hits"] == 0

    again = setup.sim_calls()
    second = setup.cli(
        "eval", "run", "suite.yaml", "--output", "b.json", "--no-store", cwd=tmp_path
    )
    assert second.returncode == 0, second.stdout + second.stderr
    assert setup.sim_calls() == again, "an unchanged re-run must not reach the provider"
    b = artifact(tmp_path / "b.json")
    assert (b["summary"]["cache"]["hits"], b["summary"]["cache"]["misses"]) == (made, 0)
    assert b["summary"]["targets"] == a["summary"]["targets"]
    assert f"cache {made} hits, 0 misses" in second.stdout

    forced = setup.cli("eval", "run", "suite.yaml", "--no-cache", "--no-store", cwd=tmp_path)
    assert forced.returncode == 0 and "cache off" in forced.stdout
    assert setup.sim_calls() - again == made


def test_a_changed_prompt_misses_for_exactly_its_calls(setup: Setup, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "cases.jsonl", rows(10))
    (tmp_path / "suite.yaml").write_text(
        suite_text(
            target="null",
            extra="repeat: 2\n",
            scorers=LABEL,
        ).replace(
            "target: null\n",
            "targets:\n"
            "  - {name: current, prompt: 'triage@1', model: fast}\n"
            "  - {name: next, prompt: 'triage2:production', model: fast, candidate: true}\n",
        )
    )
    first = setup.cli("eval", "run", "suite.yaml", "--no-store", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    setup.push_prompt("triage2", triage_prompt(system="Pick the right queue. JSON only, please."))
    before = setup.sim_calls()
    second = setup.cli(
        "eval", "run", "suite.yaml", "--output", "b.json", "--no-store", cwd=tmp_path
    )
    assert second.returncode == 0, second.stdout + second.stderr
    b = artifact(tmp_path / "b.json")
    # The candidate's 10 cases x 2 repeats are new requests; the other target's are not.
    assert (b["summary"]["cache"]["hits"], b["summary"]["cache"]["misses"]) == (20, 20)
    assert setup.sim_calls() - before == 20
    assert b["manifest"]["targets"][1]["prompt"] == "triage2@2"

    # One edited row: only that case's two calls per target are new.
    data = rows(10)
    data[4]["variables"]["ticket"] = "A different ticket about billing"
    write_jsonl(tmp_path / "cases.jsonl", data)
    before = setup.sim_calls()
    third = setup.cli("eval", "run", "suite.yaml", "--output", "c.json", "--no-store", cwd=tmp_path)
    assert third.returncode == 0, third.stdout + third.stderr
    c = artifact(tmp_path / "c.json")
    assert (c["summary"]["cache"]["hits"], c["summary"]["cache"]["misses"]) == (36, 4)
    assert setup.sim_calls() - before == 4


def test_sampling_settings_are_not_cached(setup: Setup, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "cases.jsonl", rows(6))
    (tmp_path / "suite.yaml").write_text(
        suite_text(
            target="{prompt: triage@1, model: fast, params: {temperature: 0.8}}",
            extra="seed: null\n",
            scorers=LABEL,
        )
    )
    for name in ("a.json", "b.json"):
        before = setup.sim_calls()
        result = setup.cli(
            "eval", "run", "suite.yaml", "--output", name, "--no-store", cwd=tmp_path
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert setup.sim_calls() - before == 6
        cache = artifact(tmp_path / name)["summary"]["cache"]
        assert (cache["hits"], cache["misses"], cache["uncached"]) == (0, 0, 6)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "crash"])
def test_a_run_cut_short_keeps_its_answers_and_resume_finishes_it(
    setup: Setup, tmp_path: Path, sig: signal.Signals
) -> None:
    write_jsonl(tmp_path / "cases.jsonl", rows(30, tags=False))
    (tmp_path / "suite.yaml").write_text(
        suite_text(target="{prompt: triage@1, model: slow}", scorers=LABEL).replace(
            "concurrency: 4", "concurrency: 2"
        )
    )
    before = setup.sim_calls()
    process = subprocess.Popen(
        [sys.executable, "-m", "pilothouse", "eval", "run", "suite.yaml", "--no-cache",
         "--no-store", "--progress-every", "0"],
        cwd=tmp_path, env=setup.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        for line in process.stderr:  # progress lines: wait until some calls are done
            match = re.search(r"calls (\d+)/30", line)
            if match and int(match.group(1)) >= 6:
                break
        process.send_signal(sig)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    made = setup.sim_calls() - before
    (journal,) = (tmp_path / ".pilothouse" / "evals").glob("run_*.journal.jsonl")
    kept = len(journal.read_text().splitlines()) - 1  # the header line
    assert 6 <= kept <= made < 30
    run_id = journal.name.removesuffix(".journal.jsonl")
    if sig == signal.SIGINT:
        assert process.returncode == 130
        assert f"continue with --resume {run_id}" in err
        assert "Traceback" not in err

    before = setup.sim_calls()
    resumed = setup.cli(
        "eval", "run", "suite.yaml", "--resume", run_id, "--no-cache", "--output", "r.json",
        "--no-store", cwd=tmp_path,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    run = artifact(tmp_path / "r.json")
    assert run["manifest"]["resumed_from"] == run_id
    assert run["summary"]["cache"]["resumed"] == kept
    assert setup.sim_calls() - before == 30 - kept, "only what was not done is called"
    assert not journal.exists() and not list((tmp_path / ".pilothouse" / "evals").glob("*.jsonl"))
    assert len(run["results"]["cases"]) == 30


def test_resume_refuses_a_changed_suite(setup: Setup, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "cases.jsonl", rows(6))
    suite = tmp_path / "suite.yaml"
    suite.write_text(suite_text(scorers=LABEL))
    journal = tmp_path / ".pilothouse" / "evals" / "run_x.journal.jsonl"
    journal.parent.mkdir(parents=True)
    journal.write_text(
        json.dumps({"header": {"run_id": "run_x", "material": {"repeat": 3}}}) + "\n"
    )
    result = setup.cli("eval", "run", "suite.yaml", "--resume", "run_x", cwd=tmp_path)
    assert result.returncode == 2
    assert "run run_x cannot be resumed: since it started, these changed:" in result.stderr
    missing = setup.cli("eval", "run", "suite.yaml", "--resume", "run_y", cwd=tmp_path)
    assert missing.returncode == 2 and "no journal for run 'run_y'" in missing.stderr
