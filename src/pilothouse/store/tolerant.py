"""Reading every row of a table when one of them may be damaged.

A row whose stored value cannot be decoded (JSON that does not parse, a timestamp that is
not one) makes the whole result fail as it is fetched. The configuration loaders must not
fail as a whole, so they read through `rows_or_problems`: one query normally; only when it
fails, each row on its own, so the damaged ones are reported and the rest are read. A
database that cannot be reached still raises: that is not one bad row.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Column, Connection, Table, select

from pilothouse.store.database import is_unavailable


def rows_or_problems(
    conn: Connection, table: Table, key: Column[Any]
) -> Iterator[tuple[Any, dict[str, Any] | None, str | None]]:
    """(key, row, None) for each readable row, (key, None, problem) for each damaged one."""
    try:
        rows = [dict(r._mapping) for r in conn.execute(select(table).order_by(key))]
    except Exception as exc:
        if is_unavailable(exc):
            raise
        conn.rollback()  # PostgreSQL: a failed statement aborts the transaction
        keys = [k for (k,) in conn.execute(select(key).order_by(key))]
        for value in keys:
            try:
                found = conn.execute(select(table).where(key == value)).first()
            except Exception as single:
                if is_unavailable(single):
                    raise
                conn.rollback()
                yield (
                    value,
                    None,
                    f"the stored row cannot be read ({type(single).__name__}: {single})"[:500],
                )
                continue
            if found is not None:
                yield value, dict(found._mapping), None
        return
    for row in rows:
        yield row[key.name], row, None
