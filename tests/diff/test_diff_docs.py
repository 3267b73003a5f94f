"""docs/diff.md runs as written against the demo (`make run`), and docs/cli.md names only
options `pilothouse diff` has.

The walkthrough's files are the blocks marked `<!-- file: PATH -->`; its commands are the
`bash` blocks marked `<!-- run -->` (exit 0) or `<!-- run: exit N -->`, run in order by
bash in a fresh directory next to a fresh demo.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from docs_walkthrough import DOCS, blocks, run_walkthrough, serve_demo

TOKEN = "pha-diff-docs-admin-token"


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[dict[str, str]]:
    with serve_demo(tmp_path, TOKEN) as env:
        yield env


def test_the_diff_walkthrough_runs_as_written(demo: dict[str, str], tmp_path: Path) -> None:
    files, runs = blocks("diff.md")
    assert len(runs) >= 9
    outputs = [(d.stdout, d.stderr) for d in run_walkthrough(files, runs, tmp_path, demo)]
    # What the prose around the blocks says happened:
    first, _ = outputs[1]
    assert "t1 [payments]: json_validity: JSON -> not JSON; label: billing -> (none)" in first
    assert "billing    3       0    0" in first
    assert "behaviour changed in 3 of 8 compared cases" in first
    rephrased, account = outputs[2]
    assert "meaning: same 0, rephrased 8, changed 0" in rephrased
    assert "old 8 cached, 0 called" in account
    assert "rephrased 8" in outputs[3][0] and "embeddings (embed)" in outputs[3][0]
    assert "noise floor: the old side answered twice" in outputs[4][0]
    assert (tmp_path / "reports" / "diff.md").read_text().startswith("### Behaviour diff")
    report = json.loads((tmp_path / "reports" / "diff.json").read_text())
    assert report["labels"]["matrix"]["billing"] == {"(none)": 3}
    assert "ticket-router/active -> ticket-router/canary" in outputs[7][0]
    assert "no prompt 'ticket-router' version 9" in outputs[8][1]


def test_cli_md_names_only_options_diff_has() -> None:
    row = next(
        line
        for line in (DOCS / "cli.md").read_text().splitlines()
        if line.startswith("| `pilothouse diff ")
    )
    flags = set(re.findall(r"(--[a-z][a-z-]*)", row.split("` |")[0]))
    assert {"--dataset", "--label-path", "--noise-floor", "--route"} <= flags
    help_text = subprocess.run(
        [sys.executable, "-m", "pilothouse", "diff", "--help"],
        capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    assert flags <= set(re.findall(r"(--[a-z][a-z-]*)", help_text)), flags
