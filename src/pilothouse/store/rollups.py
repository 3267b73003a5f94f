"""Rollup rows: added to in place (an upsert that sums), read by time range and subject."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Table,
    and_,
    cast,
    delete,
    func,
    or_,
    select,
)
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
    totals = dict.fromkeys(ADDED, 0.0)
    for table, start, end in _pieces(since, until):
        columns = [func.coalesce(func.sum(table.c[name]), 0).label(name) for name in ADDED]
        query = select(*columns).where(table.c.minute >= start, table.c.minute < end)
        for name, value in subject.items():
            if value is not None:
                query = query.where(table.c[name] == value)
        row = conn.execute(query).one()._mapping
        for name in ADDED:
            totals[name] += float(row[name])
    return totals


def sums_by(
    conn: Connection,
    since: datetime,
    until: datetime,
    group_by: Sequence[str],
    columns: Sequence[str] = ADDED,
) -> list[dict[str, Any]]:
    """`columns` summed over `since <= minute < until` per value of the `group_by` subject
    columns (e.g. route and model_alias): one row per group, summed in the database."""
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for table, start, end in _pieces(since, until):
        keys = [table.c[name] for name in group_by]
        query = (
            select(*keys, *(func.sum(table.c[name]).label(name) for name in columns))
            .where(table.c.minute >= start, table.c.minute < end)
            .group_by(*keys)
        )
        for row in conn.execute(query):
            values = row._mapping
            key = tuple(values[name] for name in group_by)
            into = groups.setdefault(key, {**dict(zip(group_by, key, strict=True))})
            for name in columns:  # PostgreSQL sums integers as numeric (Decimal)
                into[name] = into.get(name, 0.0) + float(values[name] or 0)
    return list(groups.values())


def nested_sums(
    conn: Connection,
    until: datetime,
    spans: Sequence[timedelta],
    columns: Sequence[str],
    **subject: str | None,
) -> list[dict[str, float]]:
    """`columns` summed over `until - span <= minute < until` for each of `spans` (an SLO's
    windows, all ending now), for one subject: two queries whatever the number of windows
    (per slot from the ten-minute table, per minute from the per-minute one for the
    ragged ends), then summed per window here. Exactly what `sums` gives each window."""
    windows = [_pieces(until - span, until) for span in spans]
    wanted: dict[Table, list[tuple[datetime, datetime]]] = {
        request_rollups: [],
        request_rollups_10m: [],
    }
    for pieces in windows:
        for table, start, end in pieces:
            if start < end:
                wanted[table].append((start, end))
    slots: dict[Table, list[tuple[datetime, list[float]]]] = {}
    for table, ranges in wanted.items():
        if not ranges:
            slots[table] = []
            continue
        query = (
            select(table.c.minute, *(func.sum(table.c[name]).label(name) for name in columns))
            .where(or_(*(and_(table.c.minute >= a, table.c.minute < b) for a, b in ranges)))
            .group_by(table.c.minute)
        )
        for name, value in subject.items():
            if value is not None:
                query = query.where(table.c[name] == value)
        slots[table] = [
            (_aware(row[0]), [float(v or 0) for v in row[1:]]) for row in conn.execute(query)
        ]
    out = []
    for pieces in windows:
        totals = [0.0] * len(columns)
        for table, start, end in pieces:
            for minute, counts in slots[table]:
                if start <= minute < end:
                    for i, count in enumerate(counts):
                        totals[i] += count
        out.append(dict(zip(columns, totals, strict=True)))
    return out


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _pieces(since: datetime, until: datetime) -> list[tuple[Table, datetime, datetime]]:
    """Where `since <= minute < until` is read: the whole ten-minute slots inside it from
    the ten-minute table (a tenth of the rows), the ragged ends from the per-minute one.
    Both tables hold the same counts (they are added to together), so the sum is exact."""
    first = _next_minute(since)  # the first whole minute the range takes
    start = first + timedelta(minutes=-first.minute % 10)
    end = until.replace(minute=until.minute - until.minute % 10, second=0, microsecond=0)
    if end - start < timedelta(minutes=30):  # too short for the coarse table to pay
        return [(request_rollups, since, until)]
    return [
        (request_rollups, since, start),
        (request_rollups_10m, start, end),
        (request_rollups, end, until),
    ]


def _next_minute(moment: datetime) -> datetime:
    whole = moment.replace(second=0, microsecond=0)
    return whole if whole == moment else whole + timedelta(minutes=1)


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
    grain = 600 if table is request_rollups_10m else 60
    at: ColumnElement[Any]
    if step_seconds == grain:  # a point per row's own slot: grouped as stored
        at = minute.label("at")
    else:
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
    for stamp, subject_value, *summed in conn.execute(query):
        # PostgreSQL sums integers as numeric (Decimal): counts are floats
        values: dict[str, Any] = {
            name: float(v or 0) for name, v in zip(columns, summed, strict=True)
        }
        values[group_by] = subject_value
        values["at"] = _aware(stamp).timestamp() if isinstance(stamp, datetime) else float(stamp)
        out.append(values)
    return out


def first_minute(conn: Connection) -> datetime | None:
    """The oldest minute any rollup row has: how much history there is."""
    value = conn.execute(select(func.min(request_rollups.c.minute))).scalar()
    return value
