"""Routes as the control plane shows them: the list, one route with its releases' frozen
fragments (and whether a newer version is under the label each was taken from), and the
history of its changes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection

from pilothouse import errors
from pilothouse.releases.release import Release
from pilothouse.store import Store
from pilothouse.store import prompts as prompt_rows
from pilothouse.store import releases as rows


def route_etag(state: Mapping[str, Any]) -> str:
    """A route's state as If-Match compares it: active release, canary release, weight."""
    active = state.get("active_release_id") or "-"
    canary = state.get("canary_release_id") or "-"
    return f"{active}.{canary}.{state.get('canary_weight') or 0}"


def _not_found(route: str) -> errors.NotFound:
    return errors.NotFound(f"no route {route!r}", hint="`pilothouse releases ls` lists routes")


def _releases(conn: Connection, ids: list[str]) -> dict[str, Release]:
    known = {}
    for release_id, row in rows.releases_by_id(conn, ids).items():
        try:
            known[release_id] = Release.from_row(row)
        except (KeyError, TypeError, ValueError):  # a damaged row: shown as missing
            continue
    return known


def list_routes(
    store: Store, *, after: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Every route by name (or the page of `limit` after the name `after`) with its active
    and canary releases (None when there is none, or when the row it names cannot be
    read)."""
    with store.connect() as conn:
        all_rows = rows.all_routes(conn, after=after, limit=limit)
        ids = [
            r[k] for r in all_rows for k in ("active_release_id", "canary_release_id") if r.get(k)
        ]
        known = _releases(conn, ids)
    out = []
    for r in all_rows:
        if "problem" in r:
            out.append({"name": r["name"], "problem": r["problem"], "active": None, "canary": None})
            continue
        active = known.get(r["active_release_id"] or "")
        canary = known.get(r["canary_release_id"] or "")
        out.append(
            {
                "name": r["name"],
                "owner": r["owner"],
                "active": active.public() if active else None,
                "canary": canary.public() if canary else None,
                "canary_weight": r["canary_weight"],
                "store_responses": bool(r.get("store_responses")),
            }
        )
    return out


def show_route(store: Store, route: str) -> dict[str, Any]:
    """One route: its releases with their frozen fragments, each fragment saying whether
    the label it was taken from now points at another version; and its If-Match etag."""
    with store.connect() as conn:
        state = rows.get_route(conn, route)
        if state is None:
            raise _not_found(route)
        ids = [state[k] for k in ("active_release_id", "canary_release_id") if state[k]]
        known = _releases(conn, ids)
        sides: dict[str, Any] = {}
        for side in ("active", "canary"):
            release_id = state[f"{side}_release_id"]
            release = known.get(release_id or "")
            if release_id is None:
                sides[side] = None
            elif release is None:
                sides[side] = {"id": release_id, "problem": "this release is not in the store"}
            else:
                sides[side] = {**release.public(), "fragments": _fragments(conn, release)}
    return {
        "name": state["name"],
        "owner": state["owner"],
        "etag": route_etag(state),
        "canary_weight": state["canary_weight"],
        "store_responses": bool(state.get("store_responses")),
        **sides,
    }


def _fragments(conn: Connection, release: Release) -> list[dict[str, Any]] | None:
    if release.fragments is None:
        return None
    out = []
    for ref, entry in sorted(release.fragments.items()):
        item = {"ref": ref, **entry}
        label = entry.get("label")
        if label:
            now = prompt_rows.label_version(conn, str(entry.get("name")), label)
            item["label_now"] = now
            if now is None:
                item["note"] = f"label {label} no longer exists"
            elif now != entry.get("version"):
                item["note"] = (
                    f"version {now} is now under {label} (frozen at {entry.get('version')}): "
                    "promote again to take it"
                )
        out.append(item)
    return out


def history(store: Store, route: str) -> list[dict[str, Any]]:
    with store.connect() as conn:
        if rows.get_route(conn, route) is None:
            raise _not_found(route)
        events = rows.events(conn, route)
        ids = [e["release_id"] for e in events if e["release_id"]]
        known = {i: r.public() for i, r in _releases(conn, ids).items()}
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
