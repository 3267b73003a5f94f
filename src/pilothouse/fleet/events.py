"""Fleet events for people: a deployment's breaker opened or closed, it degraded or
recovered, it answers unlike its peers. Each is a JSON log line naming the provider's
owner and a metric; `alert` is the one place the monitoring issue's alerting plugs in."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

log = logging.getLogger("pilothouse.fleet")

OPENED = "breaker_opened"
HALF_OPENED = "breaker_half_open"
CLOSED = "breaker_closed"
DEGRADED = "degraded"
RECOVERED = "recovered"
OUTLIER = "outlier"  # answers 200 but unlike its peers (compare.py)
OUTLIER_CLEARED = "outlier_cleared"
_WARNINGS = frozenset({OPENED, DEGRADED, OUTLIER})


@dataclass(frozen=True, slots=True)
class FleetEvent:
    kind: str
    deployment: str  # provider/model
    provider: str
    owner: str | None
    reason: str
    at: float
    alias: str | None = None
    remote: bool = False  # seen from another instance's transition (shared mode)


class FleetEvents:
    """Raises fleet events: log line, metric, alert."""

    def __init__(self, registry: CollectorRegistry | None = None):
        registry = registry or CollectorRegistry()
        self.counter = Counter(
            "pilothouse_fleet_events",
            "Fleet events by deployment and kind (breaker_opened, degraded, outlier, ...).",
            ["deployment", "kind"],
            registry=registry,
        )
        self.breaker_state = Gauge(
            "pilothouse_fleet_breaker_state",
            "Each deployment's breaker: 0 closed, 1 half-open, 2 open.",
            ["deployment"],
            registry=registry,
        )
        self.recent: list[FleetEvent] = []  # the last few, for /api/fleet

    def raise_event(self, event: FleetEvent) -> None:
        level = logging.WARNING if event.kind in _WARNINGS and not event.remote else logging.INFO
        extra: dict[str, Any] = {k: v for k, v in asdict(event).items() if v is not None}
        extra["event"] = extra.pop("kind")
        log.log(level, "%s %s: %s", event.deployment, event.kind, event.reason, extra=extra)
        self.counter.labels(event.deployment, event.kind).inc()
        self.recent = [*self.recent[-49:], event]
        if not event.remote:
            alert(event)


def alert(event: FleetEvent) -> None:
    """Tell the deployment's owner. Until the monitoring issue's alerting exists, the log
    line and the metric above are the alert; its notifier goes here."""
