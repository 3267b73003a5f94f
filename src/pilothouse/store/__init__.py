"""The store: the only code that speaks SQL. Repositories take a SQLAlchemy `Connection`
so a domain operation can write its row, its audit record and the change bump in one
transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

from pilothouse.store.database import StoreError, create_store_engine, ping, upgrade

__all__ = ["Store", "StoreError", "open_store"]


class Store:
    """A handle on one database."""

    def __init__(self, engine: Engine):
        self.engine = engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction: committed on success, rolled back on error."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that reads, then writes what it read (registry, releases, keys).

        On SQLite it takes the write lock at BEGIN (IMMEDIATE), so two such transactions
        queue behind each other instead of one failing to upgrade its read lock; on
        PostgreSQL the caller locks the rows it changes (`SELECT ... FOR UPDATE`).
        """
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.begin()
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def ping(self) -> None:
        ping(self.engine)

    def upgrade(self) -> None:
        upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()


def open_store(url: str) -> Store:
    """Open (not migrate) the database at `url`."""
    return Store(create_store_engine(url))
