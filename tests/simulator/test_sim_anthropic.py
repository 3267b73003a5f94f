"""Anthropic Messages through the official SDK and raw SSE."""

from __future__ import annotations

import json

import anthropic
import httpx
import pytest
from sim_harness import RunningSimulator

pytestmark = pytest.mark.timeout(30)

MODEL = "claude-haiku-4-5"
MESSAGES = [{"role": "user", "content": "How do I pick a good primary key?"}]
LOOKUP_TOOL = {
    "name": "lookup_order",
    "description": "Find an order",
    "input_schema": {
        "type": "object",
        "properties": {
            "order_id": {"type": "string"},
            "include_items": {"type": "boolean"},
            "channel": {"type": "string", "enum": ["web", "store"]},
        },
        "required": ["order_id", "channel"],
    },
}


def test_message_has_text_usage_and_end_turn(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model=MODEL, max_tokens=400, messages=MESSAGES)
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_")
    assert message.stop_reason == "end_turn"
    assert message.content[0].type == "text"
    assert message.content[0].text.endswith(".")
    assert message.usage.input_tokens > 5
    assert message.usage.output_tokens > 10


def test_sdk_stream_matches_non_streaming_text_and_usage(claude: anthropic.Anthropic) -> None:
    whole = claude.messages.create(model=MODEL, max_tokens=400, messages=MESSAGES)
    with claude.messages.stream(model=MODEL, max_tokens=400, messages=MESSAGES) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 3
    assert "".join(pieces) == whole.content[0].text
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == whole.usage.input_tokens
    assert final.usage.output_tokens == whole.usage.output_tokens


def test_raw_event_sequence_is_anthropics(sim: RunningSimulator) -> None:
    body = {"model": MODEL, "max_tokens": 50, "messages": MESSAGES, "stream": True}
    with httpx.stream("POST", f"{sim.url}/v1/messages", json=body, timeout=5) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    names = [line[len("event: ") :] for line in lines if line.startswith("event: ")]
    datas = [json.loads(line[len("data: ") :]) for line in lines if line.startswith("data: ")]
    assert [d["type"] for d in datas] == names, "each event's data type must match its event name"
    deltas = names.count("content_block_delta")
    assert deltas >= 2
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert datas[0]["message"]["usage"]["input_tokens"] > 0
    message_delta = datas[-2]
    assert message_delta["delta"]["stop_reason"] == "end_turn"
    assert message_delta["usage"]["output_tokens"] > 0
    assert all(
        d["delta"]["type"] == "text_delta" for d in datas if d["type"] == "content_block_delta"
    )


def test_system_string_or_blocks_and_multi_turn(claude: anthropic.Anthropic) -> None:
    turns = [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi! How can I help?"},
        {"role": "user", "content": [{"type": "text", "text": "Tell me about caching"}]},
    ]
    plain = claude.messages.create(model=MODEL, max_tokens=200, system="Be brief.", messages=turns)
    blocks = claude.messages.create(
        model=MODEL, max_tokens=200, system=[{"type": "text", "text": "Be brief."}], messages=turns
    )
    bare = claude.messages.create(model=MODEL, max_tokens=200, messages=turns)
    assert plain.usage.input_tokens == blocks.usage.input_tokens
    assert plain.usage.input_tokens > bare.usage.input_tokens
    assert plain.content[0].type == "text"


def test_tools_give_tool_use_blocks(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model=MODEL,
        max_tokens=300,
        tools=[LOOKUP_TOOL],
        messages=[{"role": "user", "content": "Where is my order?"}],
    )
    assert message.stop_reason == "tool_use"
    block = message.content[0]
    assert block.type == "tool_use"
    assert block.id.startswith("toolu_")
    assert block.name == "lookup_order"
    assert isinstance(block.input["order_id"], str)
    assert block.input["channel"] in ("web", "store")


def test_streamed_tool_use_input_reassembles(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model=MODEL,
        max_tokens=300,
        tools=[LOOKUP_TOOL],
        messages=[{"role": "user", "content": "Where is my order?"}],
    ) as stream:
        partials = [event.partial_json for event in stream if event.type == "input_json"]
        final = stream.get_final_message()
    assert len(partials) >= 3
    assert json.loads("".join(partials)) == final.content[0].input
    assert final.stop_reason == "tool_use"


def test_tool_result_turn_gets_a_text_answer(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model=MODEL,
        max_tokens=300,
        tools=[LOOKUP_TOOL],
        messages=[
            {"role": "user", "content": "Where is my order?"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "lookup_order",
                        "input": {"order_id": "A1"},
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Shipped"}
                ],
            },
        ],
    )
    assert message.stop_reason == "end_turn"
    assert message.content[0].type == "text" and message.content[0].text


def test_max_tokens_stops_with_max_tokens(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model=MODEL, max_tokens=4, messages=MESSAGES)
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 4


def test_stop_sequences_report_the_sequence(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model=MODEL, max_tokens=400, messages=MESSAGES, stop_sequences=["."]
    )
    assert message.stop_reason == "stop_sequence"
    assert message.stop_sequence == "."
    assert "." not in message.content[0].text


def test_missing_max_tokens_is_a_400_in_anthropic_shape(sim: RunningSimulator) -> None:
    response = httpx.post(f"{sim.url}/v1/messages", json={"model": MODEL, "messages": MESSAGES})
    assert response.status_code == 400
    assert response.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"},
    }
    broken = httpx.post(
        f"{sim.url}/v1/messages", content=b"{", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400 and broken.json()["type"] == "error"


def test_bad_role_raises_bad_request_error(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match=r"messages\.0\.role"):
        claude.messages.create(
            model=MODEL,
            max_tokens=10,
            messages=[{"role": "system", "content": "x"}],
        )


def test_count_tokens_matches_messages_usage(claude: anthropic.Anthropic) -> None:
    counted = claude.messages.count_tokens(model=MODEL, messages=MESSAGES)
    message = claude.messages.create(model=MODEL, max_tokens=20, messages=MESSAGES)
    assert counted.input_tokens == message.usage.input_tokens


def test_anthropic_determinism(claude: anthropic.Anthropic) -> None:
    first = claude.messages.create(model=MODEL, max_tokens=400, messages=MESSAGES)
    second = claude.messages.create(model=MODEL, max_tokens=400, messages=MESSAGES)
    other = claude.messages.create(
        model=MODEL, max_tokens=400, messages=[{"role": "user", "content": "Something else"}]
    )
    assert first.content[0].text == second.content[0].text
    assert first.content[0].text != other.content[0].text
