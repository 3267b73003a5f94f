"""The codec for the Anthropic Messages API, behind an OpenAI-shaped interface.

Clients speak only OpenAI: each chat.completions body is translated to a Messages request,
and each answer (whole or streamed) back to OpenAI's `chat.completion` /
`chat.completion.chunk` shape. What is translated, approximated and dropped is documented
in `anthropic_request` (requests) and `anthropic_response` / `anthropic_stream`
(answers), which hold the pure translation. Anthropic has no embeddings API.
"""

from __future__ import annotations

from typing import Any

import orjson

from pilothouse.providers import sse
from pilothouse.providers.anthropic_request import to_anthropic_request
from pilothouse.providers.anthropic_response import to_openai_completion, usage_of
from pilothouse.providers.anthropic_stream import StreamTranslator
from pilothouse.providers.types import (
    ChatResult,
    EmbeddingResult,
    MalformedAnswer,
    OutputSample,
    StreamEvent,
    Usage,
)

ANTHROPIC_VERSION = "2023-06-01"


class AnthropicCodec:
    api = "anthropic"
    embeddings_url: str | None = None

    def __init__(self, base_url: str):
        base = base_url.rstrip("/")
        # Accept both "https://api.anthropic.com" and ".../v1" as the configured base URL.
        self.chat_url = base + "/messages" if base.endswith("/v1") else base + "/v1/messages"

    @staticmethod
    def headers(api_key: str | None) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        return headers

    def chat_request(self, body: dict[str, Any], model: str, *, stream: bool) -> dict[str, Any]:
        payload = to_anthropic_request(body, model)
        if stream:
            payload["stream"] = True
        return payload

    def chat_answer(self, raw: bytes, data: dict[str, Any]) -> ChatResult:
        sample = OutputSample()
        completion = to_openai_completion(data, sample=sample)
        return ChatResult(
            body=orjson.dumps(completion),
            usage=usage_of(data.get("usage")),
            finish_reason=completion["choices"][0]["finish_reason"],
            sample=sample,
            completion=completion,
        )

    def stream_decoder(self) -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder()

    def embeddings_request(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        raise NotImplementedError("Anthropic has no embeddings API")

    def embeddings_answer(self, raw: bytes, data: dict[str, Any]) -> EmbeddingResult:
        raise NotImplementedError("Anthropic has no embeddings API")


class AnthropicStreamDecoder:
    """Anthropic events re-framed as OpenAI `chat.completion.chunk` events; usage is known
    from `message_start` on, so a stream cut short still reports the prompt it consumed."""

    end_marker = "message_stop"

    def __init__(self) -> None:
        self._translator = StreamTranslator()

    @property
    def usage(self) -> Usage | None:
        return self._translator.usage

    @property
    def finish_reason(self) -> str | None:
        return self._translator.finish_reason

    @property
    def done(self) -> bool:
        return self._translator.done

    @property
    def sample(self) -> OutputSample:
        return self._translator.sample

    def feed(self, frame: bytes, data: bytes) -> list[StreamEvent]:
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise MalformedAnswer("a stream event is not valid JSON") from None
        if not isinstance(event, dict):
            raise MalformedAnswer("a stream event is not a JSON object")
        name = sse.event_name(frame)
        return self._translator.feed(name.decode() if name else "", event)
