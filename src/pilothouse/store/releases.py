"""Route and release rows, and the ordered route events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from pilothouse.store.tables import releases, route_events, routes


def get_route(conn: Connection, name: str) -> dict[str, Any] | None:
    row = conn.execute(select(routes).where(routes.c.name == name)).first()
    return dict(row._mapping) if row else None


def all_routes(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(select(routes).order_by(routes.c.name))]


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
    row = conn.execute(select(routes).where(routes.c.name == name).with_for_update()).first()
    return dict(row._mapping) if row else None


def update_route(conn: Connection, name: str, **fields: Any) -> None:
    conn.execute(
        update(routes).where(routes.c.name == name).values(updated_at=datetime.now(UTC), **fields)
    )


def insert_release(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(releases.insert().values(**row))


def get_release(conn: Connection, release_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(releases).where(releases.c.id == release_id)).first()
    return dict(row._mapping) if row else None


def releases_by_id(conn: Connection, ids: list[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    rows = conn.execute(select(releases).where(releases.c.id.in_(ids)))
    return {r.id: dict(r._mapping) for r in rows}


def add_event(conn: Connection, **fields: Any) -> None:
    conn.execute(route_events.insert().values(at=datetime.now(UTC), **fields))


def events(conn: Connection, route: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(route_events).where(route_events.c.route == route).order_by(route_events.c.id)
    )
    return [dict(r._mapping) for r in rows]
