"""Every example in docs/gateway.md, docs/fleet.md, docs/configuration.md, docs/prompts.md,
docs/releases.md, docs/sdk.md, docs/monitoring.md, docs/quotas.md and docs/contracts.md runs
as written against `make run`: a fresh `pilothouse serve` in demo mode (what `make run`
starts), with the variables its banner tells you to export.

How a page is run, in document order, in a fresh working directory:
- ```yaml whose first line is `# prompts/NAME.yaml` (or `# contracts/NAME.yaml`): written
  to that file;
- other ```yaml: a config-file excerpt, validated as the config file's sections are;
- ```sh: each command (a trailing backslash continues it) runs in bash and must exit 0,
  or 1 when its comment says `exits 1`;
- ```python: consecutive blocks run one after the other in one Python session;
- ```text and ```json: output (or commands that need more than the demo), not run. Any
  other fence fails the test (say what it is).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from harness import free_port
from pilothouse.config import ConfigFile

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = [
    "gateway.md",
    "fleet.md",
    "configuration.md",
    "prompts.md",
    "releases.md",
    "sdk.md",
    "monitoring.md",
    "quotas.md",
    "contracts.md",
]
FENCE = re.compile(r"^```(\S*)\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
SESSION = """
import sys, traceback
blocks = {blocks!r}
namespace = {{"__name__": "__main__"}}
for number, code in blocks:
    try:
        exec(compile(code, f"python block {{number}}", "exec"), namespace)
    except BaseException:
        traceback.print_exc()
        sys.exit(f"python block {{number}} failed")
"""


@dataclass
class Demo:
    url: str
    env: dict[str, str]


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    """`make run`: `pilothouse serve` with no config, on a fresh data dir."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PILOTHOUSE_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "pilothouse", "serve", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=clean,
    )
    try:
        banner = ""
        deadline = time.monotonic() + 60
        while "pilothouse logs" not in banner and time.monotonic() < deadline:
            line = process.stdout.readline() if process.stdout else ""
            if not line and process.poll() is not None:
                raise RuntimeError(f"the demo did not start:\n{banner}")
            banner += line
        token = re.search(r"export PILOTHOUSE_ADMIN_TOKEN=(\S+)", banner)
        key = re.search(r"PILOTHOUSE_API_KEY=(\S+)", banner)
        assert token and key, banner
        url = f"http://127.0.0.1:{port}"
        while not ready(url):
            assert time.monotonic() < deadline, "the demo did not become ready"
            time.sleep(0.1)
        env = {
            **clean,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{clean.get('PATH', '')}",
            "PILOTHOUSE_URL": url,
            "PILOTHOUSE_ADMIN_TOKEN": token.group(1),
            "PILOTHOUSE_API_KEY": key.group(1),
            "PILOTHOUSE_PROMPT_CACHE": str(tmp_path / "prompt-cache"),
        }
        yield Demo(url, env)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def commands(block: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", block)
    return [
        line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]


def run_python(blocks: list[tuple[int, str]], demo: Demo, cwd: Path, page: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SESSION.format(blocks=blocks)],
        cwd=cwd,
        env=demo.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{page}: {done.stderr[-3000:]}"


@pytest.mark.parametrize("page", PAGES)
def test_every_example_runs_as_written(page: str, demo: Demo, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    text = (DOCS / page).read_text()
    pending: list[tuple[int, str]] = []
    ran = 0
    for number, match in enumerate(FENCE.finditer(text), start=1):
        kind, body = match.group(1), match.group(2)
        if kind != "python" and pending:
            run_python(pending, demo, work, page)
            pending = []
        if kind == "python":
            pending.append((number, body))
        elif kind == "yaml":
            first = body.splitlines()[0]
            if first.startswith(("# prompts/", "# contracts/")):
                path = work / first[2:].strip()
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(body)
            else:
                ConfigFile.model_validate(yaml.safe_load(body))
        elif kind == "sh":
            for command in commands(body):
                expected = 1 if "exits 1" in command else 0
                done = subprocess.run(
                    ["bash", "-c", command],
                    cwd=work,
                    env=demo.env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert done.returncode == expected, (
                    f"{page} block {number}: `{command}` exited {done.returncode}\n"
                    f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
                )
                ran += 1
        elif kind not in ("text", "json"):
            pytest.fail(
                f"{page} block {number}: a ```{kind or '(no language)'} fence; say what it is"
            )
    if pending:
        run_python(pending, demo, work, page)
    assert ran or page in ("sdk.md", "configuration.md")  # python, or config only
