"""The admin REST API under /api, and the operational endpoints /healthz, /readyz, /metrics.

Every write goes through the domain layer (which validates, audits and bumps the
configuration version) and then refreshes this process's snapshot at once.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pilothouse import errors
from pilothouse.policy import keys as key_policy
from pilothouse.store import database
from pilothouse.store import request_log as request_rows

if TYPE_CHECKING:
    from pilothouse.server import Server

Handler = Callable[[Request], Awaitable[Response]]


def error_response(exc: errors.PilothouseError) -> JSONResponse:
    body: dict[str, Any] = {"type": exc.type, "message": exc.message}
    if exc.hint:
        body["hint"] = exc.hint
    if exc.param:
        body["field"] = exc.param
    return JSONResponse({"error": body}, status_code=exc.status)


Admits = Callable[["Server", str | None], bool]


def guard(
    admits: Admits, refusal: Callable[[], errors.PilothouseError]
) -> Callable[[Handler], Handler]:
    """A decorator: refuse callers `admits` rejects; turn domain errors into JSON errors."""

    def decorate(handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            server: Server = request.app.state.server
            if not admits(server, request.headers.get("authorization")):
                return error_response(refusal())
            try:
                return await handler(request)
            except errors.PilothouseError as exc:
                return error_response(exc)

        return guarded

    return decorate


def _is_admin(server: Server, authorization: str | None) -> bool:
    return server.admin_auth.check(authorization)


def _is_admin_or_app(server: Server, authorization: str | None) -> bool:
    """The admin token, or an application key that is enabled and unexpired."""
    if _is_admin(server, authorization):
        return True
    if (
        server.holder is None
        or not authorization
        or not authorization.lower().startswith("bearer ")
    ):
        return False
    digest = hashlib.sha256(authorization[7:].strip().encode()).hexdigest()
    key = server.holder.current.keys_by_hash.get(digest)
    return key is not None and not key.disabled and not key.expired(datetime.now(UTC))


admin = guard(
    _is_admin,
    lambda: errors.AuthenticationFailed(
        "admin token missing or wrong", hint="send `Authorization: Bearer $PILOTHOUSE_ADMIN_TOKEN`"
    ),
)
# Reads applications need (prompts, datasets, routes) and recording eval runs.
reader = guard(
    _is_admin_or_app,
    lambda: errors.AuthenticationFailed(
        "an API key or the admin token is required", hint="send `Authorization: Bearer <key>`"
    ),
)


async def json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise errors.InvalidRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise errors.InvalidRequest("the request body must be a JSON object")
    return body


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    server: Server = request.app.state.server
    try:
        state = await asyncio.to_thread(database.revision_state, server.store.engine)
    except Exception as exc:
        return JSONResponse({"status": "unavailable", "store": str(exc)}, status_code=503)
    if not state.at_head:
        return JSONResponse(
            {"status": "unavailable", "store": f"schema at {state.current}, code at {state.head}"},
            status_code=503,
        )
    return JSONResponse({"status": "ready", "schema": state.current})


async def metrics(request: Request) -> Response:
    server: Server = request.app.state.server
    return Response(server.metrics.render(), media_type="text/plain; version=0.0.4")


@admin
async def list_keys(request: Request) -> Response:
    server: Server = request.app.state.server
    keys = await asyncio.to_thread(key_policy.list_keys, server.store)
    return JSONResponse({"data": [k.public() for k in keys]})


@admin
async def create_key(request: Request) -> Response:
    server: Server = request.app.state.server
    body = await json_body(request)
    name = body.get("name")
    if not isinstance(name, str):
        raise errors.InvalidRequest("`name` is required and must be a string", param="name")
    models = body.get("models")
    if models is not None and (
        not isinstance(models, list) or not all(isinstance(m, str) for m in models)
    ):
        raise errors.InvalidRequest("`models` must be a list of model aliases", param="models")
    unknown = sorted(
        m for m in set(models or ()) - set(server.known_models()) if not m.startswith("route:")
    )
    if unknown:
        raise errors.InvalidRequest(
            f"unknown model aliases {', '.join(unknown)}; known: "
            f"{', '.join(sorted(server.known_models())) or '(none)'}",
            param="models",
        )
    for field in ("user", "team"):
        if body.get(field) is not None and not isinstance(body[field], str):
            raise errors.InvalidRequest(f"`{field}` must be a string", param=field)
    key, secret = await asyncio.to_thread(
        key_policy.create_key,
        server.store,
        name=name,
        user=body.get("user"),
        team=body.get("team"),
        models=models,
        expires_at=_parse_time(body.get("expires_at"), "expires_at"),
    )
    await server.changed()
    return JSONResponse({**key.public(), "secret": secret}, status_code=201)


def _set_disabled(disabled: bool) -> Handler:
    @admin
    async def handler(request: Request) -> Response:
        server: Server = request.app.state.server
        body = await json_body(request) if await request.body() else {}
        key = await asyncio.to_thread(
            key_policy.set_disabled,
            server.store,
            request.path_params["key"],
            disabled,
            reason=body.get("reason"),
        )
        await server.changed()
        return JSONResponse(key.public())

    return handler


@admin
async def list_requests(request: Request) -> Response:
    server: Server = request.app.state.server
    q = request.query_params
    limit = int_param(q.get("limit"), "limit", default=50)
    if not 1 <= limit <= 1000:
        raise errors.InvalidRequest("`limit` must be between 1 and 1000", param="limit")
    status = int_param(q.get("status"), "status", default=None) if q.get("status") else None

    def fetch() -> list[dict[str, Any]]:
        with server.store.connect() as conn:
            return request_rows.query(
                conn,
                key_id=q.get("key"),
                model=q.get("model"),
                status=status,
                errors_only=q.get("errors") in ("1", "true"),
                since=parse_since(q.get("since")),
                before_id=q.get("before"),
                limit=limit,
            )

    rows = await asyncio.to_thread(fetch)
    data = [{k: jsonable(v) for k, v in row.items()} for row in rows]
    next_page = data[-1]["id"] if len(data) == limit else None
    return JSONResponse({"data": data, "next_before": next_page})


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    return value


def int_param(value: str | None, name: str, default: int | None) -> Any:
    """A query parameter as an integer; InvalidRequest names it when it is not one."""
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise errors.InvalidRequest(
            f"`{name}` must be an integer, got {value!r}", param=name
        ) from None


def _parse_time(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise errors.InvalidRequest(f"`{name}` must be an ISO date or datetime", param=name)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise errors.InvalidRequest(
            f"`{name}` must be an ISO date or datetime such as 2027-01-31, got {value!r}",
            param=name,
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(value: str | None) -> datetime | None:
    """`since` is an ISO time or a duration back from now: 30s, 15m, 2h, 7d."""
    if not value:
        return None
    if value[-1:] in _UNITS and value[:-1].isdigit():
        return datetime.now(UTC) - timedelta(seconds=int(value[:-1]) * _UNITS[value[-1]])
    return _parse_time(value, "since")


routes = [
    Route("/healthz", healthz),
    Route("/readyz", readyz),
    Route("/metrics", metrics),
    Route("/api/keys", list_keys, methods=["GET"]),
    Route("/api/keys", create_key, methods=["POST"]),
    Route("/api/keys/{key}/disable", _set_disabled(True), methods=["POST"]),
    Route("/api/keys/{key}/enable", _set_disabled(False), methods=["POST"]),
    Route("/api/requests", list_requests, methods=["GET"]),
]
