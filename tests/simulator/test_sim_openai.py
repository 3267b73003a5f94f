"""OpenAI chat completions through the official SDK: every mode a client uses."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

import httpx
import openai
import pydantic
import pytest
from sim_harness import RunningSimulator

pytestmark = pytest.mark.timeout(30)

USER = [{"role": "user", "content": "Explain how database indexes speed up queries."}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "unit"],
        },
    },
}


def test_non_streaming_completion_has_text_and_consistent_usage(client: openai.OpenAI) -> None:
    result = client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    choice = result.choices[0]
    assert result.object == "chat.completion"
    assert result.model == "gpt-4o-mini"
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content and choice.message.content.endswith(".")
    usage = result.usage
    assert usage is not None
    assert usage.prompt_tokens > 10
    assert usage.completion_tokens > 10
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_stream_reassembles_to_the_non_streaming_answer(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="gpt-4o", messages=USER)
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=USER, stream=True))
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert len(deltas) > 3, "content must arrive in several chunks"
    assert "".join(deltas) == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert all(c.usage is None for c in chunks)


def test_include_usage_adds_a_final_usage_chunk_equal_to_non_streaming(
    client: openai.OpenAI,
) -> None:
    whole = client.chat.completions.create(model="gpt-4o", messages=USER)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o",
            messages=USER,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None and whole.usage is not None
    assert last.usage.prompt_tokens == whole.usage.prompt_tokens
    assert last.usage.completion_tokens == whole.usage.completion_tokens
    assert last.usage.total_tokens == whole.usage.total_tokens
    assert chunks[-2].choices[0].finish_reason == "stop"


def test_raw_stream_ends_with_done(sim: RunningSimulator) -> None:
    body = {"model": "m", "messages": USER, "stream": True}
    with httpx.stream(
        "POST", f"{sim.openai_url}/chat/completions", json=body, timeout=5
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    assert json.loads(lines[-2][6:])["choices"][0]["finish_reason"] == "stop"


def test_tools_produce_a_tool_call_with_schema_valid_arguments(client: openai.OpenAI) -> None:
    result = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "What's it like in Lisbon?"}],
        tools=[WEATHER_TOOL],
    )
    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    call = calls[0]
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert isinstance(arguments["city"], str)
    assert arguments["unit"] in ("celsius", "fahrenheit")
    assert 1 <= arguments["days"] <= 7


def test_streamed_tool_call_arguments_are_split_and_reassemble(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "Weather please"}],
            tools=[WEATHER_TOOL],
            stream=True,
        )
    )
    first = chunks[0].choices[0].delta.tool_calls
    assert first is not None and first[0].function is not None
    assert first[0].function.name == "get_weather" and first[0].id
    pieces = [
        c.choices[0].delta.tool_calls[0].function.arguments
        for c in chunks[1:]
        if c.choices[0].delta.tool_calls
    ]
    assert len(pieces) >= 3, "arguments must be split across several chunks"
    arguments = json.loads("".join(p or "" for p in pieces))
    assert set(arguments) >= {"city", "unit"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tool_choice_none_and_tool_results_give_text(client: openai.OpenAI) -> None:
    none = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Weather?"}],
        tools=[WEATHER_TOOL],
        tool_choice="none",
    )
    assert none.choices[0].message.tool_calls is None
    assert none.choices[0].message.content
    after_tool = client.chat.completions.create(
        model="gpt-4o",
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"},
        ],
        tools=[WEATHER_TOOL],
    )
    assert after_tool.choices[0].finish_reason == "stop"
    assert after_tool.choices[0].message.content


def test_json_object_mode_returns_a_json_object(client: openai.OpenAI) -> None:
    result = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Summarise kubernetes autoscaling as JSON"}],
        response_format={"type": "json_object"},
    )
    value = json.loads(result.choices[0].message.content or "")
    assert isinstance(value, dict) and value


SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "stars": {"type": "integer", "minimum": 1, "maximum": 5},
        "spam": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "author": {"$ref": "#/$defs/Person"},
    },
    "required": ["title", "sentiment", "score", "stars", "spam", "tags", "author"],
    "additionalProperties": False,
    "$defs": {
        "Person": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "email": {"type": "string", "format": "email"},
            },
            "required": ["name", "email"],
        }
    },
}


def test_json_schema_mode_returns_matching_json(client: openai.OpenAI) -> None:
    result = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Review: great product"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "review", "schema": SCHEMA},
        },
    )
    value = json.loads(result.choices[0].message.content or "")
    assert set(value) == set(SCHEMA["required"])
    assert value["sentiment"] in ("positive", "neutral", "negative")
    assert isinstance(value["title"], str)
    assert 0 <= value["score"] <= 1
    assert isinstance(value["stars"], int) and 1 <= value["stars"] <= 5
    assert isinstance(value["spam"], bool)
    assert value["tags"] and all(isinstance(tag, str) for tag in value["tags"])
    assert "@" in value["author"]["email"] and isinstance(value["author"]["name"], str)


class Ticket(pydantic.BaseModel):
    summary: str
    priority: Literal["low", "medium", "high"]
    estimate_hours: int
    labels: list[str]


def test_sdk_structured_output_parse_validates(client: openai.OpenAI) -> None:
    result = client.chat.completions.parse(
        model="gpt-4o",
        messages=[{"role": "user", "content": "File a ticket for the login bug"}],
        response_format=Ticket,
    )
    parsed = result.choices[0].message.parsed
    assert isinstance(parsed, Ticket)
    assert parsed.priority in ("low", "medium", "high")


def test_n_choices_differ_and_usage_sums(client: openai.OpenAI) -> None:
    result = client.chat.completions.create(model="gpt-4o", messages=USER, n=3)
    assert [c.index for c in result.choices] == [0, 1, 2]
    texts = [c.message.content for c in result.choices]
    assert len(set(texts)) == 3
    single = client.chat.completions.create(model="gpt-4o", messages=USER)
    assert texts[0] == single.choices[0].message.content
    assert result.usage is not None and single.usage is not None
    assert result.usage.prompt_tokens == single.usage.prompt_tokens
    assert result.usage.completion_tokens > single.usage.completion_tokens
    streamed = list(
        client.chat.completions.create(
            model="gpt-4o", messages=USER, n=3, stream=True, stream_options={"include_usage": True}
        )
    )
    assert streamed[-1].usage == result.usage


def test_n_choices_stream_interleaves_all_indexes(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=USER, n=2, stream=True))
    finished = {c.choices[0].index for c in chunks if c.choices and c.choices[0].finish_reason}
    assert finished == {0, 1}


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_truncates_with_finish_reason_length(client: openai.OpenAI, field: str) -> None:
    full = client.chat.completions.create(model="gpt-4o", messages=USER)
    cut = client.chat.completions.create(model="gpt-4o", messages=USER, **{field: 5})
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage.completion_tokens == 5
    assert (full.choices[0].message.content or "").startswith(cut.choices[0].message.content)
    streamed = list(
        client.chat.completions.create(
            model="gpt-4o",
            messages=USER,
            stream=True,
            stream_options={"include_usage": True},
            **{field: 5},
        )
    )
    assert streamed[-2].choices[0].finish_reason == "length"
    assert streamed[-1].usage.completion_tokens == 5


def test_stop_sequence_cuts_the_reply(client: openai.OpenAI) -> None:
    full = client.chat.completions.create(model="gpt-4o", messages=USER)
    text = full.choices[0].message.content or ""
    cut = client.chat.completions.create(model="gpt-4o", messages=USER, stop=["."])
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].message.content == text[: text.index(".")]


def test_same_input_same_output_and_seed_changes_it(client: openai.OpenAI) -> None:
    def ask(**extra: Any) -> str:
        result = client.chat.completions.create(model="gpt-4o", messages=USER, **extra)
        return result.choices[0].message.content or ""

    assert ask() == ask()
    assert ask(seed=1) == ask(seed=1)
    assert ask(seed=1) != ask(seed=2)
    assert ask(seed=1) != ask()
    other_model = client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert other_model.choices[0].message.content != ask()


def test_async_client_streams(sim: RunningSimulator) -> None:
    async def main() -> tuple[str, str]:
        async with sim.async_openai() as client:
            whole = await client.chat.completions.create(model="gpt-4o", messages=USER)
            stream = await client.chat.completions.create(
                model="gpt-4o", messages=USER, stream=True
            )
            parts = [chunk.choices[0].delta.content or "" async for chunk in stream]
            return whole.choices[0].message.content or "", "".join(parts)

    whole, streamed = asyncio.run(main())
    assert whole and whole == streamed


def test_bad_requests_get_openai_shaped_400s(sim: RunningSimulator, client: openai.OpenAI) -> None:
    response = httpx.post(
        f"{sim.openai_url}/chat/completions",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as missing:
        client.chat.completions.create(model="gpt-4o", messages=[])
    assert missing.value.status_code == 400
    assert missing.value.param == "messages"
    no_model = httpx.post(f"{sim.openai_url}/chat/completions", json={"messages": USER})
    assert no_model.status_code == 400 and no_model.json()["error"]["param"] == "model"


def test_unknown_fault_header_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="unknown fault"):
        client.chat.completions.create(
            model="gpt-4o",
            messages=USER,
            extra_headers={"X-Simulator-Fault": "explode"},
        )


def test_any_api_key_or_none_is_accepted(sim: RunningSimulator) -> None:
    body = {"model": "gpt-4o", "messages": USER}
    url = f"{sim.openai_url}/chat/completions"
    assert httpx.post(url, json=body).status_code == 200
    assert (
        httpx.post(url, json=body, headers={"Authorization": "Bearer anything"}).status_code == 200
    )
    assert httpx.post(url, json=body, headers={"x-api-key": "whatever"}).status_code == 200


def test_unknown_route_is_a_json_404(sim: RunningSimulator) -> None:
    response = httpx.get(f"{sim.url}/v1/nothing-here")
    assert response.status_code == 404
    assert "Unknown request URL" in response.json()["error"]["message"]
