"""Turning what an endpoint returns into a response, in one place: JSON for the API (the
dashboard's pages will render the same data as HTML), and our error shape for every
error: `{"error": {"type", "message", "hint", "field", ...details}}`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from pilothouse import errors


@dataclass(frozen=True, slots=True)
class Result:
    """Data with a status other than 200, or extra headers."""

    data: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


def json_bytes(data: Any) -> bytes:
    try:
        return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # an integer beyond 64 bits in stored JSON: slower, never a 500
        return json.dumps(data, default=str, ensure_ascii=False).encode()


def render(request: Request, result: Any) -> Response:
    """The response for what a data function returned (a Response passes through)."""
    if isinstance(result, Response):
        return result
    if isinstance(result, Result):
        return Response(
            json_bytes(result.data),
            status_code=result.status,
            headers=result.headers,
            media_type="application/json",
        )
    return Response(json_bytes(result), media_type="application/json")


def error_response(exc: errors.PilothouseError) -> Response:
    body: dict[str, Any] = {"type": exc.type, "message": exc.message}
    if exc.hint:
        body["hint"] = exc.hint
    if exc.param:
        body["field"] = exc.param
    if exc.code and exc.code != exc.type:
        body["code"] = exc.code
    body.update(exc.details)
    return Response(
        json_bytes({"error": body}),
        status_code=exc.status,
        headers=dict(exc.headers),
        media_type="application/json",
    )
