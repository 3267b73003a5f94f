"""API key rows. Only the SHA-256 of a secret is ever stored."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, or_, select, update

from pilothouse.store import tolerant
from pilothouse.store.tables import api_keys


def insert(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(api_keys.insert().values(**row))


def get(conn: Connection, key_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    """The key's row; with `lock`, locked until the transaction ends (PostgreSQL)."""
    query = select(api_keys).where(api_keys.c.id == key_id)
    found = conn.execute(query.with_for_update() if lock else query).first()
    return dict(found._mapping) if found else None


def find_by_name(conn: Connection, name: str) -> list[dict[str, Any]]:
    rows = conn.execute(select(api_keys).where(api_keys.c.name == name))
    return [dict(row._mapping) for row in rows]


def all_keys(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(api_keys).order_by(api_keys.c.created_at))
    return [dict(row._mapping) for row in rows]


def keys_checked(
    conn: Connection, ids: Collection[str] | None = None
) -> list[tuple[str, dict[str, Any] | None, str | None]]:
    """(id, row, None) for each readable key (every key, or those in `ids`), and
    (id, None, problem) for each damaged one."""
    wanted = sorted(set(ids)) if ids is not None else None
    return list(tolerant.rows_or_problems(conn, api_keys, api_keys.c.id, wanted))


def page_ids(conn: Connection, after: str | None, limit: int) -> list[str]:
    """The ids of `limit` keys in creation order (then id) after the key `after`. Only
    ids are read, so a damaged row still has its place in the order."""
    query = select(api_keys.c.id).order_by(api_keys.c.created_at, api_keys.c.id).limit(limit)
    if after is not None:
        created = select(api_keys.c.created_at).where(api_keys.c.id == after).scalar_subquery()
        query = query.where(
            or_(
                api_keys.c.created_at > created,
                and_(api_keys.c.created_at == created, api_keys.c.id > after),
            )
        )
    return [str(key_id) for (key_id,) in conn.execute(query)]


def set_disabled(conn: Connection, key_id: str, disabled: bool) -> None:
    conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(disabled=disabled))


def set_suspension(
    conn: Connection,
    key_id: str,
    at: datetime | None,
    reason: str | None,
    watch_after: datetime | None,
) -> None:
    conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id)
        .values(suspended_at=at, suspended_reason=reason, spend_watch_after=watch_after)
    )


def hashes(conn: Connection, key_ids: list[str]) -> dict[str, str]:
    """The secret hash of each key id (only that column: it is readable when others are not)."""
    if not key_ids:
        return {}
    rows = conn.execute(
        select(api_keys.c.id, api_keys.c.key_hash).where(api_keys.c.id.in_(key_ids))
    )
    return {key_id: key_hash for key_id, key_hash in rows if isinstance(key_hash, str)}
