"""Contract rows and their verifications (contracts/)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from pilothouse.store.tables import contract_verifications as verifications
from pilothouse.store.tables import contracts


def get(conn: Connection, contract_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(contracts).where(contracts.c.id == contract_id)).first()
    return dict(row._mapping) if row else None


def find(
    conn: Connection, kind: str, name: str, consumer: str, contract: str, *, lock: bool = False
) -> dict[str, Any] | None:
    """The contract `consumer/contract` on prompt or route `name` (locked when asked)."""
    query = select(contracts).where(
        contracts.c.subject_kind == kind,
        contracts.c.subject_name == name,
        contracts.c.consumer == consumer,
        contracts.c.name == contract,
    )
    row = conn.execute(query.with_for_update() if lock else query).first()
    return dict(row._mapping) if row else None


def on_subject(conn: Connection, kind: str, name: str) -> list[dict[str, Any]]:
    """The contracts on prompt or route `name`, by consumer and name."""
    query = (
        select(contracts)
        .where(contracts.c.subject_kind == kind, contracts.c.subject_name == name)
        .order_by(contracts.c.consumer, contracts.c.name)
    )
    return [dict(r._mapping) for r in conn.execute(query)]


def on_subjects(conn: Connection, kind: str, names: list[str]) -> list[dict[str, Any]]:
    if not names:
        return []
    query = (
        select(contracts)
        .where(contracts.c.subject_kind == kind, contracts.c.subject_name.in_(sorted(set(names))))
        .order_by(contracts.c.subject_name, contracts.c.consumer, contracts.c.name)
    )
    return [dict(r._mapping) for r in conn.execute(query)]


def insert(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(contracts.insert().values(**row))


def change(conn: Connection, contract_id: str, **fields: Any) -> None:
    conn.execute(update(contracts).where(contracts.c.id == contract_id).values(**fields))


def remove(conn: Connection, contract_id: str) -> None:
    """The contract and its verifications."""
    conn.execute(delete(verifications).where(verifications.c.contract_id == contract_id))
    conn.execute(delete(contracts).where(contracts.c.id == contract_id))


def insert_verification(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(verifications.insert().values(**row))


def latest_verification(
    conn: Connection, contract_id: str, spec_hash: str, subject_hash: str
) -> dict[str, Any] | None:
    """The newest verification of this revision of the contract on this exact candidate."""
    query = (
        select(verifications)
        .where(
            verifications.c.contract_id == contract_id,
            verifications.c.subject_hash == subject_hash,
            verifications.c.spec_hash == spec_hash,
        )
        .order_by(verifications.c.created_at.desc(), verifications.c.id.desc())
        .limit(1)
    )
    row = conn.execute(query).first()
    return dict(row._mapping) if row else None


def last_verifications(conn: Connection, contract_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Per contract, its newest verification (any candidate), without the failures."""
    if not contract_ids:
        return {}
    newest = (
        select(verifications.c.contract_id, func.max(verifications.c.created_at).label("at"))
        .where(verifications.c.contract_id.in_(sorted(set(contract_ids))))
        .group_by(verifications.c.contract_id)
        .subquery()
    )
    columns = [c for c in verifications.c if c.name != "failures"]
    query = (
        select(*columns)
        .join(
            newest,
            (newest.c.contract_id == verifications.c.contract_id)
            & (newest.c.at == verifications.c.created_at),
        )
        .order_by(verifications.c.id)
    )
    return {r.contract_id: dict(r._mapping) for r in conn.execute(query)}
