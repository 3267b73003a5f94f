"""The dashboard's pages and form actions.

A page calls the same data functions as its `/api` twin (with the signed-in admin as the
caller) and renders the result with a template; an action parses its form into the same
body model the API takes, calls the same data function, and redirects back. Nothing here
reaches the store.
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
from pilothouse.services import Services
from pilothouse.web import (
    evals_api,
    fleet_api,
    keys_api,
    monitoring_api,
    prompts_api,
    quotas_api,
    releases_api,
    requests_api,
)
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
TEMPLATES.filters["when"] = lambda value: _when(value)
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


def _when(value: Any) -> str:
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


def _query(call: Call, model: type[BaseModel]) -> Any:
    return parse(model, dict(call.query), where="query")


def _data(result: Any) -> Any:
    return result.data if isinstance(result, Result) else result


def _with_notice(url: str, notice: str) -> str:
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


# ---------------------------------------------------------------------------- pages


@page("/", "overview.html")
async def overview(call: Call) -> dict[str, Any]:
    window = _query(call, requests_api.Window)
    summary = await requests_api.overview(call, window)
    recent_failures = await requests_api.list_requests(
        call, requests_api.RequestFilters(errors=True, limit=10)
    )
    return {"since": window.since, "summary": summary["data"], "failures": recent_failures["data"]}


@page("/requests", "requests.html")
async def requests(call: Call) -> dict[str, Any]:
    filters = _query(call, requests_api.RequestFilters)
    result = await requests_api.list_requests(call, filters)
    return {"filters": filters, "rows": result["data"], "next_before": result["next_before"]}


@page("/requests/{request_id}", "request.html")
async def request_detail(call: Call) -> dict[str, Any]:
    return {"row": await requests_api.get_request(call)}


@page("/keys", "keys.html")
async def keys(call: Call) -> dict[str, Any]:
    return {"keys": (await keys_api.list_keys(call))["data"]}


@page("/prompts", "prompts.html")
async def prompts(call: Call) -> dict[str, Any]:
    return {"prompts": (await prompts_api.list_prompts(call))["data"]}


@page("/prompts/{name}", "prompt.html")
async def prompt(call: Call) -> dict[str, Any]:
    which = _query(call, prompts_api.Which)
    versions = (await prompts_api.list_versions(call))["data"]
    if which.label is None and which.version is None and versions:
        # No choice made: the production version if there is one, else the newest.
        production = [v["version"] for v in versions if "production" in v["labels"]]
        which = prompts_api.Which(version=(production or [versions[-1]["version"]])[0])
    return {
        "prompt": _data(await prompts_api.get_prompt(call, which)),
        "versions": versions,
        "history": (await prompts_api.prompt_history(call))["data"],
    }


@page("/prompts/{name}/diff", "diff.html")
async def prompt_diff(call: Call) -> dict[str, Any]:
    return {"diff": await prompts_api.prompt_diff(call, _query(call, prompts_api.DiffQuery))}


@page("/routes", "routes.html")
async def route_list(call: Call) -> dict[str, Any]:
    return {"routes": (await releases_api.list_routes(call))["data"]}


@page("/routes/{route}", "route.html")
async def route(call: Call) -> dict[str, Any]:
    models = (await releases_api.list_models(call))["data"]
    return {
        "route": _data(await releases_api.show_route(call)),
        "history": (await releases_api.route_history(call))["data"],
        "models": [m["alias"] for m in models],
    }


@page("/evals", "evals.html")
async def evals(call: Call) -> dict[str, Any]:
    runs = (await evals_api.list_runs(call, _query(call, evals_api.RunsQuery)))["data"]
    datasets = (await evals_api.list_datasets(call))["data"]
    return {"runs": runs, "datasets": datasets}


@page("/evals/{run_id}", "run.html")
async def run(call: Call) -> dict[str, Any]:
    return {"run": await evals_api.get_run(call)}


@page("/models", "models.html")
async def models(call: Call) -> dict[str, Any]:
    catalog = (await releases_api.list_models(call))["data"]
    doctor = await releases_api.doctor(call, releases_api.DoctorQuery())
    return {"models": catalog, "warnings": doctor["warnings"]}


@page("/monitoring", "monitoring.html")
async def monitoring(call: Call) -> dict[str, Any]:
    query = _query(call, monitoring_api.SeriesQuery)
    chart = await monitoring_api.monitoring_series(call, query)
    slos = (await monitoring_api.list_slos(call))["data"]
    schedules = (await monitoring_api.list_schedules(call))["data"]
    steps = sorted({p["at"] for subject in chart["data"] for p in subject["points"]})
    by_step = {
        subject["subject"] or "(none)": {p["at"]: p for p in subject["points"]}
        for subject in chart["data"]
    }

    def lines(field: str, scale: float = 1.0) -> dict[str, list[float | None]]:
        return {
            name: [
                None if at not in points or points[at][field] is None else points[at][field] * scale
                for at in steps
            ]
            for name, points in by_step.items()
        }

    thresholds = [s["threshold_ms"] for s in chart["slos"] if s.get("threshold_ms")]
    return {
        "query": query,
        "labels": [_when(at)[5:16] for at in steps],
        "ttft": lines("ttft_p95_ms"),
        "refusal": lines("refusal_rate", 100),
        "hedging": lines("hedging_rate", 100),
        "threshold": min(thresholds) if thresholds else None,
        "slos": slos,
        "schedules": schedules,
    }


@page("/alerts", "alerts.html")
async def alerts_page(call: Call) -> dict[str, Any]:
    query = _query(call, monitoring_api.AlertsQuery)
    listed = await monitoring_api.list_alerts(call, query)
    return {"query": query, "alerts": listed["data"], "chronic": listed["chronic"]}


@page("/alerts/{alert_id}", "alert.html")
async def alert_page(call: Call) -> dict[str, Any]:
    return {"alert": await monitoring_api.get_alert(call)}


@page("/fleet", "fleet.html")
async def fleet(call: Call) -> dict[str, Any]:
    return {"fleet": await fleet_api.fleet_status(call)}


@page("/quotas", "quotas.html")
async def quotas(call: Call) -> dict[str, Any]:
    keys = (await keys_api.list_keys(call))["data"]
    return {
        "policies": (await quotas_api.list_quotas(call))["data"],
        "suspended": [k for k in keys if k.get("suspended")],
    }


# ---------------------------------------------------------------------------- actions


@action("/routes/{route}/rollback")
async def rollback(call: Call, form: dict[str, str]) -> str:
    body = parse(releases_api.Rollback, _reason_only(form))
    release = await releases_api.rollback(call, body)
    return _with_notice(f"/routes/{quote(call.path['route'])}", f"rolled back to {release['id']}")


@action("/routes/{route}/canary")
async def canary(call: Call, form: dict[str, str]) -> str:
    fields: dict[str, Any] = {"weight": _int(form.get("weight"), "weight"), **_reason_only(form)}
    for name in ("prompt", "model"):
        if form.get(name):
            fields[name] = form[name]
    result = await releases_api.canary(call, parse(releases_api.Canary, fields))
    said = f"canary at {result['weight']}%" if result["canary"] else "canary stopped"
    return _with_notice(f"/routes/{quote(call.path['route'])}", said)


@action("/routes/{route}/promote")
async def promote(call: Call, form: dict[str, str]) -> str:
    fields: dict[str, Any] = {**_reason_only(form)}
    if form.get("from_canary"):
        fields["from_canary"] = True
    else:
        fields.update(prompt=form.get("prompt") or None, model=form.get("model") or None)
    result = _data(await releases_api.promote(call, parse(releases_api.Promote, fields)))
    return _with_notice(f"/routes/{quote(call.path['route'])}", f"promoted {result['id']}")


@action("/keys/{key}/disable")
async def disable_key(call: Call, form: dict[str, str]) -> str:
    await keys_api.disable_key(call, parse(keys_api.Reason, _reason_only(form)))
    return _with_notice("/keys", f"disabled {call.path['key']}")


@action("/keys/{key}/enable")
async def enable_key(call: Call, form: dict[str, str]) -> str:
    await keys_api.enable_key(call, parse(keys_api.Reason, _reason_only(form)))
    return _with_notice("/keys", f"enabled {call.path['key']}")


@action("/alerts/{alert_id}/close")
async def close_alert(call: Call, form: dict[str, str]) -> str:
    state = form.get("state")
    if state not in ("acknowledge", "resolve"):
        raise errors.InvalidRequest("choose acknowledge or resolve", param="state")
    body = parse(
        monitoring_api.Close,
        {"disposition": form.get("disposition") or "", **_reason_only(form)},
    )
    closer = (
        monitoring_api.acknowledge_alert if state == "acknowledge" else monitoring_api.resolve_alert
    )
    done = await closer(call, body)
    return _with_notice(
        f"/alerts/{quote(call.path['alert_id'])}", f"{done['state']} ({body.disposition})"
    )


@action("/keys/{key}/restore")
async def restore_key(call: Call, form: dict[str, str]) -> str:
    await quotas_api.restore_key(call, parse(quotas_api.Restore, _reason_only(form)))
    return _with_notice("/quotas", f"restored {call.path['key']}")


def _reason_only(form: dict[str, str]) -> dict[str, Any]:
    reason = (form.get("reason") or "").strip()
    if not reason:
        raise errors.InvalidRequest("say why: a reason is required for this action", param="reason")
    return {"reason": reason}


def _int(value: str | None, name: str) -> int:
    if value is None or not value.strip().lstrip("-").isdigit():
        raise errors.InvalidRequest(f"`{name}` must be a whole number", param=name)
    return int(value)
