"""Request-log rows: written in batches, idempotent by request id, read with filters."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Dialect, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from pilothouse.store.tables import request_log

COLUMNS = frozenset(c.name for c in request_log.columns)


def insert_many(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows; a row whose id is already stored is skipped, so a replay is harmless.

    The statement is compiled once per dialect and the driver gets plain parameters:
    SQLAlchemy's per-row parameter processing cost ~22 µs a row, in the writer thread,
    holding the GIL the gateway's event loop needs; this costs a few µs.
    """
    if not rows:
        return
    insert = _compiled_insert(conn.dialect)
    conn.exec_driver_sql(insert.sql, [insert.parameters(row) for row in rows])


class _CompiledInsert:
    """INSERT ... ON CONFLICT DO NOTHING for one dialect, and how to turn a row into the
    driver's parameters: each column's bind processor (datetime and JSON encoding) exactly
    as SQLAlchemy would apply it, in the statement's parameter order."""

    def __init__(self, dialect: Dialect):
        dialect_insert = pg_insert if dialect.name == "postgresql" else sqlite_insert
        statement = dialect_insert(request_log).on_conflict_do_nothing(index_elements=["id"])
        compiled = statement.compile(dialect=dialect, column_keys=sorted(COLUMNS))
        self.sql = compiled.string
        self.positional = bool(compiled.positional)
        names = list(compiled.positiontup or []) if self.positional else sorted(COLUMNS)
        self._names = names
        self._get = itemgetter(*names)
        self._defaults = {  # what a column left out of a row gets, as SQLAlchemy would do
            column.name: getattr(column.default, "arg", None)
            if column.default is not None and column.default.is_scalar
            else None
            for column in request_log.columns
        }
        self._processors = [
            (i, process)
            for i, name in enumerate(names)
            if (process := request_log.c[name].type.dialect_impl(dialect).bind_processor(dialect))
        ]

    def parameters(self, row: dict[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        values = list(self._get(row if len(row) == len(self._names) else self._defaults | row))
        for i, process in self._processors:
            values[i] = process(values[i])
        return tuple(values) if self.positional else dict(zip(self._names, values, strict=True))


@cache
def _compiled_insert(dialect: Dialect) -> _CompiledInsert:
    return _CompiledInsert(dialect)


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
