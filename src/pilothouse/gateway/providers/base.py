"""The narrow interface every provider adapter implements.

An adapter takes an OpenAI-shaped request (the parsed client body) and returns an
OpenAI-shaped answer: bytes for a whole completion, or a stream of SSE frames in OpenAI's
`chat.completion.chunk` format. Failures are `UpstreamError`s with a classification; the
gateway maps the class to the status and body the client sees.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0


class ErrorClass:
    """Stable names for how an upstream call failed (log column `error_class`)."""

    TIMEOUT = "timeout"  # no answer in time → 504
    RATE_LIMITED = "rate_limited"  # upstream 429 → 429 with Retry-After
    UPSTREAM_5XX = "upstream_5xx"  # upstream 5xx → 502
    MALFORMED = "malformed"  # 200 with a body that is not what the API promises → 502
    TRUNCATED = "truncated"  # stream ended without its final event → error event
    CONNECT = "connect_error"  # could not reach the provider → 502
    UPSTREAM_4XX = "upstream_4xx"  # the provider refused the request → same 4xx


_STATUS = {
    ErrorClass.TIMEOUT: 504,
    ErrorClass.RATE_LIMITED: 429,
    ErrorClass.UPSTREAM_5XX: 502,
    ErrorClass.MALFORMED: 502,
    ErrorClass.TRUNCATED: 502,
    ErrorClass.CONNECT: 502,
}


class UpstreamError(Exception):
    """A provider call that failed; `status` is what the client should get."""

    def __init__(
        self,
        error_class: str,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        retry_after: str | None = None,
        upstream_status: int | None = None,
    ):
        super().__init__(message)
        self.error_class = error_class
        self.message = message
        self.provider = provider
        self.status = status or _STATUS.get(error_class, 502)
        self.retry_after = retry_after
        self.upstream_status = upstream_status


@dataclass(slots=True)
class ChatResult:
    """A whole (non-streamed) chat completion, already in OpenAI's JSON shape."""

    body: bytes
    usage: Usage
    finish_reason: str | None


@dataclass(slots=True)
class EmbeddingResult:
    body: bytes
    usage: Usage


class EventKind(IntEnum):
    OTHER = 0  # role-only chunk, tool-call metadata, ...
    CONTENT = 1  # carries content or tool-call argument text: the first one is TTFT
    USAGE_ONLY = 2  # the `include_usage` chunk (empty choices, usage set)
    DONE = 3  # `data: [DONE]`


@dataclass(slots=True)
class StreamEvent:
    data: bytes  # one whole SSE frame, e.g. b'data: {...}\n\n'
    kind: EventKind


class ChatStream(Protocol):
    """An open upstream stream. Iterate for frames; read the counters at the end.

    Iteration raises `UpstreamError` (TRUNCATED, MALFORMED, TIMEOUT) when the upstream
    fails mid-stream. `aclose()` releases the connection and is safe to call twice.
    """

    usage: Usage | None
    finish_reason: str | None
    chunks_in: int

    def __aiter__(self) -> AsyncIterator[StreamEvent]: ...

    def batches(self) -> AsyncIterator[list[StreamEvent]]:
        """The same events, grouped by the upstream read they arrived in (for one write)."""
        ...

    async def aclose(self) -> None: ...


class Provider(Protocol):
    """One configured provider. `model` is the provider's own model id."""

    name: str

    async def chat(self, body: dict[str, Any], model: str) -> ChatResult: ...

    async def chat_stream(self, body: dict[str, Any], model: str) -> ChatStream:
        """Open a stream; raises UpstreamError if the upstream refuses before streaming."""
        ...

    async def embeddings(self, body: dict[str, Any], model: str) -> EmbeddingResult: ...

    async def close(self) -> None: ...
