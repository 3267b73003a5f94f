"""The operational endpoints: /healthz (alive), /readyz (can serve), /metrics."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from pilothouse.web.auth import Access
from pilothouse.web.endpoint import Api, Call
from pilothouse.web.rendering import Result

api = Api()


@api.get("/healthz", Access.PUBLIC)
async def healthz(call: Call) -> dict[str, Any]:
    """Liveness, always 200 while the process runs, with each dependency's state."""
    checks = await call.services.dependencies()
    degraded = not checks["database"]["up"] or checks.get("redis", {}).get("up") is False
    return {"status": "degraded" if degraded else "ok", "checks": checks}


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
    status = "ready" if database["up"] else "degraded"
    return {"status": status, "schema": database.get("schema"), "checks": checks}


@api.get("/metrics", Access.PUBLIC)
async def metrics(call: Call) -> Response:
    return Response(call.services.metrics.render(), media_type="text/plain; version=0.0.4")
