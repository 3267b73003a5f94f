"""The one error hierarchy. Each error knows its HTTP status and stable `type`; the API
layers turn it into a JSON body (OpenAI's shape on /v1, ours on /api)."""

from __future__ import annotations


class PilothouseError(Exception):
    """Base error: a message for humans, a stable `type`, and optional advice."""

    status = 500
    type = "internal_error"

    def __init__(self, message: str, *, hint: str | None = None, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.param = param


class InvalidRequest(PilothouseError):
    status = 400
    type = "invalid_request_error"


class AuthenticationFailed(PilothouseError):
    status = 401
    type = "authentication_error"


class PermissionDenied(PilothouseError):
    status = 403
    type = "permission_error"


class NotFound(PilothouseError):
    status = 404
    type = "not_found_error"


class Conflict(PilothouseError):
    status = 409
    type = "conflict_error"


class Gone(PilothouseError):
    status = 410
    type = "model_retired"


class PayloadTooLarge(PilothouseError):
    status = 413
    type = "request_too_large"


class ServiceUnavailable(PilothouseError):
    status = 503
    type = "service_unavailable"
