"""Fixtures for the eval end-to-end tests: one simulator with the eval scenario for the
session, and a gateway on it (SQLite) per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eval_harness import SCENARIO, Setup, config

from harness import Simulator, start_gateway, start_simulator, stop_process


@pytest.fixture(scope="session")
def eval_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    scenario = tmp_path_factory.mktemp("eval-scenario") / "scenario.yaml"
    scenario.write_text(SCENARIO)
    sim = start_simulator(scenario)
    yield sim
    stop_process(sim.process)


@pytest.fixture(scope="module")
def setup(eval_sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    data_dir = tmp_path_factory.mktemp("eval-gw")
    gw = start_gateway(config(eval_sim), f"sqlite:///{data_dir / 'p.db'}", data_dir)
    try:
        yield Setup(gw=gw, sim=eval_sim, key=gw.create_key(name="ci-evals", scopes=["evals"]))
    finally:
        gw.stop()
