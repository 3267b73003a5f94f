"""SLOs, alerts and the monitoring series over HTTP (admin token)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field, field_validator

from pilothouse import errors
from pilothouse.monitor import alerts, objectives, schedules, series
from pilothouse.monitor import slo as slos
from pilothouse.web.auth import Access
from pilothouse.web.endpoint import Api, Body, Call, Query, parse_since
from pilothouse.web.fields import FileText, Name, Text
from pilothouse.web.rendering import Result

api = Api()


class NewSLO(Body):
    name: Name
    route: Name | None = None
    model: Name | None = None
    team: Name | None = None
    sli: Literal["ttft", "availability", "signal"]
    threshold_ms: int | None = Field(default=None, ge=1, le=600_000)
    signal: Name | None = None
    objective: float = Field(gt=0, lt=1)
    period_days: int = Field(default=30, ge=1, le=400)
    min_events: int = Field(default=100, ge=1, le=10_000_000)
    owner: Name | None = None


class AlertsQuery(Query):
    state: Literal["open", "acknowledged", "resolved", "active", "all"] = "active"
    owner: Name | None = None
    limit: int = Field(default=200, ge=1, le=1000)


class Close(Body):
    disposition: Literal["regression", "expected_change", "noise"]
    reason: Text = Field(min_length=1)


class SeriesQuery(Query):
    since: str = Field(default="24h", max_length=64)
    by: Literal["route", "model_alias", "provider", "team"] = "route"
    route: Name | None = None
    model: Name | None = None
    provider: Name | None = None

    @field_validator("since")
    @classmethod
    def _since(cls, value: str) -> str:
        value = value or "24h"
        parse_since(value)
        return value


def _now(call: Call) -> datetime:
    return datetime.fromtimestamp(call.services.clock.now(), UTC)


@api.get("/api/slos", Access.ADMIN)
async def list_slos(call: Call) -> dict[str, Any]:
    """Every SLO with its budget left over its period and its burn rate per window."""
    statuses = await call.run(call.services.monitor.statuses, _now(call))
    return {"data": [s.public() for s in statuses]}


@api.post("/api/slos", Access.ADMIN)
async def put_slo(call: Call, body: NewSLO) -> Result:
    """Add or replace an SLO (one declared in the config file cannot be replaced here)."""
    try:
        objective = slos.from_spec(body)
    except slos.SLOError as exc:
        raise errors.InvalidRequest(str(exc)) from None
    if any(s.name == objective.name for s in call.services.monitor.config_slos):
        raise errors.Conflict(
            f"SLO {objective.name!r} is declared in the config file; change it there"
        )
    await call.run(objectives.store_slo, call.services.store, objective, actor=call.actor)
    return Result({**objective.public(), "source": "api"}, status=201)


@api.delete("/api/slos/{name}", Access.ADMIN)
async def delete_slo(call: Call) -> dict[str, Any]:
    await call.run(objectives.delete_slo, call.services.store, call.path["name"], actor=call.actor)
    return {"deleted": True}


@api.get("/api/alerts", Access.ADMIN)
async def list_alerts(call: Call, query: AlertsQuery) -> dict[str, Any]:
    """Alerts, newest first (`active`: open and acknowledged), and the signatures dismissed
    as noise again and again."""
    states = {
        "active": ("open", "acknowledged"),
        "all": None,
    }.get(query.state, (query.state,))
    data = await call.run(
        alerts.listing, call.services.store, states=states, owner=query.owner, limit=query.limit
    )
    chronic = await call.run(alerts.chronic, call.services.store, _now(call))
    return {"data": data, "chronic": chronic}


@api.get("/api/alerts/{alert_id}", Access.ADMIN)
async def get_alert(call: Call) -> dict[str, Any]:
    """One alert with its whole history."""
    return await call.run(alerts.history, call.services.store, call.path["alert_id"])


def _closer(state: str) -> Any:
    async def close(call: Call, body: Close) -> dict[str, Any]:
        return await call.run(
            alerts.close,
            call.services.store,
            call.path["alert_id"],
            state=state,
            disposition=body.disposition,
            reason=body.reason,
            actor=call.actor,
            now=_now(call),
        )

    close.__name__ = "acknowledge_alert" if state == "acknowledged" else "resolve_alert"
    close.__doc__ = f"Mark the alert {state}, with a disposition and a reason."
    return close


acknowledge_alert = api.post("/api/alerts/{alert_id}/acknowledge", Access.ADMIN)(
    _closer("acknowledged")
)
resolve_alert = api.post("/api/alerts/{alert_id}/resolve", Access.ADMIN)(_closer("resolved"))


@api.get("/api/monitoring/series", Access.ADMIN)
async def monitoring_series(call: Call, query: SeriesQuery) -> dict[str, Any]:
    """Charts' data from the rollups: per time step and subject, requests, failures,
    delivered TTFT p50/p95, output-signal rates and spend; the SLO thresholds; and the
    drift markers (`drift`: where and on what the monitor detected drift, from its
    alerts)."""
    since = parse_since(query.since)
    assert since is not None
    now = _now(call)
    data = await call.run(
        series.series,
        call.services.store,
        since,
        now,
        query.by,
        route=query.route,
        model_alias=query.model,
        provider=query.provider,
    )
    markers = await call.run(
        series.drift_markers,
        call.services.store,
        since,
        now,
        route=query.route,
        provider=query.provider,
    )
    thresholds = [s.public() for s in call.services.monitor.slos() if s.sli == "ttft"]
    return {
        "since": since,
        "until": now,
        "by": query.by,
        "step_seconds": series.step_for(now - since).total_seconds(),
        "data": data,
        "slos": thresholds,
        "drift": markers,
    }


class DeliveriesQuery(Query):
    state: Literal["pending", "delivered", "failed"] | None = None
    webhook: Name | None = None
    limit: int = Field(default=100, ge=1, le=1000)


@api.get("/api/notifications/deliveries", Access.ADMIN)
async def list_deliveries(call: Call, query: DeliveriesQuery) -> dict[str, Any]:
    """Webhook deliveries, newest first: event, webhook, state, attempts, last status and
    error (the payload as sent is in `payload`)."""
    data = await call.run(
        call.services.webhooks.listing,
        state=query.state,
        webhook=query.webhook,
        limit=query.limit,
    )
    return {"data": data}


class NewSchedule(Body):
    suite: FileText  # the suite file's text
    every_seconds: int = Field(ge=60, le=31 * 86400)
    owner: Name | None = None


@api.get("/api/evals/schedules", Access.ADMIN)
async def list_schedules(call: Call) -> dict[str, Any]:
    """Scheduled suites: owner, schedule, next run, the last run's status, and whether the
    suite is stale (no finished run within twice its schedule)."""
    return {"data": await call.run(schedules.list_schedules, call.services.store, _now(call))}


@api.post("/api/evals/schedules", Access.ADMIN)
async def put_schedule(call: Call, body: NewSchedule) -> Result:
    """Schedule a suite (or change its schedule); it runs at the monitor's next evaluation."""
    made = await call.run(
        schedules.put_schedule,
        call.services.store,
        body.suite,
        every_seconds=body.every_seconds,
        owner=body.owner,
        actor=call.actor,
        now=_now(call),
    )
    return Result(made, status=201)


@api.delete("/api/evals/schedules/{suite}", Access.ADMIN)
async def delete_schedule(call: Call) -> dict[str, Any]:
    await call.run(schedules.remove_schedule, call.services.store, call.path["suite"])
    return {"deleted": True}


@api.post("/api/evals/schedules/{suite}/run", Access.ADMIN)
async def run_schedule(call: Call) -> dict[str, Any]:
    """Run a scheduled suite now (at the monitor's next evaluation)."""
    return await call.run(schedules.run_now, call.services.store, call.path["suite"], _now(call))
