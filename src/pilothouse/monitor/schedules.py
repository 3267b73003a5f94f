"""Managing scheduled eval suites (the API's and the CLI's side of `scheduler.py`): a
schedule is checked when it is put (a valid name, a dataset the server stores, an interval
between a minute and 31 days), listed, made due now, or removed; `public` is what the API
shows of one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import yaml

from pilothouse import errors
from pilothouse.evals.dataset_store import get_version
from pilothouse.monitor.scheduler import last_line, stale_after
from pilothouse.store import Store
from pilothouse.store import schedules as rows

MIN_EVERY_SECONDS = 60
MAX_EVERY_SECONDS = 31 * 86400
MAX_DATASET_VERSION = 2**31 - 1  # what the databases store
SUITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def put_schedule(
    store: Store,
    suite_text: str,
    *,
    every_seconds: int,
    owner: str | None,
    actor: str,
    now: datetime,
) -> dict[str, Any]:
    """Schedule a suite (or change its schedule): it runs now, then every `every_seconds`.
    The suite is checked in full by each run (`eval run`); here, what the server needs to
    run it at all: a name, and a dataset it stores."""
    try:
        suite = yaml.safe_load(suite_text)
    except yaml.YAMLError as exc:
        raise errors.InvalidRequest(f"the suite is not YAML: {exc}", param="suite") from None
    if not isinstance(suite, dict) or not isinstance(suite.get("name"), str):
        raise errors.InvalidRequest("the suite needs a `name`", param="suite")
    name = suite["name"]
    if not SUITE_NAME.match(name):
        raise errors.InvalidRequest(f"suite name {name!r} is not a valid name", param="suite")
    dataset = suite.get("dataset")
    version = dataset.get("version") if isinstance(dataset, dict) else None
    if version is not None and (
        type(version) is not int or not 1 <= version <= MAX_DATASET_VERSION
    ):
        raise errors.InvalidRequest(
            f"the suite's dataset version must be a whole number from 1, not {version!r}",
            param="suite",
        )
    if not (
        isinstance(dataset, dict)
        and isinstance(dataset.get("name"), str)
        and SUITE_NAME.match(dataset["name"])
    ):
        raise errors.InvalidRequest(
            "a scheduled suite runs on the server, so its dataset must be stored there: "
            "`dataset: {name: N, version: V}` (`pilothouse eval schedule` pushes a dataset "
            "file for you)",
            param="suite",
        )
    get_version(store, dataset["name"], dataset.get("version"))  # NotFound names it
    if not MIN_EVERY_SECONDS <= every_seconds <= MAX_EVERY_SECONDS:
        raise errors.InvalidRequest(
            f"every must be between {MIN_EVERY_SECONDS} s and 31 days", param="every"
        )
    owner = owner or (suite.get("owner") if isinstance(suite.get("owner"), str) else None)
    row = {
        "suite": name,
        "owner": owner,
        "every_seconds": every_seconds,
        "suite_text": suite_text,
        "next_run_at": now,
        "created_by": actor,
        "created_at": now,
    }
    with store.begin() as conn:
        rows.put(conn, row)
        stored = rows.get(conn, name)
    assert stored is not None
    return public(stored, now)


def list_schedules(store: Store, now: datetime) -> list[dict[str, Any]]:
    with store.connect() as conn:
        return [public(s, now) for s in rows.listing(conn)]


def remove_schedule(store: Store, suite: str) -> None:
    with store.begin() as conn:
        if not rows.remove(conn, suite):
            raise errors.NotFound(
                f"no scheduled suite {suite!r}", hint="`pilothouse eval schedules` lists them"
            )


def run_now(store: Store, suite: str, now: datetime) -> dict[str, Any]:
    """Make a suite due now (it starts within the monitor's next evaluation)."""
    with store.begin() as conn:
        if rows.get(conn, suite) is None:
            raise errors.NotFound(
                f"no scheduled suite {suite!r}", hint="`pilothouse eval schedules` lists them"
            )
        rows.change(conn, suite, next_run_at=now)
        stored = rows.get(conn, suite)
    assert stored is not None
    return public(stored, now)


def public(schedule: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    since = schedule["last_finished_at"] or schedule["created_at"]
    running = schedule["running_until"] is not None and schedule["running_until"] > now
    return {
        "suite": schedule["suite"],
        "owner": schedule["owner"],
        "every_seconds": schedule["every_seconds"],
        "next_run_at": schedule["next_run_at"],
        "running": running,
        "last_started_at": schedule["last_started_at"],
        "last_finished_at": schedule["last_finished_at"],
        "last_status": schedule["last_status"],
        "last_run_id": schedule["last_run_id"],
        "last_passing_run_id": schedule["last_passing_run_id"],
        "last_message": last_line(schedule["last_message"] or "")
        if schedule["last_message"]
        else None,
        "stale": now - since > stale_after(schedule["every_seconds"]),
        "created_by": schedule["created_by"],
    }
