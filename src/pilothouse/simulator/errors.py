"""Error bodies in each provider's own shape, and the JSON response helper.

OpenAI: `{"error": {"message", "type", "param", "code"}}`.
Anthropic: `{"type": "error", "error": {"type", "message"}}`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any, Literal

import orjson
from starlette.requests import Request
from starlette.responses import Response

Api = Literal["openai", "anthropic"]

# Anthropic names its error types itself; OpenAI-style types map onto them by status.
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


class RequestError(Exception):
    """A request the simulator refuses, as the real provider would (status 400 by default)."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code
        self.kind = kind


def request_id(api: Api) -> tuple[str, str]:
    """A fresh (header name, value) request id as the provider would send it."""
    if api == "anthropic":
        return "request-id", f"req_sim{secrets.token_hex(10)}"
    return "x-request-id", f"req_{secrets.token_hex(16)}"


def json_response(
    payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON response serialised with orjson."""
    return Response(
        orjson.dumps(payload), status_code=status, media_type="application/json", headers=headers
    )


def error_response(
    api: Api, error: RequestError, headers: Mapping[str, str] | None = None
) -> Response:
    """Render `error` in `api`'s error shape, with a request id header."""
    name, value = request_id(api)
    all_headers = {name: value, **(headers or {})}
    if api == "anthropic":
        kind = _ANTHROPIC_TYPES.get(error.status, "api_error")
        body: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": error.message}}
    else:
        body = {
            "error": {
                "message": error.message,
                "type": error.kind,
                "param": error.param,
                "code": error.code,
            }
        }
    return json_response(body, status=error.status, headers=all_headers)


async def read_json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object; raises `RequestError` for anything else."""
    raw = await request.body()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RequestError(
            f"We could not parse the JSON body of your request: {exc}. "
            "(HINT: the body must be a JSON object.)"
        ) from None
    if not isinstance(data, dict):
        raise RequestError(f"The request body must be a JSON object, got {type(data).__name__}.")
    return data
