"""Quota policies over HTTP (admin token): list, set (create or replace), remove; and where
a key stands against its quotas (`/api/keys/{key}/usage`, with its recent spend)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field

from pilothouse import errors
from pilothouse.monitor import spend
from pilothouse.policy import keys as key_policy
from pilothouse.policy import quotas as quota_policy
from pilothouse.policy.quota_backends import BackendDown
from pilothouse.web.auth import Access
from pilothouse.web.endpoint import Api, Body, Call
from pilothouse.web.fields import Name, Text
from pilothouse.web.rendering import Result

api = Api()


class SetQuota(Body):
    subject_kind: Literal["key", "user", "team"]
    subject: Name
    dimension: Literal["requests", "tokens", "cost"]
    window: Literal["minute", "hour", "day", "month"]
    rolling: bool = False
    soft_limit: float | None = Field(default=None, ge=0, lt=1e12)
    hard_limit: float | None = Field(default=None, ge=0, lt=1e12)
    degrade_to: Name | None = None
    degrade_max_tokens: int | None = Field(default=None, ge=1, le=10_000_000)
    on_backend_down: Literal["open", "closed"] = "open"
    reason: Text | None = None


class Reason(Body):
    reason: Text | None = None


@api.get("/api/quotas", Access.ADMIN)
async def list_quotas(call: Call) -> dict[str, Any]:
    policies = await call.run(quota_policy.list_policies, call.services.store)
    return {"data": [p.public() for p in policies]}


@api.put("/api/quotas/{name}", Access.ADMIN)
async def set_quota(call: Call, body: SetQuota) -> Result:
    """Create or replace a quota policy; every instance obeys it within a second."""
    spec = {**body.model_dump(exclude={"reason"}), "name": call.path["name"]}
    policy, created = await call.run(
        quota_policy.set_policy,
        call.services.store,
        spec,
        known_aliases=set(call.services.config.models),
        actor=call.actor,
        reason=body.reason,
    )
    await call.services.announce()
    return Result(policy.public(), status=201 if created else 200)


@api.delete("/api/quotas/{name}", Access.ADMIN)
async def remove_quota(call: Call, body: Reason | None) -> dict[str, Any]:
    policy = await call.run(
        quota_policy.remove_policy,
        call.services.store,
        call.path["name"],
        actor=call.actor,
        reason=body.reason if body else None,
    )
    await call.services.announce()
    return {"removed": policy.public()}


@api.get("/api/keys/{key}/usage", Access.ADMIN)
async def key_usage(call: Call) -> dict[str, Any]:
    """Where a key stands against every quota that applies to it (its own, its user's and
    its team's), its spend in the last hour and day, and whether it is suspended."""
    key = await call.run(key_policy.resolve_key, call.services.store, call.path["key"])
    applicable = call.services.snapshot.quotas.applicable(key.id, key.user, key.team)
    try:
        quotas = await call.services.quotas.usage(applicable)
    except BackendDown as exc:
        raise errors.ServiceUnavailable(
            f"the quota counters cannot be read: {exc}", hint="retry shortly"
        ) from None
    now = datetime.fromtimestamp(call.services.quotas.clock.now(), UTC)
    recent = await call.run(spend.recent_spend, call.services.store, key.id, now)
    return {"key": key.public(), "quotas": quotas, "spend": recent}


class Restore(Body):
    reason: Text = Field(min_length=1)


@api.post("/api/keys/{key}/restore", Access.ADMIN)
async def restore_key(call: Call, body: Restore) -> dict[str, Any]:
    """Lift a spend-watch suspension (with a reason, audited); every instance within a
    second."""
    now = datetime.fromtimestamp(call.services.quotas.clock.now(), UTC)
    key = await call.run(
        key_policy.restore,
        call.services.store,
        call.path["key"],
        body.reason,
        at=now,
        actor=call.actor,
    )
    await call.services.announce()
    return key.public()
