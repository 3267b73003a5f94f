"""The request-log writer in-process, on SQLite and PostgreSQL: poison values are stored
bounded, rows the database still refuses are set aside while the rest loads, memory stays
bounded while the database hangs, the journal cap drops (and counts) instead of blocking,
and a restart resumes from the checkpoint."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from operator import attrgetter
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from db_locks import request_log_locked
from pilothouse.config import RequestLogSpec
from pilothouse.store import Store, open_store
from pilothouse.store.request_log import COLUMN_ORDER
from pilothouse.telemetry.journal import Journal, JournalError
from pilothouse.telemetry.journal_loader import LOAD_BATCH_BYTES
from pilothouse.telemetry.metrics import Metrics
from pilothouse.telemetry.request_log import RequestLogWriter, RequestRecord
from pilothouse.telemetry.storable import StorableRows, stable_key


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = open_store(database_url)
    store.upgrade()
    yield store
    store.close()


@contextmanager
def running(store: Store, data_dir: Path, **spec: Any) -> Iterator[RequestLogWriter]:
    writer = RequestLogWriter(
        store, data_dir, Metrics(), spec=RequestLogSpec(**spec), retry_interval_seconds=0.2
    )
    writer.start()
    try:
        yield writer
    finally:
        asyncio.run(writer.close(drain_seconds=5))


def flush(writer: RequestLogWriter) -> bool:
    return asyncio.run(writer.flush(timeout_seconds=60))


def good(i: int, **fields: Any) -> RequestRecord:
    now = time.time()
    return RequestRecord(
        id=f"good-{i:06d}",
        started_at=now,
        finished_at=now + 0.01,
        model_alias="fast",
        provider="sim",
        status_code=200,
        prompt_tokens=3,
        completion_tokens=5,
        cost_usd=0.0001,
        latency_ms=1.5,
        **fields,
    )


def stored(store: Store) -> dict[str, dict[str, Any]]:
    with store.connect() as conn:
        return {
            r["id"]: dict(r)
            for r in conn.execute(sa.text("SELECT * FROM request_log")).mappings().all()
        }


def metric(writer: RequestLogWriter, name: str, **labels: str) -> float:
    value = writer._metrics.registry.get_sample_value(name, labels or None)
    return float(value or 0.0)


POISON: dict[str, dict[str, Any]] = {
    "nul-user": {"user": "eve\x00il"},
    "long-user": {"user": "u" * 250},
    "big-int": {"prompt_tokens": 2**31 + 5, "completion_tokens": 2**70},
    "nan-inf": {"cost_usd": math.nan, "latency_ms": math.inf, "ttft_delivered_ms": -math.inf},
    "surrogates": {"team": "t\ud800", "finish_reason": "\udfffstop"},
    "variables": {"variables": {"when": object(), "ids": {1, 2}, "x": math.nan}},
}
LONG_IDS = ["L" * 41, "M" * 50 + "-" + "9" * 13]  # 41 and 64 chars: the column is String(40)


def test_poison_values_are_stored_bounded_and_the_rows_after_them_arrive(
    store: Store, tmp_path: Path
) -> None:
    with running(store, tmp_path) as writer:
        expected: list[str] = []
        for n, (name, fields) in enumerate(POISON.items()):
            writer.submit(RequestRecord(id=f"poison-{name}", started_at=time.time(), **fields))
            writer.submit(good(n))
            expected += [f"poison-{name}", f"good-{n:06d}"]
        for n, long_id in enumerate(LONG_IDS):
            writer.submit(RequestRecord(id=long_id, started_at=time.time()))
            writer.submit(good(100 + n))
            expected += [stable_key(long_id, 40), f"good-{100 + n:06d}"]
        assert flush(writer)
        rows = stored(store)
        assert set(expected) <= set(rows) and len(rows) == len(expected)
        assert writer.dead_letters.count == 0
        assert metric(writer, "pilothouse_request_log_rows_bounded_total") == len(POISON) + 2

    assert rows["poison-nul-user"]["user"] == "eve\ufffdil"
    assert len(rows["poison-long-user"]["user"]) == 200
    assert rows["poison-long-user"]["user"].endswith("…")
    assert rows["poison-big-int"]["prompt_tokens"] == 2**31 - 1
    assert rows["poison-big-int"]["completion_tokens"] == 2**31 - 1
    nan_row = rows["poison-nan-inf"]
    assert nan_row["cost_usd"] is None and nan_row["latency_ms"] == 0.0
    assert nan_row["ttft_delivered_ms"] is None
    assert rows["poison-surrogates"]["team"] == "t\ufffd"
    variables = rows["poison-variables"]["variables"]
    if isinstance(variables, str):  # SQLite hands JSON back as text in a raw query
        variables = orjson.loads(variables)
    assert variables["ids"] == [1, 2] and variables["x"] is None
    assert variables["when"].startswith("<object object")
    for name in POISON:
        note = rows[f"poison-{name}"]["error_message"]
        assert note.startswith("[request log: ") and note.endswith("]")
    assert "id: cut to 40 chars (was 64)" in rows[stable_key(LONG_IDS[1], 40)]["error_message"]
    assert all(rows[f"good-{n:06d}"]["error_message"] is None for n in range(len(POISON)))


def journal_line(record: RequestRecord, **override: Any) -> bytes:
    """A journal line as an older or buggy writer might have left it: bounds bypassed."""
    values = list(attrgetter(*COLUMN_ORDER)(record))
    line, _ = StorableRows().line(values)
    row = dict(zip(COLUMN_ORDER, orjson.loads(line), strict=True)) | override
    return orjson.dumps([row[name] for name in COLUMN_ORDER]) + b"\n"


def test_rows_the_database_refuses_are_set_aside_and_the_rest_load_across_restarts(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    postgres = store.dialect == "postgresql"
    lines = [journal_line(good(i)) for i in range(500)]
    refused_everywhere = {0: "null-status-a", 137: "null-status-b", 499: "null-status-c"}
    for at, rid in refused_everywhere.items():  # NOT NULL: refused by both databases
        lines[at] = journal_line(good(at, user=rid), id=rid, status_code=None)
    too_long = "X" * 41  # refused by PostgreSQL; SQLite does not enforce lengths
    lines.insert(250, journal_line(good(250), id=too_long))
    lines.insert(300, b'{"not": "a row"}\n')
    torn = journal_line(good(999))[:40]  # the last write of a killed process, cut short
    journal = Journal(tmp_path / "journal", COLUMN_ORDER, max_bytes=1 << 30)
    journal.open()
    journal.append([*lines, torn])
    journal.close()

    with (
        caplog.at_level(logging.ERROR, logger="pilothouse.request_log"),
        running(store, tmp_path) as writer,
    ):
        assert flush(writer)
        rows = stored(store)
        loaded = {f"good-{i:06d}" for i in range(500) if i not in refused_everywhere}
        assert loaded <= set(rows)
        assert (too_long in rows) is not postgres
        assert not set(refused_everywhere.values()) & set(rows)
        entries = [
            orjson.loads(line) for line in writer.dead_letters.path.read_bytes().splitlines()
        ]
        expected = len(refused_everywhere) + 2 + int(postgres)  # + unreadable + torn
        assert writer.dead_letters.count == len(entries) == expected
        assert metric(writer, "pilothouse_request_log_rows_dead_lettered_total") == expected
        by_id = {e["row"]["id"]: e for e in entries if "row" in e}
        assert set(refused_everywhere.values()) <= set(by_id)
        assert all(e["reason"] and e["at"] for e in entries)
        if postgres:
            assert "too long" in by_id[too_long]["reason"]
        assert any(e.get("line") == torn.decode() for e in entries)
    set_aside_logs = [r for r in caplog.records if "set aside" in r.getMessage()]
    # Once per reason: NOT NULL (three rows), unreadable, torn, and too long on PostgreSQL.
    assert len(set_aside_logs) == 3 + int(postgres)

    # A restart neither sets the same rows aside again nor stops at them.
    with running(store, tmp_path) as writer:
        writer.submit(good(1000))
        assert flush(writer)
        assert "good-001000" in stored(store)
        assert writer.dead_letters.count == 0
    assert len(writer.dead_letters.path.read_bytes().splitlines()) == expected


def wait_until(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the writer"
        time.sleep(0.005)


def test_memory_stays_bounded_while_the_database_hangs_and_returns_after(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    chunk, chunks = 500, 24
    with running(store, tmp_path) as writer:
        writer.submit(good(0))
        assert flush(writer)
        baseline = writer.memory_rows()
        with request_log_locked(database_url):
            samples = []
            for c in range(chunks):
                for i in range(chunk):
                    writer.submit(good(1 + c * chunk + i))
                samples.append((writer.memory_rows(), writer.loader.rows_in_flight))
                # The journal takes the rows within its interval, database or not.
                wait_until(lambda: writer.memory_rows() <= writer.loader.rows_in_flight)
            # The loader may be between two batches: wait until it is in the insert that
            # hangs (its sleep between batches is not a hang).
            wait_until(lambda: writer.loader.in_flight_seconds() is not None)
            health = writer.health()
            total_bytes = health["backlog_bytes"]
            # The hang is visible: the load's age grows while the store still counts as up.
            hung = metric(writer, "pilothouse_request_log_load_seconds")
            assert round(hung, 3) >= health["load_in_flight_seconds"] > 0  # read later
            assert metric(writer, "pilothouse_request_log_store_up") == 1
        assert baseline == 0
        batch_rows = LOAD_BATCH_BYTES // 200  # no journal line is shorter than 200 bytes
        assert all(memory <= chunk + batch_rows for memory, _ in samples)
        assert max(in_flight for _, in_flight in samples) <= batch_rows
        # The rows waited on disk: at least all but the batch stuck in the database.
        assert total_bytes >= (chunk * chunks - batch_rows) * 200
        assert health["has_room"] and health["dropped"] == 0
        assert flush(writer)
        assert writer.memory_rows() == 0 and writer.health()["backlog_bytes"] == 0
        assert metric(writer, "pilothouse_request_log_load_seconds") == 0
        assert len(stored(store)) == 1 + chunk * chunks


def test_a_full_journal_drops_new_rows_and_counts_them_without_blocking(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    cap = 1 << 20
    with running(store, tmp_path, journal_max_bytes=cap) as writer:
        with request_log_locked(database_url):
            submitted = 0
            while writer.dropped == 0:
                assert submitted < 50_000, "the cap was never reached"
                for _ in range(200):
                    writer.submit(good(submitted))
                    submitted += 1
                wait_until(lambda: writer.memory_rows() <= writer.loader.rows_in_flight)
            health = writer.health()
            assert not health["has_room"] and health["journal_bytes"] <= cap
            dropped = writer.dropped
            assert (
                metric(writer, "pilothouse_request_log_rows_dropped_total", reason="journal_full")
                == dropped
            )
        assert flush(writer)
        assert len(stored(store)) == submitted - dropped
        assert writer.health()["has_room"] and writer.journal.disk_bytes < cap // 4
        writer.submit(good(10**6))
        assert flush(writer) and f"good-{10**6:06d}" in stored(store)


def test_a_restart_resumes_from_the_checkpoint_and_deletes_loaded_segments(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    with request_log_locked(database_url):
        writer = RequestLogWriter(store, tmp_path, Metrics(), retry_interval_seconds=0.2)
        writer.start()
        for i in range(2000):
            writer.submit(good(i))
        wait_until(lambda: writer.memory_rows() <= writer.loader.rows_in_flight)
        # The database hangs: close gives up on it and leaves the rows in the journal.
        asyncio.run(writer.close(drain_seconds=0.2))
        assert writer.journal.backlog_bytes > 0
    with running(store, tmp_path) as second:
        assert flush(second)
        assert len(stored(store)) == 2000
        segments = sorted((tmp_path / "journal").glob("segment-*.jsonl"))
        assert [s.name for s in segments] == [
            second.journal._path(second.journal.write_position.segment).name
        ]


def test_one_journal_serves_one_process(store: Store, tmp_path: Path) -> None:
    with running(store, tmp_path):
        other = RequestLogWriter(store, tmp_path, Metrics())
        with pytest.raises(JournalError, match="another Pilothouse process"):
            other.start()


def test_rows_left_in_an_old_spool_file_are_loaded_once(store: Store, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    old = [good(i) for i in range(30)]
    (spool / "request_log.replaying").write_bytes(
        b"".join(orjson.dumps(r) + b"\n" for r in old[:10])
    )
    (spool / "request_log.jsonl").write_bytes(
        b"".join(orjson.dumps(r) + b"\n" for r in old[10:]) + b"{broken\n"
    )
    with running(store, tmp_path) as writer:
        assert flush(writer)
        assert {r.id for r in old} <= set(stored(store))
        assert writer.dead_letters.count == 1
    assert not list(spool.iterdir())


def test_close_loads_everything_still_queued(store: Store, tmp_path: Path) -> None:
    with running(store, tmp_path) as writer:
        for i in range(1500):
            writer.submit(good(i))
    assert len(stored(store)) == 1500


def test_a_journal_written_with_other_columns_loads_after_an_upgrade(
    store: Store, tmp_path: Path
) -> None:
    """A segment names its columns: rows written by a version with fewer columns (here:
    no `variables`, and another order) load, the missing column taking its default."""
    older = tuple(reversed([c for c in COLUMN_ORDER if c not in ("variables", "stream")]))
    journal = Journal(tmp_path / "journal", older, max_bytes=1 << 30)
    journal.open()
    lines = []
    for i in range(300):
        row = dict(zip(COLUMN_ORDER, orjson.loads(journal_line(good(i))), strict=True))
        lines.append(orjson.dumps([row[c] for c in older]) + b"\n")
    journal.append(lines)
    journal.close()
    with running(store, tmp_path) as writer:
        writer.submit(good(300))
        assert flush(writer)
        rows = stored(store)
        assert len(rows) == 301 and writer.dead_letters.count == 0
        assert rows["good-000007"]["prompt_tokens"] == 3
        assert rows["good-000007"]["variables"] is None and not rows["good-000007"]["stream"]
