"""The commands end to end, as CI runs them: a real `pilothouse serve` in front of a real
`pilothouse simulate` (scripted so that one wording of the triage prompt drops the label
for billing tickets), `contracts verify` through the eval runner and its cache, and each
command's exit status meaning one thing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from contract_harness import BREAKING, SAFE, SCENARIO_TEXT, TICKETS, contract, triage

from harness import (
    ADMIN_TOKEN,
    Gateway,
    Simulator,
    free_port,
    start_gateway,
    start_simulator,
    stop_process,
)


@dataclass
class Setup:
    gw: Gateway
    sim: Simulator
    env: dict[str, str]
    work: Path

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pilothouse", *args],
            cwd=self.work, env={**self.env, **env}, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    def provider_calls(self) -> int:
        stats = httpx.get(self.sim.url + "/simulator/stats", timeout=10).json()
        return int(stats["requests_total"])


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    work = tmp_path_factory.mktemp("contracts-cli")
    (work / "scenario.yaml").write_text(SCENARIO_TEXT)
    sim = start_simulator(work / "scenario.yaml")
    config = (
        f"providers: {{sim: {{type: openai, base_url: '{sim.openai_url}'}}}}\n"
        "models: {fast: {provider: sim, model: sim-small}}\n"
    )
    gw = start_gateway(config, f"sqlite:///{work / 'p.db'}", work / "gw")
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PILOTHOUSE_")}
        env.update(
            PILOTHOUSE_URL=gw.url,
            PILOTHOUSE_ADMIN_TOKEN=ADMIN_TOKEN,
            PILOTHOUSE_API_KEY=gw.create_key(name="ci", scopes=["evals"]),
            PILOTHOUSE_EVAL_CACHE_DIR=str(work / "cache"),
        )
        yield Setup(gw, sim, env, work)
    finally:
        gw.stop()
        stop_process(sim.process)


def push(setup: Setup, system: str, *labels: str) -> None:
    body = {**triage(system), "labels": list(labels)}
    response = setup.gw.admin.post("/api/prompts/triage/versions", json=body)
    assert response.status_code in (200, 201), response.text


def test_verify_gate_and_changelog_from_the_command_line(setup: Setup) -> None:
    push(setup, SAFE, "production")
    bad = setup.work / "bad.yaml"
    bad.write_text(
        yaml.safe_dump({**contract(), "expect": {"patterns": ["(unclosed"]}}, sort_keys=False)
    )
    added = setup.cli("contracts", "add", str(bad))
    assert (
        added.returncode == 1 and f"{bad}:" in added.stderr and "does not compile" in added.stderr
    )
    good = setup.work / "contracts" / "billing-router.yaml"
    good.parent.mkdir()
    good.write_text(yaml.safe_dump(contract(), sort_keys=False))
    added = setup.cli("contracts", "add", "contracts")
    assert added.returncode == 0 and "pending until it first passes" in added.stdout, added.stderr

    assert setup.cli("contracts", "verify", "triage").returncode == 2, "a version is needed"
    other = setup.cli("contracts", "verify", "triage@1", "--contract", "other/x")
    assert other.returncode == 2 and "no contract other/x" in other.stderr
    before = setup.provider_calls()
    first = setup.cli("contracts", "verify", "triage@1")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "holds on triage@1: 12 of 12" in first.stdout and "now active" in first.stdout
    assert setup.provider_calls() == before + 12
    again = setup.cli("contracts", "verify", "triage@1")
    assert again.returncode == 0 and setup.provider_calls() == before + 12, "answered by the cache"
    listed = setup.cli("contracts", "ls", "triage")
    assert "active" in listed.stdout and "passed 100% on triage@1" in listed.stdout

    push(setup, BREAKING)
    failing = setup.cli("contracts", "verify", "triage@2")
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "FAILS on triage@2: 6 of 12" in failing.stdout
    assert 'output: {"team": "billing"}' in failing.stdout
    assert "labels at label: no value at 'label'" in failing.stdout

    assert setup.cli("can-i-promote", "triage@1").returncode == 0
    no = setup.cli("can-i-promote", "triage@2", "--to", "production")
    assert no.returncode == 1 and no.stdout.startswith("no: triage@2 to production")
    assert "sample charge (repeat 1)" in no.stdout or "sample refund" in no.stdout
    assert setup.cli("can-i-promote", "nope@1").returncode == 2
    assert setup.cli("can-i-promote", "triage").returncode == 2
    assert setup.cli("can-i-promote", "triage@2", "--to", "7").returncode == 2
    unreachable = setup.cli(
        "can-i-promote", "triage@2", PILOTHOUSE_URL=f"http://127.0.0.1:{free_port()}"
    )
    assert unreachable.returncode == 3 and "cannot reach" in unreachable.stderr

    refused = setup.cli("prompts", "label", "triage", "2", "production", "--reason", "new wording")
    assert refused.returncode == 1 and "refused by the promotion gate" in refused.stderr

    # The behaviour diff of the change names the flips the contract caught, and it goes
    # into the changelog entry with the move; a diff of another version is refused.
    (setup.work / "tickets.jsonl").write_text(
        "".join(
            json.dumps({"id": k, "variables": {"ticket": t}}) + "\n" for k, t in TICKETS.items()
        )
    )
    diffs = {}
    for old, new in (("triage@1", "triage@2"), ("triage@2", "triage@1")):
        out = setup.work / f"{new}.json"
        ran = setup.cli(
            "diff", old, new, "--dataset", "tickets.jsonl", "--model", "fast",
            "--label-path", "label", "--format", "json", "--out", str(out),
        )  # fmt: skip
        assert ran.returncode == 1, ran.stdout + ran.stderr  # a behaviour changed
        diffs[new] = out
    # old label -> new label: the three billing tickets (charged, refund, invoice) lose it
    matrix = json.loads(diffs["triage@2"].read_text())["labels"]["matrix"]
    assert sum(row.get("(none)", 0) for row in matrix.values()) == 3, matrix
    wrong = setup.cli(
        "prompts", "label", "triage", "2", "production", "--force", "--reason", "parser fixed",
        "--diff", str(diffs["triage@1"]),
    )  # fmt: skip
    assert wrong.returncode == 1 and "new side is" in wrong.stderr, wrong.stderr
    forced = setup.cli(
        "prompts", "label", "triage", "2", "production", "--force", "--reason", "parser fixed",
        "--diff", str(diffs["triage@2"]),
    )  # fmt: skip
    assert forced.returncode == 0, forced.stderr
    log = setup.cli("changelog", "triage")
    assert log.returncode == 0 and "label_move (forced)" in log.stdout
    assert "production: version 1 -> version 2" in log.stdout
    entry = setup.gw.admin.get("/api/changelog", params={"prompt": "triage"}).json()["data"][0]
    flips = entry["diff"]["label_flips"]
    assert sum(n for flip, n in flips.items() if flip.endswith("-> (none)")) == 3, flips
    assert entry["diff"]["sides"]["new"]["prompt"] == "triage@2" and entry["diff"]["changed"]
    deps = setup.cli("deps", "triage")
    assert deps.returncode == 0 and "billing-router" in deps.stdout


def test_route_contracts_verify_a_release_by_arm_or_by_what_it_would_serve(setup: Setup) -> None:
    made = setup.cli(
        "releases", "promote", "support", "--prompt", "triage@1", "--model", "fast",
        "--param", "temperature=0", "--reason", "first",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    on_route = {
        k: v for k, v in contract(route="support").items() if k not in ("prompt", "model", "params")
    }
    path = setup.work / "route.yaml"
    path.write_text(yaml.safe_dump(on_route, sort_keys=False))
    assert setup.cli("contracts", "add", str(path)).returncode == 0
    active = setup.cli("contracts", "verify", "route:support@active")
    assert active.returncode == 0 and "now active" in active.stdout, active.stdout + active.stderr
    started = setup.cli(
        "releases", "canary", "support", "--prompt", "triage@2", "--model", "fast",
        "--param", "temperature=0", "--weight", "10",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    canary = setup.cli("contracts", "verify", "route:support@canary")
    assert canary.returncode == 1 and "FAILS on route:support: triage@2 on fast" in canary.stdout
    assert setup.cli("can-i-promote", "route:support@canary").returncode == 1
    direct = setup.cli(
        "can-i-promote", "route:support", "--prompt", "triage@2", "--model", "fast",
        "--param", "temperature=0",
    )  # fmt: skip
    assert direct.returncode == 1, "the same composition, model and parameters: the same evidence"
    refused = setup.cli("releases", "promote", "support", "--canary", "--reason", "go")
    assert refused.returncode == 1 and "refused by the promotion gate" in refused.stderr
    assert setup.cli("contracts", "verify", "route:support@nightly").returncode == 2
    log = setup.cli("changelog", "route:support")
    assert "canary: none -> triage@2 on fast (temperature=0) at 10%" in log.stdout, log.stdout


def test_verify_refuses_a_subject_that_names_nothing_even_with_no_contracts_on_it(
    setup: Setup,
) -> None:
    response = setup.gw.admin.post("/api/prompts/uncontracted/versions", json=triage(SAFE))
    assert response.status_code in (200, 201), response.text
    made = setup.cli(
        "releases", "promote", "quiet", "--prompt", "uncontracted@1", "--model", "fast",
        "--reason", "a route nobody holds a contract on",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    fine = setup.cli("contracts", "verify", "uncontracted@1")
    assert fine.returncode == 0 and "nothing to verify" in fine.stderr, fine.stderr
    assert setup.cli("contracts", "verify", "route:quiet@active").returncode == 0

    wrong = {
        "an unknown version": ("uncontracted@9",),
        "no canary running": ("route:quiet@canary",),
        "an unknown release prompt": ("route:quiet", "--prompt", "uncontracted@9", "--model", "fast"),
        "an unknown model": ("route:quiet", "--prompt", "uncontracted@1", "--model", "nope"),
    }  # fmt: skip
    for why, args in wrong.items():
        verified = setup.cli("contracts", "verify", *args)
        assert verified.returncode == 2, f"{why}: {verified.stdout}{verified.stderr}"
        assert "nothing to verify" not in verified.stderr, why
    assert "has no canary release" in setup.cli("contracts", "verify", "route:quiet@canary").stderr
