"""API keys: creation (the secret is shown once), enable/disable, authentication against
the in-memory key set, and loading that set for the configuration snapshot.

What a key may do beyond calling `/v1` for its models and routes is granted explicitly:
`scopes` (SCOPES below) and `prompts`, name patterns of prompts it may read besides the
ones its routes serve. A key limited to some models and routes reads only the prompts
those routes serve (their frozen composition) and the ones it was granted; a key with no
limits reads every prompt.
"""

from __future__ import annotations

import fnmatch
import re
import secrets
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from pilothouse import errors
from pilothouse.policy.credentials import bearer_secret, secret_hash
from pilothouse.quarantine import Loaded, Quarantined
from pilothouse.store import Store, audit, changes
from pilothouse.store import keys as key_rows

SECRET_PREFIX = "ph-"

SCOPES = {
    "evals": "what `pilothouse eval` and `contracts verify` need in CI: read datasets, "
    "routes, every prompt and the contracts, record and read eval runs and contract "
    "verifications, ask the promotion gate, pin a route's release arm",
    "release:pin": "pin a route's active or canary release with the X-Pilothouse-Release header",
    "routes:read": "list routes with their releases, read their history, the changelog "
    "and who depends on a prompt",
    "history:read": "read the audit history of prompts",
    "responses:store": "have the gateway store its Responses API answers (`store`, "
    "`previous_response_id`, GET and DELETE /v1/responses/{id}); off without it",
}
_IMPLIED = {"evals": ("release:pin", "routes:read")}
PROMPT_PATTERN = re.compile(r"^[A-Za-z0-9._*?-]{1,100}$")
# A damaged key's row has no readable time: one fixed value, so two loads compare equal.
_DAMAGED_CREATED_AT = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """What the gateway knows about a key (never its secret)."""

    id: str
    name: str
    prefix: str
    user: str | None
    team: str | None
    models: tuple[str, ...] | None  # None: every model alias and route
    expires_at: datetime | None
    disabled: bool
    created_at: datetime
    scopes: frozenset[str] = frozenset()
    prompts: tuple[str, ...] | None = None  # name patterns of prompts it may also read
    problem: str | None = None  # the stored row cannot be used: calls get this error
    suspended_at: datetime | None = None  # by the spend watch; `keys restore` lifts it
    suspended_reason: str | None = None
    spend_watch_after: datetime | None = None  # restored: spend before this is not judged

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ApiKey:
        """The key a row describes; ValueError when the row is damaged."""
        models, scopes, prompts = row["models"], row.get("scopes"), row.get("prompts")
        for field, value in (("models", models), ("scopes", scopes), ("prompts", prompts)):
            if value is not None and not (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            ):
                raise ValueError(f"`{field}` is not a list of names")
        times = (row["expires_at"], row.get("suspended_at"), row.get("spend_watch_after"))
        if not isinstance(row["created_at"], datetime) or not all(
            t is None or isinstance(t, datetime) for t in times
        ):
            raise ValueError("a timestamp is not a time")
        return cls(
            id=row["id"],
            name=row["name"],
            prefix=row["prefix"],
            user=row["user"],
            team=row["team"],
            models=tuple(models) if models is not None else None,
            expires_at=row["expires_at"],
            disabled=bool(row["disabled"]),
            created_at=row["created_at"],
            scopes=frozenset(scopes or ()),
            prompts=tuple(prompts) if prompts is not None else None,
            suspended_at=row.get("suspended_at"),
            suspended_reason=row.get("suspended_reason"),
            spend_watch_after=row.get("spend_watch_after"),
        )

    def allows(self, model: str) -> bool:
        return self.models is None or model in self.models

    def grants(self, scope: str) -> bool:
        """Whether the key holds `scope`, directly or through one that implies it."""
        return scope in self.scopes or any(scope in _IMPLIED.get(s, ()) for s in self.scopes)

    def may_read_prompt(self, name: str, served: Iterable[tuple[str, Iterable[str]]]) -> bool:
        """Whether the key may read prompt `name`. `served` lists (route, the prompts its
        releases use): the ones it may call count."""
        if self.grants("evals") or (self.models is None and self.prompts is None):
            return True
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in self.prompts or ()):
            return True
        return any(name in prompts for route, prompts in served if self.allows("route:" + route))

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
            "scopes": sorted(self.scopes),
            "prompts": list(self.prompts) if self.prompts is not None else None,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "disabled": self.disabled,
            "suspended": self.suspended_at is not None,
            "suspended_at": self.suspended_at.isoformat() if self.suspended_at else None,
            "suspended_reason": self.suspended_reason,
            "created_at": self.created_at.isoformat(),
        }


def load_keys(
    conn: Connection,
    ids: Collection[str] | None = None,
    current: Mapping[str, ApiKey] | None = None,
) -> Loaded[ApiKey]:
    """The snapshot's key set, by the hash of each secret: every key, or (incremental)
    the keys in `ids`, with None for a listed key that is gone from `current`. A damaged
    key is kept under its hash when that can be read, so its calls get an error naming
    the problem instead of "invalid API key"; its problem is reported under its id."""
    loaded: Loaded[ApiKey] = Loaded()
    damaged: dict[str, str] = {}
    found: set[str] = set()
    for key_id, row, unreadable in key_rows.keys_checked(conn, ids):
        found.add(str(key_id))
        try:
            if row is None:
                raise ValueError(unreadable)
            loaded.entries[row["key_hash"]] = ApiKey.from_row(row)
        except (KeyError, TypeError, ValueError) as exc:
            damaged[str(key_id)] = f"API key {key_id} cannot be loaded: {exc}"
            loaded.quarantine(str(key_id), Quarantined("key", str(key_id), damaged[str(key_id)]))
    for key_id, key_hash in key_rows.hashes(conn, list(damaged)).items():
        loaded.entries[key_hash] = ApiKey(
            id=key_id,
            name="(damaged)",
            prefix="",
            user=None,
            team=None,
            models=(),
            expires_at=None,
            disabled=False,
            created_at=_DAMAGED_CREATED_AT,
            problem=damaged[key_id],
        )
    if ids is not None and current is not None:
        gone = set(ids) - found  # a key's hash never changes; only a missing row moves it
        if gone:
            for key_hash, key in current.items():
                if key.id in gone:
                    loaded.entries[key_hash] = None
    return loaded


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
    if key.problem is not None:
        raise errors.ServiceUnavailable(
            f"{key.problem}; nothing else is affected",
            hint="ask an admin: `pilothouse keys list` shows the key; the server log names the fault",
            code="key_quarantined",
        )
    if key.disabled:
        raise errors.AuthenticationFailed(
            f"API key {key.prefix}… ({key.id}) is disabled", hint="ask an admin to enable it"
        )
    if key.suspended_at is not None:
        raise errors.PermissionDenied(
            f"API key {key.prefix}… ({key.id}) was suspended at "
            f"{key.suspended_at.isoformat(timespec='seconds')}: {key.suspended_reason}",
            hint="an admin can restore it: `pilothouse keys restore KEY --reason ...`",
            code="key_suspended",
        )
    if key.expired(now):
        raise errors.AuthenticationFailed(f"API key {key.prefix}… ({key.id}) has expired")
    return key


def authenticate_quietly(
    keys_by_hash: Mapping[str, ApiKey], authorization: bytes | str | None
) -> ApiKey | None:
    """The key a Bearer header names, if any, usable or not: for telling who called
    something that is refused anyway (never for letting a call through)."""
    secret = bearer_secret(authorization)
    return keys_by_hash.get(secret_hash(secret)) if secret is not None else None


def check_grants(scopes: Iterable[str] | None, prompts: Iterable[str] | None) -> None:
    """InvalidRequest for an unknown scope or a prompt pattern that is not one."""
    unknown = sorted(set(scopes or ()) - set(SCOPES))
    if unknown:
        raise errors.InvalidRequest(
            f"unknown scopes {', '.join(unknown)}; known: {', '.join(sorted(SCOPES))}",
            param="scopes",
        )
    for pattern in prompts or ():
        if not PROMPT_PATTERN.match(pattern):
            raise errors.InvalidRequest(
                f"invalid prompt pattern {pattern[:100]!r}: a prompt name, where * matches "
                "any run of characters and ? one (e.g. support-*)",
                param="prompts",
            )


def create_key(
    store: Store,
    *,
    name: str,
    user: str | None = None,
    team: str | None = None,
    models: list[str] | None = None,
    expires_at: datetime | None = None,
    scopes: list[str] | None = None,
    prompts: list[str] | None = None,
    actor: str = "admin",
) -> tuple[ApiKey, str]:
    """Create a key; return it with its secret, which is not stored and not shown again.
    `scopes` and `prompts` grant what it may do beyond calling its models and routes."""
    if not name.strip():
        raise errors.InvalidRequest("a key needs a non-empty name", param="name")
    check_grants(scopes, prompts)
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
        "scopes": sorted(set(scopes)) if scopes else None,
        "prompts": sorted(set(prompts)) if prompts else None,
        "expires_at": expires_at,
        "disabled": False,
        "created_at": datetime.now(UTC),
    }
    with store.write() as conn:
        key_rows.insert(conn, row)
        key = ApiKey.from_row(row)
        audit.record(conn, actor=actor, action="key.create", target=key.id, after=key.public())
        changes.bump(conn, ("key", key.id))
    return key, secret


def list_keys(store: Store, *, after: str | None = None, limit: int | None = None) -> list[ApiKey]:
    """Every key in creation order (or the page of `limit` after the key id `after`); a
    damaged one is listed with its problem instead of failing the list."""
    with store.connect() as conn:
        ids = key_rows.page_ids(conn, after, limit) if limit is not None else None
        keys = [k for k in load_keys(conn, ids).entries.values() if k is not None]
    if ids is not None:
        place = {key_id: index for index, key_id in enumerate(ids)}
        return sorted(keys, key=lambda k: place.get(k.id, len(place)))
    return sorted(keys, key=lambda k: (k.created_at, k.id))


def find_key_row(conn: Connection, id_or_name: str, *, lock: bool = False) -> dict[str, Any]:
    """The row of the key with this id, or the one key with this name; NotFound/Conflict."""
    row = key_rows.get(conn, id_or_name, lock=lock)
    if row is None:
        matches = key_rows.find_by_name(conn, id_or_name)
        if len(matches) > 1:
            ids = ", ".join(m["id"] for m in matches)
            raise errors.Conflict(
                f"{len(matches)} keys are named {id_or_name!r} ({ids}); use the key id"
            )
        row = key_rows.get(conn, matches[0]["id"], lock=lock) if matches else None
    if row is None:
        raise errors.NotFound(
            f"no API key with id or name {id_or_name!r}", hint="`pilothouse keys list` shows them"
        )
    return row


def resolve_key(store: Store, id_or_name: str) -> ApiKey:
    """Find a key by id, or by name when exactly one key has it."""
    with store.connect() as conn:
        return ApiKey.from_row(find_key_row(conn, id_or_name))


def set_disabled(
    store: Store,
    id_or_name: str,
    disabled: bool,
    *,
    actor: str = "admin",
    reason: str | None = None,
) -> ApiKey:
    """Disable or enable a key; every gateway instance obeys on its next snapshot swap."""
    with store.write() as conn:
        row = find_key_row(
            conn, id_or_name, lock=True
        )  # locked: `before` is exact under concurrent writers
        key_rows.set_disabled(conn, row["id"], disabled)
        audit.record(
            conn,
            actor=actor,
            action="key.disable" if disabled else "key.enable",
            target=row["id"],
            before={"disabled": bool(row["disabled"])},
            after={"disabled": disabled},
            reason=reason,
        )
        changes.bump(conn, ("key", row["id"]))
        return ApiKey.from_row({**row, "disabled": disabled})


def suspend(
    store: Store, key_id: str, reason: str, *, at: datetime, actor: str = "spend-watch"
) -> ApiKey | None:
    """Suspend a key (its calls get 403 `key_suspended` on every instance after the next
    snapshot swap); None when it was already suspended."""
    with store.write() as conn:
        row = find_key_row(conn, key_id, lock=True)
        if row["suspended_at"] is not None:
            return None
        key_rows.set_suspension(conn, row["id"], at, reason[:2000], row["spend_watch_after"])
        audit.record(
            conn,
            actor=actor,
            action="key.suspend",
            target=row["id"],
            before={"suspended": False},
            after={"suspended": True, "suspended_at": at.isoformat()},
            reason=reason,
        )
        changes.bump(conn, ("key", row["id"]))
        return ApiKey.from_row({**row, "suspended_at": at, "suspended_reason": reason[:2000]})


def restore(
    store: Store, id_or_name: str, reason: str, *, at: datetime, actor: str = "admin"
) -> ApiKey:
    """Lift a suspension; the spend watch judges only spend after `at` from now on."""
    if not reason.strip():
        raise errors.InvalidRequest("restoring a key needs a reason", param="reason")
    with store.write() as conn:
        row = find_key_row(conn, id_or_name, lock=True)
        if row["suspended_at"] is None:
            raise errors.Conflict(
                f"API key {row['id']} is not suspended",
                hint="`pilothouse keys enable KEY` lifts a manual disable",
            )
        key_rows.set_suspension(conn, row["id"], None, None, at)
        audit.record(
            conn,
            actor=actor,
            action="key.restore",
            target=row["id"],
            before={"suspended": True, "suspended_reason": row["suspended_reason"]},
            after={"suspended": False},
            reason=reason,
        )
        changes.bump(conn, ("key", row["id"]))
        return ApiKey.from_row(
            {**row, "suspended_at": None, "suspended_reason": None, "spend_watch_after": at}
        )
