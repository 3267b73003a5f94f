"""docs/evals.md runs as written against the demo (`make run`), and docs/cli.md names only
options the eval and dataset commands have.

The walkthrough's files are the blocks marked `<!-- file: PATH -->`; its commands are the
`bash` blocks marked `<!-- run -->` (exit 0) or `<!-- run: exit N -->`, run in order by
bash, each as written, in a fresh directory next to a fresh demo.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import httpx
import pytest

from harness import free_port, stop_process

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(
    r"<!-- (file: (?P<path>\S+)|run(?:: exit (?P<exit>\d+))?) -->\n```\w*\n(?P<body>.*?)```", re.S
)
TOKEN = "pha-docs-example-admin-token"


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[dict[str, str]]:
    """`pilothouse serve` in demo mode, its data dir at ./.pilothouse as `make run` has it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PILOTHOUSE_")}
    env["PILOTHOUSE_ADMIN_TOKEN"] = TOKEN
    process = subprocess.Popen(
        [sys.executable, "-m", "pilothouse", "serve", "--port", str(port), "--data-dir", ".pilothouse"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / ".pilothouse" / "demo-key").exists() or not _ready(url):
            assert process.poll() is None, "the demo exited"
            assert time.monotonic() < deadline, "the demo did not start"
            time.sleep(0.2)
        bin_dir = str(Path(sys.executable).parent)
        yield {**env, "PILOTHOUSE_URL": url, "PATH": bin_dir + os.pathsep + env.get("PATH", "")}
    finally:
        stop_process(process)


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_evals_walkthrough_runs_as_written(demo: dict[str, str], tmp_path: Path) -> None:
    blocks = list(BLOCK.finditer((DOCS / "evals.md").read_text()))
    files = [(b["path"], b["body"]) for b in blocks if b["path"]]
    runs = [(int(b["exit"] or 0), b["body"]) for b in blocks if not b["path"]]
    assert len(files) >= 5 and len(runs) >= 8
    for path, body in files:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(body)
    env = dict(demo)
    outputs = []
    for expected, body in runs:
        env_file = tmp_path / ".env-after"
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", f"{body}\nenv -0 > {env_file}"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == expected, (
            f"{body}\nexit {done.returncode}\n{done.stdout}\n{done.stderr}"
        )
        assert "Traceback" not in done.stderr
        if done.returncode == 0:
            pairs = env_file.read_text().split("\0")
            env = dict(p.split("=", 1) for p in pairs if "=" in p)
        outputs.append(done.stdout)
    # What the prose around the blocks says happened:
    assert "gate PASSED" in outputs[1]
    assert re.search(r"cache \d+ hits, 0 misses", outputs[2]), outputs[2]
    assert "significant regression" in outputs[4]
    assert ET.parse(tmp_path / "reports" / "eval.xml").getroot().tag == "testsuites"
    assert (tmp_path / "reports" / "eval.html").read_text().startswith("<!doctype html>")
    assert "triage-live: version 1" in outputs[-1]
    assert (tmp_path / "triage-live.csv").read_text().startswith("id,ticket,expected,tags")


@pytest.mark.parametrize(
    "command",
    [
        ("eval", "run"),
        ("eval", "runs"),
        ("eval", "compare"),
        ("datasets", "push"),
        ("datasets", "from-logs"),
        ("datasets", "export"),
        ("models", "requalify"),
    ],
)
def test_cli_md_names_only_options_the_commands_have(command: tuple[str, ...]) -> None:
    rows = [
        line
        for line in (DOCS / "cli.md").read_text().splitlines()
        if line.startswith(f"| `pilothouse {' '.join(command)} ") or f"/ {command[1]} " in line
    ]
    row = next(r for r in rows if f"pilothouse {' '.join(command)} " in r or command[1] == "runs")
    synopsis = row.split("` |")[0].split(" / ")[0]  # "A / B": the row's first command
    flags = set(re.findall(r"(--[a-z][a-z-]*)", synopsis))
    assert flags, row
    help_text = subprocess.run(
        [sys.executable, "-m", "pilothouse", *command, "--help"],
        capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    missing = sorted(f for f in flags if f not in help_text)
    assert not missing, f"docs/cli.md names {missing} for {' '.join(command)}"
