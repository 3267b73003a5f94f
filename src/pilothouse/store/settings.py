"""Deployment-wide settings: one row per name, shared by every instance on the database."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from pilothouse.store.tables import settings


def get(conn: Connection, name: str, *, lock: bool = False) -> str | None:
    """The setting's value; with `lock`, its row is locked until the transaction ends."""
    query = select(settings.c.value).where(settings.c.name == name)
    value = conn.execute(query.with_for_update() if lock else query).scalar()
    return value if value is None else str(value)


def insert_if_absent(conn: Connection, name: str, value: str, actor: str) -> bool:
    """Store `value` unless the setting exists (another instance may race); True if stored."""
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stored = conn.execute(
        dialect_insert(settings)
        .values(name=name, value=value, updated_by=actor, updated_at=datetime.now(UTC))
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(settings.c.name)  # rowcount is not reliable for DO NOTHING on every driver
    ).first()
    return stored is not None


def put(conn: Connection, name: str, value: str, actor: str) -> None:
    if not insert_if_absent(conn, name, value, actor):
        conn.execute(
            update(settings)
            .where(settings.c.name == name)
            .values(value=value, updated_by=actor, updated_at=datetime.now(UTC))
        )
