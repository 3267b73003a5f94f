"""The front doors' pure translations (gateway/doors/): requests into chat completions,
answers and streams back, and the refusals that name the field."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from pilothouse.errors import InvalidRequest
from pilothouse.gateway.doors import (
    messages,
    messages_stream,
    responses,
    responses_answer,
    responses_stream,
)
from pilothouse.providers.openai_codec import OpenAIStreamDecoder
from pilothouse.providers.types import EventKind, StreamEvent, token_count


def frame(data: dict[str, Any]) -> StreamEvent:
    return StreamEvent(b"data: " + orjson.dumps(data) + b"\n\n", EventKind.OTHER)


def events(stream_events: list[StreamEvent]) -> list[dict[str, Any]]:
    """Every SSE frame's data, in order (an event may carry several frames)."""
    return [
        orjson.loads(block.split(b"\ndata: ", 1)[1])
        for e in stream_events
        for block in e.data.split(b"\n\n")
        if block
    ]


# ---------------------------------------------------------------------- Responses


def test_responses_items_become_chat_turns() -> None:
    chat = responses.to_chat(
        {
            "model": "fast",
            "instructions": "Be brief.",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "Checking."}],
                },
                {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "w", "arguments": "{}"},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {
                    "type": "function_call_output",
                    "call_id": "c1",
                    "output": [{"type": "input_text", "text": "21 C"}],
                },
                {"type": "function_call_output", "call_id": "c2", "output": "19 C"},
            ],
            "max_output_tokens": 30,
            "parallel_tool_calls": False,
            "metadata": {"team": "x"},
            "reasoning": {"effort": "low"},
            "stream": True,
        }
    )
    roles = [m["role"] for m in chat["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "tool"]
    assistant = chat["messages"][2]
    assert assistant["content"] == [{"type": "text", "text": "Checking."}]
    assert [c["id"] for c in assistant["tool_calls"]] == ["c1", "c2"]
    assert chat["messages"][3] == {"role": "tool", "tool_call_id": "c1", "content": "21 C"}
    assert chat["max_completion_tokens"] == 30 and chat["reasoning_effort"] == "low"
    assert "parallel_tool_calls" not in chat  # without tools OpenAI refuses it
    assert "metadata" not in chat  # echoed in the answer, not sent
    assert chat["stream_options"] == {"include_usage": True}


def test_responses_format_and_tools() -> None:
    chat = responses.to_chat(
        {
            "model": "fast",
            "input": "hi",
            "tools": [{"type": "function", "name": "w", "parameters": {"type": "object"}}],
            "tool_choice": {"type": "function", "name": "w"},
            "parallel_tool_calls": False,
            "text": {"format": {"type": "json_schema", "name": "T", "schema": {}, "strict": True}},
        }
    )
    assert chat["tools"][0]["function"]["name"] == "w"
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "w"}}
    assert chat["parallel_tool_calls"] is False
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "T", "schema": {}, "strict": True},
    }


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"background": True}, "background"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"tools": [{"type": "web_search"}]}, "tools[0]"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0]"),
        ({"input": [{"role": "user", "content": [{"type": "input_file"}]}]}, None),
        ({"input": []}, "input"),
        ({"text": {"format": {"type": "grammar"}}}, "text.format.type"),
        ({"text": {"format": {"type": "json_schema", "name": "T"}}}, "text.format.schema"),
        ({"text": {"format": "json"}}, "text.format"),
        ({"text": "json"}, "text"),
        ({"tools": [{"type": "function", "parameters": {}}]}, "tools[0].name"),
        # Fields the door renames are checked under the client's name, not chat's.
        ({"max_output_tokens": "lots"}, "max_output_tokens"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"reasoning": "high"}, "reasoning"),
        ({"reasoning": {"effort": 5}}, "reasoning.effort"),
        ({"tools": [{"type": "function", "name": "w", "parameters": "x"}]}, "tools[0].parameters"),
        # A call's output names a call made before it (as the providers require).
        (
            {"input": [{"type": "function_call_output", "call_id": "c9", "output": "1"}]},
            "input[0].call_id",
        ),
        (
            {
                "input": [
                    {"type": "function_call_output", "call_id": "c1", "output": "early"},
                    {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
                ]
            },
            "input[0].call_id",
        ),
        (
            {
                "input": [
                    {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
                    {"type": "function_call_output", "call_id": "c2", "output": "1"},
                ]
            },
            "input[1].call_id",
        ),
    ],
)
def test_responses_refusals_name_the_field(extra: dict[str, Any], param: str | None) -> None:
    with pytest.raises(InvalidRequest) as caught:
        responses.to_chat({"model": "fast", "input": "hi", **extra})
    if param is not None:
        assert caught.value.param == param


@pytest.mark.parametrize(
    ("door", "body", "said"),
    [
        ("responses", {"tools": [{"type": "z" * 10_000}]}, "got 'zzz"),
        ("responses", {"text": {"format": {"type": "z" * 10_000}}}, "text.format.type` 'zzz"),
        ("responses", {"input": [{"type": "z" * 10_000}]}, "input[0].type` 'zzz"),
        ("messages", {"max_tokens": "a lot"}, "must be an integer, got str 'a lot'"),
        (
            "messages",
            {"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "z" * 10_000}]}]},
            "type` 'zzz",
        ),
    ],
)
def test_refusals_quote_what_was_sent_briefly(door: str, body: dict[str, Any], said: str) -> None:
    base = {"model": "fast", "input": "hi", "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(InvalidRequest) as caught:
        (responses if door == "responses" else messages).to_chat({**base, **body})
    assert said in caught.value.message
    assert len(caught.value.message) < 300, len(caught.value.message)


def test_responses_store_false_is_accepted() -> None:
    assert responses.to_chat({"model": "fast", "input": "hi", "store": False})["messages"]


def test_responses_answer_and_stream_agree() -> None:
    request = {"model": "fast", "input": "hi", "max_output_tokens": 5}
    completion = {
        "choices": [
            {
                "message": {
                    "content": "Hi",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "w", "arguments": "{}"},
                        }
                    ],
                },
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 4, "completion_tokens": 5, "prompt_tokens_details": {}},
    }
    whole = orjson.loads(
        responses_answer.answer_json(
            completion, request, response_id="resp_1", model="fast", created_at=7
        )
    )
    assert whole["status"] == "incomplete" and whole["created_at"] == 7
    assert whole["incomplete_details"] == {"reason": "max_output_tokens"}
    assert [item["type"] for item in whole["output"]] == ["message", "function_call"]
    assert whole["usage"]["total_tokens"] == 9 and whole["store"] is False

    writer = responses_stream.ResponsesStream(
        request, response_id="resp_1", model="fast", created_at=7
    )
    out = writer.start()
    out += writer.feed(frame({"choices": [{"delta": {"content": "Hi"}}]}))
    text_delta = events(out)[-1]
    assert text_delta == {
        "type": "response.output_text.delta",
        "sequence_number": 4,
        "item_id": text_delta["item_id"],
        "output_index": 0,
        "content_index": 0,
        "delta": "Hi",
        "logprobs": [],
    }
    assert out[-1].kind is EventKind.CONTENT  # the item's opening frames, then the delta
    assert out[-1].data.split(b"\n\n")[-2].startswith(b"event: response.output_text.delta\n")
    call = {"index": 0, "id": "c1", "function": {"name": "w", "arguments": "{"}}
    out += writer.feed(frame({"choices": [{"delta": {"tool_calls": [call]}}]}))
    more = {"index": 0, "function": {"arguments": "}"}}
    out += writer.feed(frame({"choices": [{"delta": {"tool_calls": [more]}}]}))
    out += writer.feed(frame({"choices": [{"delta": {}, "finish_reason": "length"}]}))
    out += writer.feed(frame({"choices": [], "usage": completion["usage"]}))
    out += writer.finish()
    streamed = events(out)
    assert [e["sequence_number"] for e in streamed] == list(range(len(streamed)))
    final = streamed[-1]
    assert final["type"] == "response.incomplete"
    assert final["response"]["output"][1]["arguments"] == "{}"
    assert final["response"]["usage"] == whole["usage"]
    by_type = {e["type"]: e for e in streamed}
    message = final["response"]["output"][0]
    part = {"type": "output_text", "text": "Hi", "annotations": []}
    assert message["content"] == [part] and message["status"] == "completed"
    where = {"item_id": message["id"], "output_index": 0, "content_index": 0}
    text_done = by_type["response.output_text.done"]
    assert text_done == {**text_done, **where, "text": "Hi", "logprobs": []}
    assert by_type["response.content_part.done"] == {
        "type": "response.content_part.done",
        "sequence_number": text_done["sequence_number"] + 1,
        **where,
        "part": part,
    }
    [message_done, _] = [e for e in streamed if e["type"] == "response.output_item.done"]
    assert message_done["item"] == message and message_done["output_index"] == 0
    content = [e for e in out if e.kind is EventKind.CONTENT]
    assert len(content) == 3  # one text delta, two argument deltas: what TTFT reads
    # The stream ends with the very response the plain answer is, and the one it keeps.
    assert final["response"] == whole == writer.result()
    # Frames written from templates are what serializing their objects writes, byte for
    # byte (key order, spacing, escapes): the answer too.
    failed = writer.error(InvalidRequest("cut %s short", hint="retry", param="input"))
    assert events([StreamEvent(failed, EventKind.OTHER)])[-1]["type"] == "response.failed"
    blocks = [block for e in out for block in e.data.split(b"\n\n") if block]
    blocks += failed.split(b"\n\n")[:-1]
    for data in [block.split(b"\ndata: ", 1)[1] for block in blocks] + [
        responses_answer.answer_json(
            completion, request, response_id="resp_1", model="fast", created_at=7
        )
    ]:
        assert orjson.dumps(orjson.loads(data)) == data


# ---------------------------------------------------------------------- Messages


def test_messages_turns_become_chat_turns() -> None:
    chat = messages.to_chat(
        {
            "model": "fast",
            "max_tokens": 20,
            "system": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}],
            "stop_sequences": ["END"],
            "metadata": {"user_id": "u1"},
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
            "tools": [{"name": "w", "input_schema": {"type": "object"}}],
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "see "},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "AA"},
                        },
                    ],
                },
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hm", "signature": "s"},
                        {"type": "tool_use", "id": "t1", "name": "w", "input": {"a": 1}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "content": [{"type": "text", "text": "ok"}],
                        },
                        {"type": "text", "text": "thanks"},
                    ],
                },
            ],
        }
    )
    assert chat["messages"][0] == {"role": "system", "content": "A\n\nB"}
    assert chat["messages"][1]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,AA"},
    }
    call = chat["messages"][2]["tool_calls"][0]
    assert call["function"] == {"name": "w", "arguments": '{"a":1}'}
    assert chat["messages"][3] == {"role": "tool", "tool_call_id": "t1", "content": "ok"}
    assert chat["messages"][4] == {"role": "user", "content": "thanks"}
    assert chat["stop"] == ["END"] and chat["user"] == "u1"
    assert chat["tool_choice"] == "required" and chat["parallel_tool_calls"] is False


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
        ({"max_tokens": 5, "messages": []}, "messages"),
        ({"max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        (
            {
                "max_tokens": 5,
                "messages": [{"role": "user", "content": [{"type": "document"}]}],
            },
            "messages.0.content.0.type",
        ),
        (
            {
                "max_tokens": 5,
                "tool_choice": {"type": "sometimes"},
                "messages": [{"role": "user", "content": "hi"}],
            },
            "tool_choice",
        ),
        (  # a tool result names a tool_use made before it (as the providers require)
            {
                "max_tokens": 5,
                "messages": [
                    {"role": "user", "content": "weather?"},
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t1", "name": "w", "input": {}}],
                    },
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "t2", "content": "x"}],
                    },
                ],
            },
            "messages.2.content.0.tool_use_id",
        ),
        (
            {
                "max_tokens": 5,
                "messages": [
                    {"role": "user", "content": [{"type": "tool_result", "content": "x"}]},
                ],
            },
            "messages.0.content.0.tool_use_id",
        ),
        (
            {
                "max_tokens": 5,
                "messages": [
                    {"role": "user", "content": "weather?"},
                    {"role": "assistant", "content": [{"type": "tool_use", "name": "w"}]},
                ],
            },
            "messages.1.content.0.id",
        ),
        ({"max_tokens": 5, "tools": [{"input_schema": {}}]}, "tools.0.name"),
        ({"max_tokens": 5, "metadata": "u1"}, "metadata"),
        ({"max_tokens": 5, "tool_choice": "auto"}, "tool_choice"),
        ({"max_tokens": 5, "tools": [{"name": "w", "input_schema": "x"}]}, "tools.0.input_schema"),
        (
            {
                "max_tokens": 5,
                "messages": [
                    {"role": "user", "content": [{"type": "image", "source": {"type": "base64"}}]}
                ],
            },
            "messages.0.content.0.source.media_type",
        ),
    ],
)
def test_messages_refusals_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        messages.to_chat({"model": "fast", "messages": [{"role": "user", "content": "hi"}], **body})
    assert caught.value.param == param


@pytest.mark.parametrize(
    ("messages_value", "said"),
    [(None, "`messages` is required"), ("hi", "must be a non-empty list, got str 'hi'")],
)
def test_messages_missing_or_of_the_wrong_type_says_which(messages_value: Any, said: str) -> None:
    body = {"model": "fast", "max_tokens": 5, "messages": messages_value}
    with pytest.raises(InvalidRequest, match=said) as caught:
        messages.to_chat({k: v for k, v in body.items() if v is not None})
    assert caught.value.param == "messages"


def test_what_a_client_leaves_null_is_as_if_left_out() -> None:
    """Clients send null for settings they leave alone: every door takes it."""
    nulls = dict.fromkeys(["text", "reasoning", "tool_choice", "metadata", "max_output_tokens"])
    tool = {"type": "function", "name": "w", "parameters": None}
    chat = responses.to_chat({"model": "fast", "input": "hi", **nulls, "tools": [tool]})
    assert chat["tools"][0]["function"]["parameters"] == {"type": "object", "properties": {}}
    assert not {"response_format", "reasoning_effort", "tool_choice"} & set(chat)
    nested = responses.to_chat(
        {"model": "fast", "input": "hi", "text": {"format": None}, "reasoning": {"effort": None}}
    )
    assert not {"response_format", "reasoning_effort"} & set(nested)
    tool = {"name": "w", "input_schema": None}
    chat = messages.to_chat(
        {
            "model": "fast",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "hi"}],
            "metadata": None,
            "tool_choice": None,
            "tools": [tool],
        }
    )
    assert "user" not in chat and "tool_choice" not in chat
    assert chat["tools"][0]["function"]["parameters"] == {"type": "object", "properties": {}}


def test_a_fault_after_a_stored_conversation_is_named_where_the_client_sent_it() -> None:
    stored = [
        {"role": "user", "content": "Weather in Lisbon?"},
        {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
    ]
    own = [{"type": "function_call_output", "call_id": "c1", "output": "21 C"}]
    body = {"model": "fast", "input": [*stored, *own]}
    chat = responses.to_chat(responses.ContinuedRequest(body, len(stored)))
    assert chat["messages"][-1] == {"role": "tool", "tool_call_id": "c1", "content": "21 C"}
    wrong = [{"type": "function_call_output", "call_id": "c2", "output": "21 C"}]
    body = {"model": "fast", "input": [*stored, *wrong]}
    with pytest.raises(InvalidRequest) as caught:
        responses.to_chat(responses.ContinuedRequest(body, len(stored)))
    assert caught.value.param == "input[0].call_id"
    assert "`input[0].call_id` 'c2'" in caught.value.message


def test_messages_stream_blocks_and_stop_reason() -> None:
    writer = messages_stream.MessagesStream(message_id="msg_1", model="fast")
    out = writer.start()
    out += writer.feed(frame({"choices": [{"delta": {"content": 'Let me "check" ü.'}}]}))
    assert events(out)[-1] == {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": 'Let me "check" ü.'},
    }
    call = {"index": 0, "id": "t1", "function": {"name": "w", "arguments": '{"a"'}}
    out += writer.feed(frame({"choices": [{"delta": {"tool_calls": [call]}}]}))
    more = {"index": 0, "function": {"arguments": ": 1}"}}
    out += writer.feed(frame({"choices": [{"delta": {"tool_calls": [more]}}]}))
    out += writer.feed(frame({"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}))
    usage = {"prompt_tokens": 9, "completion_tokens": 4}
    out += writer.feed(frame({"choices": [], "usage": usage}))
    out += writer.finish()
    kinds = [(e["type"], e.get("index")) for e in events(out)]
    assert kinds == [
        ("message_start", None),
        ("ping", None),
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("message_delta", None),
        ("message_stop", None),
    ]
    delta = events(out)[-2]
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"]["input_tokens"] == 9 and delta["usage"]["output_tokens"] == 4


def test_messages_answer() -> None:
    message = messages.to_message(
        {
            "choices": [
                {
                    "message": {
                        "content": None,
                        "tool_calls": [
                            {"id": "t1", "function": {"name": "w", "arguments": '{"a": 1}'}}
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": 2,
                "prompt_tokens_details": {"cached_tokens": 4},
            },
        },
        message_id="msg_1",
        model="claude",
    )
    assert message["content"] == [{"type": "tool_use", "id": "t1", "name": "w", "input": {"a": 1}}]
    assert message["stop_reason"] == "tool_use"
    assert (
        message["usage"]["input_tokens"] == 6 and message["usage"]["cache_read_input_tokens"] == 4
    )


# ---------------------------------------------------------------------- short paths


def _decoded_stream() -> list[StreamEvent]:
    """A chat stream as the OpenAI decoder hands it on: text-only chunks carry their
    text (`StreamEvent.text`), every other chunk does not."""
    role = {"role": "assistant", "content": ""}
    call = {"index": 0, "id": "c1", "function": {"name": "w", "arguments": '{"a": 1}'}}
    chunks: list[dict[str, Any]] = [
        {"choices": [{"index": 0, "delta": role}]},
        {"choices": [{"index": 0, "delta": {"content": "Hi"}}]},
        {"choices": [{"index": 0, "delta": {"content": ' "there" ü\n', "refusal": None}}]},
        {"choices": [{"index": 0, "delta": {"content": "!\x00%d%s"}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {"content": " Both", "tool_calls": [call]}}]},
        {"choices": [{"index": 0, "delta": {"content": " two"}}, {"index": 1, "delta": {}}]},
        {"choices": [{"index": 0, "delta": {"content": " more"}}]},
        {"choices": [{"index": 0, "delta": {"content": " end"}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 9}},
    ]
    decoder = OpenAIStreamDecoder()
    out: list[StreamEvent] = []
    for chunk in chunks:
        data = orjson.dumps(chunk)
        out += decoder.feed(b"data: " + data + b"\n\n", data)
    out += decoder.feed(b"data: [DONE]\n\n", b"[DONE]")
    return out


def test_decoder_marks_only_chunks_that_are_nothing_but_text() -> None:
    marked = [event.text for event in _decoded_stream()]
    assert marked == [
        None,
        "Hi",
        ' "there" ü\n',
        "!\x00%d%s",
        None,
        None,
        " more",
        None,
        None,
        None,
    ]


@pytest.mark.parametrize("door", ["responses", "messages"])
@pytest.mark.parametrize("per_read", [1, 3, 100])
def test_short_paths_write_what_the_general_path_writes(door: str, per_read: int) -> None:
    """A writer fed the decoder's text marks writes exactly the bytes (and counts exactly
    the frames: events plus the frames merged into them) it writes when it reads every
    chunk, whatever the reads' sizes."""

    def written(stream: list[StreamEvent]) -> tuple[bytes, int, list[EventKind]]:
        if door == "responses":
            writer: Any = responses_stream.ResponsesStream(
                {"model": "fast", "input": "hi"}, response_id="resp_1", model="fast", created_at=7
            )
        else:
            writer = messages_stream.MessagesStream(message_id="msg_1", model="fast")
        out = writer.start()
        for start in range(0, len(stream), per_read):
            out += writer.feed_batch(stream[start : start + per_read])
        out += writer.finish()
        kinds = [e.kind for e in out for _ in range(e.data.count(b"\n\n"))]
        return b"".join(e.data for e in out), len(out) + writer.merged_frames, kinds

    marked = _decoded_stream()
    unmarked = [dataclasses.replace(event, text=None) for event in marked]
    assert any(event.text for event in marked)
    short, general = written(marked), written(unmarked)
    assert short == general
    assert short[1] == len(short[2])  # every frame counted once
    deltas = [e["delta"] for e in events_of(short[0]) if "delta" in e]
    text = "".join(d if isinstance(d, str) else d.get("text", "") for d in deltas)
    assert text.startswith('Hi "there" ü\n!\x00%d%s Both') and text.endswith(" more end")


def events_of(data: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(block.split(b"\ndata: ", 1)[1]) for block in data.split(b"\n\n") if block]


@pytest.mark.parametrize(
    ("value", "count"),
    [(7, 7), (0, 0), (-3, 0), (2**40, 2**31 - 1), (7.9, 7), (True, 0), ("7", 0), (None, 0)],
)
def test_a_usage_value_reads_as_a_bounded_count(value: Any, count: int) -> None:
    assert token_count(value) == count and type(token_count(value)) is int


@pytest.mark.parametrize("odd", ["12x", [3], -4, None, {"n": 1}, float("nan")])
def test_odd_usage_from_a_provider_reads_as_zero_in_every_door(odd: Any) -> None:
    """A provider's usage that is not a count never fails an answer or a stream (the
    request log reads it the same way): the door reports 0 for it."""
    completion = {
        "choices": [{"message": {"content": "Hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": odd, "completion_tokens": 2, "prompt_tokens_details": {}},
    }
    answer = orjson.loads(
        responses_answer.answer_json(
            completion,
            {"model": "fast", "input": "hi"},
            response_id="resp_1",
            model="fast",
            created_at=1,
        )
    )
    assert answer["usage"]["input_tokens"] == 0 and answer["usage"]["total_tokens"] == 2
    message = messages.to_message(completion, message_id="msg_1", model="fast")
    assert message["usage"]["input_tokens"] == 0 and message["usage"]["output_tokens"] == 2
    usage_chunk = frame({"choices": [], "usage": completion["usage"]})
    writer = messages_stream.MessagesStream(message_id="msg_1", model="fast")
    closing = events(writer.start() + writer.feed(usage_chunk) + writer.finish())
    assert closing[-2]["usage"]["input_tokens"] == 0
