"""Every value a request-log row can carry is bounded to its column before the journal."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

import orjson
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table

from pilothouse.store import request_log as rows
from pilothouse.store.request_log import COLUMN_ORDER, COLUMN_SPECS
from pilothouse.store.tables import request_log
from pilothouse.telemetry.request_log import RequestRecord
from pilothouse.telemetry.storable import (
    JSON_MAX_CHARS,
    TEXT_MAX_CHARS,
    TRUNCATION_MARK,
    StorableRows,
    stable_key,
)

VALUES = attrgetter(*COLUMN_ORDER)


def line_of(record: RequestRecord) -> tuple[dict[str, Any], list[str]]:
    line, notes = StorableRows().line(list(VALUES(record)))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    return dict(zip(COLUMN_ORDER, orjson.loads(line), strict=True)), notes


def record(**fields: Any) -> RequestRecord:
    now = time.time()
    return RequestRecord(**{"id": "req_1", "started_at": now, "finished_at": now, **fields})


def test_column_bounds_are_read_from_the_table_definition() -> None:
    by_name = {spec.name: spec for spec in COLUMN_SPECS}
    assert [spec.name for spec in COLUMN_SPECS] == [c.name for c in request_log.columns]
    for column in request_log.columns:
        assert by_name[column.name].nullable == column.nullable
        length = getattr(column.type, "length", None)
        if length is not None:
            assert by_name[column.name].max_chars == length
    assert by_name["status_code"].high == 2**31 - 1 and by_name["status_code"].low == -(2**31)
    # A table of our own: the limits follow whatever the table says.
    table = Table("t", MetaData(), Column("id", String(8), primary_key=True), Column("n", Integer))
    specs = [rows._spec(c) for c in table.columns]
    row, notes = (
        orjson.loads(StorableRows(specs).line(["x" * 20, 2**40])[0]),
        StorableRows(specs).line(["ok", 1])[1],
    )
    assert len(row[0]) == 8 and row[1] == 2**31 - 1 and notes == []


def test_a_clean_row_is_unchanged_and_has_no_note() -> None:
    row, notes = line_of(record(user="alice", prompt_tokens=3, cost_usd=0.25, variables={"a": 1}))
    assert notes == [] and row["error_message"] is None
    assert row["user"] == "alice" and row["prompt_tokens"] == 3 and row["cost_usd"] == 0.25
    assert orjson.loads(row["variables"]) == {"a": 1}


def test_timestamps_are_utc_microseconds_in_the_stores_format() -> None:
    started = 1_767_225_600.123456  # 2026-01-01T00:00:00.123456Z
    row, _ = line_of(record(started_at=started, finished_at=started + 1.5))
    assert row["started_at"] == "2026-01-01 00:00:00.123456"
    assert row["finished_at"] == "2026-01-01 00:00:01.623456"
    assert rows.format_timestamp(datetime.fromtimestamp(started, UTC)) == row["started_at"]


def test_nul_and_lone_surrogates_are_replaced_visibly() -> None:
    row, notes = line_of(record(user="a\x00b", team="x\ud800y", finish_reason="\udfff"))
    assert row["user"] == "a\ufffdb" and row["team"] == "x\ufffdy"
    assert row["finish_reason"] == "\ufffd"
    assert any(n.startswith("user: NUL replaced") for n in notes)
    assert any(n.startswith("team: invalid UTF-8 replaced") for n in notes)
    assert "[request log: " in row["error_message"]


def test_a_well_formed_surrogate_pair_becomes_its_character() -> None:
    row, _ = line_of(record(user="smile \ud83d\ude00"))
    assert row["user"] == "smile \U0001f600"


def test_long_text_is_cut_to_the_column_with_a_mark() -> None:
    row, notes = line_of(record(user="u" * 250, error_message="e" * (TEXT_MAX_CHARS * 2)))
    assert len(row["user"]) == 200 and row["user"].endswith(TRUNCATION_MARK)
    assert "user: cut to 200 chars (was 250)" in notes
    message = row["error_message"]
    assert len(message) <= TEXT_MAX_CHARS and message.startswith("eee")
    assert message.endswith("]") and "user: cut to 200 chars" in message


@pytest.mark.parametrize("length", [41, 50, 64])
def test_an_overlong_id_keeps_its_identity(length: int) -> None:
    first, second = "a" * (length - 1) + "1", "a" * (length - 1) + "2"
    row1, notes = line_of(record(id=first))
    row2, _ = line_of(record(id=second))
    assert len(row1["id"]) <= 40 and row1["id"] != row2["id"]
    assert row1["id"] == stable_key(first, 40)  # the same original always maps the same way
    assert row1["id"] == line_of(record(id=first))[0]["id"]
    assert any(n.startswith("id: cut to 40 chars") for n in notes)


def test_an_id_that_differs_only_in_bad_text_stays_distinct() -> None:
    one, two = line_of(record(id="r\ud800")), line_of(record(id="r\udc00"))
    assert one[0]["id"] != two[0]["id"] and "\ufffd" in one[0]["id"]


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (2**31, 2**31 - 1),
        (-(2**40), -(2**31)),
        (2**80, 2**31 - 1),
        (True, 1),
        (12.7, 13),
        ("42", 42),
        ("many", None),
        (math.nan, None),
    ],
)
def test_integers_are_clamped_to_the_column(value: Any, stored: int | None) -> None:
    row, notes = line_of(record(prompt_tokens=value))
    assert row["prompt_tokens"] == stored
    assert notes and notes[0].startswith("prompt_tokens: ")


def test_a_not_null_integer_gets_zero_not_null() -> None:
    row, notes = line_of(record(status_code="teapot"))
    assert row["status_code"] == 0 and notes


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "1e999", 10**400])
def test_floats_are_finite(value: Any) -> None:
    row, notes = line_of(record(cost_usd=value, latency_ms=value))
    assert row["cost_usd"] is None and row["latency_ms"] == 0.0  # latency_ms is NOT NULL
    assert len(notes) == 2


def test_an_integer_in_a_float_column_is_kept_quietly() -> None:
    row, notes = line_of(record(cost_usd=2))
    assert row["cost_usd"] == 2 and notes == []


class Opaque:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


def test_json_values_are_made_serialisable() -> None:
    deep: list[Any] = []
    node = deep
    for _ in range(100):
        node.append([])
        node = node[0]
    variables = {
        "when": datetime(2026, 1, 1, tzinfo=UTC),
        "tags": {"b"},
        "blob": b"\xff\xfe",
        "nan": math.nan,
        "huge": 2**70,
        7: "int key",
        "nul": "a\x00b",
        "lone": "\ud800",
        "opaque": Opaque(),
        "deep": deep,
    }
    row, notes = line_of(record(variables=variables))
    stored = orjson.loads(row["variables"])
    assert stored["when"].startswith("2026-01-01") and stored["tags"] == ["b"]
    assert stored["nan"] is None and stored["huge"] == str(2**70) and stored["7"] == "int key"
    assert stored["nul"] == "a\ufffdb" and stored["lone"] == "\ufffd"
    assert stored["opaque"] == "<Opaque>" and "\\u0000" not in row["variables"]
    assert "variables: made JSON-serialisable" in notes


def test_oversized_json_is_dropped_with_a_note() -> None:
    row, notes = line_of(record(variables={"document": "x" * (JSON_MAX_CHARS + 10)}))
    assert row["variables"] is None
    assert notes and notes[0].startswith("variables: dropped")


def test_text_columns_take_non_text_values_as_text() -> None:
    row, notes = line_of(record(finish_reason=["end_turn"], model_alias=b"fast"))
    assert row["finish_reason"] == "['end_turn']" and row["model_alias"] == "fast"
    assert any(n.startswith("finish_reason: list stored as text") for n in notes)


def test_bad_timestamps_do_not_lose_the_row() -> None:
    row, notes = line_of(record(started_at=math.nan, finished_at=10**20))
    assert row["started_at"][:4] == str(datetime.now(UTC).year)
    assert len(notes) == 2


def test_the_note_itself_is_bounded() -> None:
    record_ = record(**{name: "\x00" * 300 for name in ("user", "team", "model_alias", "route")})
    row, notes = line_of(record_)
    assert len(notes) == 4 and len(row["error_message"]) <= 1_000
