"""Answers for paths and methods the gateway does not serve, each with a bounded kind for
the `pilothouse_unserved_requests` metric (never the path itself, which the client chose).

Every answer is a clean error in OpenAI's shape saying what is served instead (both
official SDKs read its `error.message`); `/v1/messages/count_tokens`, which only the
anthropic SDK calls, answers in Anthropic's shape.
"""

from __future__ import annotations

import logging

from pilothouse import errors
from pilothouse.gateway.doors.messages import error_body as anthropic_error_body
from pilothouse.gateway.headers import RequestHeaders
from pilothouse.gateway.http_io import Headers, Scope, Send, openai_error_body, send_json
from pilothouse.policy.keys import authenticate_quietly
from pilothouse.snapshot import Snapshot
from pilothouse.telemetry.metrics import Metrics

log = logging.getLogger("pilothouse.gateway")

# The kinds, in the order they are tried; the first whose prefix matches names the path.
_KINDS = (
    ("/v1/v1/", "doubled_v1"),
    ("/v1/responses/", "stored_responses"),
    ("/v1/messages/count_tokens", "count_tokens"),
    ("/v1/messages/batches", "batches"),
    ("/v1/batches", "batches"),
    ("/v1/files", "files"),
    ("/v1/completions", "legacy_completions"),
    ("/v1/audio/", "audio"),
    ("/v1/images/", "images"),
    ("/v1/chat/completions/", "stored_completions"),
    ("/v1/models/", "models"),
)
KINDS = frozenset(kind for _, kind in _KINDS) | {"other", "wrong_method"}


def path_kind(path: str) -> str:
    for prefix, kind in _KINDS:
        if path.startswith(prefix):
            return kind
    return "other"


def unserved_answer(
    path: str, served: list[str], *, method: str | None = None
) -> tuple[str, bytes]:
    """(kind, body) for a path the gateway does not serve, or (with `method`, the one it
    takes) a served path called with another method."""
    shown = path[:120]
    if method is not None:
        return "wrong_method", openai_error_body(
            f"{shown} takes {method}", "invalid_request_error", code="method_not_allowed"
        )
    kind = path_kind(path)
    where = ", ".join(served)
    if kind == "doubled_v1":
        message = (
            f"unknown endpoint {shown}: the path has /v1 twice. Your client's base URL "
            "probably ends in /v1 and the client adds /v1 again; set the base URL to the "
            "gateway's root (the anthropic SDK) or to its /v1 (the openai SDK)"
        )
    elif kind == "stored_responses":
        message = (
            f"unknown endpoint {shown}: under /v1/responses/ this gateway serves GET and "
            "DELETE /v1/responses/{id} and GET /v1/responses/{id}/input_items (background "
            "responses are not supported, so there is nothing to cancel)"
        )
    elif kind == "count_tokens":
        error = errors.NotFound(
            "POST /v1/messages/count_tokens is not supported by this gateway yet: it "
            "cannot count tokens for every provider honestly",
            hint="the `usage` of a /v1/messages answer reports the tokens a request used",
            code="not_supported",
        )
        return kind, anthropic_error_body(error)
    else:
        message = f"unknown endpoint {shown}; this gateway serves {where}"
    return kind, openai_error_body(message, "not_found_error", code="unknown_endpoint")


async def send_unserved(
    scope: Scope,
    send: Send,
    status: int,
    answer: tuple[str, bytes],
    metrics: Metrics,
    snapshot: Snapshot,
    headers: Headers | None = None,
) -> None:
    """A path or method the gateway does not serve (`answer`: `unserved_answer`'s): counted
    by its kind (a bounded label, never the path), logged at debug level with the key when
    one was sent, and answered with a clean error."""
    kind, body = answer
    metrics.unserved.labels(kind).inc()
    if log.isEnabledFor(logging.DEBUG):
        request = RequestHeaders.of(scope)
        authorization = request.authorization
        if authorization is None and request.api_key:
            authorization = b"Bearer " + request.api_key
        key = authenticate_quietly(snapshot.keys_by_hash, authorization)
        log.debug(
            "unserved request: %s %s",
            scope["method"],
            scope["path"][:200],
            extra={"path_kind": kind, "key_id": key.id if key else None},
        )
    await send_json(send, status, body, headers)
