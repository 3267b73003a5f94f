"""How a request ended, as one word beside the HTTP status the client saw.

The status says what the client was told; the outcome says what happened. A stream that
sent 200 and was then cut by the provider is `upstream_truncated`, not `ok`.
"""

from __future__ import annotations

from pilothouse.providers.types import ErrorClass, UpstreamError

OK = "ok"  # answered in full
CLIENT_ERROR = "client_error"  # refused before any upstream call (auth, validation, ...)
UPSTREAM_ERROR = "upstream_error"  # the provider failed or refused (5xx, 429, timeout, ...)
UPSTREAM_TRUNCATED = "upstream_truncated"  # the provider's answer was cut short
UPSTREAM_MALFORMED = "upstream_malformed"  # a 200 that is not what the API promises
CLIENT_CANCELLED = "client_cancelled"  # the client left before the end (status 499)
SHUTDOWN_CUT = "shutdown_cut"  # this instance stopped before the answer was complete
GATEWAY_ERROR = "gateway_error"  # a fault of ours

ALL = (
    OK,
    CLIENT_ERROR,
    UPSTREAM_ERROR,
    UPSTREAM_TRUNCATED,
    UPSTREAM_MALFORMED,
    CLIENT_CANCELLED,
    SHUTDOWN_CUT,
    GATEWAY_ERROR,
)
FAILURES = frozenset(ALL) - {OK}


def of_upstream(exc: UpstreamError) -> str:
    """The outcome of a failed provider call. A provider refusing the request itself
    (400, 413, 422 passed through) is the client's error; everything else is upstream."""
    if exc.error_class == ErrorClass.TRUNCATED:
        return UPSTREAM_TRUNCATED
    if exc.error_class == ErrorClass.MALFORMED:
        return UPSTREAM_MALFORMED
    if exc.error_class == ErrorClass.UPSTREAM_4XX and exc.status < 500:
        return CLIENT_ERROR
    return UPSTREAM_ERROR


def of_status(status: int) -> str:
    """The outcome of one of our own refusals, by its status."""
    if status < 400:
        return OK
    return GATEWAY_ERROR if status >= 500 and status != 503 else CLIENT_ERROR
