"""How long the CLI takes from Enter to exit, this tree against a baseline, in one run.

    .venv/bin/python bench/cli_startup.py [--baseline-rev d6ef50a] [--runs 21]

Times `pilothouse --help` and `pilothouse prompts ls` (against a real `pilothouse serve`,
SQLite in a temp dir, one prompt) as a user runs them: a new Python process each time,
`python -m pilothouse ...` with PYTHONPATH pointing at this tree's `src/`, or at a copy of
the baseline revision's `src/` (`git archive`, so the working tree is never touched). Runs
alternate between the two trees so a busy machine slows both alike. Prints the median and
the 90th percentile of each, their ratio, and which heavy modules each command imported
(`python -X importtime`). Starts and stops only its own server.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "bench-cli-admin-token"
CONFIG = """
providers:
  nowhere: {type: openai, base_url: 'http://127.0.0.1:9/v1'}
models:
  m: {provider: nowhere, model: m}
"""
HEAVY = ("sqlalchemy", "scipy", "aiohttp", "starlette", "uvicorn", "alembic", "httpx", "pydantic")
COMMANDS = {"--help": ["--help"], "prompts ls": ["prompts", "ls"]}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    (work / "config.yaml").write_text(CONFIG)
    port = free_port()
    env = {
        **os.environ,
        "PILOTHOUSE_ADMIN_TOKEN": ADMIN_TOKEN,
        "PILOTHOUSE_DATABASE_URL": f"sqlite:///{work / 'pilothouse.db'}",
    }
    argv = [sys.executable, "-m", "pilothouse", "serve", "--port", str(port)]
    argv += ["--config", str(work / "config.yaml"), "--data-dir", str(work)]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        process.kill()
        raise SystemExit("the server did not start")
    body = {"text": "Be brief.", "labels": ["production"]}
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    httpx.post(url + "/api/prompts/house-style/versions", json=body, headers=headers)
    return process, url


def baseline_src(revision: str, into: Path) -> Path:
    """The baseline revision's src/, unpacked from git (the working tree is not touched)."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", revision, "src"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def run(src: Path, args: list[str], url: str, *, importtime: bool = False) -> tuple[float, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(src),
        "PILOTHOUSE_URL": url,
        "PILOTHOUSE_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    argv = [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "pilothouse"]
    started = time.perf_counter()
    done = subprocess.run([*argv, *args], env=env, capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"pilothouse {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return elapsed, done.stderr


def heavy_imports(src: Path, args: list[str], url: str) -> list[str]:
    _, trace = run(src, args, url, importtime=True)
    found = set()
    for line in trace.splitlines():
        name = line.rpartition("|")[2].strip()
        top = name.partition(".")[0]
        if top in HEAVY:
            found.add(top)
    return sorted(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-rev", default="d6ef50a", help="git revision to compare with")
    parser.add_argument("--runs", type=int, default=21, help="runs per command and tree")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pilothouse-cli-bench-") as tmp:
        work = Path(tmp)
        trees = {
            "this tree": REPO / "src",
            options.baseline_rev: baseline_src(options.baseline_rev, work / "base"),
        }
        process, url = start_server(work)
        try:
            print(f"{options.runs} runs each, alternating trees; seconds, Enter to exit\n")
            print(f"{'command':<12} {'tree':<12} {'median':>7} {'p90':>7}  heavy imports")
            for label, args in COMMANDS.items():
                times: dict[str, list[float]] = {name: [] for name in trees}
                for src in trees.values():
                    run(src, args, url)  # warm the file cache and the bytecode
                for _ in range(options.runs):
                    for name, src in trees.items():
                        times[name].append(run(src, args, url)[0])
                medians = {}
                for name, src in trees.items():
                    ordered = sorted(times[name])
                    medians[name] = statistics.median(ordered)
                    p90 = ordered[int(0.9 * (len(ordered) - 1))]
                    heavy = ", ".join(heavy_imports(src, args, url)) or "none"
                    print(f"{label:<12} {name:<12} {medians[name]:7.3f} {p90:7.3f}  {heavy}")
                ratio = medians["this tree"] / medians[options.baseline_rev]
                print(f"{label:<12} ratio this/baseline: {ratio:.2f}\n")
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
