"""Prompts over HTTP and from the command line, against a real server on both databases."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from harness import ADMIN_TOKEN, Gateway

TRIAGE = """\
description: Sorts support tickets
owner: support
variables:
  ticket: {required: true}
messages:
  - role: system
    content: "You sort tickets. {{> house-style}}"
  - role: user
    content: "{{ticket}}"
"""
STYLE = "text: Answer in one short sentence.\n"
SUMMARY = """\
variables:
  text: {}
messages:
  - role: user
    content: "Summarise: {{text}}"
"""


def two_summary_versions(gateway: Gateway) -> None:
    """summary v1 (labelled production) and v2; idempotent, since versions are content-hashed."""
    for text, labels in (("Summarise", ["production"]), ("Summarize", None)):
        body = {
            "variables": {"text": {}},
            "messages": [{"role": "user", "content": text + ": {{text}}"}],
            "labels": labels,
        }
        response = gateway.admin.post("/api/prompts/summary/versions", json=body)
        assert response.status_code in (200, 201), response.text


def cli(gateway: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PILOTHOUSE_URL": gateway.url, "PILOTHOUSE_ADMIN_TOKEN": ADMIN_TOKEN}
    return subprocess.run(
        [sys.executable, "-m", "pilothouse", "prompts", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.fixture(scope="module")
def prompt_dir(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("prompts")
    (directory / "house-style.yaml").write_text(STYLE)
    (directory / "triage.yaml").write_text(TRIAGE)
    (directory / "summary.yaml").write_text(SUMMARY)
    return directory


def test_push_twice_creates_versions_only_for_changed_files(
    gateway: Gateway, prompt_dir: Path
) -> None:
    first = cli(gateway, "push", str(prompt_dir), "--label", "production", "--note", "abc123")
    assert first.returncode == 0, first.stderr
    assert "3 new version(s), 0 unchanged" in first.stdout
    second = cli(gateway, "push", str(prompt_dir), "--label", "production")
    assert "0 new version(s), 3 unchanged" in second.stdout
    (prompt_dir / "summary.yaml").write_text(SUMMARY.replace("Summarise", "Summarize"))
    third = cli(gateway, "push", str(prompt_dir))
    assert (
        "summary: created (version 2)" in third.stdout
        and "1 new version(s), 2 unchanged" in third.stdout
    )
    listing = json.loads(cli(gateway, "ls", "--json").stdout)
    by_name = {row["name"]: row for row in listing}
    assert by_name["summary"]["latest_version"] == 2 and by_name["summary"]["labels"] == {
        "production": 1
    }
    assert by_name["triage"]["owner"] == "support"


def test_bad_files_are_refused_with_file_line_and_field_and_nothing_is_pushed(
    gateway: Gateway, tmp_path: Path
) -> None:
    (tmp_path / "good.yaml").write_text(SUMMARY)
    (tmp_path / "bad.yaml").write_text(
        "variables:\n  ticket: {}\nmessages:\n  - role: user\n    content: '{{tiket}}'\n"
    )
    (tmp_path / "worse.yaml").write_text("messages:\n  - role: robot\n    content: hi\n")
    result = cli(gateway, "push", str(tmp_path))
    assert result.returncode == 1
    assert (
        f"{tmp_path / 'bad.yaml'}:5: messages[0].content: uses undeclared variables tiket"
        in result.stderr
    )
    assert f"{tmp_path / 'worse.yaml'}:2: messages[0].role: Input should be" in result.stderr
    assert "good" not in result.stdout
    names = {row["name"] for row in json.loads(cli(gateway, "ls", "--json").stdout)}
    assert "good" not in names
    assert cli(gateway, "lint", str(tmp_path / "good.yaml")).returncode == 0


def test_reads_need_a_key_writes_need_the_admin_token(gateway: Gateway, prompt_dir: Path) -> None:
    cli(gateway, "push", str(prompt_dir), "--label", "production")
    app_key = gateway.create_key(name="app")
    app = {"Authorization": f"Bearer {app_key}"}
    read = httpx.get(gateway.url + "/api/prompts/triage", headers=app)
    assert read.status_code == 200
    body = read.json()
    assert body["fragments"]["house-style@production"]["text"] == "Answer in one short sentence."
    again = httpx.get(
        gateway.url + "/api/prompts/triage", headers={**app, "If-None-Match": read.headers["etag"]}
    )
    assert again.status_code == 304 and again.content == b""
    write = httpx.post(
        gateway.url + "/api/prompts/triage/labels/production", json={"version": 1}, headers=app
    )
    assert write.status_code == 401
    assert httpx.get(gateway.url + "/api/prompts/triage").status_code == 401


def test_change_stream_pushes_label_moves_and_resumes_from_last_event_id(
    gateway: Gateway, prompt_dir: Path
) -> None:
    two_summary_versions(gateway)
    assert cli(gateway, "label", "summary", "1", "staging", "--reason", "baseline").returncode == 0
    key = gateway.create_key(name="listener")
    received: list[tuple[float, dict]] = []
    stop = threading.Event()
    connected = threading.Event()

    def listen() -> None:
        with (
            contextlib.suppress(httpx.ReadTimeout),
            httpx.stream(
                "GET",
                gateway.url + "/api/prompts/stream",
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            ) as response,
        ):
            connected.set()
            for line in response.iter_lines():
                if line.startswith("data:"):
                    received.append((time.monotonic(), json.loads(line[5:])))
                if stop.is_set():
                    return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert connected.wait(10), "the change stream did not connect"
    # Moved through the API (the CLI label command is exercised above), so the clock
    # starts when the write returns rather than including a Python start-up.
    moved = gateway.admin.post(
        "/api/prompts/summary/labels/staging", json={"version": 2, "reason": "try it"}
    )
    assert moved.status_code == 200, moved.text
    moved_at = time.monotonic()
    deadline = time.monotonic() + 5
    while not received and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    at, event = received[0]
    assert event["kind"] == "label_moved" and event["name"] == "summary"
    assert event["label"] == "staging" and event["version"] == 2
    assert at - moved_at < 1.0
    # It carries what a reader of the label now gets, so SDK clients need not fetch it.
    read = gateway.admin.get("/api/prompts/summary", params={"label": "staging"})
    assert event["prompt"] == read.json() and event["etag"] == read.headers["etag"]

    # Resume from before that event: the missed one and a later one arrive.
    rolled = cli(gateway, "rollback", "summary", "staging")
    assert "rolled back to version 1" in rolled.stdout, rolled.stderr
    resumed = []
    with httpx.stream(
        "GET",
        gateway.url + "/api/prompts/stream",
        headers={"Authorization": f"Bearer {key}", "Last-Event-ID": str(event["id"] - 1)},
        timeout=10,
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                resumed.append(json.loads(line[5:]))
            if len(resumed) == 2:
                break
    assert resumed[0]["id"] == event["id"]
    assert resumed[1]["kind"] == "label_moved" and resumed[1]["rollback"] is True


def test_show_history_diff_and_pull_round_trip(
    gateway: Gateway, prompt_dir: Path, tmp_path: Path
) -> None:
    cli(gateway, "push", str(prompt_dir), "--label", "production")
    two_summary_versions(gateway)
    shown = cli(gateway, "show", "triage")
    assert "You sort tickets. {{> house-style}}" in shown.stdout
    assert "# includes: house-style@production (v1)" in shown.stdout
    assert cli(gateway, "show", "summary@2").stdout.count("Summarize") == 1
    diff = cli(gateway, "diff", "summary", "1", "2").stdout
    assert (
        "-  content: 'Summarise: {{text}}'" in diff and "+  content: 'Summarize: {{text}}'" in diff
    )
    history = cli(gateway, "history", "summary").stdout
    assert "prompt.version" in history and "production: - -> 1" in history
    (tmp_path / "export").mkdir()
    pulled = cli(gateway, "pull", str(tmp_path / "export" / "prompts"))
    assert pulled.returncode == 0 and (tmp_path / "export" / "prompts" / "triage.yaml").exists()
    back = cli(gateway, "push", str(tmp_path / "export" / "prompts"))
    assert "0 new version(s)" in back.stdout, back.stdout
    missing = cli(gateway, "show", "nope")
    assert missing.returncode == 1 and "404: no prompt 'nope'" in missing.stderr
