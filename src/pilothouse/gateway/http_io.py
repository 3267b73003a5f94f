"""Reading requests and writing responses on the raw ASGI interface, in OpenAI's shapes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from pilothouse import errors

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class ClientGone(Exception):
    """The client disconnected before the request was complete."""


async def read_body(
    receive: Receive, *, limit: int, content_length: int | None, timeout_seconds: float
) -> bytes:
    """The whole request body; refuses one larger than `limit` bytes without buffering it,
    and one that has not all arrived within `timeout_seconds` (RequestTimeout)."""
    # A bare timer, not asyncio.timeout: the body is nearly always in already.
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    timer = loop.call_later(timeout_seconds, task.cancel)
    try:
        return await _read_body(receive, limit, content_length)
    except asyncio.CancelledError:
        if timer.when() > loop.time():
            raise  # cancelled by something else (the shutdown deadline)
        task.uncancel()
        raise errors.RequestTimeout(
            f"the request body did not arrive within {timeout_seconds:g} s",
            hint="check that Content-Length matches the body you send",
        ) from None
    finally:
        timer.cancel()


async def _read_body(receive: Receive, limit: int, content_length: int | None) -> bytes:
    if content_length is not None and content_length > limit:
        raise too_large(content_length, limit)
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        if len(body) > limit:
            raise too_large(len(body), limit)
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        part = message.get("body", b"")
        size += len(part)
        if size > limit:
            raise too_large(size, limit)
        parts.append(part)
    return b"".join(parts)


def too_large(size: int, limit: int) -> errors.PayloadTooLarge:
    return errors.PayloadTooLarge(
        f"request body is {size} bytes; the limit is {limit} bytes",
        hint="send a smaller request, or raise gateway.max_body_bytes in the config file",
    )


# How deep a request body may nest. What a client sends is written out again (upstream,
# in the Responses door's answers, in the output signals' schema checks) with a few levels
# of the gateway's own around it, and orjson writes at most 254 levels: a deeper body
# would fail once accepted (after the upstream call, its cost paid) instead of here.
MAX_JSON_DEPTH = 200
_WRITABLE_DEPTH = 254  # orjson.dumps' own limit


class _DepthProbe(threading.local):
    """A chain of `_WRITABLE_DEPTH - MAX_JSON_DEPTH` lists, built once per thread: a value
    written at its bottom reaches orjson's limit only when it nests more than
    MAX_JSON_DEPTH levels, so the check is one serialization in C, no walk in Python."""

    def __init__(self) -> None:
        self.bottom: list[Any] = [None]
        top = self.bottom
        for _ in range(_WRITABLE_DEPTH - MAX_JSON_DEPTH - 1):
            top = [top]
        self.top = top

    def too_deep(self, value: Any) -> bool:
        self.bottom[0] = value
        try:
            orjson.dumps(self.top)
        except orjson.JSONEncodeError as exc:
            if "Recursion" not in str(exc):
                raise
            return True
        finally:
            self.bottom[0] = None
        return False


_depth = _DepthProbe()


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Parse a JSON object body; the error says where the JSON broke."""
    if not body:
        raise errors.InvalidRequest(
            "the request body is empty; send a JSON object",
            hint='e.g. {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}',
        )
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise errors.InvalidRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise errors.InvalidRequest(
            f"the request body must be a JSON object, got {type(payload).__name__}"
        )
    # Nesting deeper than MAX_JSON_DEPTH takes two bytes a level: a shorter body cannot.
    if len(body) > 2 * MAX_JSON_DEPTH and _depth.too_deep(payload):
        raise errors.InvalidRequest(
            f"the request body nests more than {MAX_JSON_DEPTH} levels deep",
            hint="no API this gateway serves needs that depth: flatten the deepest value "
            "(a schema, metadata, a tool's parameters)",
        )
    return payload


def openai_error_body(
    message: str,
    type_: str,
    *,
    param: str | None = None,
    code: str | None = None,
    **extra: Any,
) -> bytes:
    error: dict[str, Any] = {"message": message, "type": type_, "param": param, "code": code}
    error.update({k: v for k, v in extra.items() if v is not None})
    return orjson.dumps({"error": error})


async def send_json(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *JSON_HEADERS,
                (b"content-length", str(len(body)).encode()),
                *(headers or ()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def error_body(exc: errors.PilothouseError) -> bytes:
    """OpenAI's error shape for any of our errors, so the official SDKs raise the matching
    exception. A provider's own `type`, `code` and `param` pass through as they were, and
    our message (which names the provider and quotes its message) goes beside them, with
    our classification under `pilothouse`."""
    message = f"{exc.message}. {exc.hint}" if exc.hint else exc.message
    extra: dict[str, Any] = dict(exc.details)
    provider = getattr(exc, "provider", None)
    if provider:
        extra["provider"] = provider
    upstream = getattr(exc, "upstream_error", None)
    if not upstream:
        return openai_error_body(message, exc.type, param=exc.param, code=exc.code, **extra)
    error: dict[str, Any] = {"message": message, "type": exc.type, "param": None, "code": None}
    error.update((k, v) for k, v in upstream.items() if k != "message")
    error.update(extra)
    error["pilothouse"] = {
        "error_class": exc.type,
        "upstream_status": getattr(exc, "upstream_status", None),
        "upstream_message": upstream.get("message"),
    }
    return orjson.dumps({"error": error})


def error_headers(exc: errors.PilothouseError) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in exc.headers.items()]


async def send_error(
    send: Send, exc: errors.PilothouseError, headers: list[tuple[bytes, bytes]]
) -> None:
    await send_json(send, exc.status, error_body(exc), [*headers, *error_headers(exc)])


async def wait_for_disconnect(receive: Receive) -> None:
    """Returns when the client goes away (after the body was read, receive() only says that)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
