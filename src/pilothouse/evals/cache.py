"""Answers kept on local disk: the response cache shared by runs, and one run's journal.

The cache holds one JSON file per request key (`<dir>/<key[:2]>/<key>.json`), written to a
temporary name and renamed, so concurrent runs (two CI jobs on one runner) never see half
a file. The journal is one run's append-only record of every answer it got, so a run cut
short (Ctrl-C, a crash, an outage) can be continued with `--resume` without paying twice.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import orjson


class ResponseCache:
    """Recorded answers by request key. Unreadable entries are misses; a failed write turns
    the cache off for the rest of the run (it is a saving, never a reason to fail)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.write_error: str | None = None

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            record = orjson.loads(self._path(key).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        return record if isinstance(record, dict) else None

    def put(self, key: str, record: dict[str, Any]) -> None:
        if self.write_error is not None:
            return
        path = self._path(key)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(orjson.dumps(record))
            os.replace(temporary, path)
        except OSError as exc:
            self.write_error = f"{self.directory}: {exc.strerror or exc}"
            temporary.unlink(missing_ok=True)


class JournalError(RuntimeError):
    """A journal that cannot be written or read back; the message names the file."""


class Journal:
    """One run's answers, appended as JSON lines after a header line describing the run."""

    def __init__(self, path: Path, handle: Any):
        self.path = path
        self._handle = handle
        self.write_error: str | None = None

    @classmethod
    def create(cls, path: Path, header: dict[str, Any]) -> Journal:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path, "ab")  # noqa: SIM115 - kept open for the run's appends
            if handle.tell() == 0:
                handle.write(orjson.dumps({"header": header}) + b"\n")
                handle.flush()
        except OSError as exc:
            raise JournalError(f"cannot write the run journal {path}: {exc.strerror}") from None
        return cls(path, handle)

    @staticmethod
    def read(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """The header and the answers recorded so far; a torn last line (a crash) is ignored."""
        try:
            lines = path.read_bytes().splitlines()
        except OSError as exc:
            raise JournalError(f"cannot read the run journal {path}: {exc.strerror}") from None
        header: dict[str, Any] | None = None
        records: dict[str, dict[str, Any]] = {}
        for line in lines:
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(entry, dict):
                continue
            if "header" in entry and header is None:
                header = entry["header"]
            elif isinstance(entry.get("key"), str) and isinstance(entry.get("record"), dict):
                records[entry["key"]] = entry["record"]
        if header is None:
            raise JournalError(f"{path} is not a run journal (no header line)")
        return header, records

    def append(self, key: str, record: dict[str, Any]) -> None:
        """Record one answer; a failed write stops the journal (reported, never fatal)."""
        if self.write_error is not None:
            return
        try:
            self._handle.write(orjson.dumps({"key": key, "record": record}) + b"\n")
            self._handle.flush()  # a crash of this process keeps what was flushed
        except OSError as exc:
            self.write_error = f"{self.path}: {exc.strerror or exc}"

    def close(self) -> None:
        self._handle.close()

    def discard(self) -> None:
        """The run finished and its artifact holds every answer: the journal is not needed."""
        self.close()
        self.path.unlink(missing_ok=True)
