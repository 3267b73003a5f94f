"""Changelog entries and subscriptions (changelog/)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, select

from pilothouse.store.tables import changelog_entries as entries
from pilothouse.store.tables import changelog_subscriptions as subscriptions


def insert_entry(conn: Connection, row: dict[str, Any]) -> int:
    """Store an entry; its id (ids only grow, so they order the changelog)."""
    key = conn.execute(entries.insert().values(**row)).inserted_primary_key
    assert key is not None
    return int(key[0])


def list_entries(
    conn: Connection,
    *,
    kind: str | None,
    name: str | None,
    before_id: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Entries newest first, of one prompt or route when `kind` and `name` are given,
    older than `before_id` when given."""
    query = select(entries).order_by(entries.c.id.desc()).limit(limit)
    if kind is not None and name is not None:
        query = query.where(entries.c.subject_kind == kind, entries.c.subject_name == name)
    if before_id is not None:
        query = query.where(entries.c.id < before_id)
    return [dict(r._mapping) for r in conn.execute(query)]


def insert_subscription(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(subscriptions.insert().values(**row))


def get_subscription(conn: Connection, subscription_id: str) -> dict[str, Any] | None:
    query = select(subscriptions).where(subscriptions.c.id == subscription_id)
    row = conn.execute(query).first()
    return dict(row._mapping) if row else None


def subscriptions_to(conn: Connection, kind: str, name: str) -> list[dict[str, Any]]:
    query = (
        select(subscriptions)
        .where(subscriptions.c.subject_kind == kind, subscriptions.c.subject_name == name)
        .order_by(subscriptions.c.created_at, subscriptions.c.id)
    )
    return [dict(r._mapping) for r in conn.execute(query)]


def all_subscriptions(conn: Connection) -> list[dict[str, Any]]:
    query = select(subscriptions).order_by(
        subscriptions.c.subject_kind, subscriptions.c.subject_name, subscriptions.c.created_at
    )
    return [dict(r._mapping) for r in conn.execute(query)]


def delete_subscription(conn: Connection, subscription_id: str) -> bool:
    done = conn.execute(delete(subscriptions).where(subscriptions.c.id == subscription_id))
    return bool(done.rowcount)
