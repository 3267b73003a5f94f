"""Eval runs as the server keeps them: recorded once, listed by suite, read back whole."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pilothouse import errors
from pilothouse.store import Store
from pilothouse.store import evals as rows


def record_run(store: Store, artifact: dict[str, Any]) -> str:
    """Store the artifact `pilothouse eval run` wrote; Conflict if its id is recorded."""
    manifest = artifact["manifest"]
    row = {
        "id": str(artifact["id"]),
        "suite": str(artifact["suite"]),
        "owner": artifact.get("owner"),
        "passed": bool(artifact.get("passed")),
        "replay_of": manifest.get("replay_of") if isinstance(manifest, dict) else None,
        "manifest": manifest,
        "summary": artifact["summary"],
        "results": artifact["results"],
        "created_at": datetime.now(UTC),
    }
    with store.begin() as conn:
        if rows.run(conn, row["id"]) is not None:
            raise errors.Conflict(f"run {row['id']} is already recorded")
        rows.insert_run(conn, row)
    return row["id"]


def list_runs(store: Store, suite: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    with store.connect() as conn:
        return rows.runs(conn, suite, limit=limit)


def get_run(store: Store, run_id: str) -> dict[str, Any]:
    with store.connect() as conn:
        row = rows.run(conn, run_id)
    if row is None:
        raise errors.NotFound(f"no eval run {run_id!r}", hint="`pilothouse eval runs` lists them")
    return row
