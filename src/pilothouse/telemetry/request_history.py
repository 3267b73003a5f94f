"""Reading the request log back: filters and pages, newest first; and the traffic summary
per route, from the rollups."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pilothouse import errors
from pilothouse.store import Store
from pilothouse.store import request_log as rows
from pilothouse.store import rollups as rollup_rows
from pilothouse.store.tables import OUTCOME_COLUMNS
from pilothouse.telemetry.rollups import TTFT_BUCKETS, ttft_quantile


def list_requests(
    store: Store,
    *,
    key_id: str | None = None,
    model: str | None = None,
    route: str | None = None,
    team: str | None = None,
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
            team=team,
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


OVERVIEW_COLUMNS = ("requests", *OUTCOME_COLUMNS, *TTFT_BUCKETS, "cost_usd")


def summarize(store: Store, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Traffic per route (or model alias, for calls outside routes) with
    `since <= minute < until`, from the rollups (whatever the traffic, a few hundred rows
    per hour read, never the raw log): request count, outcomes, delivered TTFT p50/p95
    (interpolated inside the histogram's buckets, as the charts do) and spend."""
    with store.connect() as conn:
        groups = rollup_rows.sums_by(conn, since, until, ("route", "model_alias"), OVERVIEW_COLUMNS)
    subjects: dict[tuple[str, str], dict[str, float]] = {}
    for group in groups:
        subject = ("route", group["route"]) if group["route"] else ("model", group["model_alias"])
        into = subjects.setdefault(subject, dict.fromkeys(OVERVIEW_COLUMNS, 0.0))
        for name in OVERVIEW_COLUMNS:
            into[name] += group[name]
    out = []
    for (kind, name), totals in sorted(subjects.items()):
        requests = int(totals["requests"])
        if not requests:
            continue
        outcomes = {o: int(totals[o]) for o in OUTCOME_COLUMNS if totals[o]}
        out.append(
            {
                "kind": kind,
                "name": name,
                "requests": requests,
                "outcomes": outcomes,
                "error_rate": (requests - outcomes.get("ok", 0)) / requests,
                "ttft_p50_ms": ttft_quantile(totals, 0.5),
                "ttft_p95_ms": ttft_quantile(totals, 0.95),
                "cost_usd": totals["cost_usd"],
            }
        )
    return out
