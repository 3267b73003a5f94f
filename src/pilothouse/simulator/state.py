"""Run-time state of one simulator: the scenario, request counters and statistics.

All mutation happens on the server's event loop, so plain counters are safe.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from pilothouse.simulator.choice import Choice
from pilothouse.simulator.scenario import Scenario


@dataclass(frozen=True)
class Admission:
    """Where a request falls in the run: counts of earlier requests and the time since start."""

    total_before: int
    model_before: int
    elapsed_s: float


class SimulatorState:
    """Counters that drive drift phases and seeded draws, plus the numbers behind /simulator/stats."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.reset()

    def reset(self) -> None:
        """Forget every request: counters, statistics and the drift clock start again."""
        self.started = time.monotonic()
        self.generation_total = 0
        self.per_model: Counter[str] = Counter()
        self.by_api: Counter[str] = Counter()
        self.by_model: Counter[str] = Counter()
        self.by_fault: Counter[str] = Counter()
        self.by_phase: Counter[str] = Counter()
        # Generated replies for this scenario's rules, reused for repeated prompts.
        self.reply_cache: dict[tuple[Any, ...], Choice] = {}

    def admit(self, api: str, model: str, generation: bool) -> Admission:
        """Count one request to `model` through `api`; `generation` is False for embeddings.

        Returns the counts before this request, which seed its draws and decide drift.
        """
        admission = Admission(
            total_before=self.generation_total,
            model_before=self.per_model[model],
            elapsed_s=time.monotonic() - self.started,
        )
        if generation:
            self.generation_total += 1
        self.per_model[model] += 1
        self.by_api[api] += 1
        self.by_model[model] += 1
        return admission

    def record(self, fault: str | None, phases: tuple[str, ...]) -> None:
        """Note the fault injected into a request (if any) and the drift phases it ran under."""
        self.by_fault[fault or "none"] += 1
        for phase in phases:
            self.by_phase[phase] += 1

    def stats(self) -> dict[str, Any]:
        """A JSON-ready snapshot for GET /simulator/stats."""
        return {
            "requests_total": sum(self.by_api.values()),
            "generation_requests": self.generation_total,
            "uptime_s": round(time.monotonic() - self.started, 3),
            "by_api": dict(self.by_api),
            "by_model": dict(self.by_model),
            "by_fault": dict(self.by_fault),
            "by_phase": dict(self.by_phase),
        }
