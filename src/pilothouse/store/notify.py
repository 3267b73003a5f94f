"""PostgreSQL LISTEN/NOTIFY for configuration changes (the SQL half of the change bus)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from pilothouse.store.database import postgres_keepalives

CHANNEL = "pilothouse_changes"


def notify(conn: Connection, payload: str) -> None:
    """Queue a notification; PostgreSQL delivers it when the caller's transaction commits."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": CHANNEL, "payload": payload},
        )


def libpq_params(url: str) -> dict[str, Any]:
    """The connection parameters of a SQLAlchemy PostgreSQL URL exactly as the pool
    connects with them (the query's values decoded: a URL rendered back to a string
    sends a space as `+`), and the keepalives every session of this process has."""
    from sqlalchemy.dialects.postgresql.psycopg import dialect

    parsed = make_url(url)
    _, params = dialect().create_connect_args(parsed)
    return {**params, **postgres_keepalives(parsed.query)}


async def listen(url: str) -> AsyncIterator[str]:
    """Yield each announced change's payload until the connection fails. A server gone
    silent ends it too (keepalives), and the bus reconnects, rather than leaving this
    process deaf to changes."""
    import psycopg  # only a PostgreSQL deployment listens (start-up of the rest: -90 ms)

    async with await psycopg.AsyncConnection.connect(autocommit=True, **libpq_params(url)) as conn:
        await conn.execute(f"LISTEN {CHANNEL}")
        async for note in conn.notifies():
            yield note.payload or ""
