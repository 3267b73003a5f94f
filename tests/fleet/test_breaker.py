"""The breaker and its window, on a clock the test moves."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from pilothouse.clock import ManualClock
from pilothouse.config import BreakerSpec
from pilothouse.fleet.breaker import CLOSED, HALF_OPEN, OPEN, Breaker, Transition
from pilothouse.fleet.events import FleetEvents
from pilothouse.fleet.health import DeploymentHealth

SPEC = BreakerSpec(
    window_seconds=60,
    min_requests=5,
    failure_ratio=0.5,
    cooldown_seconds=10,
    max_cooldown_seconds=35,
    half_open_probes=1,
)


def make(spec: BreakerSpec = SPEC) -> tuple[Breaker, ManualClock, list[Transition]]:
    clock = ManualClock()
    seen: list[Transition] = []
    return Breaker("p/m", spec, clock, seen.append), clock, seen


def test_it_opens_at_the_failure_share_over_the_minimum_count() -> None:
    breaker, _, seen = make()
    for _ in range(4):
        breaker.failed("upstream_5xx")
    assert breaker.state == CLOSED  # 4 calls: under the minimum of 5
    breaker.succeeded()
    assert breaker.state == CLOSED  # 4 of 5 failed, but a success never trips it
    breaker.failed("timeout")
    assert breaker.state == OPEN  # 5 of 6
    assert seen[-1].new == OPEN and "5 of 6 calls failed" in seen[-1].reason
    assert not breaker.admit() and not breaker.available()


def test_a_share_under_the_ratio_stays_closed() -> None:
    breaker, _, _ = make()
    for _ in range(20):
        breaker.succeeded()
        breaker.succeeded()
        breaker.failed("malformed")  # one in three
    assert breaker.state == CLOSED


def test_failures_older_than_the_window_are_forgotten() -> None:
    breaker, clock, _ = make()
    for _ in range(4):
        breaker.failed("upstream_5xx")
    clock.advance(61)
    breaker.failed("upstream_5xx")
    assert breaker.state == CLOSED  # only 1 call in the window


def test_half_open_admits_one_probe_and_closes_on_its_success() -> None:
    breaker, clock, seen = make()
    for _ in range(5):
        breaker.failed("upstream_5xx")
    clock.advance(9.9)
    assert not breaker.admit()
    clock.advance(0.2)
    assert breaker.available()
    assert breaker.admit() and breaker.state == HALF_OPEN
    assert not breaker.admit()  # the one probe slot is taken
    breaker.succeeded()
    assert breaker.state == CLOSED and breaker.admit()
    assert [t.new for t in seen] == [OPEN, HALF_OPEN, CLOSED]


def test_a_cancelled_probe_frees_its_slot() -> None:
    breaker, clock, _ = make()
    for _ in range(5):
        breaker.failed("upstream_5xx")
    clock.advance(10)
    assert breaker.admit()
    breaker.release()
    assert breaker.admit()


def test_the_cool_down_doubles_on_repeated_trips_up_to_its_cap_and_resets_later() -> None:
    breaker, clock, _ = make()
    for _ in range(5):
        breaker.failed("upstream_5xx")
    cooldowns = [breaker.retry_after_seconds()]
    for _ in range(3):
        clock.advance(breaker.retry_after_seconds())
        assert breaker.admit()
        breaker.failed("upstream_5xx")  # the probe fails
        cooldowns.append(breaker.retry_after_seconds())
    assert cooldowns == [10, 20, 35, 35]  # doubled, capped at max_cooldown_seconds
    clock.advance(35)
    assert breaker.admit()
    breaker.succeeded()
    clock.advance(61)  # closed for a whole window: the next trip starts over
    for _ in range(5):
        breaker.failed("upstream_5xx")
    assert breaker.trips == 1 and breaker.retry_after_seconds() == 10


def test_retry_after_sets_a_longer_cool_down() -> None:
    breaker, _, _ = make()
    for _ in range(4):
        breaker.failed("rate_limited")
    breaker.failed("rate_limited", retry_after_seconds=120)
    assert breaker.retry_after_seconds() == pytest.approx(120)


def test_a_remote_transition_is_applied_and_marked_remote() -> None:
    breaker, clock, seen = make()
    breaker.apply_remote(OPEN, clock.now() + 30, 2, "elsewhere")
    assert breaker.state == OPEN and breaker.retry_after_seconds() == pytest.approx(30)
    assert seen[-1].remote and seen[-1].trips == 2
    breaker.apply_remote(OPEN, clock.now() - 1, 2, "stale")  # already over: ignored
    assert breaker.retry_after_seconds() == pytest.approx(30)
    breaker.apply_remote(CLOSED, None, 2, "a probe succeeded elsewhere")
    assert breaker.state == CLOSED and seen[-1].remote


def test_health_raises_degraded_and_recovered_events_naming_the_owner() -> None:
    clock = ManualClock()
    events = FleetEvents(CollectorRegistry())
    health = DeploymentHealth("p/m", "p", "team-p", SPEC, clock, events)
    for _ in range(8):
        health.succeeded(10.0)
    for _ in range(2):
        health.failed("invalid_json")
    health.check()  # 2 of 10: at the 20 % degraded ratio, under the 50 % trip point
    assert health.degraded and health.breaker.state == CLOSED
    assert [(e.kind, e.owner) for e in events.recent] == [("degraded", "team-p")]
    assert "invalid_json" in events.recent[0].reason
    clock.advance(61)
    health.check()
    assert not health.degraded and events.recent[-1].kind == "recovered"
    # An empty window is not a healthy one: the reason says there was too little to judge.
    assert events.recent[-1].reason.startswith("too few calls to judge (0 within")
