"""The request log over HTTP (admin token): filters, pages, newest first."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field, field_validator

from pilothouse.telemetry import outcomes, request_history
from pilothouse.web.auth import Access
from pilothouse.web.endpoint import Api, Call, Query, parse_since
from pilothouse.web.fields import Name

api = Api()


class RequestFilters(Query):
    key: Name | None = None
    model: Name | None = None
    route: Name | None = None
    team: Name | None = None
    status: int | None = Field(default=None, ge=100, le=599)
    outcome: Literal[outcomes.ALL] | None = None  # type: ignore[valid-type]
    errors: bool = False  # every outcome but ok
    since: str | None = Field(default=None, max_length=64)
    before: str | None = Field(default=None, max_length=64)
    limit: int = Field(default=50, ge=1, le=1000)

    @field_validator("since")
    @classmethod
    def _since(cls, value: str | None) -> str | None:
        parse_since(value)  # refuses what is neither a duration nor a time
        return value


@api.get("/api/requests", Access.ADMIN)
async def list_requests(call: Call, query: RequestFilters) -> dict[str, Any]:
    """The request log, newest first; `next_before` pages on."""
    rows = await call.run(
        request_history.list_requests,
        call.services.store,
        key_id=query.key,
        model=query.model,
        route=query.route,
        team=query.team,
        status=query.status,
        outcome=query.outcome,
        errors_only=query.errors,
        since=parse_since(query.since),
        before_id=query.before,
        limit=query.limit,
    )
    next_page = rows[-1]["id"] if len(rows) == query.limit else None
    return {"data": rows, "next_before": next_page}


class Window(Query):
    since: str = Field(default="1h", max_length=64)

    @field_validator("since")
    @classmethod
    def _since(cls, value: str) -> str:
        value = value or "1h"  # an empty `since=` means the default window
        parse_since(value)
        return value


@api.get("/api/requests/{request_id}", Access.ADMIN)
async def get_request(call: Call) -> dict[str, Any]:
    """One request-log row."""
    return await call.run(request_history.get_request, call.services.store, call.path["request_id"])


@api.get("/api/overview", Access.ADMIN)
async def overview(call: Call, query: Window) -> dict[str, Any]:
    """Traffic, outcomes, delivered TTFT p50/p95 and spend per route (or model) since
    `since` (default the last hour), from the rollups (per minute: the minute `since`
    falls in is left out)."""
    since = parse_since(query.since)
    assert since is not None
    until = datetime.fromtimestamp(call.services.clock.now(), UTC)
    data = await call.run(request_history.summarize, call.services.store, since, until)
    return {"since": since, "until": until, "data": data}
