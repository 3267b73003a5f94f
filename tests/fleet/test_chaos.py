"""Chaos, end to end: two `pilothouse simulate` processes behind one alias of a real
`pilothouse serve`, called through the official openai SDK; the request log and
`GET /api/fleet` (and `pilothouse fleet status`) say what happened."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from harness import (
    ADMIN_TOKEN,
    Gateway,
    Simulator,
    free_port,
    fresh_schema,
    start_gateway,
    stop_process,
    wait_http,
)

HELLO = [{"role": "user", "content": "Say hello"}]


def simulator(tmp: Path, name: str, scenario: str, port: int | None = None) -> Simulator:
    path = tmp / f"{name}.yaml"
    path.write_text(scenario)
    port = port or free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pilothouse",
            "simulate",
            "--port",
            str(port),
            "--scenario",
            str(path),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/healthz", process)
    return Simulator(url, process)


def fleet_config(primary: Simulator, secondary: Simulator, **breaker: Any) -> str:
    settings = {
        "min_requests": 5,
        "failure_ratio": 0.2,
        "window_seconds": 30,
        "cooldown_seconds": 2,
        **breaker,
    }
    return f"""
providers:
  primary: {{type: openai, base_url: {primary.openai_url}, timeout_seconds: 2, owner: team-primary}}
  secondary: {{type: openai, base_url: {secondary.openai_url}, timeout_seconds: 2, owner: team-secondary}}
models:
  fast:
    deployments:
      - {{provider: primary, model: sim-small, priority: 1}}
      - {{provider: secondary, model: sim-small, priority: 2}}
fleet:
  deadline_seconds: 10
  breaker: {json.dumps(settings)}
"""


def sdk(gw: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=30)


def deployment(gw: Gateway, name: str) -> dict[str, Any]:
    status = gw.admin.get("/api/fleet").json()
    [fast] = [a for a in status["aliases"] if a["alias"] == "fast"]
    return next(d for d in fast["deployments"] if d["deployment"] == name)


def sim_calls(sim: Simulator) -> int:
    return int(httpx.get(sim.url + "/simulator/stats").json()["generation_requests"])


@pytest.fixture
def sims(tmp_path: Path) -> Iterator[dict[str, Simulator]]:
    started: dict[str, Simulator] = {}
    yield started
    for sim in started.values():
        stop_process(sim.process)


def gateway(
    tmp_path: Path,
    config: str,
    env: dict[str, str] | None = None,
    name: str = "gw",
    database_url: str | None = None,
) -> Gateway:
    data = tmp_path / name
    return start_gateway(config, database_url or f"sqlite:///{data / 'p.db'}", data, env=env)


def test_malformed_200s_open_the_breaker_and_no_client_sees_one(
    tmp_path: Path, sims: dict[str, Simulator]
) -> None:
    sims["primary"] = simulator(tmp_path, "primary", "seed: 3\nfaults: {malformed: 0.3}\n")
    sims["secondary"] = simulator(tmp_path, "secondary", "seed: 4\n")
    gw = gateway(tmp_path, fleet_config(sims["primary"], sims["secondary"]))
    try:
        client = sdk(gw, gw.create_key())
        answers = [client.chat.completions.create(model="fast", messages=HELLO) for _ in range(40)]
        # Every answer parsed (the SDK raises on a malformed body) and has content.
        assert all(a.choices[0].message.content for a in answers)
        rows = gw.log_rows(40)
        assert len(rows) == 40 and all(r["status_code"] == 200 for r in rows)
        failed_over = [r for r in rows if r["attempts"]]
        assert failed_over, "the primary's malformed answers were retried on the secondary"
        assert all(
            [a["error_class"] for a in r["attempts"]] == ["malformed", None]
            and r["provider"] == "secondary"
            for r in failed_over
        )
        primary = deployment(gw, "primary/sim-small")
        assert primary["trips"] >= 1 and "within 30 s" in primary["last_trip_reason"]
        assert primary["failures_by_class"]["malformed"] >= 1
        assert primary["owner"] == "team-primary"
        # While open, requests went straight to the secondary.
        straight = [r for r in rows if r["provider"] == "secondary" and r["attempt_count"] == 1]
        assert straight
        events = gw.admin.get("/api/fleet").json()["events"]
        assert any(e["kind"] == "breaker_opened" and e["owner"] == "team-primary" for e in events)
        logged = [json.loads(line) for line in gw.output().splitlines() if line.startswith("{")]
        opened = [e for e in logged if e.get("event") == "breaker_opened"]
        assert opened and opened[0]["owner"] == "team-primary" and opened[0]["level"] == "warning"
        metrics = gw.admin.get("/metrics").text
        assert (
            'pilothouse_fleet_events_total{deployment="primary/sim-small",kind="breaker_opened"}'
            in metrics
        )
    finally:
        gw.stop()


def test_a_recovered_primary_is_probed_and_gets_its_traffic_back(
    tmp_path: Path, sims: dict[str, Simulator]
) -> None:
    sims["primary"] = simulator(tmp_path, "primary", "faults: {malformed: 1.0}\n")
    sims["secondary"] = simulator(tmp_path, "secondary", "seed: 4\n")
    gw = gateway(tmp_path, fleet_config(sims["primary"], sims["secondary"]))
    try:
        client = sdk(gw, gw.create_key())
        for _ in range(5):
            client.chat.completions.create(model="fast", messages=HELLO)
        assert deployment(gw, "primary/sim-small")["state"] == "open"
        # The primary recovers: a fresh simulator, on the same address, without faults.
        port = int(sims["primary"].url.rsplit(":", 1)[1])
        stop_process(sims["primary"].process)
        sims["primary"] = simulator(tmp_path, "primary-ok", "seed: 5\n", port=port)
        deadline = time.monotonic() + 30
        while deployment(gw, "primary/sim-small")["open_for_seconds"] > 0:
            assert time.monotonic() < deadline, "the cool-down never ended"
            time.sleep(0.1)
        before = sim_calls(sims["primary"])
        for _ in range(5):
            client.chat.completions.create(model="fast", messages=HELLO)
        assert sim_calls(sims["primary"]) - before == 5  # the probe, then all the traffic
        primary = deployment(gw, "primary/sim-small")
        assert primary["state"] == "closed"
        kinds = [e["kind"] for e in gw.admin.get("/api/fleet").json()["events"]]
        assert kinds[:3] == [
            "breaker_closed",
            "breaker_half_open",
            "breaker_opened",
        ]  # newest first
        rows = gw.log_rows(10)
        assert [r["provider"] for r in rows[:5]] == ["primary"] * 5
    finally:
        gw.stop()


def test_both_down_gives_clean_503s_quickly_with_every_attempt_logged(
    tmp_path: Path, sims: dict[str, Simulator]
) -> None:
    sims["primary"] = simulator(tmp_path, "primary", "faults: {timeout: 1.0}\n")
    sims["secondary"] = simulator(tmp_path, "secondary", 'faults: {"503": 1.0}\n')
    gw = gateway(tmp_path, fleet_config(sims["primary"], sims["secondary"], failure_ratio=0.5))
    try:
        client = sdk(gw, gw.create_key())
        statuses = []
        for _ in range(8):
            with pytest.raises(openai.APIStatusError) as failed:
                client.chat.completions.create(model="fast", messages=HELLO)
            statuses.append(failed.value.status_code)
            error = failed.value.body
            assert isinstance(error, dict) and error["type"] == "no_healthy_deployment"
            assert "'fast'" in error["message"]
            assert int(failed.value.response.headers["retry-after"]) >= 1
        assert statuses == [503] * 8
        rows = gw.log_rows(8)
        assert len(rows) == 8
        tried = [r for r in rows if r["attempt_count"]]
        assert len(tried) == 5  # then both breakers were open: refused without a call
        for row in tried:
            assert [(a["deployment"], a["error_class"]) for a in row["attempts"]] == [
                ("primary/sim-small", "timeout"),
                ("secondary/sim-small", "upstream_5xx"),
            ]
        assert all(
            r["attempt_count"] == 0 and r["attempts"] is None for r in rows if r not in tried
        )
        assert all(r["latency_ms"] < 10_000 for r in rows)  # the deadline bounds each one
        cli = subprocess.run(
            [sys.executable, "-m", "pilothouse", "fleet", "status"],
            capture_output=True,
            text=True,
            env={**os.environ, "PILOTHOUSE_URL": gw.url, "PILOTHOUSE_ADMIN_TOKEN": ADMIN_TOKEN},
            timeout=60,
        )
        assert cli.returncode == 0, cli.stderr
        lines = {line.split()[1]: line for line in cli.stdout.splitlines()[1:] if line.strip()}
        assert "open" in lines["primary/sim-small"] and "timeout 5" in lines["primary/sim-small"]
        assert "upstream_5xx 5" in lines["secondary/sim-small"]
    finally:
        gw.stop()


def test_a_stream_cut_midway_is_an_error_counted_against_the_deployment_and_not_retried(
    tmp_path: Path, sims: dict[str, Simulator]
) -> None:
    sims["primary"] = simulator(
        tmp_path, "primary", "faults: {truncate: 1.0}\nfault_settings: {truncate_after_chunks: 3}\n"
    )
    sims["secondary"] = simulator(tmp_path, "secondary", "seed: 4\n")
    gw = gateway(tmp_path, fleet_config(sims["primary"], sims["secondary"]))
    try:
        client = sdk(gw, gw.create_key())
        received = []
        with pytest.raises(openai.APIError, match="without"):
            for event in client.chat.completions.create(model="fast", messages=HELLO, stream=True):
                if event.choices and event.choices[0].delta.content:
                    received.append(event.choices[0].delta.content)
        assert received, "content was delivered before the cut"
        assert sim_calls(sims["secondary"]) == 0  # never restarted elsewhere
        [row] = gw.log_rows(1)
        assert (row["provider"], row["outcome"], row["attempt_count"]) == (
            "primary",
            "upstream_truncated",
            1,
        )
        assert row["attempts"] == [
            {
                "deployment": "primary/sim-small",
                "error_class": "truncated",
                "latency_ms": row["attempts"][0]["latency_ms"],
            }
        ]
        primary = deployment(gw, "primary/sim-small")
        assert primary["failures_by_class"] == {"truncated": 1}
    finally:
        gw.stop()


def test_a_breaker_opened_on_one_instance_is_open_on_the_other(
    tmp_path: Path, sims: dict[str, Simulator], postgres_base_url: str, redis_url: str
) -> None:
    sims["primary"] = simulator(tmp_path, "primary", "faults: {malformed: 1.0}\n")
    sims["secondary"] = simulator(tmp_path, "secondary", "seed: 4\n")
    config = fleet_config(sims["primary"], sims["secondary"], cooldown_seconds=60)
    env = {"PILOTHOUSE_REDIS_URL": redis_url}
    with fresh_schema(postgres_base_url) as database_url:
        one = gateway(tmp_path, config, env, "one", database_url)
        two = gateway(tmp_path, config, env, "two", database_url)
        try:
            key = one.create_key()
            assert deployment(two, "primary/sim-small")["state"] == "closed"
            for _ in range(5):
                sdk(one, key).chat.completions.create(model="fast", messages=HELLO)
            assert deployment(one, "primary/sim-small")["state"] == "open"
            opened = time.monotonic()
            while deployment(two, "primary/sim-small")["state"] != "open":
                assert time.monotonic() - opened < 5, "instance two never saw the breaker open"
                time.sleep(0.01)
            print(f"\nbreaker open on the second instance after {time.monotonic() - opened:.3f} s")
            before = sim_calls(sims["primary"])
            two_client = sdk(two, key)
            deadline = time.monotonic() + 10
            while True:  # the key reaches instance two through the change bus
                try:
                    answer = two_client.chat.completions.create(model="fast", messages=HELLO)
                    break
                except openai.AuthenticationError:
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
            assert answer.choices[0].message.content
            for _ in range(4):
                two_client.chat.completions.create(model="fast", messages=HELLO)
            assert sim_calls(sims["primary"]) == before  # instance two never sent it anything
            events = two.admin.get("/api/fleet").json()["events"]
            assert events[0]["kind"] == "breaker_opened" and events[0]["remote"] is True
        finally:
            one.stop()
            two.stop()
