"""Fixtures that run the simulator as a real HTTP server on a loopback port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import anthropic
import openai
import pytest
from sim_harness import RunningSimulator, serve

from pilothouse.simulator.scenario import load_scenario


@pytest.fixture(scope="session")
def sim() -> Iterator[RunningSimulator]:
    """The simulator with built-in defaults (instant, no faults), shared by the session."""
    with serve() as running:
        yield running


@pytest.fixture
def client(sim: RunningSimulator) -> Iterator[openai.OpenAI]:
    with sim.openai() as value:
        yield value


@pytest.fixture
def claude(sim: RunningSimulator) -> Iterator[anthropic.Anthropic]:
    with sim.anthropic() as value:
        yield value


@pytest.fixture
def scenario_sim(tmp_path: Path) -> Iterator[Callable[[str], RunningSimulator]]:
    """Start a simulator from scenario YAML text (written to tmp_path and loaded from there)."""
    with ExitStack() as stack:

        def start(yaml_text: str) -> RunningSimulator:
            path = tmp_path / f"scenario-{len(list(tmp_path.iterdir()))}.yaml"
            path.write_text(yaml_text, encoding="utf-8")
            return stack.enter_context(serve(load_scenario(path)))

        yield start
