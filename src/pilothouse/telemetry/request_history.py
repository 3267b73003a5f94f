"""Reading the request log back: filters and pages, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pilothouse import errors
from pilothouse.store import Store
from pilothouse.store import request_log as rows


def list_requests(
    store: Store,
    *,
    key_id: str | None = None,
    model: str | None = None,
    route: str | None = None,
    status: int | None = None,
    outcome: str | None = None,
    errors_only: bool = False,
    since: datetime | None = None,
    before_id: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Rows matching every given filter, newest first; `before_id` pages backwards from a
    row already seen."""
    with store.connect() as conn:
        return rows.query(
            conn,
            key_id=key_id,
            model=model,
            route=route,
            status=status,
            outcome=outcome,
            errors_only=errors_only,
            since=since,
            before_id=before_id,
            limit=limit,
        )


def get_request(store: Store, request_id: str) -> dict[str, Any]:
    """One row by its id; NotFound names it."""
    with store.connect() as conn:
        row = rows.get(conn, request_id)
    if row is None:
        raise errors.NotFound(
            f"no request {request_id!r} in the log",
            hint="ids are the X-Request-Id response header; `pilothouse logs` lists recent ones",
        )
    return row


def summarize(store: Store, since: datetime, *, max_rows: int = 100_000) -> list[dict[str, Any]]:
    """Traffic per route (or model alias, for calls outside routes) since `since`: request
    count, outcomes, delivered TTFT p50/p95 and spend, newest `max_rows` rows at most.

    Read from raw rows until per-minute rollups exist (the monitoring issue)."""
    with store.connect() as conn:
        recent = rows.window(conn, since, limit=max_rows)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in recent:
        subject = ("route", row["route"]) if row["route"] else ("model", row["model_alias"] or "")
        groups.setdefault(subject, []).append(row)
    out = []
    for (kind, name), members in sorted(groups.items()):
        ttfts = sorted(
            r["ttft_delivered_ms"] for r in members if r["ttft_delivered_ms"] is not None
        )
        outcomes: dict[str, int] = {}
        for r in members:
            outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
        failures = sum(n for outcome, n in outcomes.items() if outcome != "ok")
        out.append(
            {
                "kind": kind,
                "name": name,
                "requests": len(members),
                "outcomes": outcomes,
                "error_rate": failures / len(members),
                "ttft_p50_ms": _quantile(ttfts, 0.5),
                "ttft_p95_ms": _quantile(ttfts, 0.95),
                "cost_usd": sum(r["cost_usd"] or 0.0 for r in members),
            }
        )
    return out


def _quantile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
