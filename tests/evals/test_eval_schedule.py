"""Scheduled suites end to end: the server runs a suite itself (the same `eval run` CI
runs, in a child process, with a key of its own), records each run, and alerts the
suite's owner when it starts failing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eval_harness import Setup, config, rows, suite_text, triage_prompt, write_jsonl

from harness import Simulator, start_gateway


@pytest.fixture
def scheduled(eval_sim: Simulator, tmp_path: Path) -> Iterator[Setup]:
    data_dir = tmp_path / "gw"
    text = config(eval_sim) + "monitoring: {evaluate_interval_seconds: 0.5}\n"
    gw = start_gateway(text, f"sqlite:///{data_dir / 'p.db'}", data_dir)
    try:
        yield Setup(gw=gw, sim=eval_sim, key=gw.create_key(name="ci", scopes=["evals"]))
    finally:
        gw.stop()


def wait_for_run(setup: Setup, suite: str, after: Any = None) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        for schedule in setup.gw.admin.get("/api/evals/schedules").json()["data"]:
            finished = schedule["last_finished_at"]
            if schedule["suite"] == suite and finished and finished != after:
                return dict(schedule)
        time.sleep(0.2)
    raise AssertionError(f"the scheduled suite {suite} did not finish a run")


def test_the_server_runs_a_scheduled_suite_and_alerts_its_owner_when_it_starts_failing(
    scheduled: Setup, tmp_path: Path
) -> None:
    setup = scheduled
    setup.push_prompt("triage", triage_prompt())
    write_jsonl(tmp_path / "cases.jsonl", rows(10))
    (tmp_path / "suite.yaml").write_text(
        "owner: support\n" + suite_text(target='{prompt: "triage@production", model: fast}')
    )
    made = setup.cli("eval", "schedule", "suite.yaml", "--every", "1h", cwd=tmp_path)
    assert made.returncode == 0, made.stdout + made.stderr
    assert "dataset cases.jsonl: stored as triage v1" in made.stdout
    first = wait_for_run(setup, "triage")
    assert first["last_status"] == "passed", first
    assert first["owner"] == "support" and not first["stale"]
    stored = setup.gw.admin.get(f"/api/evals/runs/{first['last_run_id']}")
    assert stored.status_code == 200 and stored.json()["passed"] is True
    # It asks the models, never the response cache: it is there to see what changed.
    assert stored.json()["summary"]["cache"]["enabled"] is False
    # The prompt under test changes: the next run fails its gate and the owner hears of it.
    setup.push_prompt("triage", triage_prompt(labels=["spam"]))
    again = setup.cli("eval", "run-now", "triage", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    second = wait_for_run(setup, "triage", after=first["last_finished_at"])
    assert second["last_status"] == "failed", second
    assert second["last_passing_run_id"] == first["last_run_id"]
    alerts = setup.gw.admin.get("/api/alerts").json()["data"]
    [alert] = [a for a in alerts if a["subject"] == "suite:triage"]
    assert (alert["kind"], alert["owner"], alert["severity"]) == (
        "eval_failed",
        "support",
        "ticket",
    )
    assert "scheduled suite triage failed its gate: triage: gate FAILED" in alert["summary"]
    listed = setup.cli("eval", "schedules", cwd=tmp_path)
    assert "triage" in listed.stdout and "failed" in listed.stdout


def test_a_suite_without_a_stored_dataset_or_with_a_bad_schedule_is_refused(
    scheduled: Setup, tmp_path: Path
) -> None:
    admin = scheduled.gw.admin
    local = admin.post(
        "/api/evals/schedules",
        json={"suite": suite_text(), "every_seconds": 3600},
    )
    assert local.status_code == 400 and "must be stored" in local.text
    missing = admin.post(
        "/api/evals/schedules",
        json={"suite": suite_text(dataset="{name: nope, version: 3}"), "every_seconds": 3600},
    )
    assert missing.status_code == 404 and "nope" in missing.text
    too_often = admin.post("/api/evals/schedules", json={"suite": suite_text(), "every_seconds": 5})
    assert too_often.status_code == 400
    bad = scheduled.cli("eval", "schedule", "nowhere.yaml", "--every", "1h", cwd=tmp_path)
    assert bad.returncode == 2
    (tmp_path / "s.yaml").write_text(suite_text())
    write_jsonl(tmp_path / "cases.jsonl", rows(3))
    wrong = scheduled.cli("eval", "schedule", "s.yaml", "--every", "soon", cwd=tmp_path)
    assert wrong.returncode == 2 and "30m, 6h or 1d" in wrong.stderr
    assert admin.get("/api/evals/schedules").json()["data"] == []
