"""Resolving what a request asks for, from the snapshot alone: a model alias, or a route
with its active or canary release (whose prompt is rendered here). Returns a value; the
client's payload is never changed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from pilothouse import errors
from pilothouse.fleet.deployments import ModelAlias
from pilothouse.policy.keys import ApiKey
from pilothouse.registry import catalog, templates
from pilothouse.releases.requests import release_request
from pilothouse.releases.serving import ReleaseTarget
from pilothouse.snapshot import Snapshot

ROUTE_PREFIX = "route:"


@dataclass(frozen=True, slots=True)
class RouteChoice:
    """Which route and release served a request, and with which template variables."""

    route: str
    release: ReleaseTarget
    arm: str  # "active" or "canary"
    variables: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Resolution:
    """What to call: the alias, the body to send it, and the route choice if any."""

    alias: ModelAlias
    body: dict[str, Any]
    route: RouteChoice | None = None


def resolve(
    snapshot: Snapshot,
    key: ApiKey,
    payload: dict[str, Any],
    model: str,
    *,
    endpoint: str,
    sticky: str,
    arm: str | None,
) -> Resolution:
    """The alias (or route) `model` names, for this key. Our `pilothouse` extras never
    reach a provider."""
    body = (
        {k: v for k, v in payload.items() if k != "pilothouse"}
        if "pilothouse" in payload
        else payload
    )
    if model.startswith(ROUTE_PREFIX) and endpoint == "chat":
        return _route(snapshot, key, model[len(ROUTE_PREFIX) :], body, payload, sticky, arm)
    alias = alias_target(snapshot, key, model)
    refuse_retired(alias)
    return Resolution(alias, body)


def alias_target(snapshot: Snapshot, key: ApiKey, model: str) -> ModelAlias:
    alias = snapshot.models.get(model)
    if alias is None or not key.allows(model):
        allowed = sorted(a for a in snapshot.models if key.allows(a))
        raise errors.NotFound(
            f"the model {model[:80]!r} does not exist or this key may not use it; "
            f"models available to this key: {', '.join(allowed) or '(none)'}",
            param="model",
            code="model_not_found",
        )
    return alias


def refuse_retired(alias: ModelAlias) -> None:
    if catalog.is_retired(alias.spec, date.today()):
        successor = alias.spec.successor
        raise errors.Gone(
            f"model {alias.alias!r} ({alias.primary.provider_model}) is retired"
            + (f"; use its successor {successor!r}" if successor else ""),
            param="model",
        )


def _route(
    snapshot: Snapshot,
    key: ApiKey,
    name: str,
    body: dict[str, Any],
    payload: dict[str, Any],
    sticky: str,
    arm: str | None,
) -> Resolution:
    route = snapshot.routes.get(name)
    if route is None or not key.allows(ROUTE_PREFIX + name):
        allowed = sorted(r for r in snapshot.routes if key.allows(ROUTE_PREFIX + r))
        raise errors.NotFound(
            f"the route {name[:80]!r} does not exist or this key may not use it; routes available "
            f"to this key: {', '.join(allowed) or '(none)'}",
            param="model",
            code="model_not_found",
        )
    if arm is None:
        arm = route.choose(sticky)
    elif not key.grants("release:pin"):
        raise errors.PermissionDenied(
            f"X-Pilothouse-Release pins a route's release arm, which API key {key.id} may not "
            "do: send no such header to be assigned as every caller is",
            hint="pinning needs a key with the `release:pin` (or `evals`) scope",
            param="X-Pilothouse-Release",
        )
    elif arm not in ("active", "canary") or (arm == "canary" and not route.has_canary):
        raise errors.InvalidRequest(
            f"X-Pilothouse-Release must be `active` or `canary` (route {name!r} "
            f"{'has both' if route.has_canary else 'has no canary'}), got {arm[:40]!r}"
        )
    release = route.arm(arm)
    if release is None:
        problem = route.problems.get(arm, "it cannot be loaded")
        raise errors.ServiceUnavailable(
            f"route {name!r} cannot serve its {arm} release: {problem}. Other routes and "
            "models are not affected",
            hint="an admin can promote a new release, or roll back; the server log and "
            "`pilothouse releases show ROUTE` name the fault",
            code="route_quarantined",
        )
    variables = _route_variables(payload.get("pilothouse"))
    try:
        rendered = release.prompt.render(variables)
    except (templates.RenderError, templates.TemplateError) as exc:
        missing = exc.missing if isinstance(exc, templates.RenderError) else []
        example = ", ".join(f'"{variable}": "..."' for variable in missing[:3])
        raise errors.InvalidRequest(
            f"route {name!r} (prompt {release.prompt.name}@{release.prompt.version}): {exc}",
            param="pilothouse.variables",
            hint=f'send them in the body as {{"pilothouse": {{"variables": {{{example}}}}}}} '
            "(the SDKs' extra_body); docs/releases.md"
            if missing
            else None,
        ) from None
    if not isinstance(body.get("messages", []), list):
        raise errors.InvalidRequest("`messages` must be a list", param="messages")
    alias = snapshot.models.get(release.model_alias)
    if alias is None:
        raise errors.ServiceUnavailable(
            f"release {release.id} of route {name!r} uses model alias {release.model_alias!r}, "
            "which this gateway's config does not declare"
        )
    refuse_retired(alias)
    return Resolution(
        alias,
        release_request(body, rendered.messages, release.prompt.content, release.params),
        RouteChoice(name, release, arm, variables),
    )


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


def degrade(
    snapshot: Snapshot, resolution: Resolution, alias: str | None, max_tokens: int | None
) -> Resolution:
    """A quota's soft-limit degradation: another model alias (the policy names it, so the
    key's model list does not apply) and/or `max_tokens` capped. The same resolution when
    neither changes anything (or the alias is gone from the configuration)."""
    target = resolution.alias
    if alias is not None and alias in snapshot.models:
        target = snapshot.models[alias]
    body = resolution.body
    if max_tokens is not None:
        name = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
        asked = body.get(name)
        if not (isinstance(asked, int) and 0 < asked <= max_tokens):
            body = {**body, name: max_tokens}
    if target is resolution.alias and body is resolution.body:
        return resolution
    return Resolution(target, body, resolution.route)
