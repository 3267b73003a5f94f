"""The dashboard's pages and form actions for requests, prompts, routes and releases,
evals, keys and models (monitoring, alerts, fleet and quotas: `watch.py`).

A page calls the same data functions as its `/api` twin (with the signed-in admin as the
caller) and renders the result with a template; an action parses its form into the same
body model the API takes, calls the same data function, and redirects back. Nothing here
reaches the store.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

from pilothouse.web import evals_api, keys_api, prompts_api, releases_api, requests_api
from pilothouse.web.dashboard import frame, watch
from pilothouse.web.endpoint import Call, parse

# ---------------------------------------------------------------------------- pages


@frame.page("/", "overview.html")
async def overview(call: Call) -> dict[str, Any]:
    window = frame.query(call, requests_api.Window)
    summary = await requests_api.overview(call, window)
    recent_failures = await requests_api.list_requests(
        call, requests_api.RequestFilters(errors=True, limit=10)
    )
    return {"since": window.since, "summary": summary["data"], "failures": recent_failures["data"]}


@frame.page("/requests", "requests.html")
async def requests(call: Call) -> dict[str, Any]:
    filters = frame.query(call, requests_api.RequestFilters)
    result = await requests_api.list_requests(call, filters)
    older = None
    if result["next_before"]:  # the next page keeps the filters (keyset: `before` a row seen)
        kept = filters.model_dump(exclude_defaults=True, exclude={"before"})
        older = urlencode({**kept, "before": result["next_before"]})
    return {"filters": filters, "rows": result["data"], "older": older}


@frame.page("/requests/{request_id}", "request.html")
async def request_detail(call: Call) -> dict[str, Any]:
    return {"row": await requests_api.get_request(call)}


@frame.page("/keys", "keys.html")
async def keys(call: Call) -> dict[str, Any]:
    return {"keys": (await keys_api.list_keys(call))["data"]}


@frame.page("/prompts", "prompts.html")
async def prompts(call: Call) -> dict[str, Any]:
    return {"prompts": (await prompts_api.list_prompts(call))["data"]}


@frame.page("/prompts/{name}", "prompt.html")
async def prompt(call: Call) -> dict[str, Any]:
    which = frame.query(call, prompts_api.Which)
    versions = (await prompts_api.list_versions(call))["data"]
    if which.label is None and which.version is None and versions:
        # No choice made: the production version if there is one, else the newest.
        production = [v["version"] for v in versions if "production" in v["labels"]]
        which = prompts_api.Which(version=(production or [versions[-1]["version"]])[0])
    return {
        "prompt": frame.data(await prompts_api.get_prompt(call, which)),
        "versions": versions,
        "history": (await prompts_api.prompt_history(call))["data"],
    }


@frame.page("/prompts/{name}/diff", "diff.html")
async def prompt_diff(call: Call) -> dict[str, Any]:
    return {"diff": await prompts_api.prompt_diff(call, frame.query(call, prompts_api.DiffQuery))}


@frame.page("/routes", "routes.html")
async def route_list(call: Call) -> dict[str, Any]:
    return {"routes": (await releases_api.list_routes(call))["data"]}


@frame.page("/routes/{route}", "route.html")
async def route(call: Call) -> dict[str, Any]:
    models = (await releases_api.list_models(call))["data"]
    return {
        "route": frame.data(await releases_api.show_route(call)),
        "history": (await releases_api.route_history(call))["data"],
        "models": [m["alias"] for m in models],
    }


@frame.page("/evals", "evals.html")
async def evals(call: Call) -> dict[str, Any]:
    runs = (await evals_api.list_runs(call, frame.query(call, evals_api.RunsQuery)))["data"]
    datasets = (await evals_api.list_datasets(call))["data"]
    return {"runs": runs, "datasets": datasets}


@frame.page("/evals/{run_id}", "run.html")
async def run(call: Call) -> dict[str, Any]:
    artifact = await evals_api.get_run(call)
    summary = artifact.get("summary") or {}
    # A run's targets (a matrix has several); an artifact from before matrices has one,
    # unnamed, with its scorers and each case's scores at the top.
    targets = summary.get("targets") or {"(single)": {"scorers": summary.get("scorers") or {}}}
    cases = []
    for case in (artifact.get("results") or {}).get("cases") or []:
        per_target = case.get("targets") or {
            "(single)": {"outputs": [{"text": case.get("output")}], "scores": case.get("scores")}
        }
        cases.append(
            {
                "id": case.get("id"),
                "tags": case.get("tags") or [],
                "inputs": case.get("inputs"),
                "expected": case.get("expected"),
                "targets": {
                    name: {
                        "outputs": [_output_text(o) for o in entry.get("outputs") or []],
                        "scores": entry.get("scores") or {},
                    }
                    for name, entry in per_target.items()
                },
            }
        )
    return {
        "run": artifact,
        "targets": targets,
        "cases": cases,
        "baseline": summary.get("baseline"),
    }


def _output_text(output: Any) -> str:
    if not isinstance(output, dict):
        return "" if output is None else str(output)
    if output.get("error"):
        return f"(failed: {output['error']})"
    if output.get("refusal"):
        return f"(refused: {output['refusal']})"
    text = output.get("text")
    if text is None and output.get("tool_calls"):
        return json.dumps(output["tool_calls"])
    return text if isinstance(text, str) else "" if text is None else json.dumps(text)


@frame.page("/models", "models.html")
async def models(call: Call) -> dict[str, Any]:
    catalog = (await releases_api.list_models(call))["data"]
    doctor = await releases_api.doctor(call, releases_api.DoctorQuery())
    return {"models": catalog, "warnings": doctor["warnings"]}


# ---------------------------------------------------------------------------- actions


@frame.action("/routes/{route}/rollback")
async def rollback(call: Call, form: dict[str, str]) -> str:
    body = parse(releases_api.Rollback, frame.reason_only(form))
    release = await releases_api.rollback(call, body)
    return frame.with_notice(
        f"/routes/{quote(call.path['route'])}", f"rolled back to {release['id']}"
    )


@frame.action("/routes/{route}/canary")
async def canary(call: Call, form: dict[str, str]) -> str:
    fields: dict[str, Any] = {
        "weight": frame.whole_number(form.get("weight"), "weight"),
        **frame.reason_only(form),
    }
    for name in ("prompt", "model"):
        if form.get(name):
            fields[name] = form[name]
    result = await releases_api.canary(call, parse(releases_api.Canary, fields))
    said = f"canary at {result['weight']}%" if result["canary"] else "canary stopped"
    return frame.with_notice(f"/routes/{quote(call.path['route'])}", said)


@frame.action("/routes/{route}/promote")
async def promote(call: Call, form: dict[str, str]) -> str:
    fields: dict[str, Any] = {**frame.reason_only(form)}
    if form.get("from_canary"):
        fields["from_canary"] = True
    else:
        fields.update(prompt=form.get("prompt") or None, model=form.get("model") or None)
    result = frame.data(await releases_api.promote(call, parse(releases_api.Promote, fields)))
    return frame.with_notice(f"/routes/{quote(call.path['route'])}", f"promoted {result['id']}")


@frame.action("/keys/{key}/disable")
async def disable_key(call: Call, form: dict[str, str]) -> str:
    await keys_api.disable_key(call, parse(keys_api.Reason, frame.reason_only(form)))
    return frame.with_notice("/keys", f"disabled {call.path['key']}")


@frame.action("/keys/{key}/enable")
async def enable_key(call: Call, form: dict[str, str]) -> str:
    await keys_api.enable_key(call, parse(keys_api.Reason, frame.reason_only(form)))
    return frame.with_notice("/keys", f"enabled {call.path['key']}")


routes = frame.routes  # every page and action, this module's and watch's (imported above)
assert watch.routes is routes
