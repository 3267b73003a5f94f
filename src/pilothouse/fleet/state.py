"""The fleet as one process holds it: every alias and its deployments, each deployment's
health, the events they raise, and (in shared mode) the breaker state shared through
Redis. `sweep` runs every few seconds to raise the slower events (degraded, outlier)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import Any

from prometheus_client import CollectorRegistry

from pilothouse.clock import Clock
from pilothouse.config import ConfigFile
from pilothouse.fleet import compare, events
from pilothouse.fleet.deployments import ModelAlias, TransportFor, build_aliases
from pilothouse.fleet.health import DeploymentHealth
from pilothouse.fleet.shared import SharedBreakers

log = logging.getLogger("pilothouse.fleet")

SWEEP_INTERVAL_SECONDS = 5.0


class Fleet:
    """Build with the config; `start()` inside the event loop, `close()` at the end.
    `installation` names what instances share breakers (the database URL)."""

    def __init__(
        self,
        config: ConfigFile,
        transport_for: TransportFor | None = None,
        *,
        registry: CollectorRegistry | None = None,
        clock: Clock | None = None,
        redis_url: str | None = None,
        installation: str = "",
    ):
        self.config = config
        self.clock = clock or Clock()
        self.events = events.FleetEvents(registry)
        self.aliases: dict[str, ModelAlias] = build_aliases(
            config, transport_for, clock=self.clock, fleet_events=self.events
        )
        self.healths: dict[str, DeploymentHealth] = {
            d.id: d.health for alias in self.aliases.values() for d in alias.deployments
        }
        self.shared = SharedBreakers(redis_url, self.healths, installation) if redis_url else None
        self._outliers: dict[tuple[str, str], list[str]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.shared is not None:
            self.shared.start()
        self._task = asyncio.create_task(self._sweeping(), name="fleet-sweep")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.shared is not None:
            await self.shared.close()

    async def _sweeping(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_SECONDS)
            try:
                self.sweep()
            except Exception:  # the sweep must outlive a bug in one check
                log.exception("fleet sweep failed")

    def sweep(self) -> None:
        """Raise degraded/recovered and outlier/outlier-cleared events on changes."""
        for health in self.healths.values():
            health.check()
        for alias in self.aliases.values():
            if len(alias.deployments) < 2:
                continue
            flagged = self.outliers(alias)
            for d in alias.deployments:
                key = (alias.alias, d.id)
                was, now = self._outliers.get(key), flagged.get(d.id)
                if bool(was) == bool(now):
                    continue
                self._outliers[key] = now or []
                self.events.raise_event(
                    events.FleetEvent(
                        kind=events.OUTLIER if now else events.OUTLIER_CLEARED,
                        deployment=d.id,
                        provider=d.provider_name,
                        owner=d.health.owner,
                        reason="; ".join(now) if now else "answers like its peers again",
                        at=self.clock.now(),
                        alias=alias.alias,
                    )
                )

    def outliers(self, alias: ModelAlias) -> dict[str, list[str]]:
        signals = {d.id: d.signals.totals() for d in alias.deployments}
        return compare.outliers(signals, self.config.fleet.compare_min_samples)

    def status(self) -> dict[str, Any]:
        """Every alias with each deployment's state, failures by class, latency, last
        trip and comparison flag (GET /api/fleet, `pilothouse fleet status`)."""
        aliases = []
        for alias in sorted(self.aliases.values(), key=lambda a: a.alias):
            flagged = self.outliers(alias) if len(alias.deployments) > 1 else {}
            aliases.append(
                {
                    "alias": alias.alias,
                    "strategy": alias.strategy,
                    "max_attempts": alias.max_attempts,
                    "deadline_seconds": alias.deadline_seconds,
                    "deployments": [
                        _deployment(d, flagged.get(d.id, [])) for d in alias.deployments
                    ],
                }
            )
        events_seen = [
            {
                "kind": e.kind,
                "deployment": e.deployment,
                "owner": e.owner,
                "reason": e.reason,
                "at": e.at,
                "alias": e.alias,
                "remote": e.remote,
            }
            for e in reversed(self.events.recent)
        ]
        return {
            "shared": self.shared is not None,
            "window_seconds": self.config.fleet.breaker.window_seconds,
            "aliases": aliases,
            "events": events_seen,
        }


def _deployment(d: Any, flags: list[str]) -> dict[str, Any]:
    health = d.health
    breaker = health.breaker
    totals = health.totals()
    return {
        "deployment": d.id,
        "provider": d.provider_name,
        "model": d.provider_model,
        "owner": health.owner,
        "priority": d.priority,
        "weight": d.weight,
        "state": breaker.state,
        # Rounded up: a breaker still open for 40 ms must not read 0.0 (open for no time).
        "open_for_seconds": math.ceil(breaker.retry_after_seconds() * 10) / 10,
        "trips": breaker.trips,
        "last_trip_at": breaker.last_trip_at,
        "last_trip_reason": breaker.last_trip_reason,
        "degraded": health.degraded,
        **totals,
        "latency_ms_smoothed": health.latency_ms,
        "signals": d.signals.totals(),
        "outlier": bool(flags),
        "outlier_reasons": flags,
    }
