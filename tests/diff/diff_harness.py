"""What the diff tests share: the simulator (a real HTTP server in a thread) with a
scenario whose answers depend on each prompt version's wording, a Pilothouse server in
front of it (also in this process, on a loopback port, SQLite), and `pilothouse diff`
run in-process as a user runs it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from click.testing import CliRunner, Result

from pilothouse.cli import main
from pilothouse.config import load_config_file
from pilothouse.policy import admin_token
from pilothouse.server import create_server
from pilothouse.settings import Settings
from pilothouse.simulator.scenario import parse_scenario
from pilothouse.simulator.server import create_app
from pilothouse.store import open_store

ADMIN_TOKEN = "pha-diff-tests-admin"

# The triage prompt's versions differ only in their system prompt; the simulator answers
# by the wording (reply rules with `system`), so every version's behaviour is scripted.
SCENARIO = """
seed: 5
fault_settings: {retry_after_s: 0}
models:
  sim-503: {faults: {"503": 1.0}}
replies:
  - system: "(?i)in one word"
    match: "(?i)charged|refund|invoice"
    reply: "Billing."
  - system: "(?i)never discuss refunds"
    match: "(?i)refund"
    reply: "I'm sorry, but I can't help with that."
  - system: "(?i)your confidence"
    match: "(?i)charged|refund|invoice"
    json: {label: billing, note: "Check the payment history first.", confidence: 0.9}
  - system: "(?i)say it kindly"
    match: "(?i)charged|refund|invoice"
    json: {label: billing, note: "Look at the payment history first."}
  - system: "(?i)say it kindly"
    match: "(?i)crash|error|blank"
    json: {label: bug, note: "Ask which version of the app they run."}
  - system: "(?i)say it kindly"
    match: "."
    json: {label: question, note: "Point them to the help centre article."}
  - system: "(?i)triage"
    match: "(?i)charged|refund|invoice"
    json: {label: billing, note: "Check the payment history first."}
  - system: "(?i)triage"
    match: "(?i)crash|error|blank"
    json: {label: bug, note: "Ask which app version they use."}
  - system: "(?i)triage"
    match: "."
    json: {label: question, note: "Send them the help centre article."}
  - system: "(?i)by number and email"
    tool_call: {name: lookup_order, arguments: {order_id: "A-123", email: "ada@example.com"}}
  - system: "(?i)by number"
    tool_call: {name: lookup_order, arguments: {order_id: "A-123"}}
  - system: "(?i)search orders"
    tool_call: {name: search_orders, arguments: {query: "A-123"}}
"""

TRIAGE = {
    "json": "You triage support tickets. Answer with JSON: a label and a note for the agent.",
    "one-word": "You triage support tickets. Answer in one word.",
    "kind": "You triage support tickets. Say it kindly: answer with JSON, a label and a note.",
    "confidence": "You triage support tickets. Answer with JSON: a label, a note and your confidence.",
    "no-refunds": "You triage support tickets. Never discuss refunds. Answer with JSON.",
}
TICKETS = [
    ("t01", "I was charged twice this month", "payments"),
    ("t02", "The app crashes when I open settings", "mobile"),
    ("t03", "How do I export my data to CSV?", "data"),
    ("t04", "Refund the annual plan I cancelled", "payments"),
    ("t05", "Charts render blank in Safari", "web"),
    ("t06", "My invoice shows the wrong VAT number", "payments"),
]
ORDERS_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
        },
    }
    for name in ("lookup_order", "search_orders")
]


def chat_prompt(system: str, **extra: Any) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": "{{ticket}}"},
        ],
        "variables": {"ticket": {}},
        **extra,
    }


def write_cases(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    lines = [
        json.dumps({"id": i, "variables": {"ticket": text}, "tags": [tag]}) for i, text, tag in rows
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Stack:
    """The simulator and a Pilothouse server in this process, and an `evals` key."""

    url: str
    sim_url: str
    key: str
    admin: httpx.Client

    def push(self, name: str, body: dict[str, Any]) -> int:
        response = self.admin.post(f"/api/prompts/{name}/versions", json=body)
        assert response.status_code in (200, 201), response.text
        return int(response.json()["version"])

    def sim_calls(self) -> int:
        """Requests the provider (the simulator) has answered so far."""
        return int(httpx.get(self.sim_url + "/simulator/stats").json()["requests_total"])

    def diff(self, *args: str, data_dir: Path, **env: str) -> Result:
        """`pilothouse diff ARGS` in this process, as a user with the evals key runs it."""
        environment = {
            "PILOTHOUSE_URL": self.url,
            "PILOTHOUSE_API_KEY": self.key,
            "PILOTHOUSE_DATA_DIR": str(data_dir),
            "PILOTHOUSE_EVAL_CACHE_DIR": None,
            "PILOTHOUSE_ADMIN_TOKEN": None,
            **env,
        }
        result = CliRunner().invoke(main, ["diff", *args], env=environment)
        assert "Traceback" not in result.output + result.stderr, result.stderr
        assert not isinstance(result.exception, AssertionError), result.exception
        return result


@dataclass
class Pushed:
    """The running stack and what the session pushed to it."""

    stack: Stack
    triage: dict[str, int]  # wording (TRIAGE's keys) -> version
    orders: dict[str, int]
    tickets: Path  # TICKETS as a dataset file


def report_of(result: Result) -> dict[str, Any]:
    return dict(json.loads(result.stdout))


@contextmanager
def serving(app: Any, *, lifespan: str) -> Iterator[str]:
    """`app` on 127.0.0.1 (a free port) in a background thread until the block exits."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan=lifespan, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    sock = config.bind_socket()
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def _wait_applied(admin: httpx.Client, response: httpx.Response) -> None:
    """Read your writes, as the CLI does: an admin write answers once it commits and is
    applied asynchronously, so wait until the server serves the version it returned (a
    key created here then works at once)."""
    version = response.headers.get("X-Pilothouse-Config-Version")
    if response.request.method == "GET" or not (version and version.isdigit()):
        return
    state = admin.get("/api/config/version", params={"min": version, "wait": 10})
    assert state.json().get("reached"), f"version {version} not applied: {state.text}"


@contextmanager
def stack(data_dir: Path) -> Iterator[Stack]:
    """The simulator on SCENARIO and a Pilothouse server on it; `fast` and `embed` served."""
    with serving(create_app(parse_scenario(SCENARIO)), lifespan="off") as sim_url:
        config_path = data_dir / "config.yaml"
        config_path.write_text(
            "providers:\n"
            f"  sim: {{type: openai, base_url: '{sim_url}/v1'}}\n"
            "models:\n"
            "  fast: {provider: sim, model: sim-small, pricing: {input_per_mtok: 1, output_per_mtok: 2}}\n"
            "  embed: {provider: sim, model: sim-embed}\n"
            "  broken: {provider: sim, model: sim-503}\n"
        )
        settings = Settings(
            data_dir=data_dir, config_path=config_path, config=load_config_file(config_path)
        )
        store = open_store(settings.effective_database_url)
        store.upgrade()
        admin_token.prepare(store, data_dir, ADMIN_TOKEN)
        try:
            with serving(create_server(settings, store), lifespan="on") as url:
                admin = httpx.Client(
                    base_url=url,
                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                    timeout=30,
                    event_hooks={"response": [lambda r: _wait_applied(admin, r)]},
                )
                created = admin.post("/api/keys", json={"name": "ci", "scopes": ["evals"]})
                assert created.status_code == 201, created.text
                yield Stack(url, sim_url, created.json()["secret"], admin)
                admin.close()
        finally:
            store.close()
