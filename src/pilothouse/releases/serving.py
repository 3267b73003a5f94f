"""What a route serves, ready for the request path: each route's active and canary
release with its prompt already resolved, loaded into the configuration snapshot.

`RouteTarget.choose` is the canary split: the same caller always lands on the same side.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from sqlalchemy import Connection

from pilothouse.registry import prompts as prompt_registry
from pilothouse.registry.prompts import ResolvedPrompt
from pilothouse.store import releases as release_rows


@dataclass(frozen=True, slots=True)
class ReleaseTarget:
    """A release ready to serve: its prompt already resolved (fragments included)."""

    id: str
    prompt: ResolvedPrompt
    model_alias: str
    params: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RouteTarget:
    name: str
    active: ReleaseTarget
    canary: ReleaseTarget | None
    canary_weight: int  # percent of users

    def choose(self, sticky: str) -> tuple[ReleaseTarget, str]:
        """The release for this caller: the same caller always lands on the same side."""
        if self.canary is not None and self.canary_weight > 0:
            digest = hashlib.blake2b(f"{self.name}\0{sticky}".encode(), digest_size=8).digest()
            if int.from_bytes(digest, "big") % 10_000 < self.canary_weight * 100:
                return self.canary, "canary"
        return self.active, "active"


def _release(conn: Connection, release_id: str) -> ReleaseTarget:
    row = release_rows.get_release(conn, release_id)
    assert row is not None, f"release {release_id} vanished"
    prompt = prompt_registry.resolve_in(conn, row["prompt_name"], version=row["prompt_version"])
    return ReleaseTarget(
        id=row["id"],
        prompt=prompt,
        model_alias=row["model_alias"],
        params=MappingProxyType(row["params"]),
    )


def load_routes(conn: Connection) -> dict[str, RouteTarget]:
    """Every route that has an active release, as the request path serves it."""
    routes = {}
    for row in release_rows.all_routes(conn):
        if row["active_release_id"]:
            canary_id = row["canary_release_id"]
            routes[row["name"]] = RouteTarget(
                name=row["name"],
                active=_release(conn, row["active_release_id"]),
                canary=_release(conn, canary_id) if canary_id else None,
                canary_weight=row["canary_weight"],
            )
    return routes
