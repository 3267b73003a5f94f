"""Reading the changelog: newest first, all of it or one prompt's or route's, a page at a
time (`after`: the id of the last entry of the previous page)."""

from __future__ import annotations

from typing import Any

from pilothouse.changelog.entries import public
from pilothouse.contracts.subjects import subject_exists
from pilothouse.store import Store
from pilothouse.store import changelog as rows


def entries(
    store: Store,
    kind: str | None = None,
    name: str | None = None,
    *,
    after: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Entries newest first, older than entry `after` when given. A prompt or route that
    does not exist (and never had entries) is NotFound, so a typo is not an empty feed."""
    with store.connect() as conn:
        found = rows.list_entries(conn, kind=kind, name=name, before_id=after, limit=limit)
        if not found and kind is not None and name is not None and after is None:
            subject_exists(conn, kind, name)
    return [public(r) for r in found]
