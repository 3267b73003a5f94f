"""API keys: creation (the secret is shown once), enable/disable, authentication against
the in-memory key set, and loading that set for the configuration snapshot."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from pilothouse import errors
from pilothouse.policy.credentials import bearer_secret, secret_hash
from pilothouse.store import Store, audit, changes
from pilothouse.store import keys as key_rows

SECRET_PREFIX = "ph-"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """What the gateway knows about a key (never its secret)."""

    id: str
    name: str
    prefix: str
    user: str | None
    team: str | None
    models: tuple[str, ...] | None  # None: every model alias
    expires_at: datetime | None
    disabled: bool
    created_at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ApiKey:
        return cls(
            id=row["id"],
            name=row["name"],
            prefix=row["prefix"],
            user=row["user"],
            team=row["team"],
            models=tuple(row["models"]) if row["models"] is not None else None,
            expires_at=row["expires_at"],
            disabled=bool(row["disabled"]),
            created_at=row["created_at"],
        )

    def allows(self, model: str) -> bool:
        return self.models is None or model in self.models

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "user": self.user,
            "team": self.team,
            "models": list(self.models) if self.models is not None else None,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "disabled": self.disabled,
            "created_at": self.created_at.isoformat(),
        }


def load_keys(conn: Connection) -> dict[str, ApiKey]:
    """Every key by the hash of its secret: the snapshot's key set."""
    return {row["key_hash"]: ApiKey.from_row(row) for row in key_rows.all_keys(conn)}


def authenticate(
    keys_by_hash: Mapping[str, ApiKey], authorization: bytes | str | None, now: datetime
) -> ApiKey:
    """The enabled, unexpired key a Bearer header names; AuthenticationFailed otherwise."""
    secret = bearer_secret(authorization)
    if secret is None:
        raise errors.AuthenticationFailed(
            "missing API key: send `Authorization: Bearer <key>`",
            hint="create a key with `pilothouse keys create --name NAME`",
        )
    key = keys_by_hash.get(secret_hash(secret))
    if key is None:
        raise errors.AuthenticationFailed("invalid API key")
    if key.disabled:
        raise errors.AuthenticationFailed(
            f"API key {key.prefix}… ({key.id}) is disabled", hint="ask an admin to enable it"
        )
    if key.expired(now):
        raise errors.AuthenticationFailed(f"API key {key.prefix}… ({key.id}) has expired")
    return key


def create_key(
    store: Store,
    *,
    name: str,
    user: str | None = None,
    team: str | None = None,
    models: list[str] | None = None,
    expires_at: datetime | None = None,
    actor: str = "admin",
) -> tuple[ApiKey, str]:
    """Create a key; return it with its secret, which is not stored and not shown again."""
    if not name.strip():
        raise errors.InvalidRequest("a key needs a non-empty name", param="name")
    if expires_at is not None:
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)  # a time with no zone is UTC
        if expires_at <= datetime.now(UTC):
            raise errors.InvalidRequest(
                f"expires_at {expires_at.isoformat()} is in the past", param="expires_at"
            )
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    row = {
        "id": "key_" + secrets.token_hex(8),
        "name": name.strip(),
        "key_hash": secret_hash(secret),
        "prefix": secret[: len(SECRET_PREFIX) + 6],
        "user": user,
        "team": team,
        "models": sorted(set(models)) if models else None,
        "expires_at": expires_at,
        "disabled": False,
        "created_at": datetime.now(UTC),
    }
    with store.begin() as conn:
        key_rows.insert(conn, row)
        key = ApiKey.from_row(row)
        audit.record(conn, actor=actor, action="key.create", target=key.id, after=key.public())
        changes.bump(conn)
    return key, secret


def list_keys(store: Store) -> list[ApiKey]:
    with store.connect() as conn:
        return [ApiKey.from_row(row) for row in key_rows.all_keys(conn)]


def resolve_key(store: Store, id_or_name: str) -> ApiKey:
    """Find a key by id, or by name when exactly one key has it."""
    with store.connect() as conn:
        row = key_rows.get(conn, id_or_name)
        if row is None:
            matches = key_rows.find_by_name(conn, id_or_name)
            if len(matches) > 1:
                ids = ", ".join(m["id"] for m in matches)
                raise errors.Conflict(
                    f"{len(matches)} keys are named {id_or_name!r} ({ids}); use the key id"
                )
            row = matches[0] if matches else None
    if row is None:
        raise errors.NotFound(
            f"no API key with id or name {id_or_name!r}", hint="`pilothouse keys list` shows them"
        )
    return ApiKey.from_row(row)


def set_disabled(
    store: Store,
    id_or_name: str,
    disabled: bool,
    *,
    actor: str = "admin",
    reason: str | None = None,
) -> ApiKey:
    """Disable or enable a key; every gateway instance obeys on its next snapshot swap."""
    key = resolve_key(store, id_or_name)
    with store.begin() as conn:
        key_rows.set_disabled(conn, key.id, disabled)
        audit.record(
            conn,
            actor=actor,
            action="key.disable" if disabled else "key.enable",
            target=key.id,
            before={"disabled": key.disabled},
            after={"disabled": disabled},
            reason=reason,
        )
        changes.bump(conn)
    return resolve_key(store, key.id)
