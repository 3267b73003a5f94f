"""Credentials over HTTP (admin token): API keys (list, create with the secret shown once,
disable, enable) and the deployment's admin token (rotate, shown once)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import Field

from pilothouse import errors
from pilothouse.policy import admin_token
from pilothouse.policy import keys as key_policy
from pilothouse.registry import names
from pilothouse.web.auth import Access
from pilothouse.web.endpoint import FIRST_PAGE, Api, Body, Call, Page, paged, parse_time
from pilothouse.web.fields import Name, Text
from pilothouse.web.rendering import Result

Scope = Literal["evals", "release:pin", "routes:read", "history:read", "responses:store"]
assert set(get_args(Scope)) == set(key_policy.SCOPES), "Scope must list policy.keys.SCOPES"
PromptPattern = Annotated[str, Field(pattern=key_policy.PROMPT_PATTERN.pattern)]

api = Api()


class CreateKey(Body):
    name: Name
    user: Name | None = None
    team: Name | None = None
    models: list[Name] | None = Field(default=None, max_length=1000)
    expires_at: str | None = None
    scopes: list[Scope] | None = Field(default=None, max_length=len(key_policy.SCOPES))
    prompts: list[PromptPattern] | None = Field(default=None, max_length=100)


class Reason(Body):
    reason: Text | None = None


@api.get("/api/keys", Access.ADMIN)
async def list_keys(call: Call, query: Page = FIRST_PAGE) -> dict[str, Any]:
    """Keys in creation order, a page at a time (`limit`, `after`: `next_after`)."""
    keys = await call.run(
        key_policy.list_keys, call.services.store, after=query.after, limit=query.limit
    )
    return paged([k.public() for k in keys], len(keys), query, keys[-1].id if keys else None)


@api.post("/api/keys", Access.ADMIN)
async def create_key(call: Call, body: CreateKey) -> Result:
    known = set(call.services.config.models)
    unknown = sorted(m for m in set(body.models or ()) - known if not m.startswith("route:"))
    bad_routes = [
        m for m in body.models or () if m.startswith("route:") and not names.is_name(m[6:])
    ]
    if bad_routes:
        raise errors.InvalidRequest(
            f"{bad_routes[0][:60]!r} is not a route: route:NAME, NAME being {names.NAME_RULE}",
            param="models",
        )
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
        scopes=body.scopes,
        prompts=body.prompts,
        actor=call.actor,
    )
    await call.announce()
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
        await call.announce()
        return key.public()

    set_disabled.__name__ = "disable_key" if disabled else "enable_key"
    return set_disabled


disable_key = api.post("/api/keys/{key}/disable", Access.ADMIN)(_set_disabled(True))
enable_key = api.post("/api/keys/{key}/enable", Access.ADMIN)(_set_disabled(False))


class Rotate(Body):
    reason: Text | None = None


@api.post("/api/admin/token/rotate", Access.ADMIN)
async def rotate_admin_token(call: Call, body: Rotate | None) -> Result:
    """A new admin token for every instance (the old one stops working within a second);
    the new token is in the answer, once."""
    token = await call.run(
        admin_token.rotate,
        call.services.store,
        actor=call.actor,
        reason=body.reason if body else None,
    )
    await call.announce()
    return Result({"token": token, "note": "shown once: only its hash is kept"}, status=201)
