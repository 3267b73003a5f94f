"""Scheduled eval suites (monitor/scheduler.py): one row per suite."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, or_, select, update

from pilothouse.store.tables import eval_schedules as table


def put(conn: Connection, row: dict[str, Any]) -> None:
    """Add or replace a suite's schedule (a replaced one keeps its history of runs)."""
    existing = get(conn, row["suite"])
    if existing is None:
        conn.execute(table.insert().values(**row))
        return
    kept = ("created_at", "created_by", "last_started_at", "last_finished_at", "last_status",
            "last_run_id", "last_passing_run_id", "last_message", "running_until")  # fmt: skip
    conn.execute(
        update(table)
        .where(table.c.suite == row["suite"])
        .values(**{k: v for k, v in row.items() if k not in kept})
    )


def get(conn: Connection, suite: str) -> dict[str, Any] | None:
    row = conn.execute(select(table).where(table.c.suite == suite)).first()
    return dict(row._mapping) if row else None


def listing(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(select(table).order_by(table.c.suite))]


def remove(conn: Connection, suite: str) -> bool:
    return bool(conn.execute(delete(table).where(table.c.suite == suite)).rowcount)


def due(conn: Connection, now: datetime) -> list[dict[str, Any]]:
    """Suites whose next run is due and that no run holds."""
    query = select(table).where(
        table.c.next_run_at <= now,
        or_(table.c.running_until.is_(None), table.c.running_until < now),
    )
    return [dict(r._mapping) for r in conn.execute(query.order_by(table.c.next_run_at))]


def claim(conn: Connection, suite: str, now: datetime, until: datetime) -> bool:
    """Hold `suite` for one run until `until`: False when a run already holds it."""
    return bool(
        conn.execute(
            update(table)
            .where(
                table.c.suite == suite,
                or_(table.c.running_until.is_(None), table.c.running_until < now),
            )
            .values(running_until=until, last_started_at=now)
        ).rowcount
    )


def change(conn: Connection, suite: str, **fields: Any) -> None:
    conn.execute(update(table).where(table.c.suite == suite).values(**fields))
