"""A provider over HTTP: one transport, one codec, the shared stream loop.

The adapter does the I/O every API shares (post, status check, JSON check, stream
opening); the codec is the only part that knows an API. Adding a provider API means
writing a codec.
"""

from __future__ import annotations

from typing import Any, Protocol

from pilothouse.providers.stream import StreamDecoder, UpstreamStream
from pilothouse.providers.transport import (
    Transport,
    UpstreamResponse,
    json_object,
    malformed,
    raise_for_status,
)
from pilothouse.providers.types import (
    ChatResult,
    EmbeddingResult,
    ErrorClass,
    MalformedAnswer,
    UpstreamError,
)


class Codec(Protocol):
    """One provider API: where to post, how to write a request, how to read an answer."""

    api: str  # "openai", "anthropic": names the API in messages
    chat_url: str
    embeddings_url: str | None  # None: this API cannot embed

    def chat_request(self, body: dict[str, Any], model: str, *, stream: bool) -> dict[str, Any]:
        """The provider's request for an OpenAI-shaped chat body (may raise InvalidRequest)."""
        ...

    def chat_answer(self, raw: bytes, data: dict[str, Any]) -> ChatResult:
        """An OpenAI-shaped completion for a 200 answer (may raise MalformedAnswer)."""
        ...

    def stream_decoder(self) -> StreamDecoder: ...

    def embeddings_request(self, body: dict[str, Any], model: str) -> dict[str, Any]: ...

    def embeddings_answer(self, raw: bytes, data: dict[str, Any]) -> EmbeddingResult: ...


class HttpProvider:
    """The `Provider` interface for any codec over any transport."""

    def __init__(self, name: str, codec: Codec, transport: Transport):
        self.name = name
        self.codec = codec
        self.transport = transport

    @property
    def can_embed(self) -> bool:
        return self.codec.embeddings_url is not None

    async def chat(self, body: dict[str, Any], model: str) -> ChatResult:
        response = await self.transport.post(
            self.codec.chat_url, self.codec.chat_request(body, model, stream=False)
        )
        raw = await response.read()
        if response.status != 200:
            raise_for_status(self.name, response.status, raw, response.headers)
        data = json_object(self.name, raw)
        try:
            return self.codec.chat_answer(raw, data)
        except MalformedAnswer as exc:
            raise malformed(self.name, str(exc)) from None

    async def chat_stream(self, body: dict[str, Any], model: str) -> UpstreamStream:
        response = await self.transport.post(
            self.codec.chat_url, self.codec.chat_request(body, model, stream=True)
        )
        await self._expect_stream(response)
        return UpstreamStream(self.name, response, self.codec.stream_decoder())

    async def embeddings(self, body: dict[str, Any], model: str) -> EmbeddingResult:
        url = self.codec.embeddings_url
        if url is None:
            raise UpstreamError(
                ErrorClass.UPSTREAM_4XX,
                f"provider {self.name!r} cannot embed: the {self.codec.api} API has no "
                "embeddings endpoint; route embeddings to another provider",
                status=400,
                provider=self.name,
            )
        response = await self.transport.post(url, self.codec.embeddings_request(body, model))
        raw = await response.read()
        if response.status != 200:
            raise_for_status(self.name, response.status, raw, response.headers)
        try:
            return self.codec.embeddings_answer(raw, json_object(self.name, raw))
        except MalformedAnswer as exc:
            raise malformed(self.name, str(exc)) from None

    async def _expect_stream(self, response: UpstreamResponse) -> None:
        if response.status != 200:
            raw = await response.read()
            raise_for_status(self.name, response.status, raw, response.headers)
        if not response.content_type.startswith("text/event-stream"):
            response.release()
            raise malformed(
                self.name, f"asked for a stream, got content-type {response.content_type!r}"
            )

    async def close(self) -> None:
        await self.transport.close()
