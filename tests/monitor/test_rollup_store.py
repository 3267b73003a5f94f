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
