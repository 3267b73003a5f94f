"""The admin token: one per deployment. Only its SHA-256 is kept, in the shared store (the
`settings` table), so every instance on the same database accepts the same token, and a
rotation reaches every instance with the configuration snapshot (within a second).

Where the first token comes from, on the first start against a store that has none:
PILOTHOUSE_ADMIN_TOKEN when set; else the hash file an older Pilothouse kept in the data
dir (moved into the store); else a new token, printed once. Once the store has a token,
PILOTHOUSE_ADMIN_TOKEN only seeds: a different value is not accepted (two tokens would
both open the door, and a restart could undo a rotation); every start says so loudly.
Nobody is locked out: `pilothouse admin reset-token` (run where the database is
reachable, like `pilothouse db`) sets a new one, or adopts the environment's.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection

from pilothouse.policy.credentials import bearer_secret, secret_hash
from pilothouse.quarantine import Loaded, Quarantined
from pilothouse.store import Store, audit, changes
from pilothouse.store import settings as setting_rows

log = logging.getLogger("pilothouse.admin_token")

SETTING = "admin_token_sha256"
TOKEN_FILE = "admin-token.sha256"  # where Pilothouse up to 0.1 kept the hash, per data dir
TOKEN_PREFIX = "pha-"
_HASH = re.compile(r"^[0-9a-f]{64}$")


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def check(token_sha256: str | None, authorization: bytes | str | None) -> bool:
    """Whether a Bearer header carries the admin token whose hash is `token_sha256`."""
    secret = bearer_secret(authorization)
    if secret is None or token_sha256 is None:
        return False
    return hmac.compare_digest(secret_hash(secret), token_sha256)


def derived_key(token_sha256: str, purpose: str) -> bytes:
    """A secret for `purpose` (e.g. signing dashboard sessions) that changes whenever the
    admin token does, so rotating the token ends everything made with the old one."""
    return hmac.new(bytes.fromhex(token_sha256), purpose.encode(), "sha256").digest()


def load_admin_hash(conn: Connection, names: Collection[str] | None = None) -> Loaded[str]:
    """The snapshot's settings part: the stored admin token hash under SETTING (None: no
    usable admin token). `names` is what a change touched; only SETTING is loaded."""
    loaded: Loaded[str] = Loaded()
    if names is not None and SETTING not in names:
        return loaded
    value = setting_rows.get(conn, SETTING)
    if value is None or _HASH.match(value.strip()):
        loaded.entries[SETTING] = value.strip() if value else None
        return loaded
    problem = (
        "the stored admin token hash is not a SHA-256 hex digest: no admin token is accepted; "
        "run `pilothouse admin reset-token` where the database is reachable"
    )
    loaded.entries[SETTING] = None
    loaded.quarantine(SETTING, Quarantined("setting", SETTING, problem))
    return loaded


@dataclass
class Startup:
    """What `prepare` did: a token to print once, and warnings to show at every start."""

    new_token: str | None = None
    source: str = "store"
    warnings: list[str] = field(default_factory=list)


def prepare(store: Store, data_dir: Path, configured: str | None) -> Startup:
    """Make sure the store has the deployment's admin token (see the module docstring)."""
    path = data_dir / TOKEN_FILE
    legacy = path.read_text().strip() if path.is_file() else None
    startup = Startup()
    with store.connect() as conn:  # the usual case, read only: a start never waits on a lock
        stored = setting_rows.get(conn, SETTING)
    if stored is None:
        stored = _seed(store, path, legacy, configured, startup)
    if configured and stored is not None and secret_hash(configured) != stored:
        startup.warnings.append(
            "PILOTHOUSE_ADMIN_TOKEN is not this deployment's admin token (the one stored in "
            "the database is, and was set or rotated since): it is ignored. Use the current "
            "token, or run `pilothouse admin reset-token --from-env` to make this one the "
            "deployment's token."
        )
    if legacy is not None:
        if legacy == stored:
            path.unlink(missing_ok=True)  # now kept in the store
        else:
            startup.warnings.append(
                f"{path} holds another admin token's hash, which is ignored: the deployment's "
                "admin token is kept in the database. Delete the file."
            )
    for warning in startup.warnings:
        log.error(warning)
    return startup


def _seed(
    store: Store, path: Path, legacy: str | None, configured: str | None, startup: Startup
) -> str | None:
    """The first start against this database: store the deployment's admin token hash
    (from PILOTHOUSE_ADMIN_TOKEN, an old data dir's hash file, or a new token)."""
    with store.write() as conn:
        stored = setting_rows.get(conn, SETTING, lock=True)
        if stored is not None:
            return stored  # another instance seeded it meanwhile: theirs is the deployment's
        if configured:
            digest, startup.source = secret_hash(configured), "PILOTHOUSE_ADMIN_TOKEN"
        elif legacy and _HASH.match(legacy):
            digest, startup.source = legacy, f"the hash file {path} (moved into the store)"
        else:
            startup.new_token = new_token()
            digest, startup.source = secret_hash(startup.new_token), "generated"
        if setting_rows.insert_if_absent(conn, SETTING, digest, "serve"):
            _audit(conn, "admin.token_seed", f"first admin token, from {startup.source}")
            changes.bump(conn, ("setting", SETTING))
            return digest
        startup.new_token, startup.source = None, "store"  # lost a race to another instance
        return setting_rows.get(conn, SETTING)


def rotate(store: Store, *, actor: str, reason: str | None = None) -> str:
    """A new admin token for the whole deployment; the old one stops working everywhere
    with the next snapshot (within a second). Returns the token (shown once)."""
    token = new_token()
    _store(store, secret_hash(token), actor, "admin.token_rotate", reason)
    return token


def reset(store: Store, token: str | None, *, actor: str, reason: str | None = None) -> str:
    """Break glass: set the admin token without the current one (this needs the database).
    `token` (e.g. PILOTHOUSE_ADMIN_TOKEN) is adopted, else a new one is made; returns it."""
    token = token or new_token()
    _store(store, secret_hash(token), actor, "admin.token_reset", reason)
    return token


def _store(store: Store, digest: str, actor: str, action: str, reason: str | None) -> None:
    with store.write() as conn:
        setting_rows.get(conn, SETTING, lock=True)
        setting_rows.put(conn, SETTING, digest, actor)
        _audit(conn, action, reason, actor)
        changes.bump(conn, ("setting", SETTING))


def _audit(conn: Connection, action: str, reason: str | None, actor: str = "serve") -> None:
    # The hash is never recorded: the audit trail is readable by more people than the token.
    audit.record(conn, actor=actor, action=action, target=f"setting:{SETTING}", reason=reason)
