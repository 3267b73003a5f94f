"""Routes, releases and the model catalog over HTTP (admin token)."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pilothouse import errors
from pilothouse.registry import catalog
from pilothouse.releases import deprecation, promotion
from pilothouse.web.api import admin, json_body, reader
from pilothouse.web.prompts_api import actor

if TYPE_CHECKING:
    from pilothouse.server import Server


def _promoter(request: Request) -> promotion.Promoter:
    server: Server = request.app.state.server
    return promotion.Promoter(server.store, server.settings.config.models)


def _release_fields(body: dict[str, Any]) -> dict[str, Any]:
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise errors.InvalidRequest("`params` must be an object", param="params")
    for key in ("prompt", "model", "reason"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise errors.InvalidRequest(f"`{key}` must be a string", param=key)
    return {
        "prompt": body.get("prompt"),
        "model": body.get("model"),
        "params": params,
        "reason": body.get("reason"),
    }


@reader
async def list_routes(request: Request) -> Response:
    server: Server = request.app.state.server
    return JSONResponse({"data": await asyncio.to_thread(promotion.list_routes, server.store)})


@admin
async def promote(request: Request) -> Response:
    server: Server = request.app.state.server
    body = await json_body(request)
    owner = body.get("owner")
    if owner is not None and not isinstance(owner, str):
        raise errors.InvalidRequest("`owner` must be a string", param="owner")
    from_canary = body.get("from_canary") is True
    fields = (
        {"prompt": None, "model": None, "params": None, "reason": body.get("reason")}
        if from_canary
        else _release_fields(body)
    )
    release = await asyncio.to_thread(
        _promoter(request).promote,
        request.path_params["route"],
        actor=actor(request),
        owner=owner,
        from_canary=from_canary,
        **fields,
    )
    await server.changed()
    return JSONResponse(release.public(), status_code=201)


@admin
async def canary(request: Request) -> Response:
    server: Server = request.app.state.server
    body = await json_body(request)
    weight = body.get("weight")
    if not isinstance(weight, int) or isinstance(weight, bool):
        raise errors.InvalidRequest(
            "`weight` is required: an integer percent, 0 stops the canary", param="weight"
        )
    release = await asyncio.to_thread(
        _promoter(request).canary,
        request.path_params["route"],
        weight=weight,
        actor=actor(request),
        **_release_fields(body),
    )
    await server.changed()
    return JSONResponse(
        {"canary": release.public() if release else None, "weight": weight if release else 0}
    )


@admin
async def rollback(request: Request) -> Response:
    server: Server = request.app.state.server
    body = await json_body(request) if await request.body() else {}
    release = await asyncio.to_thread(
        _promoter(request).rollback,
        request.path_params["route"],
        reason=body.get("reason"),
        actor=actor(request),
    )
    await server.changed()
    return JSONResponse(release.public())


@admin
async def route_history(request: Request) -> Response:
    server: Server = request.app.state.server
    data = await asyncio.to_thread(promotion.history, server.store, request.path_params["route"])
    return JSONResponse({"data": data})


@admin
async def list_models(request: Request) -> Response:
    server: Server = request.app.state.server
    models = server.settings.config.models
    return JSONResponse(
        {"data": [catalog.describe(alias, spec) for alias, spec in sorted(models.items())]}
    )


@admin
async def doctor(request: Request) -> Response:
    server: Server = request.app.state.server
    raw = request.query_params.get("within_days", str(catalog.DEFAULT_WARNING_DAYS))
    if not raw.isdigit():
        raise errors.InvalidRequest(
            f"`within_days` must be a whole number of days, got {raw!r}", param="within_days"
        )
    routes = await asyncio.to_thread(promotion.list_routes, server.store)
    warnings = deprecation.route_warnings(
        routes, server.settings.config.models, today=date.today(), within_days=int(raw)
    )
    return JSONResponse({"within_days": int(raw), "warnings": warnings})


routes = [
    Route("/api/routes", list_routes, methods=["GET"]),
    Route("/api/routes/{route}/promote", promote, methods=["POST"]),
    Route("/api/routes/{route}/canary", canary, methods=["POST"]),
    Route("/api/routes/{route}/rollback", rollback, methods=["POST"]),
    Route("/api/routes/{route}/history", route_history, methods=["GET"]),
    Route("/api/models", list_models, methods=["GET"]),
    Route("/api/doctor", doctor, methods=["GET"]),
]
