"""The operational endpoints: /healthz (alive), /readyz (can serve), /metrics, and
/api/config/version (which configuration this instance serves; wait for a version)."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from starlette.responses import Response

from pilothouse import errors
from pilothouse.web.auth import Access
from pilothouse.web.endpoint import Api, Call, Query
from pilothouse.web.rendering import Result

api = Api()


@api.get("/healthz", Access.PUBLIC)
async def healthz(call: Call) -> dict[str, Any]:
    """Liveness, always 200 while the process runs, with each dependency's state."""
    checks = await call.services.dependencies()
    return {"status": "degraded" if _degraded(checks) else "ok", "checks": checks}


LOAD_STUCK_SECONDS = 5.0  # a load this old means the database hangs (a lock, not an error)


def _degraded(checks: dict[str, Any]) -> bool:
    """Serving, but something it depends on is away: the database (down, or hanging on a
    load), Redis, or a request log that cannot take rows."""
    request_log = checks["request_log"]
    stuck = (request_log.get("load_in_flight_seconds") or 0) > LOAD_STUCK_SECONDS
    return (
        not checks["database"]["up"]
        or checks.get("redis", {}).get("up") is False
        or request_log["store"] == "down"
        or stuck
        or not request_log["has_room"]
    )


@api.get("/readyz", Access.PUBLIC)
async def readyz(call: Call) -> Any:
    """Whether this instance can serve requests. A database outage is `degraded`, not
    unready, while the request log still has room: the gateway serves from memory and
    the log catches up, so a load balancer must not pull every instance at once."""
    checks = await call.services.dependencies()
    database = checks["database"]
    if not checks["request_log"]["has_room"]:
        return Result(
            {"status": "unavailable", "reason": "request log is full", "checks": checks}, status=503
        )
    if database["up"] and not database["schema_at_head"]:
        return Result(
            {
                "status": "unavailable",
                "reason": "the database schema is not this version's",
                "checks": checks,
            },
            status=503,
        )
    status = "degraded" if _degraded(checks) else "ready"
    return {"status": status, "schema": database.get("schema"), "checks": checks}


@api.get("/metrics", Access.PUBLIC)
async def metrics(call: Call) -> Response:
    return Response(call.services.metrics.render(), media_type="text/plain; version=0.0.4")


MAX_VERSION_WAIT_SECONDS = 30


class VersionQuery(Query):
    min: int | None = Field(default=None, ge=0)
    wait: float = Field(default=0, ge=0, le=MAX_VERSION_WAIT_SECONDS)


@api.get("/api/config/version", Access.READER)
async def config_version(call: Call, query: VersionQuery) -> dict[str, Any]:
    """The configuration version this instance serves. With `min=V&wait=N`, waits up to N
    seconds (at most 30) until it serves V or later; `reached` says whether it does."""
    holder = call.services.holder
    if query.min is None:
        if query.wait:
            raise errors.InvalidRequest(
                "`wait` needs `min`: the version to wait for (an admin write's "
                "X-Pilothouse-Config-Version header)",
                param="min",
            )
        return {"version": holder.current.version}
    reached = holder.current.version >= query.min
    if not reached and query.wait:
        reached = await holder.wait_for_version(query.min, query.wait)
    return {"version": holder.current.version, "min": query.min, "reached": reached}
