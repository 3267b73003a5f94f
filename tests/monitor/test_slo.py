"""SLO evaluation and multi-window burn-rate alerting, on rollup counters (no store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pilothouse.monitor.slo import SLO, SLOError, evaluate
from pilothouse.store.tables import ROLLUP_COUNTS, ROLLUP_SUMS

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def counters(**values: float) -> dict[str, float]:
    out = dict.fromkeys((*ROLLUP_COUNTS, *ROLLUP_SUMS), 0.0)
    out.update(values)
    return out


def history(minutes_bad: int, bad_per_minute: int, good_per_minute: int) -> object:
    """Per-minute traffic for 30 days: the last `minutes_bad` minutes slow (TTFT over a
    second for `bad_per_minute` requests a minute), every minute `good_per_minute` fast."""

    def totals_for(since: datetime, until: datetime) -> dict[str, float]:
        minutes = int((until - since).total_seconds() // 60)
        bad_minutes = max(0, min(minutes, minutes_bad))
        fast = minutes * good_per_minute
        slow = bad_minutes * bad_per_minute
        return counters(
            requests=fast + slow, ok=fast + slow, ttft_count=fast + slow,
            ttft_le_200=fast, ttft_le_3000=slow,
        )  # fmt: skip

    return totals_for


TTFT = SLO("chat-ttft", "route", "support", "ttft", 0.99, threshold_ms=1000, min_events=50)


def test_a_sudden_slow_first_token_pages_and_the_slow_tiers_stay_quiet() -> None:
    # Ten minutes of every first token over a second, after 30 quiet days.
    status = evaluate(TTFT, history(10, 10, 5), NOW)
    assert status.firing is not None and status.firing.severity == "page"
    assert (status.firing.long, status.firing.short) == ("1h", "5m")
    assert status.burn["5m"] == pytest.approx(200 / 3)  # two thirds bad, budget 1 %
    assert status.burn["1h"] == pytest.approx(25.0)  # 100 slow of 400
    # The slow tiers would need the long windows burning too: a day and three days dilute it.
    assert status.burn["1d"] is not None and status.burn["1d"] < 3.0
    assert status.burn["3d"] is not None and status.burn["3d"] < 1.0
    assert 0 < (status.budget_left or 0) < 1


def test_a_steady_small_burn_is_a_ticket_not_a_page() -> None:
    # 2.5 % of requests slow for three days: 2.5x the budget everywhere.
    status = evaluate(TTFT, history(3 * 1440, 1, 39), NOW)
    assert status.firing is not None and status.firing.severity == "ticket"
    assert (status.firing.long, status.firing.short) == ("3d", "6h")


def test_quiet_traffic_fires_nothing_and_too_few_events_never_fire() -> None:
    assert evaluate(TTFT, history(0, 0, 10), NOW).firing is None
    few = SLO("few", "route", "support", "ttft", 0.99, threshold_ms=1000, min_events=10_000)
    assert evaluate(few, history(10, 10, 1), NOW).firing is None


def test_availability_and_signal_slos_count_their_own_events() -> None:
    def totals(since: datetime, until: datetime) -> dict[str, float]:
        return counters(
            requests=100, ok=80, client_error=10, upstream_error=10,
            answers=80, refusal=8,
        )  # fmt: skip

    available = evaluate(SLO("up", "model", "fast", "availability", 0.99), totals, NOW)
    assert available.events == 90 and available.good == 80  # client errors are not owed
    refusals = evaluate(SLO("kind", "route", "r", "signal", 0.98, signal="refusal"), totals, NOW)
    assert refusals.events == 80 and refusals.good == 72


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"sli": "ttft", "threshold_ms": 999}, "edges"),
        ({"sli": "signal", "signal": "vibes"}, "signal SLO"),
        ({"sli": "ttft", "threshold_ms": 1000, "objective": 1.5}, "objective"),
        ({"sli": "latency"}, "sli must be"),
    ],
)
def test_an_slo_that_cannot_be_evaluated_is_refused_with_the_reason(
    fields: dict[str, object], words: str
) -> None:
    base: dict[str, object] = {
        "name": "x",
        "subject_kind": "route",
        "subject": "r",
        "objective": 0.99,
    }
    with pytest.raises(SLOError, match=words):
        SLO(**{**base, **fields})  # type: ignore[arg-type]


def test_a_window_with_no_events_has_no_burn() -> None:
    status = evaluate(TTFT, lambda since, until: counters(), NOW - timedelta(days=1))
    assert status.burn["5m"] is None and status.budget_left is None and status.firing is None
