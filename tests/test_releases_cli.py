"""The releases, models and doctor commands against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from harness import ADMIN_TOKEN, Gateway, Simulator, gateway_config, start_gateway


@pytest.fixture(scope="module")
def gw(simulator: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    data_dir = tmp_path_factory.mktemp("rel-cli")
    gateway = start_gateway(gateway_config(simulator), f"sqlite:///{data_dir / 'p.db'}", data_dir)
    body = {
        "messages": [{"role": "user", "content": "{{q}}"}],
        "variables": {"q": {}},
        "labels": ["production"],
    }
    gateway.admin.post("/api/prompts/qa/versions", json=body)
    gateway.admin.post(
        "/api/prompts/qa/versions",
        json={**body, "messages": [{"role": "user", "content": "Q: {{q}}"}]},
    )
    yield gateway
    gateway.stop()


def run(gw: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PILOTHOUSE_URL": gw.url, "PILOTHOUSE_ADMIN_TOKEN": ADMIN_TOKEN}
    return subprocess.run(
        [sys.executable, "-m", "pilothouse", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_promote_canary_rollback_history(gw: Gateway) -> None:
    out = run(
        gw,
        "releases",
        "promote",
        "qa",
        "--prompt",
        "qa@1",
        "--model",
        "fast",
        "--param",
        "temperature=0.2",
        "--owner",
        "search",
        "--reason",
        "launch",
    )
    assert out.returncode == 0, out.stderr
    assert "qa: active is now rel_" in out.stdout and "qa@1 on fast (temperature=0.2)" in out.stdout
    second = run(gw, "releases", "promote", "qa", "--prompt", "qa:production", "--model", "smart")
    assert "qa@2 on smart" in second.stdout, second.stderr
    canary = run(
        gw, "releases", "canary", "qa", "--prompt", "qa@1", "--model", "fast", "--weight", "10"
    )
    assert "canary rel_" in canary.stdout and "at 10%" in canary.stdout
    listing = json.loads(run(gw, "releases", "ls", "--json").stdout)
    assert listing[0]["canary_weight"] == 10 and listing[0]["owner"] == "search"
    rolled = run(gw, "releases", "rollback", "qa", "--reason", "bad")
    assert "rolled back to rel_" in rolled.stdout and "qa@1 on fast" in rolled.stdout
    history = run(gw, "releases", "history", "qa").stdout
    assert history.index("rollback") < history.index("canary 10%") < history.index("promote")
    bad = run(
        gw,
        "releases",
        "promote",
        "qa",
        "--prompt",
        "qa@1",
        "--model",
        "fast",
        "--param",
        "temprature=1",
    )
    assert bad.returncode == 1 and "unknown release parameter 'temprature'" in bad.stderr
    usage = run(gw, "releases", "promote", "qa")
    assert usage.returncode == 2 and "give --prompt and --model" in usage.stderr


def test_route_settings_store_responses(gw: Gateway) -> None:
    made = run(gw, "releases", "promote", "kept", "--prompt", "qa@1", "--model", "fast")
    assert made.returncode == 0, made.stderr
    assert "store_responses off" in run(gw, "releases", "show", "kept").stdout
    on = run(gw, "releases", "settings", "kept", "--store-responses", "on", "--reason", "chat")
    assert on.returncode == 0 and "kept: store_responses on" in on.stdout, on.stderr
    assert "store_responses on" in run(gw, "releases", "show", "kept").stdout
    missing = run(gw, "releases", "settings", "nope", "--store-responses", "on")
    assert missing.returncode == 1 and "no route 'nope'" in missing.stderr


def test_models_and_doctor(gw: Gateway) -> None:
    assert "retired" in run(gw, "models", "ls").stdout
    run(gw, "releases", "promote", "aging", "--prompt", "qa@1", "--model", "retiring")
    doctor = run(gw, "doctor")
    assert doctor.returncode == 0 and "aging" in doctor.stdout and "retiring" in doctor.stdout
    assert "successor is 'fast'" in doctor.stdout
    assert "no route pins" in run(gw, "doctor", "--within-days", "5").stdout
