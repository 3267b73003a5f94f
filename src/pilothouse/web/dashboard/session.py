"""Signing in to the dashboard: the admin token, once, for a signed session cookie
(HttpOnly, Secure, SameSite=Strict); and a CSRF token for every state-changing form.

The cookie holds no secret: `expires.nonce.signature`, signed with a key derived from the
admin token, so rotating the token ends every session. The CSRF token is the session's
nonce signed for another purpose; a form post without it (or from another origin) is
refused.
"""

from __future__ import annotations

import hmac
import secrets
import time

from starlette.requests import Request
from starlette.responses import Response

from pilothouse.policy import admin_token
from pilothouse.services import Services
from pilothouse.web.auth import Principal

COOKIE = "pilothouse_session"
SESSION_SECONDS = 12 * 3600


def _key(services: Services) -> bytes | None:
    """The signing key, or None while the deployment has no usable admin token."""
    token_hash = services.snapshot.admin_token_sha256
    return admin_token.derived_key(token_hash, "dashboard-session") if token_hash else None


def token_ok(services: Services, token: str) -> bool:
    """Whether `token` is this deployment's admin token (the sign-in form)."""
    return admin_token.check(services.snapshot.admin_token_sha256, f"Bearer {token}")


def _sign(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), "sha256").hexdigest()


def start(response: Response, services: Services, request: Request) -> None:
    """Sign the caller in (after checking the admin token): set the session cookie."""
    key = _key(services)
    assert key is not None, "sign-in checked the admin token first"
    expires = int(time.time()) + SESSION_SECONDS
    payload = f"{expires}.{secrets.token_urlsafe(18)}"
    response.set_cookie(
        COOKIE,
        f"{payload}.{_sign(key, payload)}",
        max_age=SESSION_SECONDS,
        httponly=True,
        secure=True,
        samesite="strict",
        path="/",
    )


def end(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")


def _nonce(request: Request, services: Services) -> str | None:
    """The session's nonce if its cookie is valid and unexpired, else None."""
    raw = request.cookies.get(COOKIE, "")
    parts = raw.split(".")
    if len(parts) != 3 or not parts[0].isdigit():
        return None
    expires, nonce, signature = parts
    key = _key(services)
    if key is None or not hmac.compare_digest(signature, _sign(key, f"{expires}.{nonce}")):
        return None
    if int(expires) < time.time():
        return None
    return nonce


def principal(request: Request, services: Services) -> Principal | None:
    """The signed-in admin, or None."""
    if _nonce(request, services) is None:
        return None
    return Principal(admin=True, key=None, actor="dashboard")


def csrf_token(request: Request, services: Services) -> str:
    nonce = _nonce(request, services)
    key = _key(services)
    return _sign(key, f"csrf.{nonce}") if nonce and key else ""


def csrf_ok(request: Request, services: Services, given: str | None) -> bool:
    """A form post carries this session's token and comes from this origin."""
    expected = csrf_token(request, services)
    if not expected or not given or not hmac.compare_digest(expected, given):
        return False
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"
