"""Adapter for any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp, Groq, ...).

Requests and answers pass through as they are; only the model id is replaced, and streams
always ask for usage so every request can be costed. Each frame is parsed just enough to
classify it (content, usage, done) and to spot a body that is not what the API promises.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from pilothouse.gateway import sse
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


class OpenAIProvider(HttpProvider):
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
        self._chat_url = base + "/chat/completions"
        self._embeddings_url = base + "/embeddings"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        super().__init__(
            name,
            headers=headers,
            timeout_seconds=timeout_seconds,
            connect_timeout_seconds=connect_timeout_seconds,
            max_connections=max_connections,
        )

    async def chat(self, body: dict[str, Any], model: str) -> ChatResult:
        payload = {**body, "model": model}
        payload.pop("stream", None)
        payload.pop("stream_options", None)
        response = await self.http.post(self._chat_url, payload)
        raw = await self.http.read(response)
        if response.status != 200:
            self.http.raise_for_status(response.status, raw, response.headers)
        data = self.http.json_object(raw)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise self.http.malformed("the completion has no `choices`")
        return ChatResult(
            body=raw,
            usage=usage_of(data.get("usage")),
            finish_reason=choices[0].get("finish_reason"),
        )

    async def chat_stream(self, body: dict[str, Any], model: str) -> OpenAIStream:
        options = dict(body.get("stream_options") or {})
        options["include_usage"] = True
        payload = {**body, "model": model, "stream": True, "stream_options": options}
        response = await self.http.post(self._chat_url, payload)
        if response.status != 200:
            raw = await self.http.read(response)
            self.http.raise_for_status(response.status, raw, response.headers)
        if not response.content_type.startswith("text/event-stream"):
            response.release()
            raise self.http.malformed(
                f"asked for a stream, got content-type {response.content_type!r}"
            )
        return OpenAIStream(self, response)

    async def embeddings(self, body: dict[str, Any], model: str) -> EmbeddingResult:
        response = await self.http.post(self._embeddings_url, {**body, "model": model})
        raw = await self.http.read(response)
        if response.status != 200:
            self.http.raise_for_status(response.status, raw, response.headers)
        data = self.http.json_object(raw)
        if not isinstance(data.get("data"), list):
            raise self.http.malformed("the embeddings answer has no `data` list")
        return EmbeddingResult(body=raw, usage=usage_of(data.get("usage")))


def usage_of(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    details = usage.get("prompt_tokens_details") or {}
    return Usage(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0,
    )


class OpenAIStream:
    """Frames from an OpenAI-compatible stream, passed through byte for byte."""

    def __init__(self, provider: OpenAIProvider, response: aiohttp.ClientResponse):
        self._provider = provider
        self._response = response
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.chunks_in = 0

    async def __aiter__(self) -> AsyncIterator[StreamEvent]:
        async for batch in self.batches():
            for event in batch:
                yield event

    async def batches(self) -> AsyncIterator[list[StreamEvent]]:
        """The events that arrived in one upstream read, in order, together."""
        done = False
        try:
            async for frames in sse.frame_batches(self._response.content.iter_any()):
                batch: list[StreamEvent] = []
                cut = False
                for frame in frames:
                    data = sse.data_of(frame)
                    if data is None:
                        continue  # upstream keep-alive comments: the gateway sends its own
                    self.chunks_in += 1
                    if data == b"[DONE]":
                        done = True
                        batch.append(StreamEvent(frame, EventKind.DONE))
                        continue
                    if not frame.endswith(b"\n\n"):
                        cut = True  # cut mid-event: reported as truncated below
                        break
                    try:
                        batch.append(StreamEvent(frame, self._classify(data)))
                    except UpstreamError:
                        if batch:
                            yield batch  # what came before the broken frame still goes out
                        raise
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
        if not done:
            raise UpstreamError(
                ErrorClass.TRUNCATED,
                f"provider {self._provider.name!r} ended the stream without [DONE]",
                provider=self._provider.name,
            )

    def _classify(self, data: bytes) -> EventKind:
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise self._provider.http.malformed("a stream event is not valid JSON") from None
        if not isinstance(chunk, dict):
            raise self._provider.http.malformed("a stream event is not a JSON object")
        if "error" in chunk and "choices" not in chunk:
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise UpstreamError(
                ErrorClass.UPSTREAM_5XX,
                f"provider {self._provider.name!r} failed mid-stream: {message}",
                provider=self._provider.name,
            )
        if chunk.get("usage"):
            self.usage = usage_of(chunk["usage"])
        choices = chunk.get("choices")
        if not choices:
            return EventKind.USAGE_ONLY if chunk.get("usage") else EventKind.OTHER
        kind = EventKind.OTHER
        for choice in choices:
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            delta = choice.get("delta") or {}
            if delta.get("content") or delta.get("tool_calls") or delta.get("refusal"):
                kind = EventKind.CONTENT
        return kind

    async def aclose(self) -> None:
        self._response.release()
