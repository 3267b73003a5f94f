"""OpenAI ⇄ Anthropic translation, checked against both official SDKs' own models,
plus the adapter's I/O against a tiny real aiohttp server."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import orjson
import pytest
from aiohttp import web
from anthropic.types import Message as AnthropicMessage
from anthropic.types import RawMessageStreamEvent
from anthropic.types import message_create_params as anthropic_params
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import TypeAdapter

from pilothouse.config import ProviderSpec
from pilothouse.errors import InvalidRequest
from pilothouse.providers import build_provider
from pilothouse.providers.anthropic_request import (
    DEFAULT_MAX_TOKENS,
    STRUCTURED_OUTPUT_TOOL,
    to_anthropic_request,
)
from pilothouse.providers.anthropic_response import to_openai_completion
from pilothouse.providers.anthropic_stream import StreamTranslator
from pilothouse.providers.types import (
    ErrorClass,
    EventKind,
    MalformedAnswer,
    StreamErrorEvent,
    StreamEvent,
    UpstreamError,
)

MODEL = "claude-sonnet-4-5"
CREATE_PARAMS = TypeAdapter(anthropic_params.MessageCreateParamsNonStreaming)
STREAM_EVENT = TypeAdapter(RawMessageStreamEvent)


def _force(value: Any) -> Any:
    """Consume pydantic's lazy iterators so every nested item is really validated."""
    if isinstance(value, dict):
        return {k: _force(v) for k, v in value.items()}
    if isinstance(value, str | bytes | int | float | bool) or value is None:
        return value
    return [_force(v) for v in value]


def translate(body: dict[str, Any]) -> dict[str, Any]:
    """to_anthropic_request, with the result validated by the Anthropic SDK's own types."""
    out = to_anthropic_request(body, MODEL)
    validated = _force(CREATE_PARAMS.validate_python(out))
    assert validated["messages"], validated
    return out


# ------------------------------------------------------------------------- requests


def test_system_and_developer_messages_merge_into_top_level_system() -> None:
    out = translate(
        {
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
                {"role": "user", "content": "hello"},
                {"role": "system", "content": "Never apologise."},
            ],
        }
    )
    assert out["system"] == "You are terse.\n\nAnswer in French.\n\nNever apologise."
    assert out["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]
    assert all(m["role"] in ("user", "assistant") for m in out["messages"])


def test_json_schema_becomes_a_forced_answer_tool() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    out = translate(
        {
            "messages": [{"role": "user", "content": "where?"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": schema},
            },
        }
    )
    assert out["tools"] == [
        {
            "name": STRUCTURED_OUTPUT_TOOL,
            "description": out["tools"][0]["description"],
            "input_schema": schema,
        }
    ]
    assert out["tool_choice"] == {"type": "tool", "name": STRUCTURED_OUTPUT_TOOL}
    assert "response_format" not in out and "system" not in out


def test_json_object_is_an_open_object_and_the_callers_tools_stay_callable() -> None:
    weather = {
        "type": "function",
        "function": {"name": "weather", "parameters": {"type": "object"}},
    }
    out = translate(
        {
            "messages": [{"role": "user", "content": "where?"}],
            "response_format": {"type": "json_object"},
            "tools": [weather],
            "tool_choice": "auto",
        }
    )
    assert [t["name"] for t in out["tools"]] == ["weather", STRUCTURED_OUTPUT_TOOL]
    assert out["tools"][1]["input_schema"]["type"] == "object"
    assert out["tool_choice"] == {"type": "any"}  # the caller's tool, or the answer


def test_a_schema_that_is_not_an_object_is_refused_for_anthropic() -> None:
    with pytest.raises(InvalidRequest) as info:
        to_anthropic_request(
            {
                "messages": [{"role": "user", "content": "n?"}],
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "n", "schema": {"type": "integer"}},
                },
            },
            MODEL,
        )
    assert info.value.param == "response_format.json_schema.schema"


def test_the_answer_tools_input_comes_back_as_the_message_content() -> None:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [
            {
                "type": "tool_use",
                "id": "t1",
                "name": STRUCTURED_OUTPUT_TOOL,
                "input": {"city": "Paris"},
            }
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 5, "output_tokens": 3},
    }
    completion = to_openai_completion(message)
    ChatCompletion.model_validate(completion)
    choice = completion["choices"][0]
    assert orjson.loads(choice["message"]["content"]) == {"city": "Paris"}
    assert "tool_calls" not in choice["message"] and choice["finish_reason"] == "stop"


def test_a_streamed_answer_tool_arrives_as_content_deltas() -> None:
    translator = StreamTranslator(created=1)
    events = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {"id": "m", "model": MODEL, "usage": {"input_tokens": 4}},
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {
                    "type": "tool_use",
                    "id": "t",
                    "name": STRUCTURED_OUTPUT_TOOL,
                    "input": {},
                },
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": '{"city": '},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": '"Paris"}'},
            },
        ),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use"},
                "usage": {"output_tokens": 5},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    frames = [out for name, data in events for out in translator.feed(name, data)]
    chunks = [orjson.loads(f.data[6:]) for f in frames if f.data != b"data: [DONE]\n\n"]
    assert [f.chunk for f in frames[:-1]] == chunks  # each event keeps the chunk it carries
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert orjson.loads(content) == {"city": "Paris"}
    assert not any("tool_calls" in c["choices"][0]["delta"] for c in chunks if c["choices"])
    assert translator.finish_reason == "stop"


def test_multi_turn_conversation_alternates_roles() -> None:
    out = translate(
        {
            "messages": [
                {"role": "user", "content": "one"},
                {"role": "user", "content": [{"type": "text", "text": "two"}]},
                {"role": "assistant", "content": "three"},
                {"role": "assistant", "content": ""},  # empty: dropped, not an empty block
                {"role": "assistant", "content": "four"},
                {"role": "user", "content": "five"},
            ]
        }
    )
    assert out["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
        },
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "three"}, {"type": "text", "text": "four"}],
        },
        {"role": "user", "content": [{"type": "text", "text": "five"}]},
    ]
    roles = [m["role"] for m in out["messages"]]
    assert all(a != b for a, b in itertools.pairwise(roles))


def test_image_parts_become_base64_and_url_image_blocks() -> None:
    out = translate(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "compare"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                        },
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                    ],
                }
            ]
        }
    )
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "compare"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


@pytest.mark.parametrize(
    "part",
    [
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
        {"type": "image_url", "image_url": {"url": "data:image/png,notbase64"}},
        {"type": "image_url", "image_url": {"url": "ftp://example.com/x.png"}},
    ],
)
def test_unsupported_content_parts_are_refused(part: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest) as info:
        to_anthropic_request({"messages": [{"role": "user", "content": [part]}]}, MODEL)
    assert "messages[0].content[0]" in info.value.message


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def test_tools_become_anthropic_tools() -> None:
    bare = {"type": "function", "function": {"name": "now"}}
    out = translate(
        {"messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER_TOOL, bare]}
    )
    assert out["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather for a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],  # type: ignore[index]
        },
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in out


def test_tool_calls_round_trip_and_tool_results_merge_into_one_user_turn() -> None:
    arguments = {"city": "Paris", "unit": "celsius", "nested": {"days": [1, 2]}}
    out = translate(
        {
            "messages": [
                {"role": "user", "content": "weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {
                                "name": "get_weather",
                                "arguments": orjson.dumps(arguments).decode(),
                            },
                        },
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
                {
                    "role": "tool",
                    "tool_call_id": "call_2",
                    "content": [{"type": "text", "text": "21C"}],
                },
                {"role": "user", "content": "and tomorrow?"},
            ],
            "tools": [WEATHER_TOOL],
        }
    )
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]
    assert out["messages"][1]["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": arguments},
        {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}},
    ]
    assert out["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "18C, sunny"},
        {
            "type": "tool_result",
            "tool_use_id": "call_2",
            "content": [{"type": "text", "text": "21C"}],
        },
        {"type": "text", "text": "and tomorrow?"},
    ]

    # ...and Anthropic's tool_use answer comes back as OpenAI tool_calls with the same input.
    completion = to_openai_completion(
        {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": out["messages"][1]["content"],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5},
        }
    )
    ChatCompletion.model_validate(completion)
    message = completion["choices"][0]["message"]
    assert message["content"] is None
    assert [c["id"] for c in message["tool_calls"]] == ["call_1", "call_2"]
    assert orjson.loads(message["tool_calls"][0]["function"]["arguments"]) == arguments
    assert completion["choices"][0]["finish_reason"] == "tool_calls"


def test_tool_results_go_before_user_text_in_the_same_turn() -> None:
    out = translate(
        {
            "messages": [
                {"role": "user", "content": "go"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}
                    ],
                },
                {"role": "user", "content": "note"},
                {"role": "tool", "tool_call_id": "c1", "content": "ok"},
            ]
        }
    )
    assert out["messages"][1]["content"] == [
        {"type": "tool_use", "id": "c1", "name": "f", "input": {}}
    ]
    assert [b["type"] for b in out["messages"][2]["content"]] == ["tool_result", "text"]


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
    ],
)
def test_tool_choice_mapping(choice: Any, parallel: Any, expected: dict[str, Any]) -> None:
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [WEATHER_TOOL],
    }
    if choice is not None:
        body["tool_choice"] = choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    assert translate(body)["tool_choice"] == expected


def test_invalid_tool_choice_is_refused() -> None:
    body = {
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [WEATHER_TOOL],
        "tool_choice": "always",
    }
    with pytest.raises(InvalidRequest) as info:
        to_anthropic_request(body, MODEL)
    assert info.value.param == "tool_choice"


def test_sampling_parameters_are_mapped_and_unsupported_ones_dropped() -> None:
    base = {"messages": [{"role": "user", "content": "hi"}]}
    out = translate(
        {
            **base,
            "max_completion_tokens": 300,
            "max_tokens": 999,
            "temperature": 0.2,
            "top_p": 0.9,
            "stop": "END",
            "user": "user-42",
            "seed": 7,
            "logprobs": True,
            "frequency_penalty": 0.5,
            "presence_penalty": 0.5,
            "stream": True,
            "n": 1,
        }
    )
    assert out == {
        "model": MODEL,
        "max_tokens": 300,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "user-42"},
    }
    assert translate({**base, "max_tokens": 50})["max_tokens"] == 50
    assert translate(base)["max_tokens"] == DEFAULT_MAX_TOKENS
    assert translate({**base, "stop": ["a", "b"]})["stop_sequences"] == ["a", "b"]


def test_n_greater_than_one_is_refused() -> None:
    with pytest.raises(InvalidRequest) as info:
        to_anthropic_request({"messages": [{"role": "user", "content": "hi"}], "n": 2}, MODEL)
    assert info.value.message == "n > 1 is not supported by Anthropic models"
    assert info.value.param == "n"
    assert info.value.status == 400


@pytest.mark.parametrize("arguments", ['{"city": "Par', "[1, 2]"])
def test_tool_arguments_that_are_not_a_json_object_are_refused(arguments: str) -> None:
    body = {
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "f", "arguments": arguments},
                    }
                ],
            },
        ]
    }
    with pytest.raises(InvalidRequest) as info:
        to_anthropic_request(body, MODEL)
    assert "messages[1]" in info.value.message
    assert info.value.param == "messages[1].tool_calls[0].function.arguments"


def test_a_conversation_of_only_system_messages_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        to_anthropic_request({"messages": [{"role": "system", "content": "x"}]}, MODEL)


# ------------------------------------------------------------------------ responses


def anthropic_message(**overrides: Any) -> dict[str, Any]:
    message = {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "Hello"},
            {"type": "text", "text": ", world"},
        ],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 12,
            "output_tokens": 6,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 30,
        },
    }
    message.update(overrides)
    AnthropicMessage.model_validate(message)  # the fixture is a real Messages answer
    return message


def test_text_completion_with_cache_usage() -> None:
    completion = to_openai_completion(anthropic_message(), created=1_700_000_000)
    ChatCompletion.model_validate(completion)
    assert completion == {
        "id": "chatcmpl-msg_01XFDUDYJgAACzvnptvVoYEL",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "claude-sonnet-4-5-20250929",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello, world"},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 142,
            "completion_tokens": 6,
            "total_tokens": 148,
            "prompt_tokens_details": {"cached_tokens": 100},
        },
    }


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_stop_reasons(stop_reason: str, finish_reason: str) -> None:
    completion = to_openai_completion(anthropic_message(stop_reason=stop_reason))
    ChatCompletion.model_validate(completion)
    assert completion["choices"][0]["finish_reason"] == finish_reason


def test_answer_without_content_is_malformed() -> None:
    with pytest.raises(MalformedAnswer):
        to_openai_completion({"id": "msg_1", "type": "message", "model": MODEL})


# --------------------------------------------------------------------------- stream

TOOL_ARGUMENTS = '{"city": "Paris", "unit": "celsius"}'
ARGUMENT_PARTS = ['{"city": "Pa', 'ris", "unit', '": "celsius"}']
assert "".join(ARGUMENT_PARTS) == TOOL_ARGUMENTS

# Recorded from the Messages API (ids shortened), as it is framed on the wire.
RECORDED_EVENTS: list[tuple[str, dict[str, Any]]] = [
    (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_014p7gG3wDgGV9EUtLvnow3U",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5-20250929",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": 472,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 2048,
                    "output_tokens": 2,
                },
            },
        },
    ),
    (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ),
    ("ping", {"type": "ping"}),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Let me check"},
        },
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": " the weather."},
        },
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    (
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {
                "type": "tool_use",
                "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                "name": "get_weather",
                "input": {},
            },
        },
    ),
    *[
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": part},
            },
        )
        for part in ARGUMENT_PARTS
    ],
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 89},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
]


def sse_bytes(events: list[tuple[str, dict[str, Any]]]) -> bytes:
    return b"".join(
        b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
        for name, data in events
    )


def test_recorded_events_are_real_anthropic_stream_events() -> None:
    for name, data in RECORDED_EVENTS:
        if name != "ping":  # the SDK has no model for keep-alives
            assert STREAM_EVENT.validate_python(data).type == name


def expected_chunks() -> list[dict[str, Any]]:
    head = {
        "id": "chatcmpl-msg_014p7gG3wDgGV9EUtLvnow3U",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "claude-sonnet-4-5-20250929",
    }

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            **head,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }

    return [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Let me check"}),
        chunk({"content": " the weather."}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            }
        ),
        *[
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
            for part in ARGUMENT_PARTS
        ],
        chunk({}, "tool_calls"),
        {
            **head,
            "choices": [],
            "usage": {
                "prompt_tokens": 2520,
                "completion_tokens": 89,
                "total_tokens": 2609,
                "prompt_tokens_details": {"cached_tokens": 2048},
            },
        },
    ]


EXPECTED_KINDS = [
    EventKind.OTHER,
    EventKind.CONTENT,
    EventKind.CONTENT,
    EventKind.OTHER,
    EventKind.CONTENT,
    EventKind.CONTENT,
    EventKind.CONTENT,
    EventKind.OTHER,
    EventKind.USAGE_ONLY,
    EventKind.DONE,
]


def test_stream_translation_produces_the_exact_openai_chunk_sequence() -> None:
    translator = StreamTranslator(created=1_700_000_000)
    events: list[StreamEvent] = []
    for name, data in RECORDED_EVENTS:
        events.extend(translator.feed(name, data))

    assert [event.kind for event in events] == EXPECTED_KINDS
    assert events[-1].data == b"data: [DONE]\n\n"
    assert all(e.data.startswith(b"data: ") and e.data.endswith(b"\n\n") for e in events)
    chunks = [orjson.loads(e.data[6:]) for e in events[:-1]]
    assert chunks == expected_chunks()
    assert [e.chunk for e in events[:-1]] == chunks  # kept, so no door parses it again
    texts = [c["choices"][0]["delta"].get("content") if c["choices"] else None for c in chunks]
    assert [e.text for e in events[:-1]] == [t or None for t in texts]
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)

    # The usage-only chunk comes last, right before [DONE].
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 2609
    assert all("usage" not in c for c in chunks[:-1])
    arguments = "".join(
        call["function"].get("arguments", "")
        for c in chunks
        for choice in c["choices"]
        for call in choice["delta"].get("tool_calls", [])
    )
    assert arguments == TOOL_ARGUMENTS
    assert translator.done and translator.finish_reason == "tool_calls"
    assert translator.usage is not None and translator.usage.cached_tokens == 2048


def test_second_tool_use_block_gets_openai_index_one() -> None:
    translator = StreamTranslator()
    translator.feed(*RECORDED_EVENTS[0])
    start = {
        "type": "content_block_start",
        "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}},
    }
    translator.feed("content_block_start", {**start, "index": 0})
    (start_event,) = translator.feed("content_block_start", {**start, "index": 2})
    (delta_event,) = translator.feed(
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": "{}"},
        },
    )
    assert start_event.chunk is not None
    assert start_event.chunk["choices"][0]["delta"]["tool_calls"][0]["index"] == 1
    assert orjson.loads(delta_event.data[6:])["choices"][0]["delta"]["tool_calls"][0]["index"] == 1


def test_stream_error_event_raises() -> None:
    translator = StreamTranslator()
    translator.feed(*RECORDED_EVENTS[0])
    with pytest.raises(StreamErrorEvent) as info:
        translator.feed(
            "error",
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        )
    assert info.value.error_type == "overloaded_error" and info.value.message == "Overloaded"


# ----------------------------------------------------------------- adapter over HTTP


async def _with_server(check: Any) -> None:
    seen: list[web.Request] = []

    async def messages(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        body = await request.json()
        scenario = body["model"]
        if scenario == "canned":
            assert "stream" not in body
            return web.json_response(anthropic_message())
        if scenario == "no-content":
            return web.json_response({"id": "msg_1", "type": "message", "model": MODEL})
        if scenario in ("stream", "cut", "bad-event"):
            assert body["stream"] is True
            events = RECORDED_EVENTS if scenario == "stream" else RECORDED_EVENTS[:-1]
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            payload = sse_bytes(events)
            if scenario == "bad-event":
                payload = sse_bytes(events[:2]) + b"event: content_block_delta\ndata: {oops\n\n"
            for i in range(0, len(payload), 97):  # odd-sized pieces, like a real network
                await response.write(payload[i : i + 97])
            await response.write_eof()
            return response
        if scenario == "overloaded":
            return web.json_response(
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
                status=529,
                reason="Overloaded",
            )
        return web.Response(body=b'{"id": "msg_1", "content": [', content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        await check(f"http://127.0.0.1:{port}", seen)
    finally:
        await runner.cleanup()


def anthropic_provider(base_url: str, key_env: str | None) -> Any:
    spec = ProviderSpec(type="anthropic", base_url=base_url, api_key_env=key_env)
    return build_provider("claude", spec)


def test_adapter_against_a_real_http_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", "sk-ant-test")
    body = {"messages": [{"role": "user", "content": "weather in Paris?"}], "stream": True}

    async def check(base_url: str, seen: list[web.Request]) -> None:
        provider = anthropic_provider(base_url, "TEST_ANTHROPIC_KEY")
        try:
            # (a) a canned message
            result = await provider.chat(body, "canned")
            completion = orjson.loads(result.body)
            ChatCompletion.model_validate(completion)
            assert completion["choices"][0]["message"]["content"] == "Hello, world"
            assert result.finish_reason == "stop"
            assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (142, 6)
            assert result.usage.cached_tokens == 100
            assert seen[-1].path == "/v1/messages"
            assert seen[-1].headers["x-api-key"] == "sk-ant-test"
            assert seen[-1].headers["anthropic-version"] == "2023-06-01"

            # a whole stream, through the real SSE framing
            stream = await provider.chat_stream(body, "stream")
            events = [event async for event in stream]
            assert [e.kind for e in events] == EXPECTED_KINDS
            chunks = [orjson.loads(e.data[6:]) for e in events[:-1]]
            created = chunks[0]["created"]
            assert isinstance(created, int)
            assert chunks == [{**c, "created": created} for c in expected_chunks()]
            assert events[-1].data == b"data: [DONE]\n\n"
            assert stream.chunks_in == len(RECORDED_EVENTS)
            assert stream.finish_reason == "tool_calls"
            assert stream.usage is not None and stream.usage.completion_tokens == 89

            # (b) a stream cut before message_stop: what came is yielded, then TRUNCATED
            stream = await provider.chat_stream(body, "cut")
            got = []
            with pytest.raises(UpstreamError) as info:
                async for event in stream:
                    got.append(event)
            assert info.value.error_class == ErrorClass.TRUNCATED
            assert [e.kind for e in got] == EXPECTED_KINDS[:-2]
            assert stream.usage is not None and stream.usage.prompt_tokens == 2520
            await stream.aclose()

            # (c) 529 overloaded
            with pytest.raises(UpstreamError) as info:
                await provider.chat(body, "overloaded")
            assert info.value.error_class == ErrorClass.UPSTREAM_5XX
            assert info.value.status == 502 and info.value.upstream_status == 529
            assert "Overloaded" in info.value.message

            # (d) a 200 whose body is not JSON
            with pytest.raises(UpstreamError) as info:
                await provider.chat(body, "broken")
            assert info.value.error_class == ErrorClass.MALFORMED
            # ...or JSON without `content`
            with pytest.raises(UpstreamError) as info:
                await provider.chat(body, "no-content")
            assert info.value.error_class == ErrorClass.MALFORMED
            assert "content" in info.value.message
            # ...and a stream event that is not JSON
            stream = await provider.chat_stream(body, "bad-event")
            with pytest.raises(UpstreamError) as info:
                _ = [event async for event in stream]
            assert info.value.error_class == ErrorClass.MALFORMED
            assert stream.chunks_in == 3

            with pytest.raises(UpstreamError) as info:
                await provider.embeddings({"input": "x"}, "canned")
            assert info.value.error_class == ErrorClass.UPSTREAM_4XX and info.value.status == 400
        finally:
            await provider.close()

        # A base URL that already ends in /v1 posts to the same endpoint.
        provider = anthropic_provider(base_url + "/v1/", None)
        try:
            result = await provider.chat(body, "canned")
            assert result.finish_reason == "stop"
            assert seen[-1].path == "/v1/messages" and "x-api-key" not in seen[-1].headers
        finally:
            await provider.close()

    asyncio.run(_with_server(check))
