"""Who is calling the admin API, resolved in one place: the admin token, an application
key (from the same snapshot the gateway serves from), or nobody."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.requests import Request

from pilothouse import errors
from pilothouse.policy.keys import ApiKey, authenticate
from pilothouse.services import Services

ACTOR_HEADER = "x-pilothouse-actor"
MAX_ACTOR_CHARS = 200


class Access(enum.Enum):
    PUBLIC = "public"  # /healthz, /readyz, /metrics
    READER = "reader"  # the admin token or an enabled application key
    ADMIN = "admin"  # the admin token


@dataclass(frozen=True, slots=True)
class Principal:
    admin: bool
    key: ApiKey | None
    actor: str  # what the audit trail records


def authorize(request: Request, services: Services, access: Access) -> Principal | None:
    """The caller, if `access` admits them; AuthenticationFailed otherwise."""
    if access is Access.PUBLIC:
        return None
    authorization = request.headers.get("authorization")
    if services.admin_auth.check(authorization):
        return Principal(admin=True, key=None, actor=_actor(request))
    if access is Access.ADMIN:
        raise errors.AuthenticationFailed(
            "admin token missing or wrong",
            hint="send `Authorization: Bearer $PILOTHOUSE_ADMIN_TOKEN`",
        )
    try:
        key = authenticate(services.snapshot.keys_by_hash, authorization, datetime.now(UTC))
    except errors.AuthenticationFailed as exc:
        raise errors.AuthenticationFailed(
            f"an API key or the admin token is required: {exc.message}",
            hint="send `Authorization: Bearer <key>`",
        ) from None
    return Principal(admin=False, key=key, actor=f"key:{key.id}")


def _actor(request: Request) -> str:
    """The admin may say who they are (the CLI sends the OS user); printable, bounded."""
    given = request.headers.get(ACTOR_HEADER, "")
    cleaned = "".join(ch for ch in given if ch.isprintable()).strip()[:MAX_ACTOR_CHARS]
    return cleaned or "admin"
