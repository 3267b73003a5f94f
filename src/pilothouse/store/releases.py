"""Route and release rows, and the ordered route events."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Text, cast, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from pilothouse.store import tolerant
from pilothouse.store.tables import releases, route_events, routes


def get_route(conn: Connection, name: str) -> dict[str, Any] | None:
    """The route's row; tolerant.DamagedRow when it cannot be read."""
    return tolerant.first(conn, select(routes).where(routes.c.name == name), f"route {name}")


def all_routes(
    conn: Connection,
    names: Collection[str] | None = None,
    *,
    after: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Every route by name (or those named in `names`, or the page of `limit` after the
    name `after`); one whose row cannot be read is {"name", "problem"}."""
    wanted = sorted(set(names)) if names is not None else None
    found = tolerant.rows_or_problems(conn, routes, routes.c.name, wanted, after=after, limit=limit)
    return [
        row if row is not None else {"name": name, "problem": problem}
        for name, row, problem in found
    ]


def lock_route(conn: Connection, name: str, *, create: bool) -> dict[str, Any] | None:
    """The route's row, locked until the transaction ends (PostgreSQL: FOR UPDATE; SQLite
    writers hold the database lock already), created first when `create` and missing.
    Every change to a route takes this lock first, so concurrent promotions queue."""
    if create:
        now = datetime.now(UTC)
        dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        conn.execute(
            dialect_insert(routes)
            .values(name=name, canary_weight=0, canary_salt="", created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=["name"])
        )
    query = select(routes).where(routes.c.name == name).with_for_update()
    return tolerant.first(conn, query, f"route {name}")


def update_route(conn: Connection, name: str, **fields: Any) -> None:
    conn.execute(
        update(routes).where(routes.c.name == name).values(updated_at=datetime.now(UTC), **fields)
    )


def insert_release(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(releases.insert().values(**row))


def get_release(conn: Connection, release_id: str) -> dict[str, Any] | None:
    """The release's row; tolerant.DamagedRow when it cannot be read."""
    query = select(releases).where(releases.c.id == release_id)
    return tolerant.first(conn, query, f"release {release_id}")


def releases_by_id(conn: Connection, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The readable releases among `ids` (a damaged one is left out)."""
    found = tolerant.rows_or_problems(conn, releases, releases.c.id, sorted(set(ids)))
    return {key: row for key, row, _ in found if row is not None}


def live_fragment_refs(conn: Connection) -> list[tuple[str, str, str, str]]:
    """(route, "active" or "canary", release id, its frozen fragments as stored JSON
    text) for each route's active and canary release that froze any include (the JSON is
    not decoded: the caller reads the releases it needs)."""
    found = []
    for arm, column in (
        ("active", routes.c.active_release_id),
        ("canary", routes.c.canary_release_id),
    ):
        text = cast(releases.c.fragments, Text)
        query = (
            select(routes.c.name, releases.c.id, text)
            .join(releases, releases.c.id == column)
            .where(text.contains("@"))  # every include ref is name@version or name@label
        )
        found += [
            (name, arm, release_id, str(raw)) for name, release_id, raw in conn.execute(query)
        ]
    return sorted(found)


def add_event(conn: Connection, **fields: Any) -> None:
    conn.execute(route_events.insert().values(at=datetime.now(UTC), **fields))


def events(conn: Connection, route: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(route_events).where(route_events.c.route == route).order_by(route_events.c.id)
    )
    return [dict(r._mapping) for r in rows]
