"""Quota policy rows (policy/quotas.py owns what they mean)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, select

from pilothouse.store import tolerant
from pilothouse.store.tables import quota_policies


def get(conn: Connection, name: str, *, lock: bool = False) -> dict[str, Any] | None:
    """The policy's row; with `lock`, locked until the transaction ends (PostgreSQL)."""
    query = select(quota_policies).where(quota_policies.c.name == name)
    found = conn.execute(query.with_for_update() if lock else query).first()
    return dict(found._mapping) if found else None


def upsert(conn: Connection, row: dict[str, Any], *, exists: bool) -> None:
    if exists:
        conn.execute(
            quota_policies.update().where(quota_policies.c.name == row["name"]).values(**row)
        )
    else:
        conn.execute(quota_policies.insert().values(**row))


def remove(conn: Connection, name: str) -> None:
    conn.execute(delete(quota_policies).where(quota_policies.c.name == name))


def all_checked(conn: Connection) -> list[tuple[str, dict[str, Any] | None, str | None]]:
    """(name, row, None) for each readable policy, (name, None, problem) for a damaged one."""
    return list(tolerant.rows_or_problems(conn, quota_policies, quota_policies.c.name))
