"""The order in which one request tries an alias's deployments, by the alias's strategy.

- `priority`: lowest priority number first; deployments of equal priority in a weighted
  random order (so equal peers share the traffic).
- `weighted`: a weighted random order (each request's first choice is drawn by weight).
- `least_latency`: lowest smoothed latency first; a deployment with no measurement yet
  goes first, so every deployment gets measured.

Breakers are not consulted here: the failover loop skips an open one as it reaches it.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from pilothouse.fleet.deployments import Deployment, ModelAlias


def order(alias: ModelAlias, rng: random.Random | None = None) -> tuple[Deployment, ...]:
    deployments = alias.deployments
    if len(deployments) == 1:
        return deployments
    draw = (rng or random).random
    if alias.strategy == "weighted":
        return _weighted(list(deployments), draw)
    if alias.strategy == "least_latency":
        return tuple(
            sorted(
                deployments,
                key=lambda d: -1.0 if d.health.latency_ms is None else d.health.latency_ms,
            )
        )
    # priority: already sorted by priority; shuffle ties by weight
    if not alias.priority_ties:
        return deployments
    out: list[Deployment] = []
    start = 0
    while start < len(deployments):
        end = start + 1
        while end < len(deployments) and deployments[end].priority == deployments[start].priority:
            end += 1
        group = list(deployments[start:end])
        out.extend(_weighted(group, draw) if len(group) > 1 else group)
        start = end
    return tuple(out)


def _weighted(deployments: list[Deployment], draw: Callable[[], float]) -> tuple[Deployment, ...]:
    # Efraimidis-Spirakis: sort by u^(1/w); weight 0 goes last (only as a fallback).
    def key(d: Deployment) -> float:
        return draw() ** (1.0 / d.weight) if d.weight > 0 else -1.0

    return tuple(sorted(deployments, key=key, reverse=True))
