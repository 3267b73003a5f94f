"""Promote, canary and roll back releases of a route.

A *route* is a named LLM feature. A *release* is an immutable bundle: prompt version (by
number, never a label), model alias and parameters. A route has one active release and at
most one canary with a traffic weight. Every change is audited, recorded as a route event
and bumps the configuration version, so every gateway obeys it within a second.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection

from pilothouse import errors
from pilothouse.config import ModelSpec
from pilothouse.registry import catalog
from pilothouse.registry import prompts as prompt_registry
from pilothouse.store import Store, audit, changes
from pilothouse.store import releases as rows

ROUTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
_PROMPT_REF = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)(?:@(?P<version>\d+)|:(?P<label>[A-Za-z0-9_.-]+))?$"
)

# Parameters a release may fix, with the check each value must pass.
PARAMS: dict[str, tuple[str, Any]] = {
    "temperature": ("a number from 0 to 2", lambda v: _number(v) and 0 <= v <= 2),
    "top_p": ("a number from 0 to 1", lambda v: _number(v) and 0 <= v <= 1),
    "max_tokens": ("a positive integer", lambda v: _integer(v) and v > 0),
    "max_completion_tokens": ("a positive integer", lambda v: _integer(v) and v > 0),
    "presence_penalty": ("a number from -2 to 2", lambda v: _number(v) and -2 <= v <= 2),
    "frequency_penalty": ("a number from -2 to 2", lambda v: _number(v) and -2 <= v <= 2),
    "seed": ("an integer", lambda v: _integer(v)),
    "stop": (
        "a string or a list of strings",
        lambda v: (
            isinstance(v, str) or (isinstance(v, list) and all(isinstance(s, str) for s in v))
        ),
    ),
    "reasoning_effort": ("low, medium or high", lambda v: v in ("low", "medium", "high")),
    "parallel_tool_calls": ("true or false", lambda v: isinstance(v, bool)),
}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Refuse unknown parameters (a typo would silently do nothing) and bad values."""
    for name, value in params.items():
        if name not in PARAMS:
            raise errors.InvalidRequest(
                f"unknown release parameter {name!r}; allowed: {', '.join(sorted(PARAMS))}",
                param=f"params.{name}",
            )
        expected, valid = PARAMS[name]
        if not valid(value):
            raise errors.InvalidRequest(
                f"parameter {name} must be {expected}, got {value!r}", param=f"params.{name}"
            )
    return dict(params)


@dataclass(frozen=True)
class Release:
    id: str
    route: str
    prompt_name: str
    prompt_version: int
    prompt_hash: str
    model_alias: str
    params: dict[str, Any]
    note: str | None
    created_by: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Release:
        return cls(**row)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "route": self.route,
            "prompt": f"{self.prompt_name}@{self.prompt_version}",
            "prompt_name": self.prompt_name,
            "prompt_version": self.prompt_version,
            "prompt_hash": self.prompt_hash,
            "model": self.model_alias,
            "params": self.params,
            "note": self.note,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
        }


class Promoter:
    """Release operations, checked against this deployment's model catalog."""

    def __init__(self, store: Store, models: Mapping[str, ModelSpec]):
        self.store = store
        self.models = models

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
    ) -> Release:
        """Make a new release (or the running canary, with `from_canary`) the active one."""
        with self.store.begin() as conn:
            state = self._route(conn, route, owner, create=not from_canary)
            if from_canary:
                if not state["canary_release_id"]:
                    raise errors.Conflict(f"route {route!r} has no canary to promote")
                release = Release.from_row(rows.get_release(conn, state["canary_release_id"]) or {})
            else:
                release = self._new_release(conn, route, prompt, model, params, reason, actor)
            previous = state["active_release_id"]
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
            audit.record(
                conn,
                actor=actor,
                action="release.promote",
                target=f"route:{route}",
                before={"active": previous, "canary": state["canary_release_id"]},
                after={"active": release.id, "canary": None},
                reason=reason,
            )
            changes.bump(conn)
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
    ) -> Release | None:
        """Send `weight`% of users to a new release; weight 0 stops the canary."""
        if not 0 <= weight <= 100:
            raise errors.InvalidRequest(
                f"weight must be 0 to 100 (percent of users), got {weight}", param="weight"
            )
        with self.store.begin() as conn:
            state = self._route(conn, route, None, create=False)
            if not state["active_release_id"]:
                raise errors.Conflict(
                    f"route {route!r} has no active release: promote one before a canary"
                )
            release = None
            if weight == 0:
                release_id = None
            elif prompt is None and model is None and state["canary_release_id"]:
                release_id = state["canary_release_id"]  # only the weight changes
            else:
                release = self._new_release(conn, route, prompt, model, params, reason, actor)
                release_id = release.id
            rows.update_route(
                conn, route, canary_release_id=release_id, canary_weight=weight if release_id else 0
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
            changes.bump(conn)
            if release is None and release_id:
                return Release.from_row(rows.get_release(conn, release_id) or {})
            return release

    def rollback(self, route: str, *, reason: str | None, actor: str = "admin") -> Release:
        """Back to the release that was active before the current one, and stop any canary.

        Rollbacks stack: two rollbacks go two promotions back.
        """
        with self.store.begin() as conn:
            state = self._route(conn, route, None, create=False)
            stack: list[str] = []
            for event in rows.events(conn, route):
                if event["kind"] == "promote":
                    stack.append(event["release_id"])
                elif event["kind"] == "rollback":
                    stack.pop()
            if len(stack) < 2:
                raise errors.Conflict(f"route {route!r} has no earlier release to roll back to")
            target = stack[-2]
            rows.update_route(
                conn, route, active_release_id=target, canary_release_id=None, canary_weight=0
            )
            rows.add_event(
                conn,
                route=route,
                kind="rollback",
                release_id=target,
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
                after={"active": target, "canary": None},
                reason=reason,
            )
            changes.bump(conn)
            return Release.from_row(rows.get_release(conn, target) or {})

    def _route(
        self, conn: Connection, route: str, owner: str | None, *, create: bool
    ) -> dict[str, Any]:
        state = rows.get_route(conn, route)
        if state is None:
            if not create:
                raise errors.NotFound(
                    f"no route {route!r}", hint="`pilothouse releases ls` lists routes"
                )
            if not ROUTE_NAME.match(route):
                raise errors.InvalidRequest(
                    f"invalid route name {route!r} (letters, digits, . _ -)", param="route"
                )
            rows.create_route(conn, route, owner, None)
            state = rows.get_route(conn, route)
            assert state is not None
        elif owner is not None and owner != state["owner"]:
            rows.update_route(conn, route, owner=owner)
        return state

    def _new_release(
        self,
        conn: Connection,
        route: str,
        prompt: str | None,
        model: str | None,
        params: Mapping[str, Any] | None,
        note: str | None,
        actor: str,
    ) -> Release:
        if not prompt:
            raise errors.InvalidRequest(
                "a release needs a prompt: NAME@VERSION or NAME:LABEL", param="prompt"
            )
        if not model:
            raise errors.InvalidRequest("a release needs a model alias", param="model")
        spec = self.models.get(model)
        if spec is None:
            raise errors.InvalidRequest(
                f"unknown model alias {model!r}; known: {', '.join(sorted(self.models))}",
                param="model",
            )
        if catalog.is_retired(spec, date.today()):
            successor = f"; use its successor {spec.successor!r}" if spec.successor else ""
            raise errors.InvalidRequest(f"model {model!r} is retired{successor}", param="model")
        match = _PROMPT_REF.match(prompt)
        if match is None:
            raise errors.InvalidRequest(
                f"{prompt!r}: use NAME@VERSION or NAME:LABEL", param="prompt"
            )
        version = int(match["version"]) if match["version"] else None
        resolved = prompt_registry.resolve_in(
            conn, match["name"], label=match["label"], version=version
        )
        if resolved.content.get("messages") is None:
            raise errors.InvalidRequest(
                f"prompt {match['name']!r} is a fragment; a release needs a chat prompt"
            )
        row = {
            "id": "rel_" + secrets.token_hex(6),
            "route": route,
            "prompt_name": resolved.name,
            "prompt_version": resolved.version,
            "prompt_hash": resolved.hash,
            "model_alias": model,
            "params": check_params(params or {}),
            "note": note,
            "created_by": actor,
            "created_at": datetime.now(UTC),
        }
        rows.insert_release(conn, row)
        return Release.from_row(row)


def list_routes(store: Store) -> list[dict[str, Any]]:
    with store.connect() as conn:
        all_rows = rows.all_routes(conn)
        ids = [r[k] for r in all_rows for k in ("active_release_id", "canary_release_id") if r[k]]
        known = {i: Release.from_row(r) for i, r in rows.releases_by_id(conn, ids).items()}
    return [
        {
            "name": r["name"],
            "owner": r["owner"],
            "active": known[r["active_release_id"]].public() if r["active_release_id"] else None,
            "canary": known[r["canary_release_id"]].public() if r["canary_release_id"] else None,
            "canary_weight": r["canary_weight"],
        }
        for r in all_rows
    ]


def history(store: Store, route: str) -> list[dict[str, Any]]:
    with store.connect() as conn:
        if rows.get_route(conn, route) is None:
            raise errors.NotFound(
                f"no route {route!r}", hint="`pilothouse releases ls` lists routes"
            )
        events = rows.events(conn, route)
        ids = [e["release_id"] for e in events if e["release_id"]]
        known = {i: Release.from_row(r).public() for i, r in rows.releases_by_id(conn, ids).items()}
    return [
        {
            "at": e["at"].isoformat(),
            "kind": e["kind"],
            "release": known.get(e["release_id"]),
            "previous_release_id": e["previous_release_id"],
            "canary_weight": e["canary_weight"],
            "actor": e["actor"],
            "reason": e["reason"],
        }
        for e in reversed(events)
    ]
