"""Demo mode for `serve` with no provider configured: a simulator, a config, a key, and
on a fresh store one prompt, one fragment and one route.

This is what `make run` shows a newcomer: a working gateway in front of the simulator,
with a ready-to-paste request. The examples in docs/prompts.md, docs/releases.md and
docs/sdk.md run against exactly this (tests/test_docs_examples.py runs them).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import click
import httpx

from pilothouse.config import Settings, load_config_file
from pilothouse.policy import keys as key_policy
from pilothouse.registry import prompts as registry
from pilothouse.registry.prompt_content import PromptContent
from pilothouse.releases.promotion import Promoter
from pilothouse.simulator.scenario import DEMO_SCENARIO_PATH
from pilothouse.store import Store

DEMO_CONFIG = """\
# Written by `pilothouse serve` in demo mode: every alias points at the local simulator.
providers:
  simulator:
    type: openai
    base_url: http://127.0.0.1:{port}/v1
  simulator-anthropic:
    type: anthropic
    base_url: http://127.0.0.1:{port}
models:
  fast:
    provider: simulator
    model: gpt-4o-mini
    pricing: {{input_per_mtok: 0.15, output_per_mtok: 0.60}}
  smart:
    provider: simulator
    model: gpt-4o
    pricing: {{input_per_mtok: 2.50, output_per_mtok: 10.00}}
  claude:
    provider: simulator-anthropic
    model: claude-sonnet-4-5
    pricing: {{input_per_mtok: 3.00, output_per_mtok: 15.00}}
  embed:
    provider: simulator
    model: text-embedding-3-small
    pricing: {{input_per_mtok: 0.02}}
"""


def free_port(preferred: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])


def start_simulator(settings: Settings) -> tuple[subprocess.Popen[bytes], Settings]:
    """Start `pilothouse simulate` and return settings whose config points at it."""
    port = free_port(9100)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pilothouse",
            "simulate",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--scenario",
            str(DEMO_SCENARIO_PATH),  # realistic latency, rare faults, a drift phase
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_ready(process, f"http://127.0.0.1:{port}/healthz")
    except BaseException:  # including Ctrl-C during start-up: never leave it running
        process.kill()
        raise
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / "demo-config.yaml"
    path.write_text(DEMO_CONFIG.format(port=port))
    return process, replace(settings, config_path=path, config=load_config_file(path))


def _wait_ready(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise click.ClickException(
                "the demo simulator did not start; run `pilothouse simulate` to see why"
            )
        time.sleep(0.1)


HOUSE_STYLE = {"text": "Be brief and kind. Never promise refunds."}
SUPPORT_TRIAGE = {
    "variables": {"ticket": {"required": True}, "language": {"default": "English"}},
    "messages": [
        {
            "role": "system",
            "content": "You sort support tickets into queues: billing, shipping or other. "
            "Answer in {{language}}.\n{{> house-style}}",
        },
        {"role": "user", "content": "{{ticket}}"},
    ],
}


def seed(store: Store, settings: Settings) -> str:
    """On a store with no prompts: the `house-style` fragment, the `support-triage` prompt
    (both labelled production) and the `support-triage` route serving it on `fast`.
    Returns the demo key's secret."""
    if not registry.list_prompts(store):
        actor = "serve --demo"
        for name, content, owner in (
            ("house-style", HOUSE_STYLE, "support"),
            ("support-triage", SUPPORT_TRIAGE, "support"),
        ):
            registry.create_version(
                store,
                name,
                PromptContent.model_validate(content),
                owner=owner,
                description="seeded by the demo",
                labels=["production"],
                actor=actor,
            )
        Promoter(store, settings.config.models).promote(
            "support-triage",
            prompt="support-triage@production",
            model="fast",
            params={"temperature": 0.2},
            reason="seeded by the demo",
            owner="support",
            actor=actor,
        )
    return demo_key(store, settings.data_dir)


def demo_key(store: Store, data_dir: Path) -> str:
    """The demo key's secret, kept in the data dir so every demo start can print it."""
    path = data_dir / "demo-key"
    if path.exists():
        secret = path.read_text().strip()
        known = {k.prefix for k in key_policy.list_keys(store)}
        if secret[: len(key_policy.SECRET_PREFIX) + 6] in known:
            return secret
    # The demo key may also run evals (docs/evals.md walks through that with it) and
    # have its Responses API answers stored (docs/gateway.md, "Stored responses").
    _, secret = key_policy.create_key(
        store,
        name="demo",
        user="demo",
        scopes=["evals", "responses:store"],
        actor="serve --demo",
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return secret


def banner(url: str, secret: str) -> str:
    cli = _cli_command()
    return f"""
  Pilothouse demo: a gateway in front of the local provider simulator.

  Try it:
    curl -s {url}/v1/chat/completions \\
      -H "Authorization: Bearer {secret}" -H "Content-Type: application/json" \\
      -d '{{"model": "fast", "messages": [{{"role": "user", "content": "Hello!"}}]}}'

  Or with the openai SDK:
    from openai import OpenAI
    client = OpenAI(base_url="{url}/v1", api_key="{secret}")
    print(client.chat.completions.create(model="fast",
          messages=[{{"role": "user", "content": "Hello!"}}]).choices[0].message.content)

  Models: fast, smart, claude (Anthropic API, translated), embed. The simulator answers
  with realistic latency and the occasional fault, as real providers do. The route
  `route:support-triage` serves the seeded prompt `support-triage` (docs/releases.md).

  For the CLI and the SDK:
    export PILOTHOUSE_URL={url} PILOTHOUSE_API_KEY={secret}
  Then, with PILOTHOUSE_ADMIN_TOKEN set: {cli} logs   ({cli} --help for the rest)
"""


def _cli_command() -> str:
    """How to run the CLI from here: its path when it is not on PATH (e.g. inside .venv)."""
    script = Path(sys.argv[0])
    if script.name == "pilothouse" and shutil.which("pilothouse") != str(script.resolve()):
        try:
            return str(script.resolve().relative_to(Path.cwd()))
        except ValueError:
            return str(script.resolve())
    return "pilothouse"
