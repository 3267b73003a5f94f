"""Bearer credentials, read once for every door (gateway, admin API, dashboard).

Secrets are 32 random bytes, so a single SHA-256 is a safe hash to store and a fast one to
check on every request against the in-memory key set.
"""

from __future__ import annotations

import hashlib


def bearer_secret(authorization: bytes | str | None) -> bytes | None:
    """The secret of an `Authorization: Bearer <secret>` header, or None."""
    if not authorization:
        return None
    raw = authorization.encode("latin-1") if isinstance(authorization, str) else authorization
    if raw[:7].lower() != b"bearer ":
        return None
    secret = raw[7:].strip()
    return secret or None


def secret_hash(secret: bytes | str) -> str:
    """The stored form of a secret (hex SHA-256)."""
    return hashlib.sha256(secret.encode() if isinstance(secret, str) else secret).hexdigest()
