"""`pilothouse datasets`: sampling real traffic (never the eval's own), deduplicated, and
export for labelling, against a real gateway."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from eval_harness import Setup, rows, suite_text, triage_prompt, write_jsonl

from pilothouse.evals import datasets


@pytest.fixture(scope="module", autouse=True)
def route(setup: Setup) -> str:
    setup.push_prompt("triage", triage_prompt())
    promoted = setup.gw.admin.post(
        "/api/routes/support/promote", json={"prompt": "triage@1", "model": "fast"}
    )
    assert promoted.status_code == 201, promoted.text
    return "support"


def _call(setup: Setup, ticket: str) -> None:
    response = httpx.post(
        setup.gw.url + "/v1/chat/completions",
        json={
            "model": "route:support",
            "messages": [],
            "pilothouse": {"variables": {"ticket": ticket}},
        },
        headers={"Authorization": f"Bearer {setup.key}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def _sampled(setup: Setup, tmp_path: Path, name: str) -> list[dict[str, object]]:
    made = setup.cli(
        "datasets", "from-logs", "--route", "support", "--since", "1h", "--sample", "100",
        "--name", name, cwd=tmp_path,
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    exported = setup.cli("datasets", "export", name, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    return [json.loads(line) for line in exported.stdout.splitlines()]


def test_from_logs_counts_identical_variables_once(setup: Setup, tmp_path: Path) -> None:
    since = datetime.now(UTC).isoformat()
    for ticket in ["Refund me", "App crashes", "Refund me", "Where is my invoice?", "Refund me"]:
        _call(setup, ticket)
    setup.gw.log_rows(expected=5, since=since, model="fast")
    sampled = _sampled(setup, tmp_path, "dedup")
    tickets = [r["variables"]["ticket"] for r in sampled]  # type: ignore[index]
    assert sorted(tickets) == ["App crashes", "Refund me", "Where is my invoice?"]


def test_from_logs_leaves_out_the_evals_own_calls(setup: Setup, tmp_path: Path) -> None:
    since = datetime.now(UTC).isoformat()
    for i in range(4):
        _call(setup, f"A real customer ticket {i}")
    write_jsonl(tmp_path / "cases.jsonl", rows(6, marker="EVAL "))
    (tmp_path / "suite.yaml").write_text(
        suite_text(
            target="{route: support}",
            scorers="  - {type: label_in, path: label, labels: [billing, bug, question]}",
        )
    )
    ran = setup.cli("eval", "run", "suite.yaml", "--no-store", "--no-cache", cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    logged = setup.gw.log_rows(expected=10, since=since, model="fast")
    evals = [r for r in logged if r.get("source") == "eval"]
    assert len(evals) == 6, "the runner's calls are marked as eval traffic in the request log"
    eval_variables = {json.dumps(r["variables"], sort_keys=True) for r in evals}
    sampled = _sampled(setup, tmp_path, "live")
    assert not eval_variables & {json.dumps(r["variables"], sort_keys=True) for r in sampled}
    assert any("A real customer ticket" in json.dumps(r) for r in sampled)


def test_export_for_labelling_round_trips(setup: Setup, tmp_path: Path) -> None:
    data = rows(5)
    write_jsonl(tmp_path / "cases.jsonl", data)
    pushed = setup.cli("datasets", "push", "cases.jsonl", "--name", "labels", cwd=tmp_path)
    assert pushed.returncode == 0, pushed.stderr
    as_jsonl = setup.cli("datasets", "export", "labels", cwd=tmp_path).stdout
    assert [json.loads(x) for x in as_jsonl.splitlines()] == data
    exported = setup.cli(
        "datasets", "export", "labels", "--format", "csv", "-o", "labels.csv", cwd=tmp_path
    )
    assert exported.returncode == 0 and "5 rows written to labels.csv" in exported.stderr
    back = datasets.load_file(tmp_path / "labels.csv")
    assert [(r["id"], r["variables"], r["expected"], r["tags"]) for r in back] == [
        (r["id"], r["variables"], r["expected"], r["tags"]) for r in data
    ]
    write_jsonl(
        tmp_path / "chat.jsonl", [{"id": "m1", "messages": [{"role": "user", "content": "hi"}]}]
    )
    assert (
        setup.cli("datasets", "push", "chat.jsonl", "--name", "chat", cwd=tmp_path).returncode == 0
    )
    refused = setup.cli("datasets", "export", "chat", "--format", "csv", cwd=tmp_path)
    assert refused.returncode == 2
    assert "row 1 (m1): has `messages`, which CSV cannot hold" in refused.stderr
