"""Datasets: rows of inputs (template variables or messages), an optional expected answer
and tags, in JSONL or CSV; content-hashed so a run names exactly what it read."""

from __future__ import annotations

import csv
import hashlib
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from pilothouse.evals.types import Case
from pilothouse.yamlfile import FileError

ROW_KEYS = {"id", "variables", "messages", "expected", "tags"}


def parse_text(text: str, source: str, fmt: str) -> list[dict[str, Any]]:
    """Rows from JSONL or CSV text; FileError names the line and field at fault."""
    return parse_located(text, source, fmt)[0]


def parse_located(text: str, source: str, fmt: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows and where each came from (`source:line`); FileError names every fault.

    A leading byte-order mark is ignored. JSONL: one object per line, blank lines skipped.
    CSV: a header row; `id`, `expected` and `tags` (`;`-separated) are special, every
    other column is a variable; a row with fewer or more fields than the header is an
    error naming the line and the columns it lacks.
    """
    text = text.removeprefix("\ufeff")
    if fmt == "csv":
        return _from_csv(text, source)
    out, where, problems = [], [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            problems.append(f"{source}:{number}: not valid JSON: {exc}")
            continue
        problem = check_row(row)
        if problem:
            problems.append(f"{source}:{number}: {problem}")
        else:
            out.append(row)
            where.append(f"{source}:{number}")
    if problems:
        raise FileError(problems)
    if not out:
        raise FileError([f"{source}: the dataset has no rows"])
    return out, where


def _from_csv(text: str, source: str) -> tuple[list[dict[str, Any]], list[str]]:
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    if not header:
        raise FileError([f"{source}:1: the CSV has no header row"])
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated or any(not c.strip() for c in header):
        what = f"repeated column(s) {', '.join(repeated)}" if repeated else "an empty column name"
        raise FileError([f"{source}:1: the header has {what}"])
    out, where, problems = [], [], []
    start = 2
    for record in reader:
        number = start  # the line the record starts on (a quoted field may span lines)
        start = reader.line_num + 1
        if None in record:
            problems.append(f"{source}:{number}: more fields than the header has columns")
            continue
        missing = [c for c, v in record.items() if v is None]
        if missing:
            problems.append(
                f"{source}:{number}: missing field(s) {', '.join(missing)}: the row has "
                f"{len(header) - len(missing)} of the header's {len(header)} columns"
            )
            continue
        row: dict[str, Any] = {"variables": {}}
        for column, value in record.items():
            if column == "id":
                row["id"] = value
            elif column == "expected":
                row["expected"] = value
            elif column == "tags":
                row["tags"] = [t.strip() for t in value.split(";") if t.strip()]
            else:
                row["variables"][column] = value
        out.append(row)
        where.append(f"{source}:{number}")
    if problems:
        raise FileError(problems)
    if not out:
        raise FileError([f"{source}: the dataset has no rows"])
    return out, where


def check_row(row: Any) -> str | None:
    if not isinstance(row, dict):
        return "each line must be a JSON object"
    unknown = set(row) - ROW_KEYS
    if unknown:
        return (
            f"unknown fields {', '.join(sorted(unknown))}; a row has {', '.join(sorted(ROW_KEYS))}"
        )
    if "variables" not in row and "messages" not in row:
        return "a row needs `variables` (for a prompt's placeholders) or `messages`"
    if "variables" in row and not isinstance(row["variables"], dict):
        return "`variables` must be an object"
    if "messages" in row and not (
        isinstance(row["messages"], list) and all(isinstance(m, dict) for m in row["messages"])
    ):
        return "`messages` must be a list of {role, content} objects"
    if "tags" in row and not (
        isinstance(row["tags"], list) and all(isinstance(t, str) for t in row["tags"])
    ):
        return "`tags` must be a list of strings"
    if "id" in row and not isinstance(row["id"], str | int):
        return "`id` must be a string or a number"
    return None


def load_file(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL or CSV file (by suffix); FileError names file, line and field."""
    return load_located(path)[0]


def load_located(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows and their `file:line` locations. Refuses text that is not UTF-8, naming the line."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FileError([f"{path}: cannot read the dataset: {exc.strerror}"]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise FileError(
            [
                f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column "
                f"{column}); save the file as UTF-8"
            ]
        ) from None
    return parse_located(text, str(path), "csv" if path.suffix.lower() == ".csv" else "jsonl")


def dataset_hash(rows: list[dict[str, Any]]) -> str:
    return hashlib.sha256(orjson.dumps(rows, option=orjson.OPT_SORT_KEYS)).hexdigest()


def cases(rows: list[dict[str, Any]], where: list[str] | None = None) -> list[Case]:
    """Rows as cases; a row without `id` is named by its position (stable for one hash).

    Refuses (FileError, naming every location) ids that repeat: results are keyed by id.
    """
    out = []
    seen: dict[str, int] = {}
    problems = []
    for index, row in enumerate(rows):
        case_id = str(row.get("id", f"row-{index + 1}"))
        if case_id in seen:
            at = where[index] if where else f"row {index + 1}"
            first = where[seen[case_id]] if where else f"row {seen[case_id] + 1}"
            problems.append(f"{at}: id {case_id!r} is used already ({first}); ids must be unique")
            continue
        seen[case_id] = index
        inputs: dict[str, Any] = {k: row[k] for k in ("variables", "messages") if k in row}
        out.append(
            Case(
                id=case_id,
                inputs=inputs,
                expected=row.get("expected"),
                tags=tuple(row.get("tags", ())),
            )
        )
    if problems:
        raise FileError(problems)
    return out


def unique_variables(logged: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Logged calls minus eval traffic, one per distinct variable set (the first kept)."""
    seen: set[bytes] = set()
    out = []
    for row in logged:
        if row.get("source") == "eval" or not isinstance(row.get("variables"), dict):
            continue
        digest = orjson.dumps(row["variables"], option=orjson.OPT_SORT_KEYS)
        if digest not in seen:
            seen.add(digest)
            out.append(row)
    return out


def to_jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(orjson.dumps(row).decode() + "\n" for row in rows)


def to_csv(rows: list[dict[str, Any]]) -> str:
    """Rows as CSV (id, one column per variable, expected, tags), for labelling.

    Refuses (FileError) rows CSV cannot carry back unchanged: `messages` rows, and
    variables or expected values that are not text.
    """
    problems = []
    columns: list[str] = []
    for index, row in enumerate(rows, start=1):
        label = f"row {index} ({row.get('id', 'no id')})"
        if "messages" in row:
            problems.append(f"{label}: has `messages`, which CSV cannot hold")
        for name, value in (row.get("variables") or {}).items():
            if not isinstance(value, str):
                problems.append(f"{label}: variables.{name} is not text")
            elif name not in columns:
                columns.append(name)
        if row.get("expected") is not None and not isinstance(row["expected"], str):
            problems.append(f"{label}: `expected` is not text")
    if problems:
        raise FileError([*problems[:20], "export as JSONL instead (--format jsonl)"])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", *columns, "expected", "tags"])
    for row in rows:
        variables = row.get("variables") or {}
        writer.writerow(
            [
                row.get("id", ""),
                *(variables.get(c, "") for c in columns),
                row.get("expected") or "",
                ";".join(row.get("tags") or []),
            ]
        )
    return buffer.getvalue()


def now() -> datetime:
    return datetime.now(UTC)
