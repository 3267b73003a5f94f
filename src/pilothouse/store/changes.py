"""The configuration version and the changes that move it.

Every configuration write calls `bump` inside its transaction, naming what it touched
(`("route", name)`, `("key", key_id)`, ...). The version in the store is the truth; the
touched items are a hint that lets each process reload only those items. A committed
change reaches:

- this process: `Store.write` hands it to the store's commit listeners (the snapshot
  holder), after the commit;
- other processes: PostgreSQL `NOTIFY` (sent at commit, payload `Change.payload`) and the
  Redis channel (published by the process that took the write);
- any process later: the change log (`config_changes`, the newest `LOG_KEPT` changes),
  written in the same transaction, which a process reads when its bus missed a message
  or it has no bus (`since`).

A change whose items are unknown (`items is None`: an old writer, a payload too long for
NOTIFY, a hand-made SQL fix) means "reload everything".
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from pilothouse.store import notify, tolerant
from pilothouse.store.tables import config_changes, config_version

Item = tuple[str, str]  # (kind, id): ("route", "support-triage"), ("key", "key_1a2b...")
_PENDING = "pilothouse.changes"  # where a transaction's changes wait for its commit
MAX_PAYLOAD_CHARS = 7000  # PostgreSQL refuses a NOTIFY payload of 8,000 bytes or more
LOG_KEPT = 1000  # changes the log keeps; a process further behind loads in full


@dataclass(frozen=True, slots=True)
class Change:
    """One committed move of the configuration version, and what it touched."""

    version: int
    items: frozenset[Item] | None  # None: unknown, reload everything

    def payload(self) -> str:
        """The bus message: JSON with the version and (when it fits) the touched items."""
        body: dict[str, Any] = {"v": self.version}
        if self.items is not None:
            body["items"] = sorted([kind, item_id] for kind, item_id in self.items)
        text = json.dumps(body, separators=(",", ":"))
        if len(text) > MAX_PAYLOAD_CHARS:
            return json.dumps({"v": self.version})
        return text

    @classmethod
    def parse(cls, payload: str | bytes | None) -> Change | None:
        """The change a bus message carries; None when it is not one. A bare version
        (what older processes sent) is a change with unknown items."""
        try:
            data = json.loads(payload or "")
        except ValueError:
            return None
        if isinstance(data, int) and not isinstance(data, bool):
            return cls(data, None)
        if not isinstance(data, dict) or not isinstance(data.get("v"), int):
            return None
        return cls.of(data["v"], data.get("items"))

    @classmethod
    def of(cls, version: int, items: object) -> Change:
        """The change to `version` touching `items` as stored or sent (`[[kind, id],
        ...]`); anything else is a change with unknown items."""
        if not isinstance(items, list) or not all(
            isinstance(i, list) and len(i) == 2 and all(isinstance(p, str) for p in i)
            for i in items
        ):
            return cls(version, None)
        return cls(version, frozenset((kind, item_id) for kind, item_id in items))


def bump(conn: Connection, *touched: Item) -> int:
    """Move the version forward inside the caller's transaction, naming the items the
    transaction changed (none: nothing the snapshot holds, e.g. a prompt version); return
    the new version. On PostgreSQL the change is also announced (NOTIFY) at commit."""
    now = datetime.now(UTC)
    conn.execute(
        update(config_version)
        .where(config_version.c.id == 1)
        .values(version=config_version.c.version + 1, changed_at=now)
    )
    version = current(conn)
    change = Change(version, frozenset(touched))
    items = sorted([kind, item_id] for kind, item_id in change.items or ())
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(  # a version set back by hand must not fail the write: the newest wins
        insert(config_changes)
        .values(version=version, touched=items, changed_at=now)
        .on_conflict_do_update(
            index_elements=["version"], set_={"touched": items, "changed_at": now}
        )
    )
    if version % 100 == 0:
        conn.execute(delete(config_changes).where(config_changes.c.version <= version - LOG_KEPT))
    notify.notify(conn, change.payload())
    conn.info.setdefault(_PENDING, []).append(change)
    return version


def take(conn: Connection) -> list[Change]:
    """The changes bumped on `conn` since the last take (its transaction's), cleared."""
    found: list[Change] = conn.info.pop(_PENDING, [])
    return found


def since(conn: Connection, version: int) -> tuple[int, list[Change] | None]:
    """The store's current version, and the changes after `version` up to it from the
    log, in order; None when the log cannot say (a change it does not hold: pruned, made
    by hand or by a writer older than the log), i.e. "reload everything"."""
    latest = current(conn)
    if latest <= version:
        return latest, []
    if latest - version > LOG_KEPT:
        return latest, None
    query = (
        select(config_changes.c.version, config_changes.c.touched)
        .where(config_changes.c.version > version, config_changes.c.version <= latest)
        .order_by(config_changes.c.version)
    )
    try:
        rows = conn.execute(query).all()
    except tolerant.DECODE_ERRORS:  # a damaged entry: the log cannot say
        return latest, None
    if [row.version for row in rows] != list(range(version + 1, latest + 1)):
        return latest, None
    return latest, [Change.of(int(row.version), row.touched) for row in rows]


def current(conn: Connection) -> int:
    """The current configuration version (0 before the first migration seeded it)."""
    value = conn.execute(select(config_version.c.version).where(config_version.c.id == 1)).scalar()
    return int(value or 0)


def touched(kind: str, ids: Iterable[str]) -> tuple[Item, ...]:
    """`(kind, id)` for each id (for `bump(conn, *touched("route", names))`)."""
    return tuple((kind, str(item_id)) for item_id in ids)
