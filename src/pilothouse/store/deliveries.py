"""Webhook delivery rows (notify/webhooks.py): one per event and subscribed webhook."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from pilothouse.store.tables import webhook_deliveries as table


def insert(conn: Connection, records: list[dict[str, Any]]) -> None:
    conn.execute(table.insert(), records)


def due(conn: Connection, now: datetime, limit: int) -> list[dict[str, Any]]:
    query = (
        select(table)
        .where(table.c.state == "pending", table.c.next_attempt_at <= now)
        .order_by(table.c.next_attempt_at)
        .limit(limit)
    )
    return [dict(r._mapping) for r in conn.execute(query)]


def claim(conn: Connection, delivery: dict[str, Any], until: datetime) -> bool:
    """Take `delivery` for sending until `until`: False when another instance took it."""
    taken = conn.execute(
        update(table)
        .where(
            table.c.id == delivery["id"],
            table.c.state == "pending",
            table.c.next_attempt_at == delivery["next_attempt_at"],
        )
        .values(next_attempt_at=until)
    ).rowcount
    return bool(taken)


def change(conn: Connection, delivery_id: str, **fields: Any) -> None:
    conn.execute(update(table).where(table.c.id == delivery_id).values(**fields))


def listing(
    conn: Connection, *, state: str | None, webhook: str | None, limit: int
) -> list[dict[str, Any]]:
    query = select(table).order_by(table.c.created_at.desc(), table.c.id).limit(limit)
    if state:
        query = query.where(table.c.state == state)
    if webhook:
        query = query.where(table.c.webhook == webhook)
    return [dict(r._mapping) for r in conn.execute(query)]
