"""The Anthropic-compatible endpoints: `/v1/messages` and `/v1/messages/count_tokens`.

Streams follow Anthropic's event sequence exactly: message_start, content_block_start,
ping, content_block_delta..., content_block_stop, message_delta, message_stop.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Iterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pilothouse.simulator.anthropic_request import MessagesRequest, parse_messages_request
from pilothouse.simulator.choice import Choice
from pilothouse.simulator.errors import (
    RequestError,
    error_response,
    json_response,
    read_json_object,
)
from pilothouse.simulator.faults import (
    ERROR_FAULTS,
    HoldUntilDisconnect,
    body_response,
    error_fault_response,
)
from pilothouse.simulator.generation import generate
from pilothouse.simulator.plan import Plan, PlanError, make_plan
from pilothouse.simulator.sse import StreamEvent, stream_response, token_groups
from pilothouse.simulator.state import SimulatorState

_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "stop_sequence": "stop_sequence",
}


class AnthropicApi:
    """Route handlers for the Anthropic endpoints, sharing one `SimulatorState`."""

    def __init__(self, state: SimulatorState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        """The Starlette routes this API serves."""
        return [
            Route("/v1/messages", self.messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", self.count_tokens, methods=["POST"]),
        ]

    async def messages(self, request: Request) -> Response:
        """POST /v1/messages: a message or an SSE stream of Anthropic events."""
        try:
            parsed = parse_messages_request(await read_json_object(request))
            plan = make_plan(
                self.state, "anthropic.messages", parsed.conversation.model, request.headers
            )
        except RequestError as error:
            return error_response("anthropic", error)
        except PlanError as error:
            return error_response("anthropic", RequestError(str(error)))
        pacer = plan.pacer()
        if plan.fault in ERROR_FAULTS:
            return error_fault_response("anthropic", plan)
        if plan.fault == "timeout":
            return HoldUntilDisconnect()
        choice = generate(
            parsed.conversation, plan, self.state.scenario.replies, self.state.reply_cache
        )[0]
        message_id = f"msg_sim{secrets.token_hex(12)}"
        if parsed.stream:
            events = list(_stream_events(message_id, parsed, choice, plan))
            return stream_response("anthropic", events, plan, pacer)
        body = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": parsed.conversation.model,
            "content": [_content_block(choice)],
            "stop_reason": _STOP_REASONS[choice.finish],
            "stop_sequence": choice.stop_sequence,
            "usage": _usage(parsed.conversation.prompt_tokens, choice.completion_tokens),
        }
        emitted = (
            len(choice.tool_call.argument_tokens) if choice.tool_call else len(choice.text_tokens)
        )
        await pacer.whole_response(
            choice.completion_tokens, math.ceil(emitted / plan.tokens_per_chunk)
        )
        return body_response("anthropic", orjson.dumps(body), plan)

    async def count_tokens(self, request: Request) -> Response:
        """POST /v1/messages/count_tokens: the input token count the messages call would report."""
        try:
            parsed = parse_messages_request(
                await read_json_object(request), require_max_tokens=False
            )
        except RequestError as error:
            return error_response("anthropic", error)
        return json_response({"input_tokens": parsed.conversation.prompt_tokens})


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _tool_input(arguments: str) -> Any:
    # A tool call cut short by max_tokens has unparseable arguments; Anthropic still
    # returns the block, with whatever input it had.
    try:
        value = json.loads(arguments)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _content_block(choice: Choice) -> dict[str, Any]:
    call = choice.tool_call
    if call is None:
        return {"type": "text", "text": choice.text}
    return {
        "type": "tool_use",
        "id": f"toolu_{call.call_id}",
        "name": call.name,
        "input": _tool_input(call.arguments),
    }


def _event(
    name: str, payload: dict[str, Any], tokens: int = 0, terminal: bool = False
) -> StreamEvent:
    return StreamEvent(orjson.dumps(payload), tokens=tokens, terminal=terminal, event=name)


def _stream_events(
    message_id: str, parsed: MessagesRequest, choice: Choice, plan: Plan
) -> Iterator[StreamEvent]:
    """The full event sequence of one streamed message."""
    start_usage = _usage(parsed.conversation.prompt_tokens, 1)
    message: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": parsed.conversation.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": start_usage,
    }
    yield _event("message_start", {"type": "message_start", "message": message})
    call = choice.tool_call
    if call is None:
        block: dict[str, Any] = {"type": "text", "text": ""}
        pieces, delta_type, field = choice.text_tokens, "text_delta", "text"
    else:
        block = {"type": "tool_use", "id": f"toolu_{call.call_id}", "name": call.name, "input": {}}
        pieces, delta_type, field = call.argument_tokens, "input_json_delta", "partial_json"
    yield _event(
        "content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}
    )
    yield _event("ping", {"type": "ping"})
    for piece, count in token_groups(pieces, plan.tokens_per_chunk):
        delta = {"type": delta_type, field: piece}
        yield _event(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": delta},
            count,
        )
    yield _event("content_block_stop", {"type": "content_block_stop", "index": 0}, terminal=True)
    yield _event(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {
                "stop_reason": _STOP_REASONS[choice.finish],
                "stop_sequence": choice.stop_sequence,
            },
            "usage": {"output_tokens": choice.completion_tokens},
        },
        terminal=True,
    )
    yield _event("message_stop", {"type": "message_stop"}, terminal=True)
