"""The request-log journal: append-only segment files on local disk, read by a loader.

    DATA_DIR/journal/segment-000000000007.jsonl   one journal line per row, appended
    DATA_DIR/journal/checkpoint.json              how far the loader has loaded
    DATA_DIR/journal/.lock                        held by the one process using the journal

Each segment starts with a header line naming the columns of the rows that follow, so a
journal left by an older version still loads after an upgrade that added columns.
One thread appends (`append`), one flushes to the disk (`sync`, which opens the files
itself, so a slow disk flush never delays an append), one loads (`read`, `commit`); they
share no lock: each publishes its position in a single attribute the others only read. A process
always appends to a segment of its own, so a line cut short by `kill -9` can only be the
last line of an older segment, where `read` reports it as torn. A segment is deleted once
the loader has moved past it; the total size on disk is capped at `max_bytes`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path

import orjson

SEGMENT_PREFIX, SEGMENT_SUFFIX = "segment-", ".jsonl"
FORMAT = 1


class JournalError(RuntimeError):
    """The journal cannot be used; the message says why and what to do."""


@dataclass(frozen=True, order=True, slots=True)
class Position:
    segment: int
    offset: int


@dataclass(slots=True)
class ReadBatch:
    """Complete lines (without their newline) from `start` to `end`, with the columns
    their values are in; `torn` is the unfinished last line of an older segment (its
    writer stopped mid-write), if any."""

    start: Position
    end: Position
    columns: tuple[str, ...] = ()
    lines: list[bytes] = field(default_factory=list)
    torn: bytes = b""

    @property
    def empty(self) -> bool:
        return self.end == self.start


class Journal:
    """Segment files in `directory`. `max_bytes` caps their total size: `append` writes
    what fits and reports the rest as not written; it never waits for room."""

    def __init__(self, directory: Path, columns: tuple[str, ...], *, max_bytes: int):
        self.directory = directory
        self.columns = columns
        self._header = orjson.dumps({"journal": FORMAT, "columns": columns}) + b"\n"
        self.max_bytes = max_bytes
        # Small enough that loaded rows are reclaimed long before the cap, big enough to
        # rotate rarely (each rotation is an fsync and a file creation).
        self.segment_bytes = min(64 << 20, max(64 << 10, max_bytes // 16))
        self._lock_fd: int | None = None
        self._fd: int | None = None  # the segment being appended to
        self.write_position = Position(0, 0)  # appender: end of the last complete write
        self.checkpoint = Position(0, 0)  # loader: everything before it is loaded
        self._appended_bytes = 0  # appender only: bytes ever added (and found at open)
        self._deleted_bytes = 0  # loader only: bytes of segments deleted
        self._read_fd: tuple[int, int] | None = None  # loader: (segment, fd)
        self._headers: dict[int, tuple[tuple[str, ...], int]] = {}  # loader: columns, length
        self._synced = Position(0, 0)  # syncer: everything before it is on the disk
        self.closed = False

    # -------------------------------------------------------------------- both threads

    @property
    def disk_bytes(self) -> int:
        """Size of the segments on disk."""
        return max(0, self._appended_bytes - self._deleted_bytes)

    @property
    def backlog_bytes(self) -> int:
        """Bytes written but not loaded yet."""
        return max(0, self.disk_bytes - self.checkpoint.offset)

    def open(self) -> None:
        """Lock the directory, find the segments and the checkpoint, start a new segment.

        Raises `JournalError` when another process holds the directory."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise JournalError(
                f"another Pilothouse process is using the request-log journal in "
                f"{self.directory}: give each process its own --data-dir"
            ) from exc
        segments = self._segments()
        checkpoint = self._read_checkpoint() or Position(min(segments, default=0), 0)
        new_segment = max([*segments, checkpoint.segment]) + 1
        for number in [n for n in segments if n < checkpoint.segment]:  # loaded, not deleted
            self._unlink(number)
            del segments[number]
        if checkpoint.segment not in segments:
            checkpoint = Position(min(segments, default=new_segment), 0)
        self.checkpoint = checkpoint
        self._appended_bytes = sum(segments.values())
        self._deleted_bytes = 0
        self._start_segment(new_segment)
        self._synced = Position(new_segment, 0)

    def close(self) -> None:
        """Sync and close the segment being written, release the directory."""
        self.closed = True
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self.sync()
            os.close(self._fd)
            self._fd = None
        if self._read_fd is not None:
            os.close(self._read_fd[1])
            self._read_fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    # ---------------------------------------------------------------- appender thread

    def append(self, lines: list[bytes]) -> int:
        """Write `lines` (each ending in a newline) with one write(2); returns how many
        were written: the first ones that fit under `max_bytes`, or none when the disk
        refuses the write (`OSError` is raised after the file is cut back, so no partial
        line is left)."""
        assert self._fd is not None, "journal is not open"
        data = b"".join(lines)
        room = self.max_bytes - self.disk_bytes - len(self._header)  # and the next header
        count = len(lines)
        if len(data) > room:
            size = count = 0
            for line in lines:
                if size + len(line) > room:
                    break
                size += len(line)
                count += 1
            data = data[:size]
        if not data:
            return 0
        position = self.write_position
        try:
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:] if written else data)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, position.offset)
                os.lseek(self._fd, position.offset, os.SEEK_SET)
            raise
        self._appended_bytes += len(data)
        self.write_position = Position(position.segment, position.offset + len(data))
        if self.write_position.offset >= self.segment_bytes:
            with contextlib.suppress(OSError):  # could not rotate: keep appending here
                self._start_segment(position.segment + 1)
        return count

    def _start_segment(self, number: int) -> None:
        """Open segment `number` with its header, then close the one before."""
        path = self._path(number)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o644)
        try:
            os.write(fd, self._header)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        if self._fd is not None:
            os.close(self._fd)  # `sync` flushes it through a descriptor of its own
        self._fd = fd
        self._appended_bytes += len(self._header)
        self.write_position = Position(number, len(self._header))

    # ------------------------------------------------------------------ syncer thread

    def sync(self) -> None:
        """fsync what was appended since the last sync, new segments' names included:
        the power-loss guarantee. Safe to call from a thread other than the appender's."""
        target = self.write_position
        if target == self._synced:
            return
        for number in range(self._synced.segment, target.segment + 1):
            try:
                fd = os.open(self._path(number), os.O_RDONLY)
            except FileNotFoundError:  # loaded and deleted meanwhile
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if target.segment != self._synced.segment:
            _sync_directory(self.directory)
        self._synced = target

    # ------------------------------------------------------------------ loader thread

    def read(self, max_bytes: int) -> ReadBatch:
        """The complete lines after the checkpoint, up to about `max_bytes`. Moves on to
        the next segment at the end of a finished one (commit the returned `end`)."""
        start = self.checkpoint
        writing = self.write_position
        if start.segment > writing.segment or self.closed:
            return ReadBatch(start, start)
        limit = writing.offset if start.segment == writing.segment else self._size(start.segment)
        columns, header_end = self._segment_header(start.segment, limit)
        offset = max(start.offset, header_end)
        if offset >= limit:
            if start.segment == writing.segment:
                return ReadBatch(start, Position(start.segment, offset), columns)
            later = [n for n in self._segments() if n > start.segment]
            return ReadBatch(start, Position(min(later, default=writing.segment), 0), columns)
        reader = self._reader(start.segment)
        data = os.pread(reader, min(limit - offset, max_bytes), offset)
        if not data:  # the file is shorter than it was: deleted or cut by hand
            return ReadBatch(start, Position(start.segment, limit), columns)
        cut = data.rfind(b"\n") + 1
        finished = start.segment < writing.segment and offset + len(data) >= limit
        if cut == 0 and not finished and len(data) < max_bytes:
            return ReadBatch(start, Position(start.segment, offset), columns)  # part of a line
        end = Position(start.segment, offset + (len(data) if cut == 0 or finished else cut))
        torn = data[cut:] if cut == 0 or finished else b""
        return ReadBatch(start, end, columns, data[:cut].splitlines(), torn)

    def _segment_header(self, number: int, limit: int) -> tuple[tuple[str, ...], int]:
        """The columns a segment's rows are in, and where its rows start. A segment
        without a readable header is taken to be in this version's columns."""
        known = self._headers.get(number)
        if known is None:
            first = os.pread(self._reader(number), min(limit, 1 << 16), 0).split(b"\n", 1)
            try:
                header = orjson.loads(first[0]) if len(first) == 2 else None
            except orjson.JSONDecodeError:
                header = None
            if isinstance(header, dict) and isinstance(header.get("columns"), list):
                known = (tuple(str(c) for c in header["columns"]), len(first[0]) + 1)
            else:
                known = (self.columns, 0)
            self._headers = {number: known}  # only the segment being read
        return known

    def commit(self, end: Position) -> None:
        """Record that everything before `end` is loaded; delete finished segments."""
        if self.closed or end <= self.checkpoint:
            return
        temporary = self.directory / "checkpoint.json.tmp"
        temporary.write_bytes(orjson.dumps({"segment": end.segment, "offset": end.offset}))
        os.replace(temporary, self.directory / "checkpoint.json")
        previous, self.checkpoint = self.checkpoint, end
        for number in range(previous.segment, end.segment):
            self._unlink(number)

    def _reader(self, number: int) -> int:
        if self._read_fd is None or self._read_fd[0] != number:
            if self._read_fd is not None:
                os.close(self._read_fd[1])
            self._read_fd = (number, os.open(self._path(number), os.O_RDONLY))
        return self._read_fd[1]

    def _unlink(self, number: int) -> None:
        if self._read_fd is not None and self._read_fd[0] == number:
            os.close(self._read_fd[1])
            self._read_fd = None
        size = self._size(number)
        try:
            os.unlink(self._path(number))
        except FileNotFoundError:
            return
        self._deleted_bytes += size

    # --------------------------------------------------------------------------- files

    def _path(self, number: int) -> Path:
        return self.directory / f"{SEGMENT_PREFIX}{number:012d}{SEGMENT_SUFFIX}"

    def _size(self, number: int) -> int:
        try:
            return os.stat(self._path(number)).st_size
        except FileNotFoundError:
            return 0

    def _segments(self) -> dict[int, int]:
        found = {}
        for path in self.directory.glob(f"{SEGMENT_PREFIX}*{SEGMENT_SUFFIX}"):
            digits = path.name[len(SEGMENT_PREFIX) : -len(SEGMENT_SUFFIX)]
            if digits.isdigit():
                with contextlib.suppress(FileNotFoundError):  # deleted meanwhile
                    found[int(digits)] = path.stat().st_size
        return found

    def _read_checkpoint(self) -> Position | None:
        try:
            saved = orjson.loads((self.directory / "checkpoint.json").read_bytes())
            return Position(int(saved["segment"]), int(saved["offset"]))
        except FileNotFoundError:
            return None
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise JournalError(
                f"{self.directory / 'checkpoint.json'} is not readable ({exc}): delete it to "
                "load the whole journal again (rows already loaded are skipped)"
            ) from exc


def _sync_directory(directory: Path) -> None:
    """Make a new file's name durable (Linux needs the directory fsynced)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)
