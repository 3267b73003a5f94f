"""Datasets: rows of inputs (template variables or messages), an optional expected answer
and tags, in JSONL or CSV; content-hashed so a run names exactly what it read."""

from __future__ import annotations

import csv
import hashlib
import io
import random
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from pilothouse import errors
from pilothouse.evals.types import Case
from pilothouse.store import Store
from pilothouse.store import evals as rows_sql
from pilothouse.yamlfile import FileError

ROW_KEYS = {"id", "variables", "messages", "expected", "tags"}


def parse_text(text: str, source: str, fmt: str) -> list[dict[str, Any]]:
    """Rows from JSONL or CSV text; FileError names the line and field at fault."""
    if fmt == "csv":
        return _from_csv(text, source)
    out, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            problems.append(f"{source}:{number}: not valid JSON: {exc}")
            continue
        problem = _check_row(row)
        if problem:
            problems.append(f"{source}:{number}: {problem}")
        else:
            out.append(row)
    if problems:
        raise FileError(problems)
    if not out:
        raise FileError([f"{source}: the dataset has no rows"])
    return out


def _from_csv(text: str, source: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    out = []
    for number, record in enumerate(reader, start=2):
        if None in record:
            raise FileError([f"{source}:{number}: more fields than the header has columns"])
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
    if not out:
        raise FileError([f"{source}: the dataset has no rows"])
    return out


def _check_row(row: Any) -> str | None:
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
    return None


def load_file(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FileError([f"{path}: cannot read the dataset: {exc.strerror}"]) from None
    return parse_text(text, str(path), "csv" if path.suffix.lower() == ".csv" else "jsonl")


def dataset_hash(rows: list[dict[str, Any]]) -> str:
    return hashlib.sha256(orjson.dumps(rows, option=orjson.OPT_SORT_KEYS)).hexdigest()


def cases(rows: list[dict[str, Any]]) -> list[Case]:
    """Rows as cases; a row without `id` is named by its position (stable for one hash)."""
    out = []
    seen: set[str] = set()
    for index, row in enumerate(rows):
        case_id = str(row.get("id", f"row-{index + 1}"))
        if case_id in seen:
            raise errors.InvalidRequest(
                f"dataset rows share the id {case_id!r}; ids must be unique"
            )
        seen.add(case_id)
        inputs: dict[str, Any] = {k: row[k] for k in ("variables", "messages") if k in row}
        out.append(
            Case(
                id=case_id,
                inputs=inputs,
                expected=row.get("expected"),
                tags=tuple(row.get("tags", ())),
            )
        )
    return out


def store_version(
    store: Store, name: str, rows: list[dict[str, Any]], *, source: str | None, actor: str
) -> dict[str, Any]:
    """Store rows as the next version of `name`, unless identical rows are stored already."""
    for index, row in enumerate(rows):
        problem = _check_row(row)
        if problem:
            where = row.get("id", index + 1) if isinstance(row, dict) else index + 1
            raise errors.InvalidRequest(f"dataset row {where}: {problem}", param="rows")
    digest = dataset_hash(rows)
    with store.begin() as conn:
        existing = rows_sql.dataset_by_hash(conn, name, digest)
        if existing is not None:
            return {
                "name": name,
                "version": existing["version"],
                "hash": digest,
                "rows": len(rows),
                "created": False,
            }
        version = rows_sql.insert_dataset(conn, name, digest, rows, source, actor)
    return {"name": name, "version": version, "hash": digest, "rows": len(rows), "created": True}


def get_version(store: Store, name: str, version: int | None) -> dict[str, Any]:
    with store.connect() as conn:
        row = rows_sql.dataset(conn, name, version)
    if row is None:
        raise errors.NotFound(
            f"no dataset {name!r}" + (f" version {version}" if version else ""),
            hint="`pilothouse datasets ls` lists datasets",
        )
    return row


def from_logs(
    store: Store,
    name: str,
    *,
    route: str,
    since: datetime,
    sample: int,
    actor: str,
    seed: int | None = None,
) -> dict[str, Any]:
    """A dataset of `sample` real calls of `route` since `since`, drawn at random."""
    with store.connect() as conn:
        logged = rows_sql.logged_variables(conn, route, since, limit=50_000)
    if not logged:
        raise errors.NotFound(
            f"no successful calls of route {route!r} with variables since {since.isoformat()}",
            hint="route calls record their `pilothouse.variables`; widen --since",
        )
    rng = random.Random(seed if seed is not None else secrets.randbits(32))
    chosen = rng.sample(logged, min(sample, len(logged)))
    rows = [
        {
            "id": r["id"],
            "variables": r["variables"],
            "tags": [f"route:{route}", f"release:{r['release_id']}"],
        }
        for r in sorted(chosen, key=lambda r: r["id"])
    ]
    source = f"from-logs route={route} since={since.isoformat()} sample={sample}"
    return store_version(store, name, rows, source=source, actor=actor)


def now() -> datetime:
    return datetime.now(UTC)


def list_datasets(store: Store) -> list[dict[str, Any]]:
    """Every version of every dataset, without its rows."""
    with store.connect() as conn:
        return rows_sql.all_datasets(conn)
