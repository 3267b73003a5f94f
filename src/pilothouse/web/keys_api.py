"""API keys over HTTP (admin token): list, create (the secret is shown once), disable and
enable."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pilothouse import errors
from pilothouse.policy import keys as key_policy
from pilothouse.web.auth import Access
from pilothouse.web.endpoint import Api, Body, Call, parse_time
from pilothouse.web.fields import Name, Text
from pilothouse.web.rendering import Result

api = Api()


class CreateKey(Body):
    name: Name
    user: Name | None = None
    team: Name | None = None
    models: list[Name] | None = None
    expires_at: str | None = None


class Reason(Body):
    reason: Text | None = None


@api.get("/api/keys", Access.ADMIN)
async def list_keys(call: Call) -> dict[str, Any]:
    keys = await call.run(key_policy.list_keys, call.services.store)
    return {"data": [k.public() for k in keys]}


@api.post("/api/keys", Access.ADMIN)
async def create_key(call: Call, body: CreateKey) -> Result:
    known = set(call.services.config.models)
    unknown = sorted(m for m in set(body.models or ()) - known if not m.startswith("route:"))
    if unknown:
        raise errors.InvalidRequest(
            f"unknown model aliases {', '.join(unknown)}; known: "
            f"{', '.join(sorted(known)) or '(none)'}",
            param="models",
        )
    expires_at: datetime | None = parse_time(body.expires_at, "expires_at")
    key, secret = await call.run(
        key_policy.create_key,
        call.services.store,
        name=body.name,
        user=body.user,
        team=body.team,
        models=body.models,
        expires_at=expires_at,
        actor=call.actor,
    )
    await call.services.announce()
    return Result({**key.public(), "secret": secret}, status=201)


def _set_disabled(disabled: bool) -> Any:
    async def set_disabled(call: Call, body: Reason | None) -> dict[str, Any]:
        key = await call.run(
            key_policy.set_disabled,
            call.services.store,
            call.path["key"],
            disabled,
            actor=call.actor,
            reason=body.reason if body else None,
        )
        await call.services.announce()
        return key.public()

    set_disabled.__name__ = "disable_key" if disabled else "enable_key"
    return set_disabled


disable_key = api.post("/api/keys/{key}/disable", Access.ADMIN)(_set_disabled(True))
enable_key = api.post("/api/keys/{key}/enable", Access.ADMIN)(_set_disabled(False))
