"""Adapter for the Anthropic Messages API, behind an OpenAI-shaped interface.

Clients speak only OpenAI: each chat.completions body is translated to a Messages request,
and each answer (whole or streamed) back to OpenAI's `chat.completion` /
`chat.completion.chunk` shape. What is translated, approximated and dropped is documented
in `anthropic_request` (requests) and `anthropic_response` / `anthropic_stream`
(answers), which hold the pure translation; this module does the I/O.
Anthropic has no embeddings API, so `embeddings` always refuses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from pilothouse.gateway import sse
from pilothouse.gateway.providers.anthropic_request import to_anthropic_request
from pilothouse.gateway.providers.anthropic_response import (
    MalformedAnswer,
    StreamErrorEvent,
    to_openai_completion,
    usage_of,
)
from pilothouse.gateway.providers.anthropic_stream import StreamTranslator
from pilothouse.gateway.providers.base import (
    ChatResult,
    EmbeddingResult,
    ErrorClass,
    EventKind,
    StreamEvent,
    UpstreamError,
    Usage,
)
from pilothouse.gateway.providers.http import HttpProvider

ANTHROPIC_VERSION = "2023-06-01"


class AnthropicProvider(HttpProvider):
    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        api_key: str | None,
        timeout_seconds: float = 120.0,
        connect_timeout_seconds: float = 5.0,
        max_connections: int = 256,
    ):
        base = base_url.rstrip("/")
        # Accept both "https://api.anthropic.com" and ".../v1" as the configured base URL.
        self._messages_url = base + "/messages" if base.endswith("/v1") else base + "/v1/messages"
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        super().__init__(
            name,
            headers=headers,
            timeout_seconds=timeout_seconds,
            connect_timeout_seconds=connect_timeout_seconds,
            max_connections=max_connections,
        )

    async def chat(self, body: dict[str, Any], model: str) -> ChatResult:
        payload = to_anthropic_request(body, model)
        response = await self.http.post(self._messages_url, payload)
        raw = await self.http.read(response)
        if response.status != 200:
            self.http.raise_for_status(response.status, raw, response.headers)
        data = self.http.json_object(raw)
        try:
            completion = to_openai_completion(data)
        except MalformedAnswer as exc:
            raise self.http.malformed(str(exc)) from None
        return ChatResult(
            body=orjson.dumps(completion),
            usage=usage_of(data.get("usage")),
            finish_reason=completion["choices"][0]["finish_reason"],
        )

    async def chat_stream(self, body: dict[str, Any], model: str) -> AnthropicStream:
        payload = {**to_anthropic_request(body, model), "stream": True}
        response = await self.http.post(self._messages_url, payload)
        if response.status != 200:
            raw = await self.http.read(response)
            self.http.raise_for_status(response.status, raw, response.headers)
        if not response.content_type.startswith("text/event-stream"):
            response.release()
            raise self.http.malformed(
                f"asked for a stream, got content-type {response.content_type!r}"
            )
        return AnthropicStream(self, response)

    async def embeddings(self, body: dict[str, Any], model: str) -> EmbeddingResult:
        raise UpstreamError(
            ErrorClass.UPSTREAM_4XX,
            f"provider {self.name!r} cannot embed: Anthropic has no embeddings API; "
            "route embeddings to another provider",
            status=400,
            provider=self.name,
        )


class AnthropicStream:
    """An Anthropic event stream, re-framed as OpenAI `chat.completion.chunk` events.

    `chunks_in` counts upstream events that carry data (pings included); `usage` is set
    from `message_start` on, so a stream cut short still reports the prompt it consumed.
    """

    def __init__(self, provider: AnthropicProvider, response: aiohttp.ClientResponse):
        self._provider = provider
        self._response = response
        self._translator = StreamTranslator()
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.chunks_in = 0

    async def __aiter__(self) -> AsyncIterator[StreamEvent]:
        async for batch in self.batches():
            for event in batch:
                yield event

    async def batches(self) -> AsyncIterator[list[StreamEvent]]:
        """The translated events of what arrived in one upstream read, in order, together."""
        translator = self._translator
        try:
            async for frames in sse.frame_batches(self._response.content.iter_any()):
                batch: list[StreamEvent] = []
                cut = False
                for frame in frames:
                    data = sse.data_of(frame)
                    if data is None:
                        continue  # keep-alive comments: the gateway sends its own
                    self.chunks_in += 1
                    if not frame.endswith(b"\n\n"):
                        cut = True  # cut mid-event: reported as truncated below
                        break
                    name = sse.event_name(frame)
                    try:
                        translated = self._feed(name.decode() if name else "", data)
                    except UpstreamError:
                        if batch:
                            yield batch  # what came before the broken event still goes out
                        raise
                    self.usage = translator.usage
                    self.finish_reason = translator.finish_reason
                    batch.extend(StreamEvent(out, kind) for out, kind in translated)
                if batch:
                    yield batch
                if cut:
                    break
        except aiohttp.ClientError as exc:
            self._provider.http.raise_classified(exc)
        except TimeoutError as exc:
            self._provider.http.raise_classified(exc)
        finally:
            self._response.release()
        if not translator.done:
            raise UpstreamError(
                ErrorClass.TRUNCATED,
                f"provider {self._provider.name!r} ended the stream without message_stop",
                provider=self._provider.name,
            )

    def _feed(self, name: str, data: bytes) -> list[tuple[bytes, EventKind]]:
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise self._provider.http.malformed("a stream event is not valid JSON") from None
        if not isinstance(event, dict):
            raise self._provider.http.malformed("a stream event is not a JSON object")
        try:
            return self._translator.feed(name, event)
        except MalformedAnswer as exc:
            raise self._provider.http.malformed(str(exc)) from None
        except StreamErrorEvent as exc:
            raise UpstreamError(
                ErrorClass.UPSTREAM_5XX,
                f"provider {self._provider.name!r} failed mid-stream ({exc.error_type}): "
                f"{exc.message}",
                provider=self._provider.name,
            ) from None

    async def aclose(self) -> None:
        self._response.release()
