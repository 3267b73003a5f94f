"""The demo (`make run`) accelerated, for tests: the demo's config, seed and traffic mix on a
clock the traffic moves instead of sleeping, against the in-process simulator with the
demo's two incidents counted in requests (demo_scenario.yaml times them in seconds).

`ServedDemo` serves it on a real port (uvicorn in a thread), for a browser and for the
scheduled suite, which runs `pilothouse eval run` in a child process against that port.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import uvicorn

from harness import ADMIN_TOKEN, free_port
from inprocess import SimulatedTransport
from pilothouse.cli import demo_seed
from pilothouse.cli.demo import DEMO_CONFIG
from pilothouse.cli.demo_traffic import DemoTraffic
from pilothouse.clock import ManualClock
from pilothouse.config import ProviderSpec, load_config_file
from pilothouse.policy import admin_token
from pilothouse.server import Server, create_server
from pilothouse.settings import Settings
from pilothouse.simulator.scenario import parse_scenario
from pilothouse.simulator.server import create_app as create_simulator_app
from pilothouse.store import open_store

T = TypeVar("T")
# demo_scenario.yaml's incidents, counted in each model's requests: the summary model
# rate-limited for a while, the reply model rambling (and slower) from its 60th call.
SCENARIO = """
seed: 7
{latency}
models:
  gpt-4.1-mini: {{faults: {{"500": 0.01}}}}
drift:
  - {{name: summary-rate-limited, model: claude-haiku-4-5, after_requests: 15,
     until_requests: 60, faults: {{"429": 1.0}}}}
  - {{name: reply-rambles, model: gpt-4.1-mini, after_requests: 60, until_requests: 100000,
     length_multiplier: 3.0, hedging: 0.6, refusal_rate: 0.08, ttft_multiplier: 3.0}}
"""
# First tokens that take real (if short) time, so the TTFT charts have a shape.
LATENCY = "defaults: {ttft_ms: {dist: lognormal, median_ms: 40, p99_ms: 250}}"
RATE = 2.0  # requests per simulated second: enough for the demo config's drift windows


def scenario(*, latency: bool = False) -> Any:
    return parse_scenario(SCENARIO.format(latency=LATENCY if latency else ""))


def accelerated(server: Server, clock: ManualClock) -> Any:
    """A `pace` for DemoTraffic: moves the clock instead of sleeping; at each new minute,
    once the rows so far are stored, the monitor evaluates (SLOs and drift)."""
    minute = [int(clock.now() // 60)]

    async def pace(seconds: float) -> None:
        clock.advance(seconds)
        await asyncio.sleep(0)
        if int(clock.now() // 60) != minute[0]:
            minute[0] = int(clock.now() // 60)
            assert server.writer is not None and server.monitor is not None
            await server.writer.flush()
            now = datetime.fromtimestamp(clock.now(), UTC)
            await asyncio.to_thread(server.monitor.evaluate, now)

    return pace


def seed(server: Server, data_dir: Path, clock: ManualClock) -> dict[str, str]:
    """The demo's seed at the clock's time; the traffic keys."""
    store, config = server.store, server.settings.config
    demo_seed.seed(store, config, data_dir, now=datetime.fromtimestamp(clock.now(), UTC))
    return demo_seed.traffic_keys(store, data_dir)


def traffic(
    keys: dict[str, str], server: Server, clock: ManualClock, minutes: float
) -> DemoTraffic:
    return DemoTraffic(
        keys,
        rate_per_second=RATE,
        seed=3,
        requests=int(minutes * 60 * RATE),
        pace=accelerated(server, clock),
    )


class ServedDemo:
    """The demo server on a free port, run by uvicorn in a thread with its own event loop;
    `call` runs a coroutine on that loop (the demo's traffic, a monitor tick)."""

    def __init__(self, data_dir: Path, clock: ManualClock, *, latency: bool = True):
        self.data_dir = data_dir
        self.clock = clock
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config_path = data_dir / "demo-config.yaml"
        config_path.write_text(DEMO_CONFIG.format(port=9))
        settings = Settings(
            data_dir=data_dir,
            config_path=config_path,
            config=load_config_file(config_path),
            port=self.port,
        )
        self.store = open_store(settings.effective_database_url)
        self.store.upgrade()
        admin_token.prepare(self.store, data_dir, ADMIN_TOKEN)
        simulator = create_simulator_app(scenario(latency=latency))

        def transport_for(name: str, spec: ProviderSpec) -> Any:
            return SimulatedTransport(name, simulator)

        self.server = create_server(settings, self.store, transport_for=transport_for, clock=clock)
        self.keys = seed(self.server, data_dir, clock)
        self._uvicorn = uvicorn.Server(
            uvicorn.Config(
                self.server, host="127.0.0.1", port=self.port, log_config=None, lifespan="on"
            )
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._uvicorn.serve()

    def start(self) -> ServedDemo:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._uvicorn.started:
            assert self._thread.is_alive() and time.monotonic() < deadline, "the demo did not start"
            time.sleep(0.05)
        return self

    def call(self, work: Awaitable[T], timeout: float = 120) -> T:
        assert self._loop is not None

        async def wrapped() -> T:
            return await work

        coroutine: Coroutine[Any, Any, T] = wrapped()
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def run_traffic(self, minutes: float) -> DemoTraffic:
        sent = traffic(self.keys, self.server, self.clock, minutes)
        self.call(sent.run(self.server))
        return sent

    def stop(self) -> None:
        self._uvicorn.should_exit = True
        self._thread.join(timeout=30)
        self.store.close()
