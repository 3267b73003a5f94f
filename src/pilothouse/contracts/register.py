"""Contracts as the server keeps them: added (pending), changed (pending again), listed
with their last verification, removed. Every change is audited.

A changed contract is pending again until it passes: a consumer who tightens a contract
cannot block the next promotion before the new revision has been shown to hold once.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from pilothouse import errors
from pilothouse.contracts import subjects
from pilothouse.contracts.gate import public_verification
from pilothouse.contracts.spec import Contract
from pilothouse.store import Store, audit
from pilothouse.store import contracts as rows
from pilothouse.store import evals as eval_rows


def add(
    store: Store, contract: Contract, *, actor: str, models: Collection[str] | None = None
) -> dict[str, Any]:
    """Store `contract`: new ones and changed ones are pending; an unchanged one is left
    as it is. Returns the contract with `outcome`: created, changed or unchanged.
    InvalidRequest when its `model` is not one of `models` (the catalog's aliases)."""
    model = contract.spec.get("model")
    if models is not None and model is not None and model not in models:
        raise errors.InvalidRequest(
            f"model: unknown model alias {model!r}; known: {', '.join(sorted(models))}",
            param="model",
        )
    now = datetime.now(UTC)
    with store.write() as conn:
        subjects.subject_exists(conn, contract.kind, contract.subject)
        samples = contract.spec["samples"]
        if isinstance(samples, dict) and (
            eval_rows.dataset(conn, samples["dataset"], samples["version"]) is None
        ):
            raise errors.NotFound(
                f"samples: no dataset {samples['dataset']!r} version {samples['version']}",
                hint="`pilothouse datasets ls` lists stored datasets",
            )
        existing = rows.find(
            conn, contract.kind, contract.subject, contract.consumer, contract.name, lock=True
        )
        target = f"{contract.kind}:{contract.subject}"
        if existing is not None and existing["spec_hash"] == contract.spec_hash:
            return {**public(existing), "outcome": "unchanged"}
        fields = {
            "spec": contract.spec,
            "spec_hash": contract.spec_hash,
            "status": "pending",
            "activated_at": None,
            "activated_on": None,
            "activated_hash": None,
            "updated_at": now,
        }
        if existing is None:
            row = {
                "id": "ctr_" + secrets.token_hex(6),
                "subject_kind": contract.kind,
                "subject_name": contract.subject,
                "consumer": contract.consumer,
                "name": contract.name,
                "created_by": actor,
                "created_at": now,
                **fields,
            }
            rows.insert(conn, row)
            before = None
        else:
            rows.change(conn, existing["id"], **fields)
            row = {**existing, **fields}
            before = {"spec_hash": existing["spec_hash"], "status": existing["status"]}
        audit.record(
            conn,
            actor=actor,
            action="contract.add" if existing is None else "contract.change",
            target=target,
            before=before,
            after={"contract": contract.ref, "id": row["id"], "spec_hash": contract.spec_hash},
        )
    return {**public(row), "outcome": "created" if existing is None else "changed"}


def list_contracts(store: Store, kind: str, name: str) -> list[dict[str, Any]]:
    """The contracts on prompt or route `name`, each with its last verification."""
    with store.connect() as conn:
        subjects.subject_exists(conn, kind, name)
        found = rows.on_subject(conn, kind, name)
        last = rows.last_verifications(conn, [r["id"] for r in found])
    return [public(r, last.get(r["id"])) for r in found]


def get(store: Store, contract_id: str) -> dict[str, Any]:
    with store.connect() as conn:
        row = rows.get(conn, contract_id)
        if row is None:
            raise not_found(contract_id)
        last = rows.last_verifications(conn, [contract_id]).get(contract_id)
    return public(row, last)


def remove(store: Store, contract_id: str, *, actor: str, reason: str | None) -> dict[str, Any]:
    """Remove a contract and its verifications (audited)."""
    with store.write() as conn:
        row = rows.get(conn, contract_id)
        if row is None:
            raise not_found(contract_id)
        rows.remove(conn, contract_id)
        audit.record(
            conn,
            actor=actor,
            action="contract.remove",
            target=f"{row['subject_kind']}:{row['subject_name']}",
            before={"contract": f"{row['consumer']}/{row['name']}", "id": contract_id},
            reason=reason,
        )
    return {"removed": True, "id": contract_id}


def not_found(contract_id: str) -> errors.NotFound:
    return errors.NotFound(
        f"no contract {contract_id!r}", hint="`pilothouse contracts ls PROMPT` lists contracts"
    )


def public(row: dict[str, Any], last: dict[str, Any] | None = None) -> dict[str, Any]:
    activated = row.get("activated_at")
    return {
        "id": row["id"],
        row["subject_kind"]: row["subject_name"],
        "consumer": row["consumer"],
        "name": row["name"],
        "status": row["status"],
        "activated_at": activated.isoformat() if activated else None,
        "activated_on": row.get("activated_on"),
        "spec": row["spec"],
        "spec_hash": row["spec_hash"],
        "created_by": row["created_by"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
        "last_verification": public_verification({"failures": [], **last}) if last else None,
    }
