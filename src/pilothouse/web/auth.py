"""Who is calling the admin API and what they may do, decided in one place: the admin token
(checked against the deployment's token hash in the snapshot, so every instance accepts the
same one and a rotation reaches all of them), an application key (from the same snapshot
the gateway serves from) with its scopes and prompt grants, or nobody."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.requests import Request

from pilothouse import errors
from pilothouse.policy import admin_token
from pilothouse.policy.keys import ApiKey, authenticate
from pilothouse.services import Services
from pilothouse.snapshot import Snapshot

ACTOR_HEADER = "x-pilothouse-actor"
MAX_ACTOR_CHARS = 200


class Access(enum.Enum):
    PUBLIC = "public"  # /healthz, /readyz, /metrics
    READER = "reader"  # the admin token or an enabled key (prompt reads are checked per name)
    ADMIN = "admin"  # the admin token
    # The admin token, or a key granted this scope (policy.keys.SCOPES):
    EVALS = "evals"
    ROUTES = "routes:read"
    HISTORY = "history:read"


@dataclass(frozen=True, slots=True)
class Principal:
    admin: bool
    key: ApiKey | None
    actor: str  # what the audit trail records

    def may_read_prompt(self, name: str, snapshot: Snapshot) -> bool:
        """The admin reads every prompt; a key those it was granted or its routes serve."""
        if self.admin:
            return True
        assert self.key is not None
        return self.key.may_read_prompt(name, _served(snapshot))

    def require_prompt(self, name: str, snapshot: Snapshot) -> None:
        """PermissionDenied unless the caller may read prompt `name` (whether it exists or
        not: the answer does not tell a key which prompts exist)."""
        if not self.may_read_prompt(name, snapshot):
            raise errors.PermissionDenied(
                f"this API key may not read prompt {name!r}: a key limited to some routes "
                "reads the prompts those routes serve, and the ones granted to it",
                hint="grant it with `pilothouse keys create --prompts PATTERN`, or use the "
                "admin token",
            )


def _served(snapshot: Snapshot) -> Iterator[tuple[str, frozenset[str]]]:
    for name, route in snapshot.routes.items():
        yield name, route.prompt_names()


def authorize(request: Request, services: Services, access: Access) -> Principal | None:
    """The caller, if `access` admits them; AuthenticationFailed or PermissionDenied
    otherwise."""
    if access is Access.PUBLIC:
        return None
    authorization = request.headers.get("authorization")
    snapshot = services.snapshot
    if admin_token.check(snapshot.admin_token_sha256, authorization):
        return Principal(admin=True, key=None, actor=_actor(request))
    if access is Access.ADMIN:
        raise errors.AuthenticationFailed(
            "admin token missing or wrong",
            hint="send `Authorization: Bearer $PILOTHOUSE_ADMIN_TOKEN`",
        )
    try:
        key = authenticate(snapshot.keys_by_hash, authorization, datetime.now(UTC))
    except errors.AuthenticationFailed as exc:
        raise errors.AuthenticationFailed(
            f"an API key or the admin token is required: {exc.message}",
            hint="send `Authorization: Bearer <key>`",
        ) from None
    if access is not Access.READER and not key.grants(access.value):
        raise errors.PermissionDenied(
            f"API key {key.id} lacks the `{access.value}` scope this needs",
            hint=f"use a key created with `pilothouse keys create --scopes {access.value}`, "
            "or the admin token",
        )
    return Principal(admin=False, key=key, actor=f"key:{key.id}")


def _actor(request: Request) -> str:
    """The admin may say who they are (the CLI sends the OS user); printable, bounded."""
    given = request.headers.get(ACTOR_HEADER, "")
    cleaned = "".join(ch for ch in given if ch.isprintable()).strip()[:MAX_ACTOR_CHARS]
    return cleaned or "admin"
