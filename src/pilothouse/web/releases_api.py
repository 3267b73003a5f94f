"""Routes, releases and the model catalog over HTTP. Writes need the admin token; reading
routes needs the admin token or a key with the `routes:read` (or `evals`) scope.

Writes take `If-Match: "<etag>"` (the `etag` of `GET /api/routes/{route}`) for optimistic
locking: a route changed meanwhile answers 409 with its current state. Promoting is held to
the promotion gate: 409 with its reasons when it says no, unless forced with a reason."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from pydantic import Field

from pilothouse import errors
from pilothouse.monitor import schedules
from pilothouse.registry import catalog, names
from pilothouse.releases import deprecation, promotion
from pilothouse.releases import route_settings as route_settings_of
from pilothouse.web.auth import Access
from pilothouse.web.endpoint import FIRST_PAGE, Api, Body, Call, Page, Query, paged
from pilothouse.web.fields import Json, Name, Text
from pilothouse.web.rendering import Result

api = Api({"route": (names.NAME_PATTERN, names.NAME_RULE)})


class ReleaseFields(Body):
    prompt: Name | None = Field(default=None, description="NAME@VERSION or NAME@LABEL")
    model: Name | None = None
    params: dict[str, Json] | None = Field(default=None, max_length=20)
    reason: Text | None = None


class Promote(ReleaseFields):
    owner: Name | None = None
    from_canary: bool = False
    force: bool = False
    diff: dict[str, Any] | None = None  # a semantic diff summary for the changelog entry


class Canary(ReleaseFields):
    weight: int = Field(ge=0, le=100)


class Rollback(Body):
    reason: Text | None = None
    force: bool = False


class RouteSettings(Body):
    store_responses: bool
    reason: Text | None = None


class DoctorQuery(Query):
    within_days: int = Field(default=catalog.DEFAULT_WARNING_DAYS, ge=0, le=3650)


def _promoter(call: Call) -> promotion.Promoter:
    services = call.services
    return promotion.Promoter(services.store, services.config.models, services.config.promotion)


def _if_match(call: Call) -> str | None:
    raw = call.request.headers.get("if-match")
    if raw is None or raw.strip() == "*":
        return None
    return raw.strip().removeprefix("W/").strip('"')[:200]


def _warnings(prompt: str | None) -> dict[str, Any]:
    """A reference in the old `name:label` spelling still works, with a warning."""
    try:
        warning = names.parse_ref(prompt).warning if prompt else None
    except names.InvalidName as exc:
        raise errors.InvalidRequest(str(exc), param="prompt") from None
    return {"warnings": [warning]} if warning else {}


@api.get("/api/routes", Access.ROUTES)
async def list_routes(call: Call, query: Page = FIRST_PAGE) -> dict[str, Any]:
    """Routes by name with their releases, a page at a time (`limit`, `after`:
    `next_after`)."""
    routes = await call.run(
        promotion.list_routes, call.services.store, after=query.after, limit=query.limit
    )
    return paged(routes, len(routes), query, routes[-1]["name"] if routes else None)


@api.get("/api/routes/{route}", Access.ROUTES)
async def show_route(call: Call) -> Result:
    """One route: its releases, their frozen fragments (and whether a newer version is under
    the label each was taken from), and its etag for If-Match."""
    route = await call.run(promotion.show_route, call.services.store, call.path["route"])
    return Result(route, headers={"etag": f'"{route["etag"]}"'})


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
        force=body.force,
        expected=_if_match(call),
        diff=body.diff,
        **fields,
    )
    await call.announce()
    call.services.webhooks.wake()  # the changelog entry's deliveries
    return Result({**release.public(), **_warnings(fields["prompt"])}, status=201)


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
        expected=_if_match(call),
    )
    await call.announce()
    call.services.webhooks.wake()
    return {
        "canary": release.public() if release else None,
        "weight": body.weight if release else 0,
        **_warnings(body.prompt),
    }


@api.post("/api/routes/{route}/rollback", Access.ADMIN)
async def rollback(call: Call, body: Rollback | None) -> dict[str, Any]:
    """Back to the previous active release (409 when its model is retired, unless forced)."""
    release = await call.run(
        _promoter(call).rollback,
        call.path["route"],
        reason=body.reason if body else None,
        force=body.force if body else False,
        actor=call.actor,
        expected=_if_match(call),
    )
    await call.announce()
    call.services.webhooks.wake()
    return release.public()


@api.post("/api/routes/{route}/settings", Access.ADMIN)
async def route_settings(call: Call, body: RouteSettings) -> dict[str, Any]:
    """The route's settings no release carries: `store_responses` (the gateway keeps the
    Responses API answers of its calls for the key that made each one)."""
    result: dict[str, Any] = await call.run(
        route_settings_of.set_store_responses,
        call.services.store,
        call.path["route"],
        body.store_responses,
        reason=body.reason,
        actor=call.actor,
    )
    await call.announce()
    return result


@api.get("/api/routes/{route}/history", Access.ROUTES)
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
    scheduled = await call.run(schedules.list_schedules, call.services.store, datetime.now(UTC))
    unowned = [{"kind": "route", "name": r["name"]} for r in routes if not r.get("owner")]
    unowned += [
        {"kind": "provider", "name": name}
        for name, spec in sorted(call.services.config.providers.items())
        if not spec.owner
    ]
    unowned += [{"kind": "suite", "name": s["suite"]} for s in scheduled if not s["owner"]]
    return {"within_days": within, "warnings": warnings, "unowned": unowned}
