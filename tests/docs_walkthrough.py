"""A docs page's walkthrough run as written against the demo (`make run`): the blocks
marked `<!-- file: PATH -->` are written to PATH; the `bash` blocks marked `<!-- run -->`
(exit 0) or `<!-- run: exit N -->` run in order by bash in a fresh directory, each seeing
the environment the previous successful one left."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from harness import free_port, stop_process

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(
    r"<!-- (file: (?P<path>\S+)|run(?:: exit (?P<exit>\d+))?) -->\n```\w*\n(?P<body>.*?)```", re.S
)


@contextmanager
def serve_demo(directory: Path, token: str) -> Iterator[dict[str, str]]:
    """`pilothouse serve` in demo mode, its data dir at ./.pilothouse as `make run` has it;
    the environment to run the walkthrough in (PILOTHOUSE_URL set, this Python's bin first)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PILOTHOUSE_")}
    env["PILOTHOUSE_ADMIN_TOKEN"] = token
    process = subprocess.Popen(
        [sys.executable, "-m", "pilothouse", "serve", "--port", str(port), "--data-dir", ".pilothouse"],
        cwd=directory, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not (directory / ".pilothouse" / "demo-key").exists() or not _ready(url):
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


def blocks(page: str) -> tuple[list[tuple[str, str]], list[tuple[int, str]]]:
    """The page's files (path, text) and its commands (expected exit, script)."""
    found = list(BLOCK.finditer((DOCS / page).read_text()))
    files = [(b["path"], b["body"]) for b in found if b["path"]]
    runs = [(int(b["exit"] or 0), b["body"]) for b in found if not b["path"]]
    return files, runs


def run_walkthrough(
    files: list[tuple[str, str]],
    runs: list[tuple[int, str]],
    directory: Path,
    env: dict[str, str],
) -> list[subprocess.CompletedProcess[str]]:
    """Write the files, then run each command, asserting its exit and no traceback."""
    for path, body in files:
        (directory / path).parent.mkdir(parents=True, exist_ok=True)
        (directory / path).write_text(body)
    env = dict(env)
    done_all = []
    for expected, body in runs:
        env_file = directory / ".env-after"
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", f"{body}\nenv -0 > {env_file}"],
            cwd=directory, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == expected, (
            f"{body}\nexit {done.returncode}\n{done.stdout}\n{done.stderr}"
        )
        assert "Traceback" not in done.stderr
        if done.returncode == 0:
            pairs = env_file.read_text().split("\0")
            env = dict(p.split("=", 1) for p in pairs if "=" in p)
        done_all.append(done)
    return done_all
