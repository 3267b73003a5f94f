"""The configuration version: bumped by every change, polled by every process."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, select, update

from pilothouse.store import notify
from pilothouse.store.tables import config_version


def bump(conn: Connection) -> int:
    """Move the version forward inside the caller's transaction; return the new value.

    On PostgreSQL the change is also announced (NOTIFY), delivered when the caller commits.
    """
    conn.execute(
        update(config_version)
        .where(config_version.c.id == 1)
        .values(version=config_version.c.version + 1, changed_at=datetime.now(UTC))
    )
    version = current(conn)
    notify.notify(conn, version)
    return version


def current(conn: Connection) -> int:
    """The current configuration version (0 before the first migration seeded it)."""
    value = conn.execute(select(config_version.c.version).where(config_version.c.id == 1)).scalar()
    return int(value or 0)
