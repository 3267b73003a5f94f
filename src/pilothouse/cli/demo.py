"""Demo mode for `serve` with no provider configured: a simulator, a config, keys, and on
a store that lacks them, the demo's prompts, routes and releases, a dataset and a
scheduled eval suite.

This is what `make run` shows a newcomer: a working gateway in front of the simulator,
with a ready-to-paste request, and (cli/demo_traffic.py) a little steady traffic with an
incident or two, so every page of the dashboard has something true to show. The
examples in docs/prompts.md, docs/releases.md and docs/sdk.md run against exactly this
(tests/control/test_registry_docs.py runs them).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import click
import httpx

from pilothouse.config import load_config_file
from pilothouse.settings import Settings
from pilothouse.simulator.scenario import DEMO_SCENARIO_PATH

DEMO_CONFIG = """\
# Written by `pilothouse serve` in demo mode: every alias points at the local simulator.
# `assist` and `summary` serve the demo traffic's routes; its incidents happen there
# (demo_scenario.yaml), so `fast`, `smart`, `claude` and `embed` stay clean for your calls.
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
  assist:
    provider: simulator
    model: gpt-4.1-mini
    pricing: {{input_per_mtok: 0.40, output_per_mtok: 1.60}}
  summary:
    provider: simulator-anthropic
    model: claude-haiku-4-5
    pricing: {{input_per_mtok: 1.00, output_per_mtok: 5.00}}
fleet:
  breaker: {{window_seconds: 30}}
# Short windows, so the demo's incidents show within minutes instead of hours.
monitoring:
  evaluate_interval_seconds: 10
  group_wait_seconds: 10
  drift: {{current_minutes: 2, baseline_days: 0.01, seasonal: false, min_samples: 20}}
  slos:
    - {{name: triage-first-token, route: support-triage, sli: ttft, threshold_ms: 1500,
       objective: 0.95, min_events: 50, owner: support}}
    - {{name: reply-refusals, route: support-reply, sli: signal, signal: refusal,
       objective: 0.98, min_events: 50, owner: support}}
    - {{name: summary-availability, route: ticket-summary, sli: availability,
       objective: 0.99, min_events: 20, owner: insights}}
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
            # This process holds the pipe's other end: when it dies, even by kill -9, the
            # simulator sees end of file and stops, rather than keep its port forever.
            "--stop-when-stdin-closes",
        ],
        stdin=subprocess.PIPE,
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


def banner(url: str, secret: str, *, traffic: bool) -> str:
    cli = _cli_command()
    busy = (
        "A little demo traffic (a few requests a second, with a rate-limit burst and a\n"
        "  drift along the way) keeps it busy; `serve --no-demo-traffic` starts without it."
        if traffic
        else "No demo traffic (--no-demo-traffic): the dashboard shows your own calls."
    )
    return f"""
  Pilothouse demo: a gateway in front of the local provider simulator.

  The dashboard: {url}/ (sign in with the admin token).
  {busy}

  Try it:
    curl -s {url}/v1/chat/completions \\
      -H "Authorization: Bearer {secret}" -H "Content-Type: application/json" \\
      -d '{{"model": "fast", "messages": [{{"role": "user", "content": "Hello!"}}]}}'

  Or with the openai SDK:
    from openai import OpenAI
    client = OpenAI(base_url="{url}/v1", api_key="{secret}")
    print(client.chat.completions.create(model="fast",
          messages=[{{"role": "user", "content": "Hello!"}}]).choices[0].message.content)

  Models: fast, smart, claude (Anthropic API, translated), embed, with realistic latency;
  the demo traffic's own models (assist, summary) also see the occasional fault, as real
  providers do. The route `route:support-triage` serves the seeded prompt
  `support-triage` (docs/releases.md), its variables sent beside the messages:
    print(client.chat.completions.create(model="route:support-triage", messages=[],
          extra_body={{"pilothouse": {{"variables": {{"ticket": "I was charged twice"}}}}}},
          ).choices[0].message.content)

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
