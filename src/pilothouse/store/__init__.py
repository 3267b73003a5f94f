"""The store: the only code that speaks SQL. Repositories take a SQLAlchemy `Connection`
so a domain operation can write its row, its audit record and the change bump in one
transaction. After a transaction that bumped the configuration version commits, the
store hands its `changes.Change`s to the commit listeners (the snapshot holder)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

from pilothouse.store import changes
from pilothouse.store.database import StoreError, create_store_engine, ping, upgrade

__all__ = ["Store", "StoreError", "open_store"]

CommitListener = Callable[[list[changes.Change]], None]


class Store:
    """A handle on one database."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._listeners: list[CommitListener] = []
        self._listeners_lock = threading.Lock()

    def on_commit(self, listener: CommitListener) -> Callable[[], None]:
        """Call `listener` (in the writing thread) with the configuration changes of each
        transaction of this store that committed; returns the function that removes it."""
        with self._listeners_lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._listeners_lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    def _committed(self, conn: Connection) -> None:
        made = changes.take(conn)
        if not made:
            return
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(made)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction: committed on success, rolled back on error."""
        with self.engine.connect() as conn:
            try:
                with conn.begin():
                    yield conn
            except BaseException:
                changes.take(conn)  # rolled back: nothing changed
                raise
            self._committed(conn)

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
                changes.take(conn)  # rolled back: nothing changed
                raise
            conn.commit()
            self._committed(conn)

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
