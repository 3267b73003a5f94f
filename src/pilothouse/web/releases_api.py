"""Routes, releases and the model catalog over HTTP (admin token; applications may list
routes)."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import Field

from pilothouse.registry import catalog
from pilothouse.releases import deprecation, promotion
from pilothouse.web.auth import Access
from pilothouse.web.endpoint import Api, Body, Call, Query
from pilothouse.web.fields import Json, Name, Text
from pilothouse.web.rendering import Result

api = Api()


class ReleaseFields(Body):
    prompt: Name | None = None
    model: Name | None = None
    params: dict[str, Json] | None = None
    reason: Text | None = None


class Promote(ReleaseFields):
    owner: Name | None = None
    from_canary: bool = False


class Canary(ReleaseFields):
    weight: int = Field(ge=0, le=100)


class Reason(Body):
    reason: Text | None = None


class DoctorQuery(Query):
    within_days: int = Field(default=catalog.DEFAULT_WARNING_DAYS, ge=0, le=3650)


def _promoter(call: Call) -> promotion.Promoter:
    return promotion.Promoter(call.services.store, call.services.config.models)


@api.get("/api/routes", Access.READER)
async def list_routes(call: Call) -> dict[str, Any]:
    return {"data": await call.run(promotion.list_routes, call.services.store)}


@api.post("/api/routes/{route}/promote", Access.ADMIN)
async def promote(call: Call, body: Promote) -> Result:
    fields: dict[str, Any] = {"prompt": None, "model": None, "params": None}
    if not body.from_canary:
        fields = {"prompt": body.prompt, "model": body.model, "params": body.params or {}}
    release = await call.run(
        _promoter(call).promote,
        call.path["route"],
        actor=call.actor,
        owner=body.owner,
        from_canary=body.from_canary,
        reason=body.reason,
        **fields,
    )
    await call.services.announce()
    return Result(release.public(), status=201)


@api.post("/api/routes/{route}/canary", Access.ADMIN)
async def canary(call: Call, body: Canary) -> dict[str, Any]:
    release = await call.run(
        _promoter(call).canary,
        call.path["route"],
        weight=body.weight,
        actor=call.actor,
        prompt=body.prompt,
        model=body.model,
        params=body.params or {},
        reason=body.reason,
    )
    await call.services.announce()
    return {
        "canary": release.public() if release else None,
        "weight": body.weight if release else 0,
    }


@api.post("/api/routes/{route}/rollback", Access.ADMIN)
async def rollback(call: Call, body: Reason | None) -> dict[str, Any]:
    release = await call.run(
        _promoter(call).rollback,
        call.path["route"],
        reason=body.reason if body else None,
        actor=call.actor,
    )
    await call.services.announce()
    return release.public()


@api.get("/api/routes/{route}/history", Access.ADMIN)
async def route_history(call: Call) -> dict[str, Any]:
    return {"data": await call.run(promotion.history, call.services.store, call.path["route"])}


@api.get("/api/models", Access.ADMIN)
async def list_models(call: Call) -> dict[str, Any]:
    """The model catalog: each alias with its lifecycle and the routes whose active or
    canary release uses it."""
    models = call.services.config.models
    routes = await call.run(promotion.list_routes, call.services.store)
    used: dict[str, list[str]] = {}
    for route in routes:
        for arm in ("active", "canary"):
            release = route[arm]
            if release is not None:
                used.setdefault(release["model"], []).append(f"{route['name']} ({arm})")
    return {
        "data": [
            {**catalog.describe(alias, spec), "used_by": used.get(alias, [])}
            for alias, spec in sorted(models.items())
        ]
    }


@api.get("/api/doctor", Access.ADMIN)
async def doctor(call: Call, query: DoctorQuery) -> dict[str, Any]:
    within = query.within_days
    routes = await call.run(promotion.list_routes, call.services.store)
    warnings = deprecation.route_warnings(
        routes, call.services.config.models, today=date.today(), within_days=within
    )
    return {"within_days": within, "warnings": warnings}
