"""The one error hierarchy. Each error knows its HTTP status, a stable `type`, and may carry
response headers (`Retry-After`, quota headers) and structured details. The API layers turn
it into a response in one place each: OpenAI's shape on /v1 (`gateway/http_io.py`), ours on
/api (`web/rendering.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class PilothouseError(Exception):
    """Base error: a message for humans, a stable `type`, and optional advice.

    `headers` go on the response as they are; `details` are merged into the error object
    (for example a quota's limit and reset time), so clients can act on them.
    """

    status = 500
    type = "internal_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        details: Mapping[str, Any] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.param = param
        if code is not None:
            self.code = code
        self.headers: Mapping[str, str] = headers or {}
        self.details: Mapping[str, Any] = details or {}


class InvalidRequest(PilothouseError):
    status = 400
    type = "invalid_request_error"


class AuthenticationFailed(PilothouseError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(PilothouseError):
    status = 403
    type = "permission_error"


class NotFound(PilothouseError):
    status = 404
    type = "not_found_error"


class MethodNotAllowed(PilothouseError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class Conflict(PilothouseError):
    status = 409
    type = "conflict_error"


class Gone(PilothouseError):
    status = 410
    type = "model_retired"


class PayloadTooLarge(PilothouseError):
    status = 413
    type = "request_too_large"
    code = "request_too_large"


class RequestTimeout(PilothouseError):
    status = 408
    type = "request_timeout"
    code = "request_timeout"


class QuotaExceeded(PilothouseError):
    """A hard quota limit would be passed: 429 with Retry-After, RateLimit headers, and
    the quota, its limit, what was used and when it resets in `details`."""

    status = 429
    type = "quota_exceeded"
    code = "quota_exceeded"


class ServiceUnavailable(PilothouseError):
    status = 503
    type = "service_unavailable"
