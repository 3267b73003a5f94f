"""docs/diff.md runs as written against the demo (`make run`), and docs/cli.md names only
options `pilothouse diff` has.

The walkthrough's files are the blocks marked `<!-- file: PATH -->`; its commands are the
`bash` blocks marked `<!-- run -->` (exit 0) or `<!-- run: exit N -->`, run in order by
bash in a fresh directory next to a fresh demo.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness import free_port, stop_process

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(
    r"<!-- (file: (?P<path>\S+)|run(?:: exit (?P<exit>\d+))?) -->\n```\w*\n(?P<body>.*?)```", re.S
)
TOKEN = "pha-diff-docs-admin-token"


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


def test_the_diff_walkthrough_runs_as_written(demo: dict[str, str], tmp_path: Path) -> None:
    blocks = list(BLOCK.finditer((DOCS / "diff.md").read_text()))
    for block in blocks:
        if block["path"]:
            (tmp_path / block["path"]).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / block["path"]).write_text(block["body"])
    runs = [(int(b["exit"] or 0), b["body"]) for b in blocks if not b["path"]]
    assert len(runs) >= 9
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
        outputs.append((done.stdout, done.stderr))
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
