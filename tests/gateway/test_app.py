"""The gateway's request path in-process (tests/inprocess.py): the real stages, codecs,
stream loop and request log, with providers scripted at the transport."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from inprocess import InProcess, Scripted

pytestmark = pytest.mark.anyio


def completion(content: Any = "Hello!", **overrides: Any) -> dict[str, Any]:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "sim-small",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500},
    }
    body.update(overrides)
    return body


def chunk(
    content: str | None = None, finish: str | None = None, usage: Any = None
) -> dict[str, Any]:
    choices = (
        []
        if usage is not None
        else [
            {"index": 0, "delta": {"content": content} if content else {}, "finish_reason": finish}
        ]
    )
    out: dict[str, Any] = {"id": "c1", "object": "chat.completion.chunk", "choices": choices}
    if usage is not None:
        out["usage"] = usage
    return out


USAGE = {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}


async def test_a_completion_is_answered_and_costed_from_the_deployment_that_served_it(
    tmp_path: Path,
) -> None:
    async with InProcess.start(tmp_path) as gw:
        gw.script("sim", Scripted.json(completion()))
        response = await gw.chat()
        assert response.status_code == 200
        assert response.json()["choices"][0]["message"]["content"] == "Hello!"
        # 1000 prompt tokens at $1/M + 500 completion tokens at $2/M
        assert response.headers["x-pilothouse-cost-usd"] == "0.00200000"
        url, sent = gw.transports["sim"].requests[0]
        assert url == "http://sim.invalid/v1/chat/completions" and sent["model"] == "sim-small"
        [row] = await gw.rows(1)
        assert (row["provider"], row["provider_model"], row["cost_usd"]) == (
            "sim",
            "sim-small",
            0.002,
        )
        assert row["id"] == response.headers["x-request-id"]


async def test_our_extras_never_reach_the_provider(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path) as gw:
        gw.script("sim", Scripted.json(completion()))
        response = await gw.chat(pilothouse={"variables": {"x": 1}})
        assert response.status_code == 200
        assert "pilothouse" not in gw.transports["sim"].requests[0][1]


async def test_a_stream_is_relayed_and_the_usage_chunk_only_goes_to_who_asked(
    tmp_path: Path,
) -> None:
    frames = [chunk("Hel"), chunk("lo"), chunk(finish="stop"), chunk(usage=USAGE), "[DONE]"]
    async with InProcess.start(tmp_path) as gw:
        gw.script("sim", Scripted.sse(*frames), Scripted.sse(*frames))
        plain = await gw.chat(stream=True)
        asked = await gw.chat(stream=True, stream_options={"include_usage": True})
        sent = gw.transports["sim"].requests[0][1]
        assert sent["stream_options"] == {"include_usage": True}  # always asked upstream
        assert b'"usage"' not in plain.content and plain.content.endswith(b"data: [DONE]\n\n")
        assert b'"usage"' in asked.content
        rows = await gw.rows(2)
        assert all(r["completion_tokens"] == 3 and r["finish_reason"] == "stop" for r in rows)
        assert all(r["ttft_delivered_ms"] is not None for r in rows)


async def test_the_providers_error_code_reaches_the_client(tmp_path: Path) -> None:
    error = {
        "message": "This model's maximum context length is 8192 tokens.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
    async with InProcess.start(tmp_path) as gw:
        gw.script("sim", Scripted.json({"error": error}, status=400))
        response = await gw.chat()
        assert response.status_code == 400
        body = response.json()["error"]
        assert (body["type"], body["code"], body["param"]) == (
            "invalid_request_error",
            "context_length_exceeded",
            "messages",
        )
        assert error["message"] in body["message"] and "'sim'" in body["message"]
        assert body["pilothouse"]["error_class"] == "upstream_4xx"


@pytest.mark.parametrize(
    ("answer", "status", "expected"),
    [
        # Non-numeric usage is not a count: the answer is good, its tokens read as 0.
        (completion(usage={"prompt_tokens": "many", "completion_tokens": [1]}), 200, None),
        # A choice that is not an object is not a chat completion.
        (completion(choices=["oops"]), 502, "malformed"),
        (completion(choices=None), 502, "malformed"),
        ([1, 2, 3], 502, "malformed"),
    ],
)
async def test_odd_upstream_json_gives_an_openai_error_never_a_plain_500(
    tmp_path: Path, answer: Any, status: int, expected: str | None
) -> None:
    async with InProcess.start(tmp_path) as gw:
        gw.script("sim", Scripted(body=orjson.dumps(answer)))
        response = await gw.chat()
        assert response.status_code == status
        assert response.headers["content-type"] == "application/json"
        if expected:
            assert response.json()["error"]["type"] == expected
        [row] = await gw.rows(1)
        assert row["status_code"] == status and row["error_class"] == expected


async def test_an_anthropic_stop_reason_that_is_a_list_still_answers(tmp_path: Path) -> None:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "sim-claude",
        "content": [{"type": "text", "text": "Bonjour"}],
        "stop_reason": ["end_turn"],
        "usage": {"input_tokens": 7, "output_tokens": "2"},
    }
    async with InProcess.start(tmp_path) as gw:
        gw.script("claude-api", Scripted.json(message))
        response = await gw.chat("claude")
        assert response.status_code == 200
        choice = response.json()["choices"][0]
        assert choice["message"]["content"] == "Bonjour" and choice["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("provider", "model", "frames"),
    [
        ("sim", "fast", [chunk("Hi"), chunk(finish="stop"), b"data: [DONE]\n"]),
        (
            "claude-api",
            "claude",
            [
                {
                    "type": "message_start",
                    "message": {"id": "m", "model": "x", "usage": {"input_tokens": 3}},
                },
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": "Hi"},
                },
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn"},
                    "usage": {"output_tokens": 1},
                },
                b'event: message_stop\ndata: {"type": "message_stop"}',
            ],
        ),
    ],
)
async def test_an_end_marker_without_its_blank_line_still_ends_the_stream(
    tmp_path: Path, provider: str, model: str, frames: list[Any]
) -> None:
    # One rule for every API: a last frame that still decodes is used.
    async with InProcess.start(tmp_path) as gw:
        gw.script(provider, Scripted.sse(*frames, event=provider == "claude-api"))
        response = await gw.chat(model, stream=True)
        assert b'"error"' not in response.content and b"data: [DONE]" in response.content
        [row] = await gw.rows(1)
        assert row["error_class"] is None and row["finish_reason"] == "stop"


@pytest.mark.parametrize("provider", ["sim", "claude-api"])
async def test_a_stream_cut_mid_frame_is_truncated_for_every_api(
    tmp_path: Path, provider: str
) -> None:
    if provider == "sim":
        frames: list[Any] = [chunk("Hi"), b'data: {"id": "c1", "choi']
    else:
        frames = [
            {
                "type": "message_start",
                "message": {"id": "m", "model": "x", "usage": {"input_tokens": 3}},
            },
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Hi"},
            },
            b'event: content_block_delta\ndata: {"type": "content_bl',
        ]
    async with InProcess.start(tmp_path) as gw:
        gw.script(provider, Scripted.sse(*frames, event=provider == "claude-api"))
        response = await gw.chat("fast" if provider == "sim" else "claude", stream=True)
        events = [line for line in response.content.split(b"\n\n") if line]
        assert orjson.loads(events[-1][6:])["error"]["type"] == "truncated"
        [row] = await gw.rows(1)
        assert row["error_class"] == "truncated"
