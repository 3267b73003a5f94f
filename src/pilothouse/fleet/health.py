"""Each deployment's health over a rolling window: calls that succeeded, calls that failed
by class, latency, and its circuit breaker.

A failure is anything that means the deployment could not serve a well-formed request:
timeouts, connection errors, 5xx, 429, malformed or truncated answers, a provider refusing
our credentials (401/403/404 → 502), and semantic failures on a 200 (telemetry/signals.py). A
provider rejecting the request itself (400, 413, 422) is the client's fault and counts
neither way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pilothouse.clock import Clock
from pilothouse.config import BreakerSpec
from pilothouse.fleet import events
from pilothouse.fleet.breaker import HALF_OPEN, OPEN, STATE_NUMBER, Breaker, Transition
from pilothouse.fleet.window import RollingWindow
from pilothouse.providers.types import ErrorClass, UpstreamError

LATENCY_SMOOTHING = 0.2  # weight of the newest call in the latency average


def client_caused(exc: UpstreamError) -> bool:
    """The provider refused the request itself: another deployment would too."""
    return exc.error_class == ErrorClass.UPSTREAM_4XX and exc.status < 500


@dataclass(slots=True)
class _Outcomes:
    ok: int = 0
    failed: int = 0
    by_class: dict[str, int] = field(default_factory=dict)
    latency_ms_sum: float = 0.0


class DeploymentHealth:
    """One deployment's window of outcomes and its breaker (shared by every alias it
    serves). `publish` is set in shared mode to hand transitions to the other instances."""

    def __init__(
        self,
        deployment: str,
        provider: str,
        owner: str | None,
        spec: BreakerSpec,
        clock: Clock,
        fleet_events: events.FleetEvents,
    ):
        self.deployment = deployment
        self.provider = provider
        self.owner = owner
        self.spec = spec
        self.clock = clock
        self.events = fleet_events
        self.publish: Callable[[Transition], None] | None = None
        self.window = RollingWindow(spec.window_seconds, clock, _Outcomes)
        self.latency_ms: float | None = None  # smoothed latency of answered calls
        self.degraded = False
        self.breaker = Breaker(deployment, spec, clock, self._transition)
        fleet_events.breaker_state.labels(deployment).set(0)

    def succeeded(self, latency_ms: float) -> None:
        tally = self.window.current()
        tally.ok += 1
        tally.latency_ms_sum += latency_ms
        previous = self.latency_ms
        self.latency_ms = (
            latency_ms
            if previous is None
            else previous + LATENCY_SMOOTHING * (latency_ms - previous)
        )
        self.breaker.succeeded()

    def failed(
        self, error_class: str, retry_after_seconds: float | None = None, *, trips: bool = True
    ) -> None:
        """Count a failure. `trips=False` counts it in health (degraded, events, owners) but
        not against the breaker: the upstream answered, and there is nowhere else to go."""
        tally = self.window.current()
        tally.failed += 1
        tally.by_class[error_class] = tally.by_class.get(error_class, 0) + 1
        if trips:
            self.breaker.failed(error_class, retry_after_seconds)
        else:
            self.breaker.succeeded()  # reachable: it answered, only not usably

    def totals(self) -> dict[str, Any]:
        """Calls in the window: ok, failed, failures by class, failure rate, mean latency."""
        ok = failed = 0
        latency = 0.0
        by_class: dict[str, int] = {}
        for tally in self.window.live():
            ok += tally.ok
            failed += tally.failed
            latency += tally.latency_ms_sum
            for name, count in tally.by_class.items():
                by_class[name] = by_class.get(name, 0) + count
        total = ok + failed
        return {
            "calls": total,
            "ok": ok,
            "failed": failed,
            "failure_rate": failed / total if total else 0.0,
            "failures_by_class": dict(sorted(by_class.items())),
            "latency_ms_mean": latency / ok if ok else None,
        }

    def check(self) -> None:
        """Raise `degraded` / `recovered` when the window's failure rate crosses
        `degraded_ratio` (over at least `min_requests` calls). Run by the fleet's sweep."""
        totals = self.totals()
        now_degraded = (
            totals["calls"] >= self.spec.min_requests
            and totals["failure_rate"] >= self.spec.degraded_ratio
        )
        if now_degraded == self.degraded:
            return
        self.degraded = now_degraded
        reason = (
            f"{totals['failed']} of {totals['calls']} calls failed within "
            f"{self.spec.window_seconds:g} s: {totals['failures_by_class']}"
        )
        if totals["calls"] < self.spec.min_requests:  # not healthy: too little to judge by
            reason = (
                f"too few calls to judge ({totals['calls']} within "
                f"{self.spec.window_seconds:g} s, under min_requests {self.spec.min_requests}); "
                + reason
            )
        self._event(events.DEGRADED if now_degraded else events.RECOVERED, reason)

    def _transition(self, transition: Transition) -> None:
        self.events.breaker_state.labels(self.deployment).set(STATE_NUMBER[transition.new])
        kind = {OPEN: events.OPENED, HALF_OPEN: events.HALF_OPENED}.get(
            transition.new, events.CLOSED
        )
        reason = transition.reason
        if transition.until is not None:
            reason += (
                f"; open for {transition.until - transition.at:.0f} s (trip {transition.trips})"
            )
        self._event(kind, reason, remote=transition.remote)
        if self.publish is not None and not transition.remote:
            self.publish(transition)

    def _event(self, kind: str, reason: str, *, remote: bool = False) -> None:
        self.events.raise_event(
            events.FleetEvent(
                kind=kind,
                deployment=self.deployment,
                provider=self.provider,
                owner=self.owner,
                reason=reason,
                at=self.clock.now(),
                remote=remote,
            )
        )
