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
    return {"status": "ok"}


@api.get("/readyz", Access.PUBLIC)
async def readyz(call: Call) -> Any:
    try:
        state = await call.services.schema_state()
    except Exception as exc:
        return Result({"status": "unavailable", "store": str(exc)}, status=503)
    if not state.at_head:
        return Result(
            {"status": "unavailable", "store": f"schema at {state.current}, code at {state.head}"},
            status=503,
        )
    return {"status": "ready", "schema": state.current}


@api.get("/metrics", Access.PUBLIC)
async def metrics(call: Call) -> Response:
    return Response(call.services.metrics.render(), media_type="text/plain; version=0.0.4")
