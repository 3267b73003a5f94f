"""The request-log pipeline: accepted on the event loop, durable in a local journal
within a fixed interval, loaded into the database by a thread of its own.

    submit(record)  event loop: bound every value to its column, encode one journal line
        │           (telemetry/storable.py), append it to an in-memory queue
        ▼
    appender thread every journal_interval_ms / 2: one write(2) of the queued lines to
        │           DATA_DIR/journal (telemetry/journal.py); a third thread fsyncs them
        │           every journal_fsync_interval_seconds
        ▼
    loader thread   journal → database in batches, checkpoint after each commit; a row
                    the database refuses is set aside (telemetry/journal_loader.py)

So the durability of a row does not depend on the database: while it is down or hangs,
rows wait on disk (up to the journal's size cap), not in memory. See docs/gateway.md,
"Durability of the request log".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import time
from collections import deque
from dataclasses import fields
from datetime import UTC, datetime
from operator import attrgetter
from pathlib import Path
from typing import Any

import orjson

from pilothouse.config import RequestLogSpec
from pilothouse.store import Store
from pilothouse.store import request_log as rows
from pilothouse.telemetry.dead_letters import DeadLetters
from pilothouse.telemetry.journal import Journal
from pilothouse.telemetry.journal_loader import JournalLoader
from pilothouse.telemetry.metrics import Metrics
from pilothouse.telemetry.record import RequestRecord
from pilothouse.telemetry.storable import StorableRows

log = logging.getLogger("pilothouse.request_log")
MEMORY_ROWS_MAX = 50_000  # rows waiting for the appender (~30 MB): only a stalled disk fills it
DRAIN_SECONDS = 10.0  # on close, how long the loader may take to empty the journal
IDLE_AFTER_SECONDS = 1.0  # the appender stops its cadence after this long without rows
ROOM_MIN_BYTES = 64 << 10  # "has room": at least this much journal space left


class RequestLogWriter:
    """Makes each submitted record durable in the journal within `journal_interval_ms`
    and loads the journal into `store`. `start` opens the journal (raises
    `JournalError` when another process holds it); `close` writes what is queued, gives
    the loader up to `DRAIN_SECONDS` to empty the journal, and stops."""

    def __init__(
        self,
        store: Store,
        data_dir: Path,
        metrics: Metrics,
        *,
        spec: RequestLogSpec | None = None,
        retry_interval_seconds: float = 2.0,
    ):
        spec = spec or RequestLogSpec()
        self._metrics = metrics
        self._spools = [data_dir / "spool" / f"request_log.{s}" for s in ("replaying", "jsonl")]
        self.journal = Journal(
            data_dir / "journal", rows.COLUMN_ORDER, max_bytes=spec.journal_max_bytes
        )
        self.dead_letters = DeadLetters(data_dir / "journal" / "dead-letter.jsonl", metrics)
        self.loader = JournalLoader(
            store,
            self.journal,
            self.dead_letters,
            metrics,
            interval_seconds=spec.load_interval_seconds,
            retry_interval_seconds=retry_interval_seconds,
        )
        self._storable = StorableRows()
        self._values = attrgetter(*rows.COLUMN_ORDER)
        self._started_at = rows.COLUMN_ORDER.index("started_at")
        self._finished_at = rows.COLUMN_ORDER.index("finished_at")
        self._lines: deque[bytes] = deque()  # append (loop) and popleft (appender) are atomic
        self._cadence_seconds = spec.journal_interval_ms / 2000  # half: slack for scheduling
        self._fsync_interval = spec.journal_fsync_interval_seconds
        self._wake = threading.Event()
        self._appender_idle = False
        self._stopping = False
        self._accepted = 0  # event loop only
        self._settled = 0  # appender only: rows written to the journal or dropped there
        self._dropped_in_memory = 0  # event loop only
        self._dropped_in_journal = 0  # appender only
        self._dropping: str | None = None  # appender: why rows are being dropped now
        self.journal_error: str | None = None
        self._appender: threading.Thread | None = None
        self._syncer: threading.Thread | None = None
        self._syncer_wake = threading.Event()
        self._loader_thread: threading.Thread | None = None
        metrics.log_journal_bytes.set_function(lambda: self.journal.disk_bytes)
        metrics.log_backlog_bytes.set_function(lambda: self.journal.backlog_bytes)
        metrics.log_memory_rows.set_function(self.memory_rows)
        metrics.log_load_seconds.set_function(lambda: self.loader.in_flight_seconds() or 0.0)

    def submit(self, record: RequestRecord) -> None:
        """Queue a record (never blocks, never touches the disk or the database).

        The record is bounded and encoded as its journal line here, a few µs on the event
        loop, so that the other threads have almost no Python to run while they hold the
        GIL: encoding whole batches in a thread stalled the loop (c1 p99 ~4 ms instead of
        ~0.8). A line is bytes, which the garbage collector does not track."""
        values = list(self._values(record))
        if not values[self._finished_at]:
            values[self._finished_at] = values[self._started_at]
        try:
            line, notes = self._storable.line(values)
        except Exception:  # a bug in the bounds must cost this row, not the request
            log.exception("request log: a row could not be encoded; dropped")
            self._dropped_in_memory += 1
            self._metrics.log_rows_dropped.labels("unencodable").inc()
            return
        if notes:
            self._metrics.log_rows_bounded.inc()
        if len(self._lines) >= MEMORY_ROWS_MAX:
            if not self._dropped_in_memory:
                log.error("request log: %d rows wait for the journal; dropping", MEMORY_ROWS_MAX)
            self._dropped_in_memory += 1
            self._metrics.log_rows_dropped.labels("memory_full").inc()
            return
        self._lines.append(line)
        self._accepted += 1
        if self._appender_idle:
            self._wake.set()

    def memory_rows(self) -> int:
        """Rows held in memory: queued for the journal, or in the batch being loaded."""
        return len(self._lines) + self.loader.rows_in_flight

    @property
    def dropped(self) -> int:
        return self._dropped_in_memory + self._dropped_in_journal

    def start(self) -> None:
        """Open the journal, take in an old spool file, start the threads: appender,
        loader and (unless every write is fsynced) syncer."""
        self.journal.open()
        self._import_spools()
        self._appender = threading.Thread(
            target=self._append_loop, name="request-log-journal", daemon=True
        )
        self._loader_thread = threading.Thread(
            target=self.loader.run, args=(_yield_the_cpu,), name="request-log-loader", daemon=True
        )
        self._appender.start()
        self._loader_thread.start()
        if self._fsync_interval > 0:
            self._syncer = threading.Thread(
                target=self._sync_loop, name="request-log-fsync", daemon=True
            )
            self._syncer.start()

    async def close(self, drain_seconds: float = DRAIN_SECONDS) -> None:
        """Write everything queued to the journal, load what the database takes within
        `drain_seconds`, and stop. Rows not loaded stay in the journal for the next start."""
        self._stopping = True
        self._wake.set()
        if self._appender is not None:
            await asyncio.to_thread(self._appender.join)
        if self._syncer is not None:
            self._syncer_wake.set()
            await asyncio.to_thread(self._syncer.join)
        if self._loader_thread is not None:
            self.loader.stop(time.monotonic() + drain_seconds)
            await asyncio.to_thread(self._loader_thread.join, drain_seconds + 1)
            if self._loader_thread.is_alive() or self.journal.backlog_bytes:
                log.warning(
                    "request log: %d bytes of rows wait in %s for the next start (%s)",
                    self.journal.backlog_bytes,
                    self.journal.directory,
                    self.loader.store_error or "the database did not take them in time",
                )
        self.journal.close()

    async def flush(self, timeout_seconds: float = 30.0) -> bool:
        """Wait until every row submitted so far is in the database: True; False when
        the database is down or `timeout_seconds` pass first."""
        target = self._accepted
        deadline = time.monotonic() + timeout_seconds
        self._wake.set()
        while time.monotonic() < deadline:
            if self._settled >= target and not self.journal.backlog_bytes and self.loader.idle:
                return True
            if not self.loader.store_up:
                return False
            self.loader.wake()
            await asyncio.sleep(0.005)
        return False

    def health(self) -> dict[str, Any]:
        """For /readyz and /healthz: can this process still accept rows (`has_room`),
        and is the database taking them (`store`: "up" or "down"; a hang shows as a
        growing `load_in_flight_seconds`)."""
        room = self.journal.max_bytes - self.journal.disk_bytes
        busy = self.loader.in_flight_seconds()
        appending = self._appender is not None and self._appender.is_alive()
        return {
            "journal": str(self.journal.directory),
            "journal_bytes": self.journal.disk_bytes,
            "journal_max_bytes": self.journal.max_bytes,
            "backlog_bytes": self.journal.backlog_bytes,
            "has_room": appending and room >= ROOM_MIN_BYTES and self.journal_error is None,
            "journal_error": self.journal_error,
            "memory_rows": self.memory_rows(),
            "store": "up" if self.loader.store_up else "down",
            "store_error": self.loader.store_error,
            "load_in_flight_seconds": None if busy is None else round(busy, 3),
            "last_loaded_at": None
            if self.loader.last_loaded_at is None
            else datetime.fromtimestamp(self.loader.last_loaded_at, UTC).isoformat(),
            "dead_lettered": self.dead_letters.count,
            "dead_letter_file": str(self.dead_letters.path),
            "dropped": self.dropped,
        }

    # ------------------------------------------------------------------ appender thread

    def _append_loop(self) -> None:
        last_rows = time.monotonic()
        while True:
            stopping = self._stopping
            count = len(self._lines)
            if count:
                self._write([self._lines.popleft() for _ in range(count)])
                last_rows = time.monotonic()
                if not self._fsync_interval:  # fsync every write: asked for, so waited for
                    self._sync()
            now = time.monotonic()
            if stopping:
                if not self._lines:
                    return
                continue
            if not count and now - last_rows >= IDLE_AFTER_SECONDS:
                self._appender_idle = True  # submit() wakes us; set before looking again
                if not self._lines:
                    self._wake.wait(IDLE_AFTER_SECONDS)
                self._appender_idle = False
            else:
                self._wake.wait(self._cadence_seconds)
            self._wake.clear()

    def _write(self, lines: list[bytes]) -> None:
        try:
            written = self.journal.append(lines)
            reason = "journal_full"
            self.journal_error = None
        except Exception as exc:  # OSError, or a bug: the appender must go on either way
            written, reason = 0, "journal_write_failed"
            self.journal_error = f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, OSError):
                log.exception("request log: appending to the journal failed")
        self._settled += len(lines)
        if written:
            self._metrics.log_rows_journaled.inc(written)
        dropped = len(lines) - written
        if dropped:
            self._dropped_in_journal += dropped
            self._metrics.log_rows_dropped.labels(reason).inc(dropped)
            if self._dropping is None:
                self._dropping = reason
                log.error(
                    "request log: dropping rows (%s): %d of %d bytes used in %s%s",
                    reason.replace("_", " "),
                    self.journal.disk_bytes,
                    self.journal.max_bytes,
                    self.journal.directory,
                    f"; {self.journal_error}" if self.journal_error else "",
                )
        elif self._dropping is not None:
            self._dropping = None
            log.warning(
                "request log: the journal takes rows again; %d were dropped so far "
                "(pilothouse_request_log_rows_dropped_total)",
                self.dropped,
            )

    def _sync_loop(self) -> None:
        """fsync on its own cadence, in its own thread: a slow disk flush must not hold
        up the appender's interval."""
        while not self._stopping:
            self._syncer_wake.wait(self._fsync_interval)
            self._sync()

    def _sync(self) -> None:
        try:
            self.journal.sync()
        except OSError as exc:
            self.journal_error = f"fsync: {type(exc).__name__}: {exc}"

    def _import_spools(self) -> None:
        """Rows an older Pilothouse left in its spool file go into the journal, once."""
        for spool in self._spools:
            if not spool.exists():
                continue
            lines: list[bytes] = []
            with open(spool, "rb") as source:
                for raw in source:
                    if not raw.strip():
                        continue
                    try:
                        saved = orjson.loads(raw)
                        record = RequestRecord(**{k: v for k, v in saved.items() if k in _FIELDS})
                    except (orjson.JSONDecodeError, TypeError, AttributeError):
                        self.dead_letters.add_text("spool", "an unreadable spool line", raw)
                        continue
                    values = list(self._values(record))
                    if not values[self._finished_at]:
                        values[self._finished_at] = values[self._started_at]
                    lines.append(self._storable.line(values)[0])
            written = self.journal.append(lines) if lines else 0
            self.journal.sync()
            if written < len(lines):
                log.error(
                    "request log: %d rows of %s did not fit the journal; the file is kept",
                    len(lines) - written,
                    spool,
                )
                continue
            spool.unlink()
            log.info(
                "request log: %d rows from the old spool %s are in the journal", written, spool
            )


_FIELDS = frozenset(f.name for f in fields(RequestRecord))
WRITER_NICENESS = 10


def _yield_the_cpu() -> None:
    """Run the loader thread at a lower priority than the event loop (Linux: niceness is
    per thread). The two share a core when the gateway is pinned to one: at equal priority
    the scheduler let a batch insert hold the core for milliseconds while requests waited
    (c1 p99 ~4 ms with the writer on, ~0.8 ms with it off). At niceness 10 the loop
    preempts it on every wake-up, and it still gets ~10 % of a saturated core, more than it
    needs (about 3 % at 5,000 rows/s). The appender keeps the normal priority: it must
    run on time, and it only joins bytes and calls write(2)."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WRITER_NICENESS)
