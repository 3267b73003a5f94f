"""The append-only audit trail: who changed what, when, from what to what, and why."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from pilothouse.store.tables import audit_log


def record(
    conn: Connection,
    *,
    actor: str,
    action: str,
    target: str,
    before: Any = None,
    after: Any = None,
    reason: str | None = None,
) -> None:
    conn.execute(
        audit_log.insert().values(
            at=datetime.now(UTC),
            actor=actor,
            action=action,
            target=target,
            before=before,
            after=after,
            reason=reason,
        )
    )


def history(conn: Connection, target: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Newest first; all targets when `target` is None."""
    query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if target is not None:
        query = query.where(audit_log.c.target == target)
    return [dict(row._mapping) for row in conn.execute(query)]
