"""Resolving what a request asks for, from the snapshot alone: the caller's key, a model
alias, or a route with its active or canary release (whose prompt is rendered here)."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from typing import Any

from pilothouse import errors
from pilothouse.gateway.snapshot import ModelTarget, Snapshot
from pilothouse.policy.keys import ApiKey
from pilothouse.registry import catalog, templates
from pilothouse.telemetry.request_log import RequestRecord

ROUTE_PREFIX = "route:"


def authenticate(snapshot: Snapshot, authorization: bytes | None) -> ApiKey:
    if not authorization or not authorization[:7].lower() == b"bearer ":
        raise errors.AuthenticationFailed(
            "missing API key: send `Authorization: Bearer <key>`",
            hint="create a key with `pilothouse keys create --name NAME`",
        )
    secret = authorization[7:].strip()
    key = snapshot.keys_by_hash.get(hashlib.sha256(secret).hexdigest())
    if key is None:
        raise errors.AuthenticationFailed("invalid API key")
    if key.disabled:
        raise errors.AuthenticationFailed(
            f"API key {key.prefix}… ({key.id}) is disabled", hint="ask an admin to enable it"
        )
    if key.expired(datetime.now(UTC)):
        raise errors.AuthenticationFailed(f"API key {key.prefix}… ({key.id}) has expired")
    return key


def alias_target(snapshot: Snapshot, key: ApiKey, model: str) -> ModelTarget:
    target = snapshot.models.get(model)
    if target is None or not key.allows(model):
        allowed = sorted(a for a in snapshot.models if key.allows(a))
        raise errors.NotFound(
            f"the model {model!r} does not exist or this key may not use it; "
            f"models available to this key: {', '.join(allowed) or '(none)'}",
            param="model",
        )
    return target


def refuse_retired(target: ModelTarget) -> None:
    if catalog.is_retired(target.spec, date.today()):
        successor = target.spec.successor
        raise errors.Gone(
            f"model {target.alias!r} ({target.provider_model}) is retired"
            + (f"; use its successor {successor!r}" if successor else ""),
            param="model",
        )


def apply_route(
    snapshot: Snapshot,
    key: ApiKey,
    name: str,
    payload: dict[str, Any],
    extras: Any,
    sticky: str,
    arm: str | None,
    record: RequestRecord,
) -> ModelTarget:
    """Resolve a route to one of its releases and build the request that release makes."""
    route = snapshot.routes.get(name)
    if route is None or not key.allows(ROUTE_PREFIX + name):
        allowed = sorted(r for r in snapshot.routes if key.allows(ROUTE_PREFIX + r))
        raise errors.NotFound(
            f"the route {name!r} does not exist or this key may not use it; routes available "
            f"to this key: {', '.join(allowed) or '(none)'}",
            param="model",
        )
    if arm is None:
        release, arm = route.choose(sticky)
    elif arm == "active":
        release = route.active
    elif arm == "canary" and route.canary is not None:
        release = route.canary
    else:
        raise errors.InvalidRequest(
            f"X-Pilothouse-Release must be `active` or `canary` (route {name!r} "
            f"{'has no canary' if route.canary is None else 'has both'}), got {arm!r}"
        )
    variables = _route_variables(extras)
    record.variables = variables or None
    try:
        rendered = release.prompt.render(variables)
    except (templates.RenderError, templates.TemplateError) as exc:
        raise errors.InvalidRequest(
            f"route {name!r} (prompt {release.prompt.name}@{release.prompt.version}): {exc}",
            param="pilothouse.variables",
        ) from None
    messages = payload.get("messages", [])
    if not isinstance(messages, list):
        raise errors.InvalidRequest("`messages` must be a list", param="messages")
    payload["messages"] = rendered.messages + messages
    for field in ("tools", "response_format"):
        if release.prompt.content.get(field) is not None and field not in payload:
            payload[field] = release.prompt.content[field]
    payload.update(release.params)  # the release decides; that is what it is for
    record.route = name
    record.release_id = release.id
    record.release_arm = arm
    record.prompt_name = release.prompt.name
    record.prompt_version = release.prompt.version
    record.prompt_hash = release.prompt.hash
    target = snapshot.models.get(release.model_alias)
    if target is None:
        raise errors.ServiceUnavailable(
            f"release {release.id} of route {name!r} uses model alias {release.model_alias!r}, "
            "which this gateway's config does not declare"
        )
    return target


def _route_variables(extras: Any) -> dict[str, Any]:
    if extras is None:
        return {}
    if not isinstance(extras, dict):
        raise errors.InvalidRequest("`pilothouse` must be an object", param="pilothouse")
    variables = extras.get("variables", {})
    if not isinstance(variables, dict):
        raise errors.InvalidRequest(
            "`pilothouse.variables` must be an object", param="pilothouse.variables"
        )
    return variables
