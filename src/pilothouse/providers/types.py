"""The narrow interface every provider adapter implements, and what flows through it.

An adapter takes an OpenAI-shaped request (the parsed client body) and returns an
OpenAI-shaped answer: bytes for a whole completion, or a stream of SSE frames in OpenAI's
`chat.completion.chunk` format. Failures are `UpstreamError`s with a classification; the
gateway maps the class to the status and body the client sees.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol

from pilothouse.errors import PilothouseError


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0


MAX_TOKENS = 2**31 - 1


def token_count(value: Any) -> int:
    """A usage field as a count: whatever a provider sent (a string, a float, a list, a
    negative number), never an exception; what is not a count reads as 0."""
    if type(value) is int:  # nearly always: one check instead of three
        return 0 if value <= 0 else min(value, MAX_TOKENS)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if value != value or value <= 0:  # NaN, zero, negative
        return 0
    return int(min(value, MAX_TOKENS))


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


class UpstreamError(PilothouseError):
    """A provider call that failed; `status` is what the client should get.

    `upstream_error` is the provider's own error object (`type`, `code`, `param`,
    `message`) when it sent one: the client gets those fields as they were, with ours
    beside them, so SDK users keep codes such as `context_length_exceeded`.
    """

    def __init__(
        self,
        error_class: str,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        retry_after: str | None = None,
        upstream_status: int | None = None,
        upstream_error: Mapping[str, Any] | None = None,
    ):
        super().__init__(
            message, headers={"retry-after": retry_after} if retry_after else None, code=error_class
        )
        self.type = error_class
        self.error_class = error_class
        self.provider = provider
        self.status = status or _STATUS.get(error_class, 502)
        self.retry_after = retry_after
        self.upstream_status = upstream_status
        self.upstream_error = upstream_error


class MalformedAnswer(ValueError):
    """An answer that is not what the provider's API promises (→ ErrorClass.MALFORMED)."""


class StreamErrorEvent(Exception):
    """The provider sent an error event mid-stream (e.g. Anthropic's `overloaded_error`)."""

    def __init__(self, error_type: str, message: str, error: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.error = error


@dataclass(slots=True)
class OutputSample:
    """A bounded sample of what the model said, for output signals: the first `limit`
    characters of text, the total length, and the tool calls (name and argument text,
    each bounded the same way). Filled by the codecs as answers are decoded."""

    limit: int = 8192
    text_parts: list[str] = field(default_factory=list)
    chars: int = 0
    refusal: str | None = None
    tool_calls: dict[int, list[str]] = field(default_factory=dict)  # index → [name, args]

    def add_text(self, text: str) -> None:
        if self.chars < self.limit:
            self.text_parts.append(text[: self.limit - self.chars])
        self.chars += len(text)

    def add_tool(self, index: int, name: str | None, arguments: str) -> None:
        call = self.tool_calls.setdefault(index, ["", ""])
        if name:
            call[0] = name
        if len(call[1]) < self.limit:
            call[1] += arguments[: self.limit - len(call[1])]

    @property
    def text(self) -> str:
        return "".join(self.text_parts)


@dataclass(slots=True)
class ChatResult:
    """A whole (non-streamed) chat completion, already in OpenAI's JSON shape."""

    body: bytes
    usage: Usage
    finish_reason: str | None
    sample: OutputSample = field(default_factory=OutputSample)
    # The completion `body` holds, when the codec parsed it anyway: the front doors read
    # it instead of parsing the body again. Never changed after it is made.
    completion: dict[str, Any] | None = None


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
    """One upstream event on its way to the client. An event is handed on once, from the
    decoder that made it to the relay: a front door's writer may rewrite `data` of an
    event handed to it (the door's frame for the same content, without a new object per
    token); `kind`, `chunk` and `text` always describe what the upstream sent."""

    data: bytes  # one whole SSE frame, e.g. b'data: {...}\n\n'
    kind: EventKind
    # The chat chunk `data` carries, when the decoder parsed it anyway: the front doors
    # read it instead of parsing the frame again. Never changed after it is made.
    chunk: dict[str, Any] | None = None
    # The text of a chunk that is nothing but text (one choice, a delta with only
    # `content`, no finish reason, no usage), when the decoder saw it: the most frequent
    # chunk, which a door then writes without reading the chunk again.
    text: str | None = None


class ChatStream(Protocol):
    """An open upstream stream. Iterate for frames; read the counters at the end.

    Iteration raises `UpstreamError` (TRUNCATED, MALFORMED, TIMEOUT) when the upstream
    fails mid-stream. `aclose()` releases the connection and is safe to call twice.
    """

    chunks_in: int

    @property
    def usage(self) -> Usage | None: ...

    @property
    def finish_reason(self) -> str | None: ...

    @property
    def sample(self) -> OutputSample: ...

    def __aiter__(self) -> AsyncIterator[StreamEvent]: ...

    def batches(self) -> AsyncIterator[list[StreamEvent]]:
        """The same events, grouped by the upstream read they arrived in (for one write)."""
        ...

    async def aclose(self) -> None: ...


class Provider(Protocol):
    """One configured provider. `model` is the provider's own model id."""

    name: str

    @property
    def can_embed(self) -> bool:
        """Whether this provider's API has an embeddings endpoint."""
        ...

    async def chat(self, body: dict[str, Any], model: str) -> ChatResult: ...

    async def chat_stream(self, body: dict[str, Any], model: str) -> ChatStream:
        """Open a stream; raises UpstreamError if the upstream refuses before streaming."""
        ...

    async def embeddings(self, body: dict[str, Any], model: str) -> EmbeddingResult: ...

    async def close(self) -> None: ...
