"""The dashboard's on-call pages: monitoring (charts with SLO lines and drift markers,
SLO budgets, scheduled suites), alerts with acknowledge and resolve, the fleet, and
quotas with the suspended keys' restore. Views of their `/api` twins, like every page.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pilothouse import errors
from pilothouse.web import fleet_api, keys_api, monitoring_api, quotas_api
from pilothouse.web.dashboard import frame
from pilothouse.web.dashboard.charts import Marker
from pilothouse.web.endpoint import Call, parse

routes = frame.routes


@frame.page("/monitoring", "monitoring.html")
async def monitoring(call: Call) -> dict[str, Any]:
    query = frame.query(call, monitoring_api.SeriesQuery)
    chart, slos_listed, schedules_listed = await asyncio.gather(  # three reads, at once
        monitoring_api.monitoring_series(call, query),
        monitoring_api.list_slos(call),
        monitoring_api.list_schedules(call),
    )
    slos, schedules = slos_listed["data"], schedules_listed["data"]
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
        "labels": [frame.when(at)[5:16] for at in steps],
        "ttft": lines("ttft_p95_ms"),
        "refusal": lines("refusal_rate", 100),
        "hedging": lines("hedging_rate", 100),
        "length": lines("mean_output_tokens"),
        "threshold": min(thresholds) if thresholds else None,
        "markers": _markers(chart["drift"], steps),
        "drift": chart["drift"],
        "slos": slos,
        "schedules": schedules,
    }


def _markers(drift: list[dict[str, Any]], steps: list[str]) -> dict[str, list[Marker]]:
    """The drift markers of each output signal, placed on the charts' steps."""
    times = [datetime.fromisoformat(at).timestamp() for at in steps]

    def position(moment: datetime | None) -> float | None:
        if moment is None or not times:
            return None
        t = moment.timestamp()
        i = bisect_right(times, t) - 1
        if i < 0:
            return 0.0
        if i >= len(times) - 1:  # in the last step (or after it): by the step's own width
            width = times[-1] - times[-2] if len(times) > 1 else 60.0
            return i + (t - times[i]) / width
        return i + (t - times[i]) / (times[i + 1] - times[i])

    out: dict[str, list[Marker]] = {}
    for found in drift:
        start = position(found["at"])
        if start is None:
            continue
        name = found["subject"].split(":", 1)[-1]
        arrow = "↑" if found["direction"] == "up" else "↓"
        out.setdefault(found["signal"], []).append(
            Marker(start, position(found["until"]), f"{name} {arrow}", found["summary"])
        )
    return out


@frame.page("/alerts", "alerts.html")
async def alerts_page(call: Call) -> dict[str, Any]:
    query = frame.query(call, monitoring_api.AlertsQuery)
    listed = await monitoring_api.list_alerts(call, query)
    return {"query": query, "alerts": listed["data"], "chronic": listed["chronic"]}


@frame.page("/alerts/{alert_id}", "alert.html")
async def alert_page(call: Call) -> dict[str, Any]:
    return {"alert": await monitoring_api.get_alert(call)}


@frame.page("/fleet", "fleet.html")
async def fleet(call: Call) -> dict[str, Any]:
    return {"fleet": await fleet_api.fleet_status(call)}


@frame.page("/quotas", "quotas.html")
async def quotas(call: Call) -> dict[str, Any]:
    keys = (await keys_api.list_keys(call))["data"]
    return {
        "policies": (await quotas_api.list_quotas(call))["data"],
        "suspended": [k for k in keys if k.get("suspended")],
    }


@frame.page("/keys/{key}", "key.html")
async def key_usage(call: Call) -> dict[str, Any]:
    """A key against every quota that applies to it, its recent spend and its suspension:
    the view of GET /api/keys/{key}/usage."""
    return {"usage": await quotas_api.key_usage(call)}


@frame.action("/alerts/{alert_id}/close")
async def close_alert(call: Call, form: dict[str, str]) -> str:
    state = form.get("state")
    if state not in ("acknowledge", "resolve"):
        raise errors.InvalidRequest("choose acknowledge or resolve", param="state")
    body = parse(
        monitoring_api.Close,
        {"disposition": form.get("disposition") or "", **frame.reason_only(form)},
    )
    closer = (
        monitoring_api.acknowledge_alert if state == "acknowledge" else monitoring_api.resolve_alert
    )
    done = await closer(call, body)
    return frame.with_notice(
        f"/alerts/{quote(call.path['alert_id'])}", f"{done['state']} ({body.disposition})"
    )


@frame.action("/keys/{key}/restore")
async def restore_key(call: Call, form: dict[str, str]) -> str:
    await quotas_api.restore_key(call, parse(quotas_api.Restore, frame.reason_only(form)))
    return frame.with_notice("/quotas", f"restored {call.path['key']}")
