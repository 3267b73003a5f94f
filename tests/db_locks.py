"""A database that hangs rather than fails: another connection holds the request_log
table (PostgreSQL: ACCESS EXCLUSIVE lock) or the whole database (SQLite: a write
transaction) until the test lets go."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg


@contextmanager
def request_log_locked(database_url: str) -> Iterator[None]:
    """Hold the lock for the duration of the `with` block; writers wait, nothing fails."""
    if database_url.startswith("sqlite:///"):
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    with psycopg.connect(database_url) as pg:
        pg.execute("LOCK TABLE request_log IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            pg.rollback()
