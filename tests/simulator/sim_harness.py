"""Run the simulator as a real HTTP server in a background thread, for tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import anthropic
import httpx
import openai

from pilothouse.simulator.scenario import Scenario
from pilothouse.simulator.server import build_server, create_app
from pilothouse.simulator.state import SimulatorState


@dataclass
class RunningSimulator:
    """A simulator serving in a background thread."""

    url: str
    state: SimulatorState

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    def openai(self, **kwargs: object) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.openai_url, api_key="x", max_retries=0, **kwargs)

    def async_openai(self, **kwargs: object) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.openai_url, api_key="x", max_retries=0, **kwargs)

    def anthropic(self, **kwargs: object) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key="x", max_retries=0, **kwargs)


@contextmanager
def serve(scenario: Scenario | None = None) -> Iterator[RunningSimulator]:
    """Run the simulator on 127.0.0.1 with a free port until the block exits."""
    app = create_app(scenario)
    server, sock = build_server(app, "127.0.0.1", 0)
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("simulator did not start within 10 s")
        time.sleep(0.02)
    try:
        yield RunningSimulator(url=url, state=app.state.simulator)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
