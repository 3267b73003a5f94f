"""Stored responses: written once per answer, read and deleted by id and the key that owns
them, pruned by age."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from pilothouse.store.tables import stored_responses


def put(conn: Connection, row: dict[str, Any]) -> None:
    """Store a response, replacing one with the same id made by the same key (an attempt
    the gateway retried wrote it first; the answer the client got is the one that stays).
    A row of another key is never taken over."""
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = dialect_insert(stored_responses).values(**row)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["id"],
            set_={name: statement.excluded[name] for name in row if name not in ("id", "key_id")},
            where=stored_responses.c.key_id == statement.excluded.key_id,
        )
    )


def get(conn: Connection, response_id: str, key_id: str, since: datetime) -> dict[str, Any] | None:
    """The response with this id if `key_id` made it at or after `since`, else None (an
    unknown id, another key's and an expired one are told apart by no one)."""
    found = conn.execute(
        select(stored_responses).where(
            stored_responses.c.id == response_id,
            stored_responses.c.key_id == key_id,
            stored_responses.c.created_at >= since,
        )
    ).first()
    return dict(found._mapping) if found else None


def get_many(
    conn: Connection, response_ids: list[str], key_id: str, since: datetime
) -> dict[str, dict[str, Any]]:
    """`get` for several ids at once, by id (the ones not found are left out)."""
    rows = conn.execute(
        select(stored_responses).where(
            stored_responses.c.id.in_(response_ids),
            stored_responses.c.key_id == key_id,
            stored_responses.c.created_at >= since,
        )
    )
    return {row.id: dict(row._mapping) for row in rows}


def remove(conn: Connection, response_id: str, key_id: str, since: datetime) -> bool:
    """Delete the response if `get` would find it; whether it did."""
    result = conn.execute(
        delete(stored_responses).where(
            stored_responses.c.id == response_id,
            stored_responses.c.key_id == key_id,
            stored_responses.c.created_at >= since,
        )
    )
    return bool(result.rowcount)


def prune(conn: Connection, before: datetime, batch: int) -> int:
    """Delete up to `batch` responses made before `before`, oldest first; how many went."""
    oldest = (
        select(stored_responses.c.id)
        .where(stored_responses.c.created_at < before)
        .order_by(stored_responses.c.created_at)
        .limit(batch)
    )
    result = conn.execute(
        delete(stored_responses).where(stored_responses.c.id.in_(oldest.scalar_subquery()))
    )
    return int(result.rowcount or 0)
