"""The CLI and the SDK without the server: `pilothouse --help` and the commands that call
the API import neither the server's stack nor scipy (checked with `python -X importtime`;
the timing is in bench/cli_startup.py), and they work with the server's packages made
unimportable, as in a light install (`pip install pilothouse`)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from harness import ADMIN_TOKEN, Gateway, Simulator, gateway_config, start_gateway
from pilothouse.cli import COMMANDS, main

REPO = Path(__file__).resolve().parents[2]
SERVER_ONLY = (
    "sqlalchemy",
    "alembic",
    "psycopg",
    "starlette",
    "uvicorn",
    "aiohttp",
    "redis",
    "prometheus_client",
    "immutables",
    "scipy",
)
# Run pilothouse with the server's packages unimportable, as a light install has them.
LIGHT = f"""
import importlib.abc, runpy, sys
class Light(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {SERVER_ONLY!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Light())
sys.argv = ["pilothouse", *sys.argv[1:]]
runpy.run_module("pilothouse", run_name="__main__")
"""


@pytest.fixture(scope="module")
def server(simulator: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    data_dir = tmp_path_factory.mktemp("light")
    gw = start_gateway(gateway_config(simulator), f"sqlite:///{data_dir / 'p.db'}", data_dir)
    gw.admin.post(
        "/api/prompts/house-style/versions", json={"text": "Brief.", "labels": ["production"]}
    )
    hello = {"variables": {}, "messages": [{"role": "user", "content": "Hi. {{> house-style}}"}]}
    gw.admin.post("/api/prompts/hello/versions", json={**hello, "labels": ["production"]})
    promoted = gw.admin.post("/api/routes/r/promote", json={"prompt": "hello@1", "model": "fast"})
    assert promoted.status_code == 201, promoted.text
    yield gw
    gw.stop()


def pilothouse(
    gw: Gateway, *args: str, light: bool = False, importtime: bool = False
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PILOTHOUSE_URL": gw.url, "PILOTHOUSE_ADMIN_TOKEN": ADMIN_TOKEN}
    argv = [sys.executable, *(["-X", "importtime"] if importtime else [])]
    argv += ["-c", LIGHT, *args] if light else ["-m", "pilothouse", *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)


def imported(trace: str) -> set[str]:
    return {
        line.rpartition("|")[2].strip().partition(".")[0]
        for line in trace.splitlines()
        if "|" in line
    }


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("prompts", "ls"),
        ("keys", "list"),
        ("releases", "ls"),
        ("logs",),
        ("contracts", "ls", "hello"),
        ("can-i-promote", "hello@1"),
        ("changelog", "route:r"),
        ("deps", "house-style"),
    ],
)
def test_api_commands_import_neither_the_server_stack_nor_scipy(
    server: Gateway, args: tuple[str, ...]
) -> None:
    done = pilothouse(server, *args, importtime=True)
    assert done.returncode == 0, done.stderr[-2000:]
    heavy = imported(done.stderr) & {*SERVER_ONLY, "httpx", "pydantic"}
    assert heavy == set(), f"`pilothouse {' '.join(args)}` imported {sorted(heavy)}"


def test_the_server_starts_without_the_eval_runner_and_postgresql_driver() -> None:
    """What only some requests need is imported when first needed: the semantic diff's
    comparison (the eval runner, numpy and scipy, ~0.3 s of a server's start) and the
    PostgreSQL driver (a SQLite deployment never loads it)."""
    check = (
        "import sys, pilothouse.server; "
        "print(' '.join(m for m in ('scipy', 'numpy', 'pilothouse.evals.runner', 'psycopg')"
        " if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []


def test_the_cli_and_the_sdk_work_without_the_servers_packages(
    server: Gateway, tmp_path: Path
) -> None:
    (tmp_path / "tone.yaml").write_text("text: Be kind.\n")
    for args in (
        ("--help",),
        ("prompts", "ls"),
        ("prompts", "lint", str(tmp_path)),
        ("prompts", "push", str(tmp_path), "--label", "staging"),
        ("prompts", "show", "tone@staging"),
        ("releases", "show", "r"),
        ("keys", "list"),
    ):
        done = pilothouse(server, *args, light=True)
        assert done.returncode == 0, (args, done.stderr[-2000:])
    refused = pilothouse(server, "serve", light=True)
    assert refused.returncode == 1 and "pip install 'pilothouse[server]'" in refused.stderr
    (tmp_path / "suite.yaml").write_text("name: s\n")
    evals = pilothouse(server, "eval", "run", str(tmp_path / "suite.yaml"), light=True)
    assert evals.returncode == 1 and "pip install 'pilothouse[evals]'" in evals.stderr
    assert pilothouse(server, "diff", "--help", light=True).returncode == 0
    diff = pilothouse(server, "diff", "a@1", "a@2", "--dataset", "x", "--model", "m", light=True)
    assert diff.returncode == 2 and "pip install 'pilothouse[evals]'" in diff.stderr
    sdk = subprocess.run(
        [
            sys.executable,
            "-c",
            LIGHT.replace('runpy.run_module("pilothouse", run_name="__main__")', "")
            + "from pilothouse import Client\n"
            + f"with Client({server.url!r}, {ADMIN_TOKEN!r}, cache_dir={str(tmp_path / 'c')!r}) as c:\n"
            + "    print(c.get_prompt('tone', label='staging').text)\n",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sdk.returncode == 0 and sdk.stdout.strip() == "Be kind.", sdk.stderr[-2000:]


def test_the_light_install_leaves_the_server_out_and_dev_brings_everything() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    light = {d.split(">")[0].split("[")[0].split("<")[0] for d in project["dependencies"]}
    assert light == {"httpx", "click", "pydantic", "pyyaml", "orjson"}
    extras = project["optional-dependencies"]
    assert "pilothouse[server,evals]" in extras["dev"]
    assert any(d.startswith("scipy") for d in extras["evals"])
    assert any(d.startswith("sqlalchemy") for d in extras["server"])


def test_the_help_lists_each_commands_own_summary() -> None:
    context = click.Context(main)
    for name, (_, summary) in COMMANDS.items():
        command = main.get_command(context, name)
        assert command is not None
        assert command.get_short_help_str(limit=1000) == summary, name


def test_the_changelog_help_says_it_reads_a_subject_and_how() -> None:
    shown = CliRunner().invoke(main, ["changelog", "--help"], prog_name="pilothouse")
    assert shown.exit_code == 0
    usage = shown.output.splitlines()[0]
    assert usage.startswith("Usage: pilothouse changelog [OPTIONS] SUBJECT"), usage
    assert "--limit N" in shown.output and "--json" in shown.output


def test_one_prompt_that_cannot_be_exported_does_not_stop_pull(
    server: Gateway, tmp_path: Path
) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{server.data_dir / 'p.db'}")
    with engine.begin() as conn:  # a name the old rules let in, and a row that is damaged
        conn.execute(
            sa.text("INSERT INTO prompts (name, created_at, updated_at) VALUES (:n, :t, :t)"),
            {"n": "bad\x00name", "t": "2026-01-01 00:00:00"},
        )
        conn.execute(
            sa.text(
                "INSERT INTO prompts (name, tags, created_at, updated_at) VALUES (:n, '{x', :t, :t)"
            ),
            {"n": "damaged", "t": "2026-01-01 00:00:00"},
        )
    engine.dispose()
    try:
        done = pilothouse(server, "prompts", "pull", str(tmp_path / "out"))
        assert done.returncode == 1
        assert "'bad\\x00name': not a valid prompt name" in done.stderr
        assert (tmp_path / "out" / "house-style.yaml").exists()
        assert (tmp_path / "out" / "hello.yaml").exists()
        listed = pilothouse(server, "prompts", "ls", "--json")
        assert listed.returncode == 0 and '"damaged"' in listed.stdout
    finally:
        engine = sa.create_engine(f"sqlite:///{server.data_dir / 'p.db'}")
        with engine.begin() as conn:
            for name in ("bad\x00name", "damaged"):
                conn.execute(sa.text("DELETE FROM prompts WHERE name = :n"), {"n": name})
        engine.dispose()
