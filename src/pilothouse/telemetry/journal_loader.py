"""The loader: moves request-log rows from the journal into the database, in its own
thread, whatever the database is doing.

Each batch is inserted in one transaction, then the checkpoint moves past it, so a
restart resumes where the last commit ended (rows are keyed, inserted with ON CONFLICT DO
NOTHING: loading one twice is harmless). A batch the database refuses is split in halves
until the rows it refuses stand alone; such a row is set aside in the dead-letter file
once an insert probe shows the database takes good rows, and the rest is loaded. While
the database is down or hangs, rows stay in the journal and nothing here grows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy import Connection
from sqlalchemy import exc as sa_exc

from pilothouse.store import Store
from pilothouse.store import key_spend as key_spend_rows
from pilothouse.store import request_log as rows_sql
from pilothouse.store import rollups as rollup_rows
from pilothouse.telemetry import rollups
from pilothouse.telemetry.dead_letters import DeadLetters
from pilothouse.telemetry.journal import Journal, ReadBatch
from pilothouse.telemetry.metrics import Metrics

log = logging.getLogger("pilothouse.request_log")
LOAD_BATCH_BYTES = 1 << 20  # 2,000-3,000 rows: one transaction, a few MB while SQLite decodes


class StoreDown(Exception):
    """The database cannot take rows now (down, locked, schema missing): retry later."""


class JournalLoader:
    """Runs `run` in a thread of its own; `stop` asks it to finish."""

    def __init__(
        self,
        store: Store,
        journal: Journal,
        dead_letters: DeadLetters,
        metrics: Metrics,
        *,
        interval_seconds: float,
        retry_interval_seconds: float,
    ):
        self._store = store
        self._journal = journal
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._interval = interval_seconds
        self._retry_interval = retry_interval_seconds
        self._wake = threading.Event()
        self._stopping = False
        self._deadline = float("inf")
        self.store_up = True
        self.store_error: str | None = None
        self.busy_since: float | None = None  # monotonic start of the insert in flight
        self.rows_in_flight = 0
        self.last_loaded_at: float | None = None  # epoch seconds of the last commit
        self._retry_at = 0.0
        self._rollup_failing = False

    def wake(self) -> None:
        self._wake.set()

    def stop(self, deadline: float) -> None:
        """Load what is in the journal until it is empty, the database fails, or the
        monotonic `deadline`; then return from `run`."""
        self._stopping = True
        self._deadline = deadline
        self._wake.set()

    @property
    def idle(self) -> bool:
        return self.busy_since is None

    def in_flight_seconds(self) -> float | None:
        """How long the insert in flight has taken; None when there is none."""
        busy = self.busy_since
        return None if busy is None else time.monotonic() - busy

    def run(self, on_start: Callable[[], None] = lambda: None) -> None:
        on_start()
        while True:
            if self._stopping and (time.monotonic() >= self._deadline or not self.store_up):
                return
            if not self.store_up and time.monotonic() < self._retry_at:
                self._sleep(self._retry_at - time.monotonic())
                continue
            try:
                batch = self._journal.read(LOAD_BATCH_BYTES)
                if batch.empty:
                    if self._stopping:
                        return
                    self._sleep(self._interval)
                    continue
                self._load_batch(batch)
                self._journal.commit(batch.end)
            except StoreDown as exc:
                self._mark_down(exc)
                continue
            except Exception as exc:  # the loader must outlive anything; the batch stays
                log.exception("request-log loader failed; it retries the same rows")
                self._mark_down(StoreDown(f"loader error: {_describe(exc)}"))
                continue
            short = batch.end.offset - batch.start.offset < LOAD_BATCH_BYTES // 2
            same_segment = batch.end.segment == batch.start.segment
            if batch.lines and short and same_segment and not self._stopping:
                self._sleep(self._interval)  # caught up: let rows gather into a batch

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(max(0.0, seconds))
        self._wake.clear()

    def _load_batch(self, batch: ReadBatch) -> None:
        lines = [line for line in batch.lines if line.strip()]
        self.rows_in_flight = len(lines)
        try:
            self._load(lines, batch.columns)
        finally:
            self.rows_in_flight = 0
        if batch.torn:  # after the load: a retried batch does not set it aside twice
            self._dead_letters.add_text(
                "torn",
                "the last line of a journal segment was cut short (its process was killed "
                "mid-write)",
                batch.torn,
            )
        if not lines:
            return
        self._metrics.log_rows_written.inc(len(lines))
        self.last_loaded_at = time.time()
        if not self.store_up:
            self.store_up, self.store_error = True, None
            self._metrics.log_store_up.set(1)
            log.info(
                "request log store is reachable again; loading %d bytes of backlog",
                self._journal.backlog_bytes,
            )

    def _load(self, lines: list[bytes], columns: tuple[str, ...]) -> None:
        """Insert `lines`; bisect a refused batch down to the lines refused alone."""
        if not lines:
            return
        try:
            self._insert(lines, columns)
            return
        except Exception as exc:
            if _store_trouble(exc):
                raise StoreDown(_describe(exc)) from exc
            refused = exc
        if len(lines) > 1:
            middle = len(lines) // 2
            self._load(lines[:middle], columns)
            self._load(lines[middle:], columns)
            return
        self._probe()  # a good row goes in: so this one is bad, not the database
        key, reason = _reason(refused)
        try:
            row = orjson.loads(lines[0])
        except orjson.JSONDecodeError:
            row = None
        if isinstance(row, list) and len(row) == len(columns):
            self._dead_letters.add_row(key, reason, columns, row)
        else:
            self._dead_letters.add_text(
                "unreadable", "a journal line that is not a request-log row", lines[0]
            )

    def _insert(self, lines: list[bytes], columns: tuple[str, ...]) -> None:
        self.busy_since = time.monotonic()
        try:
            with self._store.begin() as conn:
                added = rows_sql.insert_lines(conn, lines, columns)
                self._roll_up(conn, added)
        finally:
            self.busy_since = None

    def _roll_up(self, conn: Connection, added: list[list[Any]]) -> None:
        """Add the rows really inserted to the per-minute rollups, in the same transaction
        (exactly once). A rollup that fails is logged and counted; it never costs a row."""
        if not added:
            return
        try:
            with conn.begin_nested():
                rollup_rows.add(conn, rollups.aggregate(added, rows_sql.COLUMN_ORDER))
                key_spend_rows.add(conn, rollups.key_spend(added, rows_sql.COLUMN_ORDER))
        except Exception as exc:
            if _store_trouble(exc):
                raise
            self._metrics.rollup_errors.inc()
            if not self._rollup_failing:
                log.exception("request-log rollups failed; rows still load")
            self._rollup_failing = True
        else:
            self._rollup_failing = False

    def _probe(self) -> None:
        self.busy_since = time.monotonic()
        try:
            with self._store.connect() as conn:
                rows_sql.probe_insert(conn)
        except Exception as exc:
            raise StoreDown(f"the insert probe failed too: {_describe(exc)}") from exc
        finally:
            self.busy_since = None

    def _mark_down(self, exc: StoreDown) -> None:
        self._retry_at = time.monotonic() + self._retry_interval
        if self.store_up:
            log.error(
                "request log store unavailable; rows wait in the journal (%s): %s",
                self._journal.directory,
                exc,
            )
        self.store_up, self.store_error = False, str(exc)
        self._metrics.log_store_up.set(0)


def _store_trouble(exc: BaseException) -> bool:
    """The database (not the rows) is the problem: connection lost, refused, busy."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(
        exc,
        sa_exc.OperationalError
        | sa_exc.InterfaceError
        | sa_exc.DisconnectionError
        | sa_exc.TimeoutError,
    )


def _reason(exc: BaseException) -> tuple[str, str]:
    """A key that groups the same failure (for logging once), and the full reason."""
    original = getattr(exc, "orig", None) or exc
    code = getattr(original, "sqlstate", None) or getattr(original, "sqlite_errorname", None)
    key = f"{type(original).__name__}:{code or ''}"
    return key, _describe(exc)


def _describe(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()[0] if str(original).strip() else ""
    return f"{type(original).__name__}: {text[:500]}"
