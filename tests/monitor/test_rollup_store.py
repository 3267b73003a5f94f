"""Rollup rows on both databases: upserts that sum, and the chart and SLO reads (PostgreSQL
sums integers as numeric; every read gives floats)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pilothouse.monitor import series
from pilothouse.store import Store, open_store
from pilothouse.store import rollups as rollup_rows


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'p.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    opened = open_store(url)
    opened.upgrade()
    yield opened
    opened.close()


def test_increments_sum_and_every_read_gives_floats(store: Store) -> None:
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    key = (now - timedelta(minutes=3), "support", "active", "fast", "openai", "")
    counts = {name: 0.0 for name in rollup_rows.ADDED}
    counts.update(requests=3, ok=3, answers=3, ttft_count=3, ttft_le_300=3, ttft_sum_ms=600.0)
    counts.update(prompt_tokens=30, completion_tokens=60)
    for _ in range(2):  # the same minute twice: added, not replaced
        with store.begin() as conn:
            rollup_rows.add(conn, {key: counts})
    with store.connect() as conn:
        sums = rollup_rows.sums(conn, now - timedelta(hours=1), now, route="support")
        other = rollup_rows.sums(conn, now - timedelta(hours=1), now, route="search")
    assert (sums["requests"], sums["ttft_sum_ms"], other["requests"]) == (6.0, 1200.0, 0.0)
    [chart] = series.series(store, now - timedelta(hours=1), now, "route")
    [point] = chart["points"]
    assert chart["subject"] == "support" and point["requests"] == 6.0
    assert point["ttft_p50_ms"] is not None and point["ttft_p50_ms"] <= 300


def test_a_day_chart_sums_minutes_into_ten_minute_points_in_the_database(store: Store) -> None:
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    counts = {name: 0.0 for name in rollup_rows.ADDED}
    counts.update(requests=2, ok=2, answers=2, refusal=1, cost_usd=0.5)
    minutes = [now - timedelta(minutes=m) for m in (3, 7, 15, 300)]  # 11:57, 11:53 | 11:45 | 7:00
    with store.begin() as conn:
        rollup_rows.add(conn, {(m, "support", "", "fast", "openai", ""): counts for m in minutes})
    [chart] = series.series(store, now - timedelta(hours=24), now, "route")
    points = {p["at"]: p for p in chart["points"]}
    assert sorted(points) == ["2026-11-29T07:00:00+00:00", "2026-11-29T11:40:00+00:00",
                              "2026-11-29T11:50:00+00:00"]  # fmt: skip
    ten = points["2026-11-29T11:50:00+00:00"]
    assert (ten["requests"], ten["cost_usd"], ten["refusal_rate"]) == (4.0, 1.0, 0.5)


def test_long_window_sums_read_whole_ten_minutes_coarse_and_stay_exact(store: Store) -> None:
    """An SLO's period or a day's overview reads the ten-minute table for the whole slots
    inside it and minutes for the ragged ends; what it sums is exactly what the minutes
    hold, whatever the boundaries."""
    start = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    increments = {}
    for minute in range(0, 240):  # four hours, a request more every minute
        counts = dict.fromkeys(rollup_rows.ADDED, 0.0)
        counts.update(requests=minute + 1, ok=minute, cost_usd=0.25)
        route = "support" if minute % 3 else "search"
        increments[(start + timedelta(minutes=minute), route, "", "fast", "openai", "")] = counts
    with store.begin() as conn:
        rollup_rows.add(conn, increments)
    for since_m, until_m in ((0, 240), (3.5, 237.25), (17, 95), (59.9, 61.1), (12, 43)):
        since = start + timedelta(minutes=since_m)
        until = start + timedelta(minutes=until_m)
        expected = [(key[1], c) for key, c in increments.items() if since <= key[0] < until]
        with store.connect() as conn:
            support = rollup_rows.sums(conn, since, until, route="support")
            grouped = rollup_rows.sums_by(conn, since, until, ["route"], ["requests", "cost_usd"])
        want = sum(c["requests"] for route, c in expected if route == "support")
        assert support["requests"] == want, (since_m, until_m)
        by_route = {g["route"]: g for g in grouped}
        assert sum(g["requests"] for g in grouped) == sum(c["requests"] for _, c in expected)
        assert by_route.get("support", {}).get("requests", 0.0) == want
        assert sum(g["cost_usd"] for g in grouped) == pytest.approx(0.25 * len(expected))


def test_an_slo_s_nested_windows_in_two_queries_sum_what_each_window_holds(store: Store) -> None:
    start = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    increments = {}
    for minute in range(0, 600):
        counts = dict.fromkeys(rollup_rows.ADDED, 0.0)
        counts.update(requests=minute % 7 + 1, ok=minute % 5)
        increments[(start + timedelta(minutes=minute), "support", "", "fast", "openai", "")] = (
            counts
        )
    with store.begin() as conn:
        rollup_rows.add(conn, increments)
    until = start + timedelta(minutes=577, seconds=20)
    spans = [timedelta(days=30), timedelta(minutes=5), timedelta(hours=1), timedelta(hours=6)]
    with store.connect() as conn:
        nested = rollup_rows.nested_sums(conn, until, spans, ["requests", "ok"], route="support")
        one_by_one = [rollup_rows.sums(conn, until - s, until, route="support") for s in spans]
    assert [(n["requests"], n["ok"]) for n in nested] == [
        (o["requests"], o["ok"]) for o in one_by_one
    ]
    assert nested[1]["requests"] < nested[2]["requests"] < nested[3]["requests"]
