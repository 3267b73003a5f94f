"""Alert rows and their history; SLO rows; the leases one instance holds for everyone."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from pilothouse.store.tables import alert_events, alerts, leases, slos


def open_by_signature(conn: Connection, signature: str) -> dict[str, Any] | None:
    """The signature's alert that is not resolved yet, if any."""
    row = conn.execute(
        select(alerts)
        .where(alerts.c.signature == signature, alerts.c.state != "resolved")
        .with_for_update()
    ).first()
    return dict(row._mapping) if row else None


def get(conn: Connection, alert_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(alerts).where(alerts.c.id == alert_id).with_for_update()).first()
    return dict(row._mapping) if row else None


def insert(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(alerts.insert().values(**row))


def change(conn: Connection, alert_id: str, **fields: Any) -> None:
    conn.execute(update(alerts).where(alerts.c.id == alert_id).values(**fields))


def add_event(conn: Connection, **fields: Any) -> None:
    conn.execute(alert_events.insert().values(**fields))


def listing(
    conn: Connection, *, states: tuple[str, ...] | None, owner: str | None, limit: int
) -> list[dict[str, Any]]:
    query = select(alerts).order_by(alerts.c.last_seen_at.desc()).limit(limit)
    if states:
        query = query.where(alerts.c.state.in_(states))
    if owner:
        query = query.where(alerts.c.owner == owner)
    return [dict(r._mapping) for r in conn.execute(query)]


def open_during(
    conn: Connection,
    kind: str,
    since: datetime,
    until: datetime,
    *,
    subject: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Alerts of `kind` (optionally of one subject) open at some time in [since, until):
    opened before `until` and not closed before `since`; the newest `limit`, oldest first."""
    query = (
        select(alerts)
        .where(
            alerts.c.kind == kind,
            alerts.c.opened_at < until,
            alerts.c.closed_at.is_(None) | (alerts.c.closed_at >= since),
        )
        .order_by(alerts.c.opened_at.desc())
        .limit(limit)
    )
    if subject is not None:
        query = query.where(alerts.c.subject == subject)
    return [dict(r._mapping) for r in conn.execute(query)][::-1]


def unnotified(conn: Connection) -> list[dict[str, Any]]:
    """Open alerts no notification has carried yet, oldest first."""
    query = (
        select(alerts)
        .where(alerts.c.state == "open", alerts.c.notified_at.is_(None))
        .order_by(alerts.c.opened_at)
    )
    return [dict(r._mapping) for r in conn.execute(query)]


def events(conn: Connection, alert_id: str) -> list[dict[str, Any]]:
    query = (
        select(alert_events).where(alert_events.c.alert_id == alert_id).order_by(alert_events.c.id)
    )
    return [dict(r._mapping) for r in conn.execute(query)]


def dismissals(conn: Connection, since: datetime, disposition: str) -> list[dict[str, Any]]:
    """Per signature, how many of its alerts were closed with `disposition` since `since`
    (an alert acknowledged and then resolved as noise is one dismissal)."""
    query = (
        select(
            alert_events.c.signature,
            func.count(alert_events.c.alert_id.distinct()).label("times"),
            func.max(alert_events.c.at).label("last"),
        )
        .where(alert_events.c.at >= since, alert_events.c.disposition == disposition)
        .group_by(alert_events.c.signature)
    )
    return [dict(r._mapping) for r in conn.execute(query)]


def all_slos(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(select(slos).order_by(slos.c.name))]


def put_slo(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(delete(slos).where(slos.c.name == row["name"]))
    conn.execute(slos.insert().values(**row))


def delete_slo(conn: Connection, name: str) -> bool:
    return bool(conn.execute(delete(slos).where(slos.c.name == name)).rowcount)


def take_lease(conn: Connection, name: str, holder: str, now: datetime, until: datetime) -> bool:
    """Hold `name` until `until` if it is free, expired or already ours: True when held."""
    taken = conn.execute(
        update(leases)
        .where(leases.c.name == name, (leases.c.holder == holder) | (leases.c.expires_at < now))
        .values(holder=holder, expires_at=until)
    ).rowcount
    if taken:
        return True
    if conn.execute(select(leases.c.name).where(leases.c.name == name)).first() is not None:
        return False
    conn.execute(leases.insert().values(name=name, holder=holder, expires_at=until))
    return True
