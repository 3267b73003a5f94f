"""Promote, canary and roll back releases of a route.

A *route* is a named LLM feature. A *release* is an immutable bundle: a prompt version
(by number, never a label) with every fragment it includes frozen to a version, a model
alias and parameters; its `composition_hash` covers all of that content. Nothing but a
new release changes what a route serves. A route has one active release and at most one
canary with a traffic weight and its own salt (each new canary draws a fresh slice of
users; widening keeps everyone already in it). Every change locks the route's row,
is audited, recorded as a route event and bumps the configuration version, so every
gateway obeys it within a second.

Promoting is held to the promotion gate (contracts/gate.py: the route's active contracts
and its gating suites, on the release's exact composition, model and parameters) and
refused when it says no, unless forced with a reason. A canary (how evidence is gathered)
and a rollback (back to what passed before) are not held. Every promotion, canary change
and rollback writes a changelog entry in the same transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection

from pilothouse import errors
from pilothouse.changelog import entries as changelog
from pilothouse.config import ModelSpec, PromotionSpec
from pilothouse.contracts import gate, subjects
from pilothouse.registry import names
from pilothouse.registry.dependents import require_reason
from pilothouse.releases import making
from pilothouse.releases.params import PARAMS, check_params
from pilothouse.releases.release import Release
from pilothouse.releases.routes import history, list_routes, route_etag, show_route
from pilothouse.store import Store, audit, changes
from pilothouse.store import releases as rows
from pilothouse.store.tolerant import DamagedRow

DEFAULT_POLICY = PromotionSpec()

__all__ = [
    "PARAMS",
    "Promoter",
    "Release",
    "check_params",
    "history",
    "list_routes",
    "route_etag",
    "show_route",
]


def check_route_name(route: str) -> str:
    try:
        return names.check_name(route, "route name")
    except names.InvalidName as exc:
        raise errors.InvalidRequest(str(exc), param="route") from None


class Promoter:
    """Release operations, checked against this deployment's model catalog."""

    def __init__(
        self,
        store: Store,
        models: Mapping[str, ModelSpec],
        policy: PromotionSpec = DEFAULT_POLICY,
    ):
        self.store = store
        self.models = models
        self.policy = policy

    def promote(
        self,
        route: str,
        *,
        prompt: str | None,
        model: str | None,
        params: Mapping[str, Any] | None,
        reason: str | None,
        actor: str = "admin",
        owner: str | None = None,
        from_canary: bool = False,
        force: bool = False,
        expected: str | None = None,
    ) -> Release:
        """Make a new release (or the running canary, with `from_canary`) the active one."""
        check_route_name(route)
        require_reason(force, reason)
        with self.store.write() as conn:
            state = self._route(conn, route, create=not from_canary, expected=expected)
            if owner is not None and owner != state["owner"]:
                rows.update_route(conn, route, owner=owner)
            forced = None
            if from_canary:
                if not state["canary_release_id"]:
                    raise errors.Conflict(f"route {route!r} has no canary to promote")
                release = self._release(conn, state["canary_release_id"])
                forced = making.refuse_unservable(
                    self.models, release, "promoting the canary", force
                )
            else:
                release = making.new_release(
                    conn, self.models, route, prompt, model, params, reason, actor
                )
            report = gate.check_release(conn, self.policy, subjects.for_release(release))
            gated = gate.refuse_or_record(
                [report],
                what=f"promoting {release.prompt_name}@{release.prompt_version} on "
                f"{release.model_alias} to route {route}",
                force=force,
                reason=reason,
            )
            if gated is not None:
                forced = {**(forced or {}), **gated}
            previous = state["active_release_id"]
            changelog.record(
                conn,
                changelog.release_entry(
                    action="promote",
                    route=route,
                    before=self._maybe_release(conn, previous),
                    after=release,
                    actor=actor,
                    reason=reason,
                    gate=report,
                    forced=forced,
                ),
            )
            rows.update_route(
                conn, route, active_release_id=release.id, canary_release_id=None, canary_weight=0
            )
            rows.add_event(
                conn,
                route=route,
                kind="promote",
                release_id=release.id,
                previous_release_id=previous,
                actor=actor,
                reason=reason,
            )
            after: dict[str, Any] = {"active": release.id, "canary": None}
            audit.record(
                conn,
                actor=actor,
                action="release.promote",
                target=f"route:{route}",
                before={"active": previous, "canary": state["canary_release_id"]},
                after={**after, **(forced or {})},
                reason=reason,
            )
            changes.bump(conn, ("route", route))
            return release

    def canary(
        self,
        route: str,
        *,
        prompt: str | None,
        model: str | None,
        params: Mapping[str, Any] | None,
        weight: int,
        reason: str | None,
        actor: str = "admin",
        expected: str | None = None,
    ) -> Release | None:
        """Send `weight`% of users to a new release; weight 0 stops the canary. Without a
        prompt and model only the running canary's weight changes, and its users stay."""
        if not 0 <= weight <= 100:
            raise errors.InvalidRequest(
                f"weight must be 0 to 100 (percent of users), got {weight}", param="weight"
            )
        check_route_name(route)
        with self.store.write() as conn:
            state = self._route(conn, route, create=False, expected=expected)
            if not state["active_release_id"]:
                raise errors.Conflict(
                    f"route {route!r} has no active release: promote one before a canary"
                )
            release = None
            salt = state["canary_salt"] or ""
            if weight == 0:
                release_id = None
            elif prompt is None and model is None and state["canary_release_id"]:
                release_id = state["canary_release_id"]  # only the weight changes
            else:
                release = making.new_release(
                    conn, self.models, route, prompt, model, params, reason, actor
                )
                release_id = release.id
                salt = secrets.token_hex(8)  # a new canary: a fresh slice of users
            rows.update_route(
                conn,
                route,
                canary_release_id=release_id,
                canary_weight=weight if release_id else 0,
                canary_salt=salt,
            )
            serving = release or self._maybe_release(conn, release_id)
            changelog.record(
                conn,
                changelog.release_entry(
                    action="canary" if release_id else "canary_stop",
                    route=route,
                    before=self._maybe_release(conn, state["canary_release_id"]),
                    after=serving,
                    actor=actor,
                    reason=reason,
                    gate=gate.check_release(conn, self.policy, subjects.for_release(serving))
                    if serving
                    else None,
                    weights=(state["canary_weight"] or 0, weight if release_id else 0),
                ),
            )
            rows.add_event(
                conn,
                route=route,
                kind="canary" if release_id else "canary_stop",
                release_id=release_id,
                previous_release_id=state["canary_release_id"],
                canary_weight=weight,
                actor=actor,
                reason=reason,
            )
            audit.record(
                conn,
                actor=actor,
                action="release.canary",
                target=f"route:{route}",
                before={"canary": state["canary_release_id"], "weight": state["canary_weight"]},
                after={"canary": release_id, "weight": weight if release_id else 0},
                reason=reason,
            )
            changes.bump(conn, ("route", route))
            if release is None and release_id:
                return self._release(conn, release_id)
            return release

    def rollback(
        self,
        route: str,
        *,
        reason: str | None,
        actor: str = "admin",
        force: bool = False,
        expected: str | None = None,
    ) -> Release:
        """Back to the release that was active before the current one, and stop any canary.
        Refused (Conflict) when that release's model is retired or no longer in the catalog,
        unless forced with a reason.

        Rollbacks stack: two rollbacks go two promotions back.
        """
        check_route_name(route)
        require_reason(force, reason)
        with self.store.write() as conn:
            state = self._route(conn, route, create=False, expected=expected)
            stack: list[str] = []
            for event in rows.events(conn, route):
                if event["kind"] == "promote":
                    stack.append(event["release_id"])
                elif event["kind"] == "rollback" and stack:
                    stack.pop()
            if len(stack) < 2:
                raise errors.Conflict(f"route {route!r} has no earlier release to roll back to")
            target = self._release(conn, stack[-2])
            forced = making.refuse_unservable(self.models, target, f"rolling {route} back", force)
            changelog.record(
                conn,
                changelog.release_entry(
                    action="rollback",
                    route=route,
                    before=self._maybe_release(conn, state["active_release_id"]),
                    after=target,
                    actor=actor,
                    reason=reason,
                    gate=gate.check_release(conn, self.policy, subjects.for_release(target)),
                    forced=forced,
                ),
            )
            rows.update_route(
                conn, route, active_release_id=target.id, canary_release_id=None, canary_weight=0
            )
            rows.add_event(
                conn,
                route=route,
                kind="rollback",
                release_id=target.id,
                previous_release_id=state["active_release_id"],
                actor=actor,
                reason=reason,
            )
            audit.record(
                conn,
                actor=actor,
                action="release.rollback",
                target=f"route:{route}",
                before={"active": state["active_release_id"], "canary": state["canary_release_id"]},
                after={"active": target.id, "canary": None, **(forced or {})},
                reason=reason,
            )
            changes.bump(conn, ("route", route))
            return target

    def _route(
        self, conn: Connection, route: str, *, create: bool, expected: str | None
    ) -> dict[str, Any]:
        state = rows.lock_route(conn, route, create=create)
        if state is None:
            raise errors.NotFound(
                f"no route {route!r}", hint="`pilothouse releases ls` lists routes"
            )
        if expected is not None and route_etag(state) != expected:
            raise errors.Conflict(
                f"route {route!r} changed since you read it (If-Match {expected!r}, now "
                f"{route_etag(state)!r})",
                hint="read the route again (`GET /api/routes/{route}`) and retry",
                code="if_match_failed",
                details={"current": {"etag": route_etag(state), **_state(state)}},
            )
        return state

    def _maybe_release(self, conn: Connection, release_id: str | None) -> Release | None:
        """The release, for the changelog's record of what was served before; None when
        there was none or its row cannot be read."""
        if not release_id:
            return None
        try:
            row = rows.get_release(conn, release_id)
        except DamagedRow:
            return None
        return Release.from_row(row) if row else None

    def _release(self, conn: Connection, release_id: str) -> Release:
        row = rows.get_release(conn, release_id)
        if row is None:
            raise errors.Conflict(f"release {release_id} is not in the store")
        return Release.from_row(row)


def _state(state: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "active": state.get("active_release_id"),
        "canary": state.get("canary_release_id"),
        "canary_weight": state.get("canary_weight"),
    }
