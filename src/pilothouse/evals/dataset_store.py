"""Datasets as the server keeps them: content-hashed versions, and samples of a route's
real traffic. (Reading and checking dataset files is `evals/datasets.py`, which the CLI
uses without the server's packages.)"""

from __future__ import annotations

import random
import secrets
from datetime import datetime
from typing import Any

from pilothouse import errors
from pilothouse.evals.datasets import check_row, dataset_hash, unique_variables
from pilothouse.store import Store
from pilothouse.store import evals as rows_sql


def store_version(
    store: Store, name: str, rows: list[dict[str, Any]], *, source: str | None, actor: str
) -> dict[str, Any]:
    """Store rows as the next version of `name`, unless identical rows are stored already."""
    for index, row in enumerate(rows):
        problem = check_row(row)
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
    """A dataset of `sample` real calls of `route` since `since`, drawn at random.

    Calls an eval made (request-log `source` "eval") are never sampled, and calls with the
    same variables count once (the newest), so a dataset is not an echo of earlier evals
    or of one retried request.
    """
    with store.connect() as conn:
        logged = rows_sql.logged_variables(conn, route, since, limit=50_000)
    distinct = unique_variables(logged)
    if not distinct:
        raise errors.NotFound(
            f"no successful calls of route {route!r} with variables since {since.isoformat()} "
            "(calls made by evals are left out)",
            hint="route calls record their `pilothouse.variables`; widen --since",
        )
    rng = random.Random(seed if seed is not None else secrets.randbits(32))
    chosen = rng.sample(distinct, min(sample, len(distinct)))
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


def list_datasets(store: Store) -> list[dict[str, Any]]:
    """Every version of every dataset, without its rows."""
    with store.connect() as conn:
        return rows_sql.all_datasets(conn)
