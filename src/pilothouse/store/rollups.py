"""Rollup rows: added to in place (an upsert that sums), read by time range and subject."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Connection, Table, cast, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from pilothouse.store.tables import (
    ROLLUP_COUNTS,
    ROLLUP_SUBJECT,
    ROLLUP_SUMS,
    request_rollups,
    request_rollups_10m,
)

ADDED = (*ROLLUP_COUNTS, *ROLLUP_SUMS)


def add(conn: Connection, increments: Mapping[tuple[Any, ...], Mapping[str, float]]) -> None:
    """Add each (minute, *subject) row's counters to what is stored (creating the row), in
    the per-minute table and, summed per ten minutes, in the ten-minute one."""
    if not increments:
        return
    coarse: dict[tuple[Any, ...], dict[str, float]] = {}
    for key, counts in increments.items():
        minute = key[0]
        slot = (minute.replace(minute=minute.minute - minute.minute % 10), *key[1:])
        into = coarse.get(slot)
        if into is None:
            coarse[slot] = dict(counts)
        else:
            for name, value in counts.items():
                into[name] = into.get(name, 0) + value
    _upsert(conn, request_rollups, increments)
    _upsert(conn, request_rollups_10m, coarse)


def _upsert(
    conn: Connection, table: Table, increments: Mapping[tuple[Any, ...], Mapping[str, float]]
) -> None:
    values = [
        {"minute": key[0], **dict(zip(ROLLUP_SUBJECT, key[1:], strict=True)), **counts}
        for key, counts in increments.items()
    ]
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = dialect_insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=["minute", *ROLLUP_SUBJECT],
        set_={name: table.c[name] + statement.excluded[name] for name in ADDED},
    )
    conn.execute(statement, values)


def read(
    conn: Connection,
    since: datetime,
    until: datetime | None = None,
    **subject: str | None,
) -> list[dict[str, Any]]:
    """Rollup rows with `since <= minute < until`, optionally for one route, provider,
    model alias, release arm or team (a given subject value; None means any)."""
    query = select(request_rollups).where(request_rollups.c.minute >= since)
    if until is not None:
        query = query.where(request_rollups.c.minute < until)
    for name, value in subject.items():
        if value is not None:
            query = query.where(request_rollups.c[name] == value)
    return [dict(row._mapping) for row in conn.execute(query.order_by(request_rollups.c.minute))]


def prune(conn: Connection, before: datetime) -> int:
    """Delete rollup rows (both tables) older than `before`; how many went."""
    gone = 0
    for table in (request_rollups, request_rollups_10m):
        result = conn.execute(delete(table).where(table.c.minute < before))
        gone += int(result.rowcount or 0)
    return gone


def sums(
    conn: Connection, since: datetime, until: datetime, **subject: str | None
) -> dict[str, float]:
    """Every counter summed over `since <= minute < until` for one subject (route,
    model_alias, provider, team, release_arm; None: any)."""
    columns = [func.coalesce(func.sum(request_rollups.c[name]), 0).label(name) for name in ADDED]
    query = select(*columns).where(
        request_rollups.c.minute >= since, request_rollups.c.minute < until
    )
    for name, value in subject.items():
        if value is not None:
            query = query.where(request_rollups.c[name] == value)
    row = conn.execute(query).one()
    return {name: float(row._mapping[name]) for name in ADDED}


def series(
    conn: Connection,
    since: datetime,
    until: datetime,
    group_by: str,
    step_seconds: int,
    columns: Sequence[str],
    **subject: str | None,
) -> list[dict[str, Any]]:
    """`columns` summed per time step (`at`: the step's start, epoch seconds) and per
    `group_by` subject column (route, model_alias, provider, team), for charts. Summed in
    the database, so a chart costs one row per point, whatever the traffic."""
    # Steps of whole ten minutes read the ten-minute table, aligned to its slots.
    table = request_rollups_10m if step_seconds % 600 == 0 else request_rollups
    if table is request_rollups_10m:
        since = since.replace(minute=since.minute - since.minute % 10, second=0, microsecond=0)
    minute = table.c.minute
    epoch: ColumnElement[int]
    if conn.dialect.name == "postgresql":
        epoch = cast(func.extract("epoch", minute), BigInteger)
    else:
        epoch = cast(func.strftime("%s", minute), BigInteger)
    at = ((epoch // step_seconds) * step_seconds).label("at")  # integer division
    key = table.c[group_by]
    sums = [func.sum(table.c[name]).label(name) for name in columns]
    query = (
        select(at, key, *sums).where(minute >= since, minute < until).group_by(at, key).order_by(at)
    )
    for name, value in subject.items():
        if value is not None:
            query = query.where(table.c[name] == value)
    out = []
    for row in conn.execute(query):
        values = dict(row._mapping)
        values["at"] = float(values["at"])
        for name in columns:  # PostgreSQL sums integers as numeric (Decimal): counts are floats
            values[name] = float(values[name] or 0)
        out.append(values)
    return out


def first_minute(conn: Connection) -> datetime | None:
    """The oldest minute any rollup row has: how much history there is."""
    value = conn.execute(select(func.min(request_rollups.c.minute))).scalar()
    return value
