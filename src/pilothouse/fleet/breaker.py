"""A circuit breaker per deployment: closed → open → half-open → closed.

It opens when at least `failure_ratio` of at least `min_requests` calls within the window
failed. While open, nothing is sent; after the cool-down (doubled on each trip that comes
soon after the last, capped, and never shorter than the provider's Retry-After) it is
half-open: `half_open_probes` calls at a time test it; a success closes it, a failure
opens it again. Every transition goes to `on_change` (events, metrics, the shared state).

A closed breaker costs one comparison and one counter per call: no lock, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pilothouse.clock import Clock
from pilothouse.config import BreakerSpec
from pilothouse.fleet.window import RollingWindow

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"
STATE_NUMBER = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}  # the metric's value
PROBE_LOST_SECONDS = 60.0  # a probe that never reported (its task vanished) frees its slot


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of a breaker's state; `until` is when an open breaker may be probed."""

    deployment: str
    old: str
    new: str
    reason: str
    at: float
    until: float | None
    trips: int
    remote: bool = False  # applied from another instance (not to be published again)


class _Calls:
    __slots__ = ("failed", "total")

    def __init__(self) -> None:
        self.total = 0
        self.failed = 0


class Breaker:
    """The breaker of one deployment (`deployment` is its id, e.g. `openai/gpt-4o-mini`)."""

    def __init__(
        self,
        deployment: str,
        spec: BreakerSpec,
        clock: Clock,
        on_change: Callable[[Transition], None] = lambda t: None,
    ):
        self.deployment = deployment
        self.spec = spec
        self.clock = clock
        self.on_change = on_change
        self.state = CLOSED
        self.open_until = 0.0
        self.trips = 0  # consecutive: reset when it stays closed a whole window
        self.last_trip_at: float | None = None
        self.last_trip_reason: str | None = None
        self._closed_at: float | None = None
        self._probes: list[float] = []  # start times of half-open probes in flight
        self._calls = self._new_window()

    def _new_window(self) -> RollingWindow[_Calls]:
        return RollingWindow(self.spec.window_seconds, self.clock, _Calls)

    # ------------------------------------------------------------------ questions

    def available(self) -> bool:
        """Could a call go there now (without reserving a probe slot)?"""
        if self.state == CLOSED:
            return True
        now = self.clock.now()
        if self.state == OPEN:
            return now >= self.open_until
        return self._free_probe_slots(now) > 0

    def retry_after_seconds(self) -> float:
        """How long until an open breaker may be probed (0 when it may be now)."""
        if self.state != OPEN:
            return 0.0
        return max(0.0, self.open_until - self.clock.now())

    # ------------------------------------------------------------------ the call

    def admit(self) -> bool:
        """May a call be sent now? Half-open, this takes a probe slot, which the call's
        `succeeded`, `failed` or `release` gives back."""
        if self.state == CLOSED:
            return True
        now = self.clock.now()
        if self.state == OPEN:
            if now < self.open_until:
                return False
            self._move(HALF_OPEN, "cool-down over: probing", now)
        if self._free_probe_slots(now) <= 0:
            return False
        self._probes.append(now)
        return True

    def release(self) -> None:
        """A call admitted as a probe ended without a verdict (the client left)."""
        if self._probes:
            self._probes.pop(0)

    def succeeded(self) -> None:
        calls = self._calls.current()
        calls.total += 1
        if self.state == HALF_OPEN:
            self.release()
            self._close("a probe succeeded", self.clock.now())

    def failed(self, error_class: str, retry_after_seconds: float | None = None) -> None:
        calls = self._calls.current()
        calls.total += 1
        calls.failed += 1
        now = self.clock.now()
        if self.state == HALF_OPEN:
            self.release()
            self._trip(f"a probe failed ({error_class})", now, retry_after_seconds)
        elif self.state == CLOSED:
            total = failed = 0
            for tally in self._calls.live():
                total += tally.total
                failed += tally.failed
            spec = self.spec
            if total >= spec.min_requests and failed >= spec.failure_ratio * total:
                self._trip(
                    f"{failed} of {total} calls failed within {spec.window_seconds:g} s "
                    f"(latest: {error_class})",
                    now,
                    retry_after_seconds,
                )

    # ------------------------------------------------------------------ transitions

    def apply_remote(self, state: str, until: float | None, trips: int, reason: str) -> None:
        """Take a transition another instance made (shared mode)."""
        now = self.clock.now()
        if state == OPEN and until is not None and until > now:
            if self.state == OPEN and abs(self.open_until - until) < 1e-6:
                return
            old = self.state
            self.state, self.open_until, self.trips = OPEN, until, trips
            self.last_trip_at, self.last_trip_reason = now, reason
            self._probes.clear()
            self._calls = self._new_window()
            self.on_change(Transition(self.deployment, old, OPEN, reason, now, until, trips, True))
        elif state == CLOSED and self.state != CLOSED:
            old = self.state
            self.state = CLOSED
            self._closed_at = now
            self._probes.clear()
            self._calls = self._new_window()
            self.on_change(Transition(self.deployment, old, CLOSED, reason, now, None, trips, True))

    def _trip(self, reason: str, now: float, retry_after_seconds: float | None) -> None:
        recent = self._closed_at is not None and now - self._closed_at < self.spec.window_seconds
        self.trips = self.trips + 1 if self.state == HALF_OPEN or recent else 1
        spec = self.spec
        cooldown = min(spec.cooldown_seconds * 2 ** (self.trips - 1), spec.max_cooldown_seconds)
        if retry_after_seconds:
            cooldown = max(cooldown, retry_after_seconds)
        self.open_until = now + cooldown
        self.last_trip_at, self.last_trip_reason = now, reason
        self._probes.clear()
        self._calls = self._new_window()
        self._move(OPEN, reason, now)

    def _close(self, reason: str, now: float) -> None:
        self._closed_at = now
        self._probes.clear()
        self._calls = self._new_window()
        self._move(CLOSED, reason, now)

    def _move(self, new: str, reason: str, now: float) -> None:
        old, self.state = self.state, new
        until = self.open_until if new == OPEN else None
        self.on_change(Transition(self.deployment, old, new, reason, now, until, self.trips))

    def _free_probe_slots(self, now: float) -> int:
        if self._probes and now - self._probes[0] > PROBE_LOST_SECONDS:
            self._probes = [t for t in self._probes if now - t <= PROBE_LOST_SECONDS]
        return self.spec.half_open_probes - len(self._probes)
