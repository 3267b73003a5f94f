"""Prompt rows: prompts, immutable versions, labels, and the ordered change events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Text, cast, delete, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from pilothouse.store import tolerant
from pilothouse.store.tables import prompt_events, prompt_labels, prompt_versions, prompts


def get_prompt(conn: Connection, name: str) -> dict[str, Any] | None:
    row = conn.execute(select(prompts).where(prompts.c.name == name)).first()
    return dict(row._mapping) if row else None


def lock_prompt(conn: Connection, name: str, *, create: bool) -> dict[str, Any] | None:
    """The prompt's row, locked until the transaction ends (PostgreSQL: FOR UPDATE; SQLite
    writers hold the database lock already), created first when `create` and missing.

    Every write to a prompt's versions and labels takes this lock first, so concurrent
    writers to one prompt queue: version numbers and audit `before` values stay exact.
    """
    if create:
        now = datetime.now(UTC)
        dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        conn.execute(
            dialect_insert(prompts)
            .values(name=name, created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=["name"])
        )
    row = conn.execute(select(prompts).where(prompts.c.name == name).with_for_update()).first()
    return dict(row._mapping) if row else None


def update_prompt(conn: Connection, name: str, fields: dict[str, Any]) -> None:
    """Update the given descriptive fields (never versions)."""
    if fields:
        now = datetime.now(UTC)
        conn.execute(update(prompts).where(prompts.c.name == name).values(updated_at=now, **fields))


def all_prompts(
    conn: Connection, *, after: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Every prompt by name (or the page of `limit` after the name `after`); one whose row
    cannot be read is {"name", "problem"}."""
    found = tolerant.rows_or_problems(conn, prompts, prompts.c.name, after=after, limit=limit)
    return [
        row if row is not None else {"name": name, "problem": problem}
        for name, row, problem in found
    ]


def latest_version_numbers(conn: Connection, names: list[str]) -> dict[str, int]:
    """The newest version number of each named prompt (one query)."""
    if not names:
        return {}
    rows = conn.execute(
        select(prompt_versions.c.prompt_name, func.max(prompt_versions.c.version))
        .where(prompt_versions.c.prompt_name.in_(names))
        .group_by(prompt_versions.c.prompt_name)
    )
    return {name: int(version or 0) for name, version in rows}


def version_by_hash(conn: Connection, name: str, content_hash: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(prompt_versions).where(
            prompt_versions.c.prompt_name == name, prompt_versions.c.hash == content_hash
        )
    ).first()
    return dict(row._mapping) if row else None


def get_version(conn: Connection, name: str, version: int) -> dict[str, Any] | None:
    """The version's row; tolerant.DamagedRow when it cannot be read."""
    query = select(prompt_versions).where(
        prompt_versions.c.prompt_name == name, prompt_versions.c.version == version
    )
    return tolerant.first(conn, query, f"prompt {name}@{version}")


def version_exists(conn: Connection, name: str, version: int) -> bool:
    query = select(prompt_versions.c.id).where(
        prompt_versions.c.prompt_name == name, prompt_versions.c.version == version
    )
    return conn.execute(query).first() is not None


def latest_version_number(conn: Connection, name: str) -> int:
    value = conn.execute(
        select(func.max(prompt_versions.c.version)).where(prompt_versions.c.prompt_name == name)
    ).scalar()
    return int(value or 0)


def insert_version(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(prompt_versions.insert().values(**row))


def versions_by_key(
    conn: Connection, keys: list[tuple[str, int]]
) -> dict[tuple[str, int], dict[str, Any]]:
    """Several versions by (name, number) in one query."""
    if not keys:
        return {}
    query = select(prompt_versions).where(
        tuple_(prompt_versions.c.prompt_name, prompt_versions.c.version).in_(keys)
    )
    try:
        return {(r.prompt_name, r.version): dict(r._mapping) for r in conn.execute(query)}
    except tolerant.DECODE_ERRORS:  # find the damaged one, so its error names it
        found = {}
        for name, number in keys:
            row = get_version(conn, name, number)
            if row is not None:
                found[(name, number)] = row
        return found


INCLUDE_MARK = "{{>"  # every include tag starts so (templates._INCLUDE)


def versions_with_includes(conn: Connection) -> list[tuple[str, str]]:
    """(prompt name, stored content as JSON text) of every version whose content has an
    include tag: the registry's include graph, without decoding the other versions."""
    text = cast(prompt_versions.c.content, Text)
    query = select(prompt_versions.c.prompt_name, text).where(text.contains(INCLUDE_MARK))
    return [(name, str(raw)) for name, raw in conn.execute(query)]


def labelled_with_includes(conn: Connection, names: list[str]) -> list[dict[str, Any]]:
    """The labels (prompt_name, label, version) of the prompts in `names` whose version
    has an include tag."""
    if not names:
        return []
    text = cast(prompt_versions.c.content, Text)
    query = (
        select(prompt_labels.c.prompt_name, prompt_labels.c.label, prompt_labels.c.version)
        .join(
            prompt_versions,
            (prompt_versions.c.prompt_name == prompt_labels.c.prompt_name)
            & (prompt_versions.c.version == prompt_labels.c.version),
        )
        .where(prompt_labels.c.prompt_name.in_(names), text.contains(INCLUDE_MARK))
        .order_by(prompt_labels.c.prompt_name, prompt_labels.c.label)
    )
    return [dict(r._mapping) for r in conn.execute(query)]


def versions(conn: Connection, name: str) -> list[dict[str, Any]]:
    """Every version of `name` (content included); a damaged one is {"version", "problem"}."""
    numbers = [
        n
        for (n,) in conn.execute(
            select(prompt_versions.c.version)
            .where(prompt_versions.c.prompt_name == name)
            .order_by(prompt_versions.c.version)
        )
    ]
    out = []
    for number in numbers:
        try:
            row = get_version(conn, name, number)
        except tolerant.DamagedRow as exc:
            out.append({"version": number, "problem": str(exc)})
            continue
        if row is not None:
            out.append(row)
    return out


def labels(
    conn: Connection, name: str | None = None, *, names: list[str] | None = None
) -> list[dict[str, Any]]:
    """The labels of one prompt, of the prompts in `names`, or of every prompt."""
    query = select(prompt_labels).order_by(prompt_labels.c.prompt_name, prompt_labels.c.label)
    if name is not None:
        query = query.where(prompt_labels.c.prompt_name == name)
    if names is not None:
        query = query.where(prompt_labels.c.prompt_name.in_(names))
    return [dict(r._mapping) for r in conn.execute(query)]


def label_version(conn: Connection, name: str, label: str) -> int | None:
    value = conn.execute(
        select(prompt_labels.c.version).where(
            prompt_labels.c.prompt_name == name, prompt_labels.c.label == label
        )
    ).scalar()
    return int(value) if value is not None else None


def set_label(conn: Connection, name: str, label: str, version: int, actor: str) -> None:
    now = datetime.now(UTC)
    changed = conn.execute(
        update(prompt_labels)
        .where(prompt_labels.c.prompt_name == name, prompt_labels.c.label == label)
        .values(version=version, updated_by=actor, updated_at=now)
    ).rowcount
    if not changed:
        conn.execute(
            prompt_labels.insert().values(
                prompt_name=name, label=label, version=version, updated_by=actor, updated_at=now
            )
        )


def delete_label(conn: Connection, name: str, label: str) -> None:
    conn.execute(
        delete(prompt_labels).where(
            prompt_labels.c.prompt_name == name, prompt_labels.c.label == label
        )
    )


def add_event(conn: Connection, **fields: Any) -> int:
    result = conn.execute(prompt_events.insert().values(at=datetime.now(UTC), **fields))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def label_events(conn: Connection, name: str, label: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(prompt_events)
        .where(prompt_events.c.prompt_name == name, prompt_events.c.label == label)
        .order_by(prompt_events.c.id)
    )
    return [dict(r._mapping) for r in rows]


EVENTS_PAGE = 1000


def events_after(conn: Connection, last_id: int, limit: int = EVENTS_PAGE) -> list[dict[str, Any]]:
    """The events after `last_id`, oldest first, at most `limit` of them."""
    rows = conn.execute(
        select(prompt_events)
        .where(prompt_events.c.id > last_id)
        .order_by(prompt_events.c.id)
        .limit(limit)
    )
    return [dict(r._mapping) for r in rows]


def last_event_id(conn: Connection) -> int:
    return int(conn.execute(select(func.max(prompt_events.c.id))).scalar() or 0)
