"""Fault injection: error statuses, hung requests and broken bodies.

Streaming faults (`truncate`, `malformed`, `slow` on streams) live in `sse.py`;
this module covers what happens before or instead of a normal response body.
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from pilothouse.simulator.errors import Api, RequestError, error_response, request_id
from pilothouse.simulator.plan import Plan

ERROR_FAULTS = frozenset({"429", "500", "503"})

_OPENAI_ERRORS = {
    "429": (
        "Rate limit reached for requests (simulated). Please try again in {retry}s.",
        "requests",
        "rate_limit_exceeded",
    ),
    "500": (
        "The server had an error while processing your request. Sorry about that! (simulated)",
        "server_error",
        None,
    ),
    "503": (
        "The engine is currently overloaded, please try again later. (simulated)",
        "server_error",
        None,
    ),
}
_ANTHROPIC_MESSAGES = {
    "429": "Number of requests has exceeded your rate limit (simulated). Please try again in {retry}s.",
    "500": "Internal server error (simulated).",
    "503": "Overloaded (simulated).",
}


def simulator_headers(plan: Plan) -> dict[str, str]:
    """Headers telling a client how this response was shaped: planned TTFT, fault, drift phases."""
    headers = {"x-simulator-ttft-ms": f"{plan.ttft_s * 1000:.1f}"}
    if plan.fault is not None:
        headers["x-simulator-fault"] = plan.fault
    if plan.phases:
        headers["x-simulator-phases"] = ",".join(plan.phases)
    return headers


def error_fault_response(api: Api, plan: Plan) -> Response:
    """The error response for an error fault (`429`, `500`, `503`) in `api`'s shape.

    429 carries `Retry-After` (whole seconds) plus the provider's rate-limit headers.
    """
    fault = plan.fault or "500"
    status = int(fault)
    retry = plan.retry_after_s
    headers = simulator_headers(plan)
    if fault == "429":
        headers["retry-after"] = str(retry)
        if api == "anthropic":
            headers["anthropic-ratelimit-requests-remaining"] = "0"
        else:
            headers["x-ratelimit-remaining-requests"] = "0"
            headers["x-ratelimit-reset-requests"] = f"{retry}s"
    if api == "anthropic":
        error = RequestError(_ANTHROPIC_MESSAGES[fault].format(retry=retry), status=status)
    else:
        message, kind, code = _OPENAI_ERRORS[fault]
        error = RequestError(message.format(retry=retry), status=status, kind=kind, code=code)
    return error_response(api, error, headers)


class HoldUntilDisconnect(Response):
    """A response that never answers: it waits until the client goes away.

    Waiting on `receive()` costs nothing while other requests are served, and it
    returns as soon as the server sees the disconnect, so nothing leaks.
    """

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return


def malformed_body(body: bytes) -> bytes:
    """`body` with a syntax error near the start: same length class, never valid JSON."""
    if body.startswith(b"{"):
        return b"{'simulated': malformed, " + body[1:]
    return b"{" + body


def truncated_body(body: bytes) -> bytes:
    """The first half of `body`, as if the connection had been cut mid-transfer."""
    return body[: max(len(body) // 2, 1)]


def body_response(api: Api, body: bytes, plan: Plan, status: int = 200) -> Response:
    """A finished JSON body, broken as the plan's `malformed`/`truncate` fault demands."""
    if plan.fault == "malformed":
        body = malformed_body(body)
    elif plan.fault == "truncate":
        body = truncated_body(body)
    name, value = request_id(api)
    headers = {name: value, **simulator_headers(plan)}
    return Response(body, status_code=status, media_type="application/json", headers=headers)
