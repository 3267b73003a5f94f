"""What the eval end-to-end tests share: a simulator scenario with judges that answer,
judges that mostly do not, a model that refuses half the time and one that always fails;
a gateway in front of it; and helpers to write suites and run the CLI as CI would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from harness import ADMIN_TOKEN, Gateway, Simulator

SCENARIO = """
seed: 11
fault_settings: {retry_after_s: 0}
models:
  sim-refuses-half: {faults: {refusal: 0.5}}
  sim-503: {faults: {"503": 1.0}}
  sim-slow: {ttft_ms: 150}
replies:
  - model: sim-judge
    match: ".*"
    json: {score: 4, reason: "The answer names a valid queue."}
  - model: sim-judge-flaky
    match: "GOODCASE"
    json: {score: 5, reason: "Clearly right."}
  - model: sim-judge-flaky
    match: ".*"
    reply: "I would say this looks mostly fine to me."
"""


def config(sim: Simulator) -> str:
    return f"""
providers:
  sim:
    type: openai
    base_url: {sim.openai_url}
    api_key_env: SIM_API_KEY
    timeout_seconds: 5
models:
  fast: {{provider: sim, model: sim-small, pricing: {{input_per_mtok: 0.15, output_per_mtok: 0.60}}}}
  smart: {{provider: sim, model: sim-large, pricing: {{input_per_mtok: 2.5, output_per_mtok: 10}}}}
  embed: {{provider: sim, model: sim-embed, pricing: {{input_per_mtok: 0.02}}}}
  judge: {{provider: sim, model: sim-judge, pricing: {{input_per_mtok: 1, output_per_mtok: 2}}}}
  judge-flaky: {{provider: sim, model: sim-judge-flaky}}
  refuser: {{provider: sim, model: sim-refuses-half}}
  broken: {{provider: sim, model: sim-503}}
  slow: {{provider: sim, model: sim-slow}}
# `broken` opens its breaker: the runner waits out the Retry-After it is given (the
# cooldown), so a short one keeps a run against it seconds, not half a minute, long.
fleet:
  breaker: {{cooldown_seconds: 1, max_cooldown_seconds: 2}}
"""


LABELS = ["billing", "bug", "question"]


def triage_prompt(labels: list[str] | None = None, system: str | None = None) -> dict[str, Any]:
    """A prompt whose answers are JSON `{"label": ...}` with a label from `labels`."""
    return {
        "messages": [
            {"role": "system", "content": system or "Route the ticket to a queue. Answer in JSON."},
            {"role": "user", "content": "{{ticket}}"},
        ],
        "variables": {"ticket": {}},
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "queue",
                "schema": {
                    "type": "object",
                    "properties": {"label": {"enum": labels or LABELS}},
                    "required": ["label"],
                },
            },
        },
    }


def rows(n: int, *, tags: bool = True, marker: str = "") -> list[dict[str, Any]]:
    return [
        {
            "id": f"t{i:02d}",
            "variables": {"ticket": f"{marker}Ticket number {i} about {LABELS[i % 3]}"},
            "expected": LABELS[i % 3],
            **({"tags": [LABELS[i % 3], "even" if i % 2 == 0 else "odd"]} if tags else {}),
        }
        for i in range(n)
    ]


def write_jsonl(path: Path, data: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in data))
    return path


@dataclass
class Setup:
    """A gateway on the eval simulator, with an application key for the CLI."""

    gw: Gateway
    sim: Simulator
    key: str

    @property
    def env(self) -> dict[str, str]:
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("PILOTHOUSE_")},
            "PILOTHOUSE_URL": self.gw.url,
            "PILOTHOUSE_ADMIN_TOKEN": ADMIN_TOKEN,
            "PILOTHOUSE_API_KEY": self.key,
        }

    def push_prompt(self, name: str, body: dict[str, Any], label: str = "production") -> int:
        response = self.gw.admin.post(
            f"/api/prompts/{name}/versions", json={**body, "labels": [label]}
        )
        assert response.status_code in (200, 201), response.text
        return int(response.json()["version"])

    def sim_calls(self) -> int:
        """Requests the simulator (the provider) has answered so far."""
        return int(
            httpx.get(self.sim.url + "/simulator/stats", timeout=10).json()["requests_total"]
        )

    def cli(
        self, *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        """`pilothouse ARGS` in `cwd` (its .pilothouse/ holds the cache and journals)."""
        result = subprocess.run(
            [sys.executable, "-m", "pilothouse", *args],
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            cwd=cwd,
            timeout=timeout,
        )
        assert "Traceback" not in result.stderr, result.stderr
        return result


def suite_text(
    *,
    name: str = "triage",
    target: str = '{prompt: "triage@1", model: fast}',
    dataset: str = "cases.jsonl",
    scorers: str = "  - {type: label_in, path: label, labels: [billing, bug, question], threshold: 0.9}",
    extra: str = "",
    gate: str = "{min_verdicts: 5}",
) -> str:
    return (
        f"name: {name}\n"
        f"target: {target}\n"
        f"dataset: {dataset}\n"
        "concurrency: 4\n"
        f"{extra}"
        "scorers:\n"
        f"{scorers}\n"
        f"gate: {gate}\n"
    )


def artifact(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def only_target(run: dict[str, Any]) -> dict[str, Any]:
    (summary,) = run["summary"]["targets"].values()
    return dict(summary)
