"""docs/evals.md runs as written against the demo (`make run`), and docs/cli.md names only
options the eval and dataset commands have.

The walkthrough's files are the blocks marked `<!-- file: PATH -->`; its commands are the
`bash` blocks marked `<!-- run -->` (exit 0) or `<!-- run: exit N -->`, run in order by
bash, each as written, in a fresh directory next to a fresh demo.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from docs_walkthrough import DOCS, blocks, run_walkthrough, serve_demo

TOKEN = "pha-docs-example-admin-token"


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[dict[str, str]]:
    with serve_demo(tmp_path, TOKEN) as env:
        yield env


def test_the_evals_walkthrough_runs_as_written(demo: dict[str, str], tmp_path: Path) -> None:
    files, runs = blocks("evals.md")
    assert len(files) >= 5 and len(runs) >= 8
    outputs = [d.stdout for d in run_walkthrough(files, runs, tmp_path, demo)]
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
