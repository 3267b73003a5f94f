"""Reading rows when one of them may be damaged.

A row whose stored value cannot be decoded (JSON that does not parse, a timestamp that is
not one) makes a whole result fail as it is fetched. The configuration loaders and the
control plane's reads must not fail as a whole for one row, so they read through here:
one query normally; only when decoding fails, each row on its own, so the damaged ones
are reported (or skipped) and the rest are read. Nothing here hides a database that cannot
be reached: that raises as usual.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Column, Connection, Select, Table, select

# What SQLAlchemy's result processors raise for a value they cannot decode.
DECODE_ERRORS = (ValueError, TypeError, KeyError, OverflowError)


class DamagedRow(Exception):
    """A stored row that cannot be decoded; the message names it."""


def first(conn: Connection, query: Select[Any], what: str) -> dict[str, Any] | None:
    """The first row of `query` as a dict; DamagedRow naming `what` if it cannot be read."""
    try:
        row = conn.execute(query).first()
    except DECODE_ERRORS as exc:
        raise DamagedRow(f"{what}: the stored row cannot be read ({_why(exc)})") from exc
    return dict(row._mapping) if row is not None else None


def rows_or_problems(
    conn: Connection,
    table: Table,
    key: Column[Any],
    keys: Sequence[Any] | None = None,
    *,
    after: Any = None,
    limit: int | None = None,
) -> Iterator[tuple[Any, dict[str, Any] | None, str | None]]:
    """(key, row, None) for each readable row of `table` (those whose `key` is in `keys`,
    when given; a page of `limit` rows whose `key` follows `after`, when given), in `key`
    order, and (key, None, problem) for each damaged one."""
    if after is not None or limit is not None:
        page = select(key).order_by(key).limit(limit)
        if after is not None:
            page = page.where(key > after)
        if keys is not None:
            page = page.where(key.in_(keys))
        keys = [value for (value,) in conn.execute(page).all()]
    query = select(table).order_by(key)
    if keys is not None:
        if not keys:
            return
        query = query.where(key.in_(keys))
    try:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    except DECODE_ERRORS:
        found = select(key).order_by(key)
        if keys is not None:
            found = found.where(key.in_(keys))
        for (value,) in conn.execute(found).all():
            try:
                row = first(conn, select(table).where(key == value), f"{table.name} {value}")
            except DamagedRow as exc:
                yield value, None, str(exc)
                continue
            if row is not None:
                yield value, row, None
        return
    for row in rows:
        yield row[key.name], row, None


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
