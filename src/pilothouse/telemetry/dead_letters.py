"""Rows the database refused, set aside so the rest of the log goes on.

`DATA_DIR/journal/dead-letter.jsonl` holds one JSON object per row: `at` (UTC, ISO 8601),
`reason` (the database's error), and `row` (column → value, as it was to be inserted) or
`line` (journal text that could not be read as a row). Each entry is fsynced before the
loader moves its checkpoint past the row, so a set-aside row is never lost; after a crash
in between, the same row may be set aside twice.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from pilothouse.telemetry.metrics import Metrics

log = logging.getLogger("pilothouse.request_log")


class DeadLetters:
    """Appends set-aside rows to `path`; counts them and logs each reason once."""

    def __init__(self, path: Path, metrics: Metrics):
        self.path = path
        self._metrics = metrics
        self._reasons_logged: set[str] = set()
        self.count = 0

    def add_row(
        self, reason_key: str, reason: str, columns: Sequence[str], row: Sequence[Any]
    ) -> None:
        """Set aside one journal row (values in `columns` order) the database refused."""
        entry = {"row": dict(zip(columns, row, strict=False))}
        self._write(reason_key, reason, entry)

    def add_text(self, reason_key: str, reason: str, text: bytes) -> None:
        """Set aside journal bytes that are not a row (unreadable, or cut by a crash)."""
        self._write(reason_key, reason, {"line": text.decode("utf-8", "replace")})

    def _write(self, reason_key: str, reason: str, entry: dict[str, Any]) -> None:
        at = datetime.now(UTC).isoformat()
        line = orjson.dumps({"at": at, "reason": reason, **entry}, option=orjson.OPT_NON_STR_KEYS)
        line += b"\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.count += 1
        self._metrics.log_rows_dead_lettered.inc()
        if reason_key not in self._reasons_logged:  # once per reason: a flood stays one line
            self._reasons_logged.add(reason_key)
            log.error(
                "request-log row set aside in %s (further rows for this reason are only "
                "counted, in pilothouse_request_log_rows_dead_lettered_total): %s",
                self.path,
                reason,
            )
