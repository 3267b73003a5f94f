"""Time series for charts, from the rollups: per step and subject, traffic, failures,
delivered TTFT p50/p95, output-signal rates and spend; and the drift markers to draw on
them, from the drift alerts the monitor raised."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pilothouse.store import Store
from pilothouse.store import alerts as alert_rows
from pilothouse.store import rollups as rollup_rows
from pilothouse.telemetry.rollups import TTFT_BUCKETS, ttft_quantiles

FAILURES = (
    "upstream_error",
    "upstream_truncated",
    "upstream_malformed",
    "gateway_error",
    "shutdown_cut",
)


CHART_COLUMNS = (
    "requests",
    "ttft_count",
    *FAILURES,
    *TTFT_BUCKETS,
    "answers",
    "refusal",
    "hedging",
    "json_checked",
    "json_valid",
    "completion_tokens",
    "cost_usd",
)


def step_for(span: timedelta) -> timedelta:
    """One point per minute up to 6 hours, per 10 minutes up to 2 days, else per hour."""
    if span <= timedelta(hours=6):
        return timedelta(minutes=1)
    if span <= timedelta(days=2):
        return timedelta(minutes=10)
    return timedelta(hours=1)


def series(
    store: Store, since: datetime, until: datetime, by: str, **subject: str | None
) -> list[dict[str, Any]]:
    """[{subject, points: [{at, requests, failed, ttft_p50_ms, ttft_p95_ms, refusal_rate,
    hedging_rate, json_invalid_rate, mean_output_tokens, cost_usd}]}]"""
    step = int(step_for(until - since).total_seconds())
    with store.connect() as conn:
        rows = rollup_rows.series(conn, since, until, by, step, CHART_COLUMNS, **subject)
    subjects: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        subjects.setdefault(row[by] or "", []).append(_point(row["at"], row))
    return [{"subject": name, "points": points} for name, points in sorted(subjects.items())]


def drift_markers(
    store: Store,
    since: datetime,
    until: datetime,
    *,
    route: str | None = None,
    provider: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Where drift was detected between `since` and `until` (for one route or provider when
    given): [{at (detected), until (cleared or resolved; None while open), subject
    (`route:x`, `provider:y`), signal, direction, alert_id, state, summary}], oldest first.
    A marker is a drift alert (monitor/drift.py decides), so it says what on-call was told."""
    subject = f"route:{route}" if route else f"provider:{provider}" if provider else None
    with store.connect() as conn:
        found = alert_rows.open_during(conn, "drift", since, until, subject=subject, limit=limit)
    return [
        {
            "at": alert["opened_at"],
            "until": alert["closed_at"],
            "subject": alert["subject"],
            "signal": alert["signal"],
            "direction": alert["direction"],
            "alert_id": alert["id"],
            "state": alert["state"],
            "summary": alert["summary"],
        }
        for alert in found
    ]


def _point(at: float, t: Mapping[str, float]) -> dict[str, Any]:
    answers = t["answers"]
    p50, p95 = ttft_quantiles(t, 0.5, 0.95) if t["ttft_count"] else (None, None)
    return {
        "at": datetime.fromtimestamp(at, UTC).isoformat(),
        "requests": t["requests"],
        "failed": sum(t[name] for name in FAILURES),
        "ttft_p50_ms": p50,
        "ttft_p95_ms": p95,
        "refusal_rate": t["refusal"] / answers if answers else None,
        "hedging_rate": t["hedging"] / answers if answers else None,
        "json_invalid_rate": (t["json_checked"] - t["json_valid"]) / t["json_checked"]
        if t["json_checked"]
        else None,
        "mean_output_tokens": t["completion_tokens"] / answers if answers else None,
        "cost_usd": t["cost_usd"],
    }
