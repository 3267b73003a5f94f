"""Request-log rows: written in batches, idempotent by request id, read with filters.

Rows arrive as *journal lines*: a JSON array of values (in `COLUMN_ORDER`, or the order a
journal segment's header names), already made storable on every supported database (see
`telemetry/storable.py`), in a form that is the same for SQLite and PostgreSQL: text,
integers, finite floats, booleans, null; a timestamp as `YYYY-MM-DD HH:MM:SS.ffffff` in
UTC (SQLAlchemy's SQLite storage format); a JSON value as its JSON text.
`COLUMN_SPECS` describes each column's bounds, read from `store/tables/`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Connection,
    DateTime,
    Dialect,
    Float,
    Integer,
    String,
    TypeDecorator,
    delete,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.postgresql import psycopg as postgresql_psycopg
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from pilothouse.store.tables import request_log

COLUMN_ORDER = tuple(str(c.name) for c in request_log.columns)  # str: not quoted_name
COLUMNS = frozenset(COLUMN_ORDER)
_ID = COLUMN_ORDER.index("id")
ROWS_PER_STATEMENT = 256  # x 32 columns: under SQLite's 32,766 and PostgreSQL's 65,535 parameters
TIMESTAMP_FORMAT_EXAMPLE = "2026-01-31 23:59:59.999999"  # UTC, no offset: SQLite's storage form

Kind = Literal["text", "int", "float", "bool", "timestamp", "json"]


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """What a column accepts on every supported database. `max_chars` is None for
    unbounded text; `low`/`high` bound integers (32-bit `Integer`, 64-bit `BigInteger`)."""

    name: str
    kind: Kind
    nullable: bool
    max_chars: int | None = None
    low: int | None = None
    high: int | None = None
    default: Any = None


def _spec(column: Any) -> ColumnSpec:
    kind: Kind
    column_type = column.type
    if isinstance(column_type, TypeDecorator):  # UTCDateTime: stored as what it decorates
        column_type = column_type.impl
    low = high = None
    if isinstance(column_type, Boolean):
        kind = "bool"
    elif isinstance(column_type, BigInteger):
        kind, low, high = "int", -(2**63), 2**63 - 1
    elif isinstance(column_type, Integer):
        kind, low, high = "int", -(2**31), 2**31 - 1
    elif isinstance(column_type, Float):
        kind = "float"
    elif isinstance(column_type, DateTime):
        kind = "timestamp"
    elif isinstance(column_type, JSON):
        kind = "json"
    elif isinstance(column_type, String):  # also Text, whose length is None
        kind = "text"
    else:
        raise TypeError(f"request_log.{column.name}: no storable form for {column_type!r}")
    default = (
        column.default.arg if column.default is not None and column.default.is_scalar else None
    )
    return ColumnSpec(
        str(column.name),
        kind,
        bool(column.nullable),
        getattr(column_type, "length", None),
        low,
        high,
        default,
    )


COLUMN_SPECS = tuple(_spec(c) for c in request_log.columns)


def format_timestamp(moment: datetime) -> str:
    """A datetime as a journal timestamp (naive values are taken as UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat(" ", "microseconds")


def journal_line(row: dict[str, Any]) -> bytes:
    """A row given as a dict of Python values (datetimes, dicts for JSON; missing columns
    take their default) as a journal line in `COLUMN_ORDER`, without the newline. It
    converts, it does not bound: the request-log writer bounds its rows in
    `telemetry/storable.py`."""
    values = []
    for spec in COLUMN_SPECS:
        value = row.get(spec.name, spec.default)
        if value is not None:
            if spec.kind == "timestamp":
                value = format_timestamp(value)
            elif spec.kind == "json":
                value = orjson.dumps(value).decode()
        values.append(value)
    return orjson.dumps(values)


def insert_many(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows given as dicts; a row whose id is already stored is skipped."""
    insert_lines(conn, [journal_line(row) for row in rows])


def insert_lines(
    conn: Connection, lines: Sequence[bytes], columns: Sequence[str] = COLUMN_ORDER
) -> list[list[Any]]:
    """Insert journal lines (JSON arrays of values in `columns` order, as a journal
    segment's header names them; a table column missing there gets its default). A row
    whose id is already stored is skipped (ON CONFLICT DO NOTHING), so loading the same
    lines twice is harmless. Returns the rows really added, as value lists in
    COLUMN_ORDER (what the rollups count). Raises when any line is refused, whatever the
    reason: a line that is not a row of `len(columns)` values is refused too.

    PostgreSQL parses the lines itself (one statement, one parameter: the lines as a JSON
    array): binding 32 parameters a row cost psycopg ~95 µs of CPU a row in the gateway,
    the server's JSON parser ~0.5 µs. SQLite, in process, gets rows decoded by orjson in
    multi-row INSERTs (its own JSON functions took twice the CPU)."""
    if not lines:
        return []
    if conn.dialect.name == "postgresql":
        result = conn.exec_driver_sql(
            _postgres_sql(tuple(columns)), (b"[" + b",".join(lines) + b"]",)
        )
        added = {row[0] for row in result}
        rows = _decoded(lines, tuple(columns))
    else:
        rows, added = _sqlite_insert(conn, lines, tuple(columns))
    return [row for row in rows if row[_ID] in added]


def _decoded(lines: Sequence[bytes], columns: tuple[str, ...]) -> list[list[Any]]:
    picks = _picks(columns)
    rows = []
    for line in lines:
        row = orjson.loads(line)
        if type(row) is not list or len(row) != len(columns):
            raise JournalRowError(f"not a row of {len(columns)} values: {line[:200]!r}")
        rows.append(row if picks is None else [row[i] if i >= 0 else d for i, d in picks])
    return rows


def probe_insert(conn: Connection) -> None:
    """Insert one harmless row and roll it back (`conn` must not be in a transaction):
    raises when the store cannot take request-log rows at all (down, locked, table
    missing), so that a row that fails alone is only called bad when the same statement
    works for a good row."""
    now = datetime.now(UTC)
    probe = {"id": "pilothouse-probe", "started_at": now, "finished_at": now}
    probe.update(endpoint="probe", status_code=0, latency_ms=0.0)
    with conn.begin() as transaction:
        insert_lines(conn, [journal_line(probe)])
        transaction.rollback()


class JournalRowError(ValueError):
    """A journal line that is not a row of the expected number of values."""


def _sqlite_insert(
    conn: Connection, lines: Sequence[bytes], columns: tuple[str, ...]
) -> tuple[list[list[Any]], set[str]]:
    """Many rows per statement: executemany steps once per row, handing the GIL over each
    time, and on a gateway pinned to one core every hand-over is a context switch the
    event loop waits for. Statements come in power-of-two sizes only: sqlite3 keeps 128
    prepared statements, and one for every batch size (up to ~1 MB each) grew the gateway
    by 70 MB in a 10-minute soak."""
    statement = _sqlite_statement(conn.dialect)
    rows = _decoded(lines, columns)
    added: set[str] = set()
    start = 0
    while start < len(rows):
        size = min(ROWS_PER_STATEMENT, 1 << (len(rows) - start).bit_length() - 1)
        flat = tuple(value for row in rows[start : start + size] for value in row)
        added.update(row[0] for row in conn.exec_driver_sql(statement.sql(size), flat))
        start += size
    return rows, added


@cache
def _picks(columns: tuple[str, ...]) -> tuple[tuple[int, Any], ...] | None:
    """For each table column, its index in `columns` (-1: absent) and its default; None
    when `columns` is the table's own order."""
    if columns == COLUMN_ORDER:
        return None
    where = {name: i for i, name in enumerate(columns)}
    return tuple((where.get(spec.name, -1), spec.default) for spec in COLUMN_SPECS)


class _MultiRowInsert:
    """`INSERT ... VALUES (?, ...), ... ON CONFLICT (id) DO NOTHING` for n rows."""

    def __init__(self, dialect: Dialect):
        statement = sqlite_insert(request_log).on_conflict_do_nothing(index_elements=["id"])
        compiled = statement.compile(dialect=dialect, column_keys=list(COLUMN_ORDER))
        assert compiled.positional and list(compiled.positiontup or []) == list(COLUMN_ORDER)
        self._head, self._group, self._tail = _split_values(compiled.string)
        self._tail += " RETURNING id"  # which rows were really added (rollups count those)
        self._sql: dict[int, str] = {}

    def sql(self, rows: int) -> str:
        sql = self._sql.get(rows)
        if sql is None:
            sql = self._sql[rows] = self._head + ", ".join([self._group] * rows) + self._tail
        return sql


@cache
def _sqlite_statement(dialect: Dialect) -> _MultiRowInsert:
    return _MultiRowInsert(dialect)


_PG_CASTS = {
    "text": "{}",
    "int": "({})::integer",
    "float": "({})::double precision",
    "bool": "({})::boolean",
    "timestamp": "(({})::timestamp AT TIME ZONE 'UTC')",  # journal times are UTC
    "json": "({})::json",
}


@cache
def _postgres_sql(columns: tuple[str, ...]) -> str:
    """INSERT ... SELECT each column from the elements of one JSON-array parameter."""
    dialect = postgresql_psycopg.dialect(paramstyle="format")
    statement = pg_insert(request_log).on_conflict_do_nothing(index_elements=["id"])
    compiled = statement.compile(dialect=dialect, column_keys=list(COLUMN_ORDER))
    assert list(compiled.positiontup or []) == list(COLUMN_ORDER)
    head, _, tail = _split_values(compiled.string)
    where = {name: i for i, name in enumerate(columns)}
    expressions = []
    for spec in COLUMN_SPECS:
        if spec.name not in where:
            expressions.append(_sql_literal(spec.default))
            continue
        value = f"v->>{where[spec.name]}"
        if spec.name == "id":  # a line of the wrong length gets no key: the insert fails
            value = f"CASE WHEN jsonb_array_length(v) = {len(columns)} THEN {value} END"
        if spec.kind == "int" and (spec.high or 0) > 2**31:
            expressions.append(f"({value})::bigint")
        else:
            expressions.append(_PG_CASTS[spec.kind].format(value))
    source = "jsonb_array_elements(convert_from(%s, 'UTF8')::jsonb) AS journal(v)"
    select_rows = f"SELECT {', '.join(expressions)} FROM {source}"
    return f"{head.removesuffix(' VALUES ')} {select_rows}{tail} RETURNING id"


def _sql_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _split_values(sql: str) -> tuple[str, str, str]:
    """`INSERT ... VALUES (…) ON CONFLICT ...` as head, the placeholder group, tail."""
    head, found, rest = sql.partition(" VALUES (")
    assert found, f"unexpected INSERT form: {sql[:200]}"
    depth = 1
    for end, char in enumerate(rest):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return head + " VALUES ", "(" + rest[: end + 1], rest[end + 1 :]
    raise AssertionError(f"unbalanced VALUES group: {sql[:200]}")


def query(
    conn: Connection,
    *,
    key_id: str | None = None,
    model: str | None = None,
    route: str | None = None,
    team: str | None = None,
    status: int | None = None,
    outcome: str | None = None,
    errors_only: bool = False,
    since: datetime | None = None,
    before_id: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Newest first. `before_id` pages backwards from a row already seen. `errors_only`
    means every outcome but `ok` (a stream cut after its 200 included)."""
    stmt = select(request_log).order_by(request_log.c.started_at.desc(), request_log.c.id.desc())
    if key_id:
        stmt = stmt.where(request_log.c.key_id == key_id)
    if model:
        stmt = stmt.where(request_log.c.model_alias == model)
    if route:
        stmt = stmt.where(request_log.c.route == route)
    if team:
        stmt = stmt.where(request_log.c.team == team)
    if status is not None:
        stmt = stmt.where(request_log.c.status_code == status)
    if outcome:
        stmt = stmt.where(request_log.c.outcome == outcome)
    if errors_only:
        stmt = stmt.where(request_log.c.outcome != "ok")
    if since is not None:
        stmt = stmt.where(request_log.c.started_at >= since)
    if before_id:
        anchor = conn.execute(
            select(request_log.c.started_at).where(request_log.c.id == before_id)
        ).scalar()
        if anchor is not None:
            # The range first, so the database walks the time index back from the anchor
            # (an OR of the two cases alone made PostgreSQL scan the whole table).
            stmt = stmt.where(
                request_log.c.started_at <= anchor,
                (request_log.c.started_at < anchor) | (request_log.c.id < before_id),
            )
    return [dict(row._mapping) for row in conn.execute(stmt.limit(limit))]


def get(conn: Connection, request_id: str) -> dict[str, Any] | None:
    found = conn.execute(select(request_log).where(request_log.c.id == request_id)).first()
    return dict(found._mapping) if found else None


def window(conn: Connection, since: datetime, *, limit: int) -> list[dict[str, Any]]:
    """The columns a traffic summary needs, for rows started at or after `since`."""
    columns = [
        request_log.c.route,
        request_log.c.model_alias,
        request_log.c.outcome,
        request_log.c.ttft_delivered_ms,
        request_log.c.cost_usd,
    ]
    stmt = (
        select(*columns)
        .where(request_log.c.started_at >= since)
        .order_by(request_log.c.started_at.desc())
        .limit(limit)
    )
    return [dict(row._mapping) for row in conn.execute(stmt)]


def count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(request_log)).scalar() or 0)


def prune(conn: Connection, before: datetime, batch: int) -> int:
    """Delete up to `batch` rows that started before `before` (oldest first); how many went.
    Batched so a first prune of a large log never holds one long lock."""
    oldest = (
        select(request_log.c.id)
        .where(request_log.c.started_at < before)
        .order_by(request_log.c.started_at)
        .limit(batch)
    )
    result = conn.execute(delete(request_log).where(request_log.c.id.in_(oldest.scalar_subquery())))
    return int(result.rowcount or 0)
