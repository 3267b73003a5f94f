"""PostgreSQL LISTEN/NOTIFY for configuration changes (the SQL half of the change bus)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from pilothouse.store.database import postgres_session

CHANNEL = "pilothouse_changes"


def notify(conn: Connection, payload: str) -> None:
    """Queue a notification; PostgreSQL delivers it when the caller's transaction commits."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": CHANNEL, "payload": payload},
        )


def libpq_dsn(url: str) -> str:
    """The libpq connection string for a SQLAlchemy PostgreSQL URL."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


async def listen(url: str) -> AsyncIterator[str]:
    """Yield each announced change's payload until the connection fails."""
    import psycopg  # only a PostgreSQL deployment listens (start-up of the rest: -90 ms)

    # Keepalives as every session has: a server gone silent ends this loop (the bus then
    # reconnects) instead of leaving the process deaf to changes.
    session = postgres_session(make_url(url).query)
    async with await psycopg.AsyncConnection.connect(
        libpq_dsn(url), autocommit=True, **session
    ) as conn:
        await conn.execute(f"LISTEN {CHANNEL}")
        async for note in conn.notifies():
            yield note.payload or ""
