"""Test harness: real processes (simulator, gateway) and real databases, used by the
fixtures in conftest.py and by tests that start their own."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

IN_CI = os.environ.get("CI", "").lower() == "true"
ADMIN_TOKEN = "pha-test-admin-token"


def service_url(env: str, local_default: str) -> str | None:
    """The service named by `env`, else the machine's local one (a test that cannot reach
    it skips, except in CI, where it fails)."""
    return os.environ.get(env) or local_default


def unavailable(what: str, env: str, why: str) -> None:
    message = f"{what} tests need {env} ({why})"
    if IN_CI:
        pytest.fail(f"{message}: in CI the service must be running", pytrace=False)
    pytest.skip(message)


@contextmanager
def fresh_schema(postgres_base_url: str) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh, empty schema dropped afterwards."""
    schema = "t_" + secrets.token_hex(6)
    admin = sa.create_engine(postgres_base_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in postgres_base_url else "?"
    yield f"{postgres_base_url}{separator}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes] | None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def stop_process(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@dataclass
class Simulator:
    url: str  # root, e.g. http://127.0.0.1:PORT
    process: subprocess.Popen[bytes]

    @property
    def openai_url(self) -> str:
        return self.url + "/v1"


def start_simulator(scenario: Path | None = None) -> Simulator:
    port = free_port()
    args = [sys.executable, "-m", "pilothouse", "simulate", "--port", str(port)]
    if scenario is not None:
        args += ["--scenario", str(scenario)]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/healthz", process)
    return Simulator(url, process)


# Faults are scripted per model so they can be triggered through the gateway.
TEST_SCENARIO = """
seed: 7
fault_settings: {retry_after_s: 3, truncate_after_chunks: 3, slow_drip_ms: {min_ms: 300, max_ms: 300}}
models:
  fault-429: {faults: {"429": 1.0}}
  fault-500: {faults: {"500": 1.0}}
  fault-503: {faults: {"503": 1.0}}
  fault-timeout: {faults: {timeout: 1.0}}
  fault-malformed: {faults: {malformed: 1.0}}
  fault-truncate: {faults: {truncate: 1.0}}
  fault-empty: {faults: {empty: 1.0}}
  fault-refusal: {faults: {refusal: 1.0}}
  slow-first-token: {ttft_ms: 1500}
  slow-stream: {tokens_per_second: 10, tokens_per_chunk: 1, reply_tokens: 200}
replies:
  - match: "REFUND"
    reply: "queue: billing"
  - model: sim-judge
    match: ".*"
    json: {score: 4, reason: "The answer names a valid queue."}
  - model: sim-judge-prose
    match: ".*"
    reply: "I would say this looks mostly fine to me."
"""
FAULTS = ("429", "500", "503", "timeout", "malformed", "truncate", "empty", "refusal")


def gateway_config(sim: Simulator, *, keepalive_seconds: float = 0.3) -> str:
    """OpenAI-mode and Anthropic-mode aliases on the simulator, plus one alias per fault
    (`f-429`, ... through OpenAI; `c-429`, ... through Anthropic)."""
    fault_models = "".join(
        f"  f-{name}: {{provider: sim, model: fault-{name}}}\n"
        f"  c-{name}: {{provider: sim-anthropic, model: fault-{name}}}\n"
        for name in FAULTS
    )
    timeout = 2
    return f"""
providers:
  sim:
    type: openai
    base_url: {sim.openai_url}
    api_key_env: SIM_API_KEY
    timeout_seconds: {timeout}
  sim-patient:  # the slow models, with ample slack over their 1.5 s first token
    type: openai
    base_url: {sim.openai_url}
    api_key_env: SIM_API_KEY
    timeout_seconds: 10
  sim-anthropic:
    type: anthropic
    base_url: {sim.url}
    api_key_env: SIM_API_KEY
    timeout_seconds: {timeout}
models:
  fast:
    provider: sim
    model: sim-small
    pricing: {{input_per_mtok: 0.15, output_per_mtok: 0.60}}
  smart:
    provider: sim
    model: sim-large
    pricing: {{input_per_mtok: 2.5, output_per_mtok: 10, cached_input_per_mtok: 1.25}}
  claude:
    provider: sim-anthropic
    model: sim-claude
    pricing: {{input_per_mtok: 3, output_per_mtok: 15}}
  embed:
    provider: sim
    model: sim-embed
    pricing: {{input_per_mtok: 0.02}}
  slow-first-token: {{provider: sim-patient, model: slow-first-token}}
  slow-stream: {{provider: sim-patient, model: slow-stream}}
  retiring: {{provider: sim, model: sim-old, retirement_date: {date.today() + timedelta(days=30)}, successor: fast}}
  legacy: {{provider: sim, model: sim-legacy, lifecycle: retired, successor: fast}}
  beta: {{provider: sim, model: sim-beta, lifecycle: preview}}
  judge: {{provider: sim, model: sim-judge}}
  judge-prose: {{provider: sim, model: sim-judge-prose}}
{fault_models}
gateway:
  keepalive_interval_seconds: {keepalive_seconds}
"""


@dataclass
class Gateway:
    """A `pilothouse serve` process on a free port."""

    url: str
    process: subprocess.Popen[bytes]
    data_dir: Path
    database_url: str
    log_path: Path
    admin: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.admin = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=30,
            event_hooks={"response": [self._wait_applied]},
        )

    def _wait_applied(self, response: httpx.Response) -> None:
        """Read your writes, as the CLI does: an admin write answers once it commits and the
        instance applies it asynchronously, so wait until this instance serves the
        configuration version the write returned (a key created here then works here)."""
        version = response.headers.get("X-Pilothouse-Config-Version")
        if response.request.method == "GET" or not (version and version.isdigit()):
            return
        state = self.admin.get("/api/config/version", params={"min": version, "wait": 10})
        assert state.json().get("reached"), f"version {version} not applied: {state.text}"

    def create_key(self, **body: Any) -> str:
        response = self.admin.post("/api/keys", json={"name": "test", **body})
        assert response.status_code == 201, response.text
        return str(response.json()["secret"])

    def log_rows(
        self, expected: int | None = None, timeout: float = 10, **params: Any
    ) -> list[dict[str, Any]]:
        """Request-log rows; waits until `expected` rows are there (the writer batches)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.admin.get("/api/requests", params={"limit": 1000, **params}).json()["data"]
            if expected is None or len(rows) >= expected or time.monotonic() > deadline:
                return list(rows)
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.admin.close()
        return stop_process(self.process, sig)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_gateway(
    config_text: str,
    database_url: str,
    data_dir: Path,
    env: dict[str, str] | None = None,
    port: int | None = None,
) -> Gateway:
    """`port`: a fixed port, e.g. to restart a stopped gateway where its clients expect it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "config.yaml"
    config.write_text(config_text)
    port = port or free_port()
    log_path = data_dir / f"serve-{port}.log"
    environment = {
        **os.environ,
        "PILOTHOUSE_ADMIN_TOKEN": ADMIN_TOKEN,
        "PILOTHOUSE_DATABASE_URL": database_url,
        "SIM_API_KEY": "sim-secret",
        **(env or {}),
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pilothouse",
                "serve",
                "--port",
                str(port),
                "--config",
                str(config),
                "--data-dir",
                str(data_dir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/readyz", process)
    except RuntimeError:
        stop_process(process)
        raise RuntimeError(f"gateway did not start:\n{log_path.read_text()}") from None
    return Gateway(url, process, data_dir, database_url, log_path)
