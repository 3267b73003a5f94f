"""Time series for charts, from the rollups: per step and subject, traffic, failures,
delivered TTFT p50/p95, output-signal rates and spend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pilothouse.store import Store
from pilothouse.store import rollups as rollup_rows
from pilothouse.telemetry.rollups import total, ttft_quantile

FAILURES = (
    "upstream_error",
    "upstream_truncated",
    "upstream_malformed",
    "gateway_error",
    "shutdown_cut",
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
    with store.connect() as conn:
        rows = rollup_rows.series(conn, since, until, by, **subject)
    step = step_for(until - since).total_seconds()
    buckets: dict[str, dict[float, list[dict[str, Any]]]] = {}
    for row in rows:
        at = row["minute"].timestamp() // step * step
        buckets.setdefault(row[by] or "", {}).setdefault(at, []).append(row)
    out = []
    for name, points in sorted(buckets.items()):
        out.append(
            {
                "subject": name,
                "points": [_point(at, total(group)) for at, group in sorted(points.items())],
            }
        )
    return out


def _point(at: float, t: dict[str, float]) -> dict[str, Any]:
    answers = t["answers"]
    return {
        "at": datetime.fromtimestamp(at, UTC).isoformat(),
        "requests": t["requests"],
        "failed": sum(t[name] for name in FAILURES),
        "ttft_p50_ms": ttft_quantile(t, 0.5),
        "ttft_p95_ms": ttft_quantile(t, 0.95),
        "refusal_rate": t["refusal"] / answers if answers else None,
        "hedging_rate": t["hedging"] / answers if answers else None,
        "json_invalid_rate": (t["json_checked"] - t["json_valid"]) / t["json_checked"]
        if t["json_checked"]
        else None,
        "mean_output_tokens": t["completion_tokens"] / answers if answers else None,
        "cost_usd": t["cost_usd"],
    }
