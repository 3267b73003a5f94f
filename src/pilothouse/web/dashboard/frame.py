"""The dashboard's frame: templates, rendering with the security headers, sign-in and
sign-out, and the two kinds of route every page module registers with — a page (a signed-in
GET that renders a view of an `/api` data function) and an action (a form POST with the
session's CSRF token, calling the same data function the API does).

Nothing here reaches the store.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from pilothouse import errors
from pilothouse.policy.quota_gate import display
from pilothouse.policy.quotas import UNITS_PER
from pilothouse.services import Services
from pilothouse.web.dashboard import charts, session
from pilothouse.web.endpoint import Call, parse
from pilothouse.web.rendering import Result

log = logging.getLogger("pilothouse.dashboard")
TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.globals["quote"] = lambda value: quote(str(value), safe="")
TEMPLATES.globals["sparkline"] = charts.sparkline
TEMPLATES.globals["line_chart"] = charts.line_chart
TEMPLATES.filters["when"] = lambda value: when(value)


def quota_amount(dimension: str, value: float | None) -> str:
    """A quota's amount as a person reads it: dollars for cost, a count otherwise."""
    if value is None:
        return "-"
    if dimension == "cost":
        return display("cost", round(value * UNITS_PER["cost"]))
    return f"{int(value):,}"


TEMPLATES.globals["quota_amount"] = quota_amount
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
NAV = [
    ("/", "Overview"),
    ("/requests", "Requests"),
    ("/prompts", "Prompts"),
    ("/routes", "Routes"),
    ("/monitoring", "Monitoring"),
    ("/alerts", "Alerts"),
    ("/evals", "Evals"),
    ("/fleet", "Fleet"),
    ("/quotas", "Quotas"),
    ("/keys", "Keys"),
    ("/models", "Models"),
]
View = Callable[[Call], Awaitable[dict[str, Any]]]
Action = Callable[[Call, dict[str, str]], Awaitable[str]]
routes: list[Route] = []


def render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    services: Services = request.app.state.services
    html = TEMPLATES.get_template(template).render(
        **context,
        nav=NAV,
        path=request.url.path,
        csrf=session.csrf_token(request, services),
        notice=request.query_params.get("notice"),
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def page(path: str, template: str) -> Callable[[View], View]:
    """A GET page: signed-in admins only; errors render as a page, not JSON."""

    def register(view: View) -> View:
        async def handle(request: Request) -> Response:
            services: Services = request.app.state.services
            principal = session.principal(request, services)
            if principal is None:
                return RedirectResponse("/login?" + urlencode({"next": _here(request)}), 303)
            try:
                context = await view(Call(request, services, principal))
            except errors.PilothouseError as exc:
                return render(request, "error.html", {"error": exc}, exc.status)
            return render(request, template, context)

        routes.append(Route(path, handle, methods=["GET"], name=f"page_{view.__name__}"))
        return view

    return register


def action(path: str) -> Callable[[Action], Action]:
    """A form POST: signed in, same origin, with the session's CSRF token; redirects to
    the URL the action returns, with a notice saying what happened."""

    def register(act: Action) -> Action:
        async def handle(request: Request) -> Response:
            services: Services = request.app.state.services
            principal = session.principal(request, services)
            form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
            if principal is None or not session.csrf_ok(request, services, form.get("csrf")):
                return render(
                    request,
                    "error.html",
                    {
                        "error": errors.PermissionDenied(
                            "this form is not valid any more: reload the page and try again"
                        )
                    },
                    403,
                )
            form.pop("csrf", None)
            try:
                target = await act(Call(request, services, principal), form)
            except errors.PilothouseError as exc:
                return render(request, "error.html", {"error": exc}, exc.status)
            return RedirectResponse(target, 303)

        routes.append(Route(path, handle, methods=["POST"], name=f"action_{act.__name__}"))
        return act

    return register


def when(value: Any) -> str:
    """A timestamp as `2026-11-29 19:49:19` (UTC), whether a datetime or ISO text."""
    if value is None:
        return "-"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    return (
        f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S}" if isinstance(value, datetime) else str(value)
    )


def _here(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def query(call: Call, model: type[BaseModel]) -> Any:
    return parse(model, dict(call.query), where="query")


def data(result: Any) -> Any:
    return result.data if isinstance(result, Result) else result


def with_notice(url: str, notice: str) -> str:
    return url + ("&" if "?" in url else "?") + urlencode({"notice": notice})


# ---------------------------------------------------------------------------- sign-in


async def login_page(request: Request) -> Response:
    return render(request, "login.html", {"next": request.query_params.get("next", "/")})


async def login(request: Request) -> Response:
    services: Services = request.app.state.services
    form = await request.form()
    token = str(form.get("token") or "")
    target = str(form.get("next") or "/")
    if not target.startswith("/") or target.startswith("//"):
        target = "/"  # never redirect off this site
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        return render(request, "login.html", {"next": "/", "failed": True}, 403)
    if not session.token_ok(services, token):
        log.warning(
            "dashboard sign-in refused", extra={"client": request.client and request.client.host}
        )
        return render(request, "login.html", {"next": target, "failed": True}, 401)
    response = RedirectResponse(target, 303)
    session.start(response, services, request)
    return response


async def logout(request: Request) -> Response:
    services: Services = request.app.state.services
    form = await request.form()
    if not session.csrf_ok(request, services, str(form.get("csrf") or "")):
        return RedirectResponse("/", 303)
    response = RedirectResponse("/login", 303)
    session.end(response)
    return response


routes += [
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]


def reason_only(form: dict[str, str]) -> dict[str, Any]:
    reason = (form.get("reason") or "").strip()
    if not reason:
        raise errors.InvalidRequest("say why: a reason is required for this action", param="reason")
    return {"reason": reason}


def whole_number(value: str | None, name: str) -> int:
    if value is None or not value.strip().lstrip("-").isdigit():
        raise errors.InvalidRequest(f"`{name}` must be a whole number", param=name)
    return int(value)
