"""Per-key spend per minute and model alias: added to in place, read by key and time."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from pilothouse.store.tables import KEY_SPEND_SUMS, key_spend


def add(
    conn: Connection, increments: Mapping[tuple[datetime, str, str], Mapping[str, float]]
) -> None:
    """Add each (minute, key id, model alias) row's sums to what is stored."""
    if not increments:
        return
    values = [
        {"minute": minute, "key_id": key_id, "model_alias": alias, **sums}
        for (minute, key_id, alias), sums in increments.items()
    ]
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = dialect_insert(key_spend)
    statement = statement.on_conflict_do_update(
        index_elements=["minute", "key_id", "model_alias"],
        set_={name: key_spend.c[name] + statement.excluded[name] for name in KEY_SPEND_SUMS},
    )
    conn.execute(statement, values)


def read(
    conn: Connection, key_id: str, since: datetime, until: datetime | None = None
) -> list[dict[str, Any]]:
    """The key's rows with `since <= minute < until`, oldest first."""
    query = select(key_spend).where(key_spend.c.key_id == key_id, key_spend.c.minute >= since)
    if until is not None:
        query = query.where(key_spend.c.minute < until)
    return [dict(row._mapping) for row in conn.execute(query.order_by(key_spend.c.minute))]


def active_keys(conn: Connection, since: datetime) -> list[str]:
    """The keys that spent anything since `since`."""
    query = select(key_spend.c.key_id).where(key_spend.c.minute >= since).distinct()
    return sorted(str(k) for k in conn.execute(query).scalars())


def prune(conn: Connection, before: datetime) -> int:
    result = conn.execute(delete(key_spend).where(key_spend.c.minute < before))
    return int(result.rowcount or 0)
