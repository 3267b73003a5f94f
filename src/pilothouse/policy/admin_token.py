"""The admin token: from PILOTHOUSE_ADMIN_TOKEN, or generated once with only its hash kept."""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from pilothouse.policy.credentials import bearer_secret, secret_hash

TOKEN_FILE = "admin-token.sha256"


class AdminAuth:
    def __init__(self, token_sha256: str):
        self._hash = token_sha256

    def derived_key(self, purpose: str) -> bytes:
        """A secret for `purpose` (e.g. signing dashboard sessions) that changes whenever
        the admin token does, so rotating the token ends every session made with it."""
        return hmac.new(bytes.fromhex(self._hash), purpose.encode(), "sha256").digest()

    def check(self, authorization: bytes | str | None) -> bool:
        secret = bearer_secret(authorization)
        return secret is not None and hmac.compare_digest(secret_hash(secret), self._hash)


def load_or_create(data_dir: Path, configured: str | None) -> tuple[AdminAuth, str | None]:
    """The admin check, plus the new token when one was generated (to print once)."""
    if configured:
        return AdminAuth(secret_hash(configured)), None
    path = data_dir / TOKEN_FILE
    if path.exists():
        return AdminAuth(path.read_text().strip()), None
    token = "pha-" + secrets.token_urlsafe(32)
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret_hash(token) + "\n")
    return AdminAuth(secret_hash(token)), token
