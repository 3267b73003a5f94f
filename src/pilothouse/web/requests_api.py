"""The request log over HTTP (admin token): filters, pages, newest first."""

from __future__ import annotations

from typing import Any

from pilothouse.telemetry import request_history
from pilothouse.web.auth import Access
from pilothouse.web.endpoint import Api, Call

api = Api()


@api.get("/api/requests", Access.ADMIN)
async def list_requests(call: Call) -> dict[str, Any]:
    limit = call.int_query("limit", 50, low=1, high=1000)
    assert limit is not None
    rows = await call.run(
        request_history.list_requests,
        call.services.store,
        key_id=call.text_query("key"),
        model=call.text_query("model"),
        status=call.int_query("status", None, low=100, high=599),
        errors_only=call.query.get("errors") in ("1", "true"),
        since=call.since_query(),
        before_id=call.text_query("before", max_chars=64),
        limit=limit,
    )
    next_page = rows[-1]["id"] if len(rows) == limit else None
    return {"data": rows, "next_before": next_page}
