"""The OpenAI-compatible endpoints: `/v1/chat/completions` and `/v1/embeddings`.

Responses mirror OpenAI's JSON and SSE shapes field for field, so the official SDK
(and anything that parses OpenAI responses) reads them unchanged.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Iterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pilothouse.simulator.choice import Choice
from pilothouse.simulator.embeddings import embed, encode_base64
from pilothouse.simulator.errors import RequestError, error_response, read_json_object
from pilothouse.simulator.faults import (
    ERROR_FAULTS,
    HoldUntilDisconnect,
    body_response,
    error_fault_response,
)
from pilothouse.simulator.generation import generate
from pilothouse.simulator.openai_request import ChatRequest, parse_chat_request
from pilothouse.simulator.plan import Plan, PlanError, make_plan
from pilothouse.simulator.sse import StreamEvent, stream_response, token_groups
from pilothouse.simulator.state import SimulatorState
from pilothouse.simulator.text import count_tokens

SYSTEM_FINGERPRINT = "fp_simulator"
_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "stop_sequence": "stop"}
_DONE = StreamEvent(b"[DONE]", terminal=True)


class OpenAIApi:
    """Route handlers for the OpenAI endpoints, sharing one `SimulatorState`."""

    def __init__(self, state: SimulatorState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        """The Starlette routes this API serves."""
        return [
            Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
        ]

    async def chat_completions(self, request: Request) -> Response:
        """POST /v1/chat/completions: a completion or an SSE stream of chunks."""
        try:
            chat = parse_chat_request(await read_json_object(request))
            plan = make_plan(self.state, "openai.chat", chat.conversation.model, request.headers)
        except RequestError as error:
            return error_response("openai", error)
        except PlanError as error:
            return error_response("openai", RequestError(str(error), param="X-Simulator-Fault"))
        pacer = plan.pacer()
        if plan.fault in ERROR_FAULTS:
            return error_fault_response("openai", plan)
        if plan.fault == "timeout":
            return HoldUntilDisconnect()
        choices = generate(
            chat.conversation, plan, self.state.scenario.replies, self.state.reply_cache
        )
        completion_id = f"chatcmpl-{secrets.token_urlsafe(21)}"
        created = int(time.time())
        completion_tokens = sum(choice.completion_tokens for choice in choices)
        usage = _usage(chat.conversation.prompt_tokens, completion_tokens)
        if chat.stream:
            events = list(_stream_events(completion_id, created, chat, choices, plan, usage))
            return stream_response("openai", events, plan, pacer)
        body = {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": chat.conversation.model,
            "choices": [_message_choice(choice, chat) for choice in choices],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        chunks = sum(math.ceil(_emitted(choice) / plan.tokens_per_chunk) for choice in choices)
        await pacer.whole_response(completion_tokens, chunks)
        return body_response("openai", orjson.dumps(body), plan)

    async def embeddings(self, request: Request) -> Response:
        """POST /v1/embeddings: deterministic unit vectors, as floats or base64 float32."""
        try:
            data = await read_json_object(request)
            model, texts, tokens = _embedding_input(data)
            dimensions = data.get("dimensions")
            if dimensions is not None and (
                not isinstance(dimensions, int)
                or isinstance(dimensions, bool)
                or not 1 <= dimensions <= 8192
            ):
                raise RequestError(
                    "Invalid 'dimensions': expected an integer between 1 and 8192.",
                    param="dimensions",
                )
            encoding = data.get("encoding_format") or "float"
            if encoding not in ("float", "base64"):
                raise RequestError(
                    "Invalid 'encoding_format': expected 'float' or 'base64'.",
                    param="encoding_format",
                )
            plan = make_plan(
                self.state, "openai.embeddings", model, request.headers, generation=False
            )
        except RequestError as error:
            return error_response("openai", error)
        except PlanError as error:
            return error_response("openai", RequestError(str(error), param="X-Simulator-Fault"))
        pacer = plan.pacer()
        if plan.fault in ERROR_FAULTS:
            return error_fault_response("openai", plan)
        if plan.fault == "timeout":
            return HoldUntilDisconnect()
        size = dimensions or plan.embedding_dimensions
        items = []
        for index, text in enumerate(texts):
            vector = embed(text, model, size)
            items.append(
                {
                    "object": "embedding",
                    "index": index,
                    "embedding": encode_base64(vector) if encoding == "base64" else vector,
                }
            )
        body = {
            "object": "list",
            "data": items,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        await pacer.whole_response(0, 1)
        return body_response("openai", orjson.dumps(body), plan)


def _embedding_input(data: dict[str, Any]) -> tuple[str, list[str], int]:
    """(model, texts, token count) from an embeddings body; token-id arrays are accepted too."""
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("you must provide a model parameter", param="model")
    raw = data.get("input")
    if isinstance(raw, str) or (
        isinstance(raw, list) and raw and all(isinstance(i, int) for i in raw)
    ):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise RequestError("'input' must be a non-empty string or array.", param="input")
    texts: list[str] = []
    tokens = 0
    for item in raw:
        if isinstance(item, str) and item:
            texts.append(item)
            tokens += count_tokens(item)
        elif isinstance(item, list) and item and all(isinstance(i, int) for i in item):
            texts.append(" ".join(str(i) for i in item))
            tokens += len(item)
        else:
            raise RequestError(
                "'$.input' is invalid: each item must be a non-empty string.", param="input"
            )
    return model, texts, tokens


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _emitted(choice: Choice) -> int:
    return len(choice.tool_call.argument_tokens) if choice.tool_call else len(choice.text_tokens)


def _refusal_field(choice: Choice, chat: ChatRequest) -> bool:
    # Like OpenAI: under structured outputs a refusal goes to `refusal` with null content
    # (so parsers do not choke on it); otherwise the refusal is simply the content.
    return choice.refusal and chat.conversation.response_format == "json_schema"


def _message_choice(choice: Choice, chat: ChatRequest) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": choice.text,
        "refusal": None,
        "annotations": [],
    }
    if _refusal_field(choice, chat):
        message["content"], message["refusal"] = None, choice.text
    if choice.tool_call is not None:
        call = choice.tool_call
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": f"call_{call.call_id}",
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
        ]
    return {
        "index": choice.index,
        "message": message,
        "logprobs": None,
        "finish_reason": _FINISH[choice.finish],
    }


def _stream_events(
    completion_id: str,
    created: int,
    chat: ChatRequest,
    choices: list[Choice],
    plan: Plan,
    usage: dict[str, Any],
) -> Iterator[StreamEvent]:
    """Every chunk of the stream: choices interleaved round-robin, then usage, then [DONE]."""
    head: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": chat.conversation.model,
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    # Every chunk shares its envelope; splicing pre-serialised bytes around each
    # choice is much cheaper than serialising the whole envelope again per chunk.
    prefix = orjson.dumps(head)[:-1] + b',"choices":['
    suffix = b'],"usage":null}' if chat.include_usage else b"]}"

    def chunk(index: int, delta: dict[str, Any], finish: str | None, tokens: int) -> StreamEvent:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        payload = prefix + orjson.dumps(choice) + suffix
        return StreamEvent(payload, tokens=tokens, terminal=finish is not None)

    lanes = [list(_choice_chunks(choice, chat, plan.tokens_per_chunk, chunk)) for choice in choices]
    for step in range(max(len(lane) for lane in lanes)):
        for lane in lanes:
            if step < len(lane):
                yield lane[step]
    if chat.include_usage:
        yield StreamEvent(orjson.dumps({**head, "choices": [], "usage": usage}), terminal=True)
    yield _DONE


def _choice_chunks(
    choice: Choice, chat: ChatRequest, per_chunk: int, chunk: Any
) -> Iterator[StreamEvent]:
    call = choice.tool_call
    if call is not None:
        opening = {
            "index": 0,
            "id": f"call_{call.call_id}",
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        first = {"role": "assistant", "content": None, "tool_calls": [opening], "refusal": None}
        yield chunk(choice.index, first, None, 0)
        for piece, count in token_groups(call.argument_tokens, per_chunk):
            delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
            yield chunk(choice.index, delta, None, count)
    else:
        key = "content"
        first = {"role": "assistant", "content": "", "refusal": None}
        if _refusal_field(choice, chat):
            key, first = "refusal", {"role": "assistant", "content": None, "refusal": ""}
        yield chunk(choice.index, first, None, 0)
        for piece, count in token_groups(choice.text_tokens, per_chunk):
            yield chunk(choice.index, {key: piece}, None, count)
    yield chunk(choice.index, {}, _FINISH[choice.finish], 0)
