"""A route's settings that are not part of any release: they stay as they are across
promotions, canaries and rollbacks. One today: `store_responses`, whether the gateway
keeps the Responses API answers of this route's calls for the key that made them
(`previous_response_id`; docs/gateway.md, "Stored responses")."""

from __future__ import annotations

from typing import Any

from pilothouse import errors
from pilothouse.releases.promotion import check_route_name
from pilothouse.store import Store, audit, changes
from pilothouse.store import releases as rows


def set_store_responses(
    store: Store, route: str, on: bool, *, reason: str | None, actor: str = "admin"
) -> dict[str, Any]:
    """Turn storing on or off for `route` (audited; every instance obeys on its next
    snapshot swap); NotFound for a route never promoted. Returns the route's settings."""
    check_route_name(route)
    with store.write() as conn:
        state = rows.lock_route(conn, route, create=False)
        if state is None:
            raise errors.NotFound(
                f"no route {route!r}", hint="`pilothouse releases ls` lists routes"
            )
        before = bool(state.get("store_responses"))
        if before != on:
            rows.update_route(conn, route, store_responses=on)
            audit.record(
                conn,
                actor=actor,
                action="route.settings",
                target=f"route:{route}",
                before={"store_responses": before},
                after={"store_responses": on},
                reason=reason,
            )
            changes.bump(conn, ("route", route))
    return {"name": route, "store_responses": on}
