"""Request-log rows: written in batches, idempotent by request id, read with filters."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from pilothouse.store.tables import request_log

COLUMNS = frozenset(c.name for c in request_log.columns)


def insert_many(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows; a row whose id is already stored is skipped, so a replay is harmless."""
    if not rows:
        return
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = dialect_insert(request_log).on_conflict_do_nothing(index_elements=["id"])
    conn.execute(statement, list(rows))


def query(
    conn: Connection,
    *,
    key_id: str | None = None,
    model: str | None = None,
    status: int | None = None,
    errors_only: bool = False,
    since: datetime | None = None,
    before_id: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Newest first. `before_id` pages backwards from a row already seen."""
    stmt = select(request_log).order_by(request_log.c.started_at.desc(), request_log.c.id.desc())
    if key_id:
        stmt = stmt.where(request_log.c.key_id == key_id)
    if model:
        stmt = stmt.where(request_log.c.model_alias == model)
    if status is not None:
        stmt = stmt.where(request_log.c.status_code == status)
    if errors_only:
        stmt = stmt.where(request_log.c.status_code >= 400)
    if since is not None:
        stmt = stmt.where(request_log.c.started_at >= since)
    if before_id:
        anchor = conn.execute(
            select(request_log.c.started_at).where(request_log.c.id == before_id)
        ).scalar()
        if anchor is not None:
            stmt = stmt.where(
                (request_log.c.started_at < anchor)
                | ((request_log.c.started_at == anchor) & (request_log.c.id < before_id))
            )
    return [dict(row._mapping) for row in conn.execute(stmt.limit(limit))]


def count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(request_log)).scalar() or 0)
