"""The codec for any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp, Groq, ...).

Requests and answers pass through as they are; only the model id is replaced, and streams
always ask for usage so every request can be costed. Each frame is parsed just enough to
classify it (content, usage, done), to keep a sample of the output, and to spot a body that
is not what the API promises.
"""

from __future__ import annotations

from typing import Any

import orjson

from pilothouse.providers.types import (
    ChatResult,
    EmbeddingResult,
    EventKind,
    MalformedAnswer,
    OutputSample,
    StreamErrorEvent,
    StreamEvent,
    Usage,
    token_count,
)


class OpenAICodec:
    api = "openai"

    def __init__(self, base_url: str):
        base = base_url.rstrip("/")
        self.chat_url = base + "/chat/completions"
        self.embeddings_url: str | None = base + "/embeddings"

    def chat_request(self, body: dict[str, Any], model: str, *, stream: bool) -> dict[str, Any]:
        if not stream:
            payload = {**body, "model": model}
            payload.pop("stream", None)
            payload.pop("stream_options", None)
            return payload
        options = body.get("stream_options")
        options = dict(options) if isinstance(options, dict) else {}
        options["include_usage"] = True
        return {**body, "model": model, "stream": True, "stream_options": options}

    def chat_answer(self, raw: bytes, data: dict[str, Any]) -> ChatResult:
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise MalformedAnswer("the completion has no `choices`")
        sample = OutputSample()
        message = choices[0].get("message")
        if isinstance(message, dict):
            _sample_message(sample, message)
        finish = choices[0].get("finish_reason")
        return ChatResult(
            body=raw,
            usage=usage_of(data.get("usage")),
            finish_reason=finish if isinstance(finish, str) else None,
            sample=sample,
            completion=data,
        )

    def stream_decoder(self) -> OpenAIStreamDecoder:
        return OpenAIStreamDecoder()

    def embeddings_request(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        return {**body, "model": model}

    def embeddings_answer(self, raw: bytes, data: dict[str, Any]) -> EmbeddingResult:
        if not isinstance(data.get("data"), list):
            raise MalformedAnswer("the embeddings answer has no `data` list")
        return EmbeddingResult(body=raw, usage=usage_of(data.get("usage")))


def usage_of(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    details = usage.get("prompt_tokens_details")
    return Usage(
        prompt_tokens=token_count(usage.get("prompt_tokens")),
        completion_tokens=token_count(usage.get("completion_tokens")),
        cached_tokens=token_count(details.get("cached_tokens")) if isinstance(details, dict) else 0,
    )


def _sample_message(sample: OutputSample, message: dict[str, Any]) -> None:
    content = message.get("content")
    if isinstance(content, str):
        sample.add_text(content)
    refusal = message.get("refusal")
    if isinstance(refusal, str):
        sample.refusal = refusal
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for index, call in enumerate(calls):
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                arguments = function.get("arguments")
                sample.add_tool(
                    index,
                    str(function.get("name") or ""),
                    arguments if isinstance(arguments, str) else "",
                )


class OpenAIStreamDecoder:
    """Frames pass through byte for byte; each is classified and sampled on the way."""

    end_marker = "[DONE]"

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.done = False
        self.sample = OutputSample()
        self._text: str | None = None

    def feed(self, frame: bytes, data: bytes) -> list[StreamEvent]:
        if data == b"[DONE]":
            self.done = True
            return [StreamEvent(frame, EventKind.DONE)]
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise MalformedAnswer("a stream event is not valid JSON") from None
        if not isinstance(chunk, dict):
            raise MalformedAnswer("a stream event is not a JSON object")
        self._text = None
        kind = self._classify(chunk)
        return [StreamEvent(frame, kind, chunk, self._text)]

    def _classify(self, chunk: dict[str, Any]) -> EventKind:
        """The chunk's kind; sets `_text` when the chunk is nothing but text."""
        if "error" in chunk and "choices" not in chunk:
            error = chunk["error"]
            if not isinstance(error, dict):
                error = {"message": str(error)}
            raise StreamErrorEvent(
                str(error.get("type") or "error"), str(error.get("message") or error), error
            )
        usage = chunk.get("usage")
        if usage:
            self.usage = usage_of(usage)
        choices = chunk.get("choices")
        if not choices:
            return EventKind.USAGE_ONLY if usage else EventKind.OTHER
        if not isinstance(choices, list):
            raise MalformedAnswer("a stream event's `choices` is not a list")
        kind = EventKind.OTHER
        for choice in choices:
            if not isinstance(choice, dict):
                raise MalformedAnswer("a stream event's choice is not an object")
            finish = choice.get("finish_reason")
            if finish:
                self.finish_reason = str(finish)
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            carried = self._sample_delta(delta)
            if carried:
                kind = EventKind.CONTENT
                if carried is not True and not finish and not usage and len(choices) == 1:
                    self._text = carried
        return kind

    def _sample_delta(self, delta: dict[str, Any]) -> str | bool:
        """Keep what the delta says; truthy when it carries output (the first is TTFT):
        its text when that is all it carries, else True."""
        carries: str | bool = False
        content = delta.get("content")
        if content:
            carries = True
            if isinstance(content, str):
                self.sample.add_text(content)
                carries = content
        refusal = delta.get("refusal")
        if refusal:
            carries = True
            if isinstance(refusal, str):
                self.sample.refusal = (self.sample.refusal or "") + refusal
        calls = delta.get("tool_calls")
        if calls:
            carries = True
            for call in calls if isinstance(calls, list) else ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    index = call.get("index")
                    arguments = function.get("arguments")
                    self.sample.add_tool(
                        index if isinstance(index, int) else 0,
                        function.get("name") if isinstance(function.get("name"), str) else None,
                        arguments if isinstance(arguments, str) else "",
                    )
        return carries
