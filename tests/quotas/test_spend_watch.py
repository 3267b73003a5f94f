"""The spend watch on an injected clock: a key's spend jumping 20x on a model it never
used is judged anomalous within the detection window and, end to end, the key is
suspended on the gateway, alerted and published, and restored with a reason; a normal
daily rhythm with a busy Monday never is."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from test_quotas import CONFIG, completion

from inprocess import InProcess, Scripted
from pilothouse.clock import ManualClock
from pilothouse.config import SpendWatchSpec
from pilothouse.monitor.spend import judge
from pilothouse.store import key_spend
from pilothouse.store.tables import alerts, audit_log, webhook_deliveries

MONDAY = datetime(2027, 1, 18, tzinfo=UTC)  # a Monday, midnight UTC
SPEC = SpendWatchSpec()  # the defaults: 10x the baseline and $0.50 a minute, over 5 minutes


def rhythm(
    start: datetime, days: int, *, busy_mondays: bool, scale: float = 1.0
) -> Iterator[dict[str, Any]]:
    """A key's normal week: $2 a minute from 09:00 to 18:00 UTC, $0.20 at night, on `fast`
    (times `scale`); three times as much on Mondays when `busy_mondays`; ±20 % noise."""
    noise = random.Random(7)
    for offset in range(days * 1440):
        minute = start + timedelta(minutes=offset)
        level = 2.0 if 9 <= minute.hour < 18 else 0.2
        if busy_mondays and minute.weekday() == 0 and 9 <= minute.hour < 18:
            level *= 3
        cost = level * scale * noise.uniform(0.8, 1.2)
        yield {
            "minute": minute,
            "model_alias": "fast",
            "cost_usd": cost,
            "prompt_tokens": int(cost * 200_000),
            "completion_tokens": int(cost * 100_000),
        }


def test_a_normal_daily_rhythm_with_a_busy_monday_is_never_anomalous() -> None:
    rows = list(rhythm(MONDAY - timedelta(days=7), 8, busy_mondays=True))
    judged = 0
    for minutes in range(0, 1440, 5):  # the whole Monday, every five minutes
        now = MONDAY + timedelta(minutes=minutes, seconds=30)
        seen = [r for r in rows if r["minute"] <= now]
        verdict = judge("key_1", seen, now, SPEC)
        assert not verdict.anomalous, (now, verdict)
        judged += 1
    assert judged == 288
    # The busy morning really is a jump over the daily profile (about 2-3x at 09:05, before
    # the recent average catches up), just not one that looks like a stolen key.
    seen = [r for r in rows if r["minute"] <= MONDAY + timedelta(hours=9, minutes=5)]
    busy = judge("key_1", seen, MONDAY + timedelta(hours=9, minutes=5, seconds=30), SPEC)
    assert busy.usd_per_minute > 4 and 1.5 < busy.score < SPEC.ratio


def test_a_20x_jump_on_a_never_used_model_is_anomalous_within_the_window() -> None:
    history = list(rhythm(MONDAY - timedelta(days=7), 7, busy_mondays=False))
    onset = MONDAY + timedelta(hours=14)
    today = [r for r in rhythm(MONDAY, 1, busy_mondays=False) if r["minute"] < onset]
    stolen = [
        {
            "minute": onset + timedelta(minutes=m),
            "model_alias": "claude",
            "cost_usd": 40.0,  # 20x the key's $2 a minute at this hour
            "prompt_tokens": 400_000,
            "completion_tokens": 2_000_000,
        }
        for m in range(10)
    ]
    rows = history + today + stolen
    assert not judge("key_1", rows, onset - timedelta(seconds=1), SPEC).anomalous
    first = next(
        m
        for m in range(10)
        if judge("key_1", rows, onset + timedelta(minutes=m, seconds=50), SPEC).anomalous
    )
    assert first < SPEC.window_minutes
    verdict = judge("key_1", rows, onset + timedelta(minutes=first, seconds=50), SPEC)
    assert verdict.new_models == ("claude",) and verdict.may_suspend
    assert verdict.score >= SPEC.ratio and verdict.usd_per_minute >= SPEC.floor_usd_per_minute


pytestmark = pytest.mark.anyio


async def seed_history(gw: InProcess, onset: datetime) -> None:
    """A week of the key's normal rhythm before `onset` ($0.10 a minute at 14:00)."""
    key = (await gw.client.get("/api/keys/inprocess/usage", headers=gw.admin)).json()["key"]
    increments = {
        (r["minute"], key["id"], r["model_alias"]): {
            "requests": 10,
            "prompt_tokens": r["prompt_tokens"],
            "completion_tokens": r["completion_tokens"],
            "cost_usd": r["cost_usd"],
        }
        for r in rhythm(onset - timedelta(days=7), 7, busy_mondays=False, scale=0.05)
    }
    with gw.server.store.begin() as conn:
        key_spend.add(conn, increments)


async def steal(gw: InProcess, clock: ManualClock, minutes: int) -> tuple[int | None, list[int]]:
    """Four calls a minute on `cheap`, a model the key never used, of $0.50 each (20x its
    normal spend), the spend watch ticking every minute: the minute it first found the
    anomaly, and every status the calls got."""
    expensive = completion(
        "sim-tiny", {"prompt_tokens": 10_000, "completion_tokens": 2_495_000, "total_tokens": 0}
    )
    gw.transports["sim"].default = Scripted.json(expensive)
    monitor, writer = gw.server.monitor, gw.server.writer
    assert monitor is not None and monitor.spend_watch is not None and writer is not None
    found_at, statuses = None, []
    for minute in range(minutes):
        statuses += [(await gw.chat("cheap")).status_code for _ in range(4)]
        await writer.flush()
        found = await monitor.spend_watch.tick()
        if found and found_at is None:
            assert found[0]["new_models"] == ["cheap"]
            found_at = minute
        clock.advance(60)
    return found_at, statuses


async def test_end_to_end_the_key_is_suspended_alerted_published_and_restored(
    tmp_path: Path,
) -> None:
    onset = MONDAY + timedelta(hours=14)
    clock = ManualClock(onset.timestamp())
    async with InProcess.start(tmp_path, CONFIG, clock=clock) as gw:
        server = gw.server
        monitor = server.monitor
        assert monitor is not None and monitor.spend_watch is not None and server.writer
        await seed_history(gw, onset)
        suspended_after, statuses = await steal(gw, clock, 8)
        assert suspended_after is not None and suspended_after < SPEC.window_minutes
        assert set(statuses[: 4 * (suspended_after + 1)]) == {200}
        assert set(statuses[4 * (suspended_after + 1) :]) == {403}
        refused = await gw.chat("cheap")
        assert refused.status_code == 403 and "restore" in refused.json()["error"]["message"]
        with server.store.connect() as conn:
            kinds = [r.kind for r in conn.execute(select(alerts.c.kind))]
            events = [r.event for r in conn.execute(select(webhook_deliveries.c.event))]
            actions = [r.action for r in conn.execute(select(audit_log.c.action))]
        assert kinds == ["spend_anomaly"] and "spend.anomaly" in events
        assert "key.suspend" in actions
        no_reason = await gw.client.post(
            "/api/keys/inprocess/restore", json={"reason": ""}, headers=gw.admin
        )
        assert no_reason.status_code == 400
        restored = await gw.client.post(
            "/api/keys/inprocess/restore",
            json={"reason": "the owner rotated the leaked secret"},
            headers=gw.admin,
        )
        assert restored.status_code == 200 and restored.json()["suspended"] is False
        gw.transports["sim"].default = Scripted.json(completion())
        assert (await gw.chat()).status_code == 200
        # The spend before the restore is not judged again.
        await server.writer.flush()
        assert await monitor.spend_watch.tick() == []


async def test_a_policy_of_alert_only_alerts_and_publishes_but_never_suspends(
    tmp_path: Path,
) -> None:
    onset = MONDAY + timedelta(hours=14)
    clock = ManualClock(onset.timestamp())
    config = CONFIG + "monitoring:\n  spend_watch: {action: alert}\n"
    async with InProcess.start(tmp_path, config, clock=clock) as gw:
        await seed_history(gw, onset)
        found_at, statuses = await steal(gw, clock, 6)
        assert found_at is not None and found_at < SPEC.window_minutes
        assert set(statuses) == {200}
        with gw.server.store.connect() as conn:
            kinds = [r.kind for r in conn.execute(select(alerts.c.kind))]
            actions = [r.action for r in conn.execute(select(audit_log.c.action))]
        assert kinds == ["spend_anomaly"] and "key.suspend" not in actions
