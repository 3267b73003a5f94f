"""The web face: the admin API under /api and the operational endpoints, as one Starlette
app. Errors are mapped to our JSON shape here, once; handlers never catch them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pilothouse import errors
from pilothouse.web import (
    changelog_api,
    contracts_api,
    diff_api,
    evals_api,
    fleet_api,
    keys_api,
    monitoring_api,
    openapi,
    ops_api,
    prompts_api,
    quotas_api,
    releases_api,
    requests_api,
)
from pilothouse.web.dashboard import pages
from pilothouse.web.rendering import error_response, json_bytes

log = logging.getLogger("pilothouse.web")
APIS = (
    ops_api,
    keys_api,
    requests_api,
    prompts_api,
    releases_api,
    evals_api,
    diff_api,
    monitoring_api,
    fleet_api,
    quotas_api,
    contracts_api,
    changelog_api,
)


def create_web(lifespan: Callable[[Starlette], AbstractAsyncContextManager[Any]]) -> Starlette:
    """The Starlette app; `lifespan` puts the process's `Services` on `app.state.services`."""
    routes = [r for module in APIS for r in module.api.routes]
    routes.append(Route("/openapi.json", _openapi, methods=["GET"]))
    routes += pages.routes  # the dashboard: views of the same data functions
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_exception_handler(errors.PilothouseError, _our_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
    return app


async def _unexpected(request: Request, exc: Exception) -> Response:
    """A failure no handler expected: still JSON, and the database being away says so."""
    services = getattr(request.app.state, "services", None)
    explained = services.explain(exc) if services is not None else None
    if explained is None:
        log.error("unexpected error serving %s %s", request.method, request.url.path, exc_info=exc)
        explained = errors.PilothouseError(
            f"internal error serving {request.method} {request.url.path}; see the server log"
        )
    return error_response(explained)


async def _openapi(request: Request) -> Response:
    """The OpenAPI description of /v1 and /api, made from the declared endpoints."""
    models = request.app.state.services.config.models
    operations = [op for module in APIS for op in module.api.operations]
    return Response(json_bytes(openapi.describe(operations, models)), media_type="application/json")


async def _our_error(request: Request, exc: errors.PilothouseError) -> Response:
    return error_response(exc)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    """Starlette's own refusals (no such path, wrong method) in our shape."""
    if exc.status_code == 404:
        return error_response(
            errors.NotFound(
                f"no such endpoint: {request.method} {request.url.path}",
                hint="the gateway is under /v1, the admin API under /api; see docs/",
            )
        )
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return error_response(
            errors.MethodNotAllowed(
                f"{request.url.path} does not take {request.method}"
                + (f"; it takes {allowed}" if allowed else ""),
                headers={"allow": allowed} if allowed else None,
            )
        )
    error = errors.PilothouseError(exc.detail or f"HTTP {exc.status_code}")
    error.status = exc.status_code
    error.type = "http_error"
    return error_response(error)
