"""Reading the request log back: filters and pages, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

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
