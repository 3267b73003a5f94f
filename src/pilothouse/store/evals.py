"""Dataset versions and eval runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, or_, select

from pilothouse.store.tables import datasets, eval_runs, request_log


def dataset_by_hash(conn: Connection, name: str, digest: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(datasets).where(datasets.c.name == name, datasets.c.hash == digest)
    ).first()
    return dict(row._mapping) if row else None


def dataset(conn: Connection, name: str, version: int | None) -> dict[str, Any] | None:
    query = select(datasets).where(datasets.c.name == name)
    query = (
        query.where(datasets.c.version == version)
        if version
        else query.order_by(datasets.c.version.desc())
    )
    row = conn.execute(query.limit(1)).first()
    return dict(row._mapping) if row else None


def insert_dataset(
    conn: Connection,
    name: str,
    digest: str,
    rows: list[dict[str, Any]],
    source: str | None,
    actor: str,
) -> int:
    latest = (
        conn.execute(select(func.max(datasets.c.version)).where(datasets.c.name == name)).scalar()
        or 0
    )
    version = int(latest) + 1
    conn.execute(
        datasets.insert().values(
            name=name,
            version=version,
            hash=digest,
            rows=rows,
            source=source,
            created_by=actor,
            created_at=datetime.now(UTC),
        )
    )
    return version


def all_datasets(conn: Connection) -> list[dict[str, Any]]:
    query = select(
        datasets.c.name,
        datasets.c.version,
        datasets.c.hash,
        datasets.c.source,
        datasets.c.created_at,
        datasets.c.created_by,
    ).order_by(datasets.c.name, datasets.c.version)
    return [dict(r._mapping) for r in conn.execute(query)]


def logged_variables(
    conn: Connection, route: str, since: datetime, limit: int
) -> list[dict[str, Any]]:
    """Recent calls of a route that were answered in full and carried template
    variables, newest first; the eval runner's own calls (`source` = "eval") left out."""
    source = request_log.c.source
    columns = [request_log.c.id, request_log.c.variables, request_log.c.release_id, source]
    conditions = [
        request_log.c.route == route,
        request_log.c.started_at >= since,
        request_log.c.outcome == "ok",
        request_log.c.variables.is_not(None),
        or_(source.is_(None), source != "eval"),
    ]
    query = (
        select(*columns).where(*conditions).order_by(request_log.c.started_at.desc()).limit(limit)
    )
    return [dict(r._mapping) for r in conn.execute(query)]


def insert_run(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(eval_runs.insert().values(**row))


def run(conn: Connection, run_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(eval_runs).where(eval_runs.c.id == run_id)).first()
    return dict(row._mapping) if row else None


def runs(conn: Connection, suite: str | None, limit: int) -> list[dict[str, Any]]:
    query = select(
        eval_runs.c.id,
        eval_runs.c.suite,
        eval_runs.c.owner,
        eval_runs.c.passed,
        eval_runs.c.replay_of,
        eval_runs.c.summary,
        eval_runs.c.created_at,
    )
    if suite:
        query = query.where(eval_runs.c.suite == suite)
    return [
        dict(r._mapping)
        for r in conn.execute(query.order_by(eval_runs.c.created_at.desc()).limit(limit))
    ]


def runs_with_manifest(conn: Connection, suite: str, limit: int) -> list[dict[str, Any]]:
    """The newest runs of `suite` with what they ran (manifest) and how it went (summary)."""
    query = (
        select(
            eval_runs.c.id,
            eval_runs.c.passed,
            eval_runs.c.manifest,
            eval_runs.c.summary,
            eval_runs.c.created_at,
        )
        .where(eval_runs.c.suite == suite)
        .order_by(eval_runs.c.created_at.desc(), eval_runs.c.id.desc())
        .limit(limit)
    )
    return [dict(r._mapping) for r in conn.execute(query)]
