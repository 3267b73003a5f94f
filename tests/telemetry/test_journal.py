"""The journal on its own: segments rotate and are deleted once loaded, a reopened
journal resumes at its checkpoint, a torn last line is reported, the cap holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilothouse.telemetry.journal import Journal, JournalError, Position

COLUMNS = ("id", "n")


def lines(first: int, count: int, pad: int = 0) -> list[bytes]:
    return [f'["r{i}", {i}]{" " * pad}\n'.encode() for i in range(first, first + count)]


def read_all(journal: Journal) -> list[bytes]:
    """Everything the loader would see, committing as it goes."""
    seen: list[bytes] = []
    while not (batch := journal.read(1 << 20)).empty:
        assert batch.columns == COLUMNS
        seen += batch.lines
        journal.commit(batch.end)
    return seen


def test_segments_rotate_and_are_deleted_once_loaded(tmp_path: Path) -> None:
    journal = Journal(tmp_path, COLUMNS, max_bytes=1 << 20)  # 64 KiB segments
    journal.open()
    written = lines(0, 2000, pad=100)
    for start in range(0, 2000, 100):
        assert journal.append(written[start : start + 100]) == 100
    assert len(list(tmp_path.glob("segment-*.jsonl"))) > 3
    assert read_all(journal) == [line.rstrip(b"\n") for line in written]
    assert [p.name for p in tmp_path.glob("segment-*.jsonl")] == [
        journal._path(journal.write_position.segment).name
    ]
    assert journal.backlog_bytes == 0
    journal.close()


def test_a_reopened_journal_resumes_at_its_checkpoint(tmp_path: Path) -> None:
    journal = Journal(tmp_path, COLUMNS, max_bytes=1 << 30)
    journal.open()
    journal.append(lines(0, 10))
    batch = journal.read(1 << 20)
    journal.commit(Position(batch.start.segment, batch.end.offset - len(lines(9, 1)[0])))
    journal.append(lines(10, 5))
    journal.close()
    reopened = Journal(tmp_path, COLUMNS, max_bytes=1 << 30)
    reopened.open()
    assert read_all(reopened) == [line.rstrip(b"\n") for line in lines(9, 6)]
    reopened.close()


def test_a_line_cut_by_a_crash_is_reported_as_torn(tmp_path: Path) -> None:
    journal = Journal(tmp_path, COLUMNS, max_bytes=1 << 30)
    journal.open()
    journal.append([*lines(0, 3), b'["r3", 3'])  # the process died mid-write
    journal.close()
    reopened = Journal(tmp_path, COLUMNS, max_bytes=1 << 30)
    reopened.open()
    batch = reopened.read(1 << 20)
    assert batch.lines == [line.rstrip(b"\n") for line in lines(0, 3)]
    assert batch.torn == b'["r3", 3'
    reopened.commit(batch.end)
    assert reopened.read(1 << 20).lines == []
    reopened.close()


def test_the_cap_is_never_passed_and_append_never_waits(tmp_path: Path) -> None:
    journal = Journal(tmp_path, COLUMNS, max_bytes=1 << 20)
    journal.open()
    accepted = sum(journal.append(lines(i, 100, pad=200)) for i in range(0, 10_000, 100))
    assert 0 < accepted < 10_000 and journal.disk_bytes <= 1 << 20
    read_all(journal)  # loading makes room again
    assert journal.append(lines(0, 100, pad=200)) == 100
    journal.close()


def test_one_process_per_journal(tmp_path: Path) -> None:
    first = Journal(tmp_path, COLUMNS, max_bytes=1 << 30)
    first.open()
    with pytest.raises(JournalError, match="another Pilothouse process"):
        Journal(tmp_path, COLUMNS, max_bytes=1 << 30).open()
    first.close()
    second = Journal(tmp_path, COLUMNS, max_bytes=1 << 30)
    second.open()  # the lock went with the first
    second.close()
