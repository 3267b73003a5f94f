"""The Responses (`/v1/responses`) and Messages (`/v1/messages`) front doors driven by the
official `openai` and `anthropic` SDKs, in-process (tests/inprocess.py) with every provider
answered by the simulator's own app: an OpenAI-type alias (`fast`), an Anthropic-type
alias (`claude`) and a route (`route:helper`, on `fast`). The same stages as chat: the
request log names the door, costs and TTFT are recorded."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2  # the anthropic SDK's own HTTP client package
import openai
import pydantic
import pytest

from inprocess import InProcess

pytestmark = pytest.mark.anyio

TARGETS = ["fast", "claude", "route:helper"]
ALIASES = ["fast", "claude"]
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
    "required": ["city", "unit"],
}
RESPONSES_TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": WEATHER_SCHEMA,
        "strict": False,
    }
]
MESSAGES_TOOLS: list[Any] = [
    {"name": "get_weather", "description": "Weather for a city", "input_schema": WEATHER_SCHEMA}
]


@asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[InProcess]:
    """The server on the in-process simulator, with route `helper` (a system prompt) on
    `fast`."""
    async with InProcess.start(tmp_path, simulated=True) as gw:
        pushed = await gw.client.post(
            "/api/prompts/helper/versions",
            json={"messages": [{"role": "system", "content": "Answer briefly."}]},
            headers=gw.admin,
        )
        assert pushed.status_code == 201, pushed.text
        promoted = await gw.client.post(
            "/api/routes/helper/promote",
            json={"prompt": "helper@1", "model": "fast"},
            headers=gw.admin,
        )
        assert promoted.status_code == 201, promoted.text
        yield gw


_OPEN: list[openai.AsyncOpenAI | anthropic.AsyncAnthropic] = []


@pytest.fixture(autouse=True)
async def _close_sdks() -> AsyncIterator[None]:
    """Each test's SDK clients closed in its own loop (left to the garbage collector, the
    SDK closes them from whatever loop runs then, failing an unrelated test)."""
    yield
    while _OPEN:
        await _OPEN.pop().close()


def openai_sdk(gw: InProcess) -> openai.AsyncOpenAI:
    http = httpx.AsyncClient(transport=gw.client._transport, base_url="http://gw")
    sdk = openai.AsyncOpenAI(
        base_url="http://gw/v1", api_key=gw.key, http_client=http, max_retries=0
    )
    _OPEN.append(sdk)
    return sdk


def anthropic_sdk(gw: InProcess, key: str | None = None) -> anthropic.AsyncAnthropic:
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=gw.server))
    sdk = anthropic.AsyncAnthropic(
        base_url="http://gw", api_key=key or gw.key, http_client=http, max_retries=0
    )
    _OPEN.append(sdk)
    return sdk


def row_of(rows: list[dict[str, Any]], request_id: str) -> dict[str, Any]:
    [row] = [r for r in rows if r["id"] == request_id]
    return row


def expected_alias(target: str) -> str:
    return "fast" if target.startswith("route:") else target


# ---------------------------------------------------------------------- /v1/responses


@pytest.mark.parametrize("target", TARGETS)
async def test_responses_create_plain_and_streamed(tmp_path: Path, target: str) -> None:
    async with serving(tmp_path) as gw:
        sdk = openai_sdk(gw)
        raw = await sdk.responses.with_raw_response.create(
            model=target, instructions="Be brief.", input="Say hello to the gateway."
        )
        response = raw.parse()
        assert response.status == "completed" and response.output_text
        assert response.model == target  # the id names the request-log row:
        assert response.id == "resp_" + raw.headers["x-request-id"].replace("-", "")
        assert response.usage is not None and response.usage.input_tokens > 0
        assert response.usage.output_tokens > 0

        events = [
            event
            async for event in await sdk.responses.create(
                model=target, input="Say hello to the gateway.", stream=True
            )
        ]
        kinds = [event.type for event in events]
        assert kinds[:2] == ["response.created", "response.in_progress"]
        assert kinds[-1] == "response.completed"
        assert [event.sequence_number for event in events] == list(range(len(events)))
        deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        done = [e for e in events if e.type == "response.output_text.done"]
        assert deltas and done[0].text == deltas
        final = events[-1].response
        assert final.output_text == deltas and final.usage.output_tokens > 0

        rows = await gw.rows(2)
        plain = row_of(rows, raw.headers["x-request-id"])
        assert plain["endpoint"] == "responses" and plain["outcome"] == "ok"
        assert plain["model_alias"] == expected_alias(target)
        assert plain["prompt_tokens"] == response.usage.input_tokens
        assert plain["cost_usd"] > 0
        assert plain["route"] == ("helper" if target.startswith("route:") else None)
        [streamed] = [r for r in rows if r["id"] != plain["id"]]
        assert streamed["endpoint"] == "responses" and streamed["stream"] is True
        assert streamed["ttft_delivered_ms"] is not None and streamed["cost_usd"] > 0
        assert streamed["completion_tokens"] == final.usage.output_tokens


async def test_a_route_through_responses_sends_the_release_prompt(tmp_path: Path) -> None:
    async with serving(tmp_path) as gw:
        response = await openai_sdk(gw).responses.create(model="route:helper", input="Hi")
        assert response.output_text
        _, sent = gw.transports["sim"].requests[-1]
        assert sent["messages"][0] == {"role": "system", "content": "Answer briefly."}
        assert sent["messages"][-1] == {"role": "user", "content": "Hi"}


@pytest.mark.parametrize("target", TARGETS)
async def test_responses_tools_round_trip(tmp_path: Path, target: str) -> None:
    async with serving(tmp_path) as gw:
        sdk = openai_sdk(gw)
        question = [{"role": "user", "content": "What is the weather in Lisbon?"}]
        first = await sdk.responses.create(
            model=target, input=question, tools=RESPONSES_TOOLS, tool_choice="required"
        )
        [call] = [item for item in first.output if item.type == "function_call"]
        assert call.name == "get_weather" and call.call_id
        assert set(json.loads(call.arguments)) >= {"city", "unit"}

        follow_up = await sdk.responses.create(
            model=target,
            tools=RESPONSES_TOOLS,
            input=[
                *question,
                call.model_dump(exclude_none=True),
                {"type": "function_call_output", "call_id": call.call_id, "output": '{"t": 21}'},
            ],
        )
        assert follow_up.output_text
        assert not [item for item in follow_up.output if item.type == "function_call"]

        streamed = [
            event
            async for event in await sdk.responses.create(
                model=target,
                input=question,
                tools=RESPONSES_TOOLS,
                tool_choice="required",
                stream=True,
            )
        ]
        parts = [e.delta for e in streamed if e.type == "response.function_call_arguments.delta"]
        [done] = [e for e in streamed if e.type == "response.function_call_arguments.done"]
        assert parts and "".join(parts) == done.arguments
        assert set(json.loads(done.arguments)) >= {"city", "unit"}
        assert streamed[-1].type == "response.completed"
        assert streamed[-1].response.output[0].type == "function_call"


class Triage(pydantic.BaseModel):
    label: str
    urgent: bool


@pytest.mark.parametrize("target", TARGETS)
async def test_responses_parse_with_a_pydantic_model(tmp_path: Path, target: str) -> None:
    async with serving(tmp_path) as gw:
        parsed = await openai_sdk(gw).responses.parse(
            model=target, input="Triage: the app crashes on start.", text_format=Triage
        )
        assert isinstance(parsed.output_parsed, Triage)
        if target == "claude":  # structured output reached Anthropic as a forced tool
            _, sent = gw.transports["claude-api"].requests[-1]
            assert sent["tool_choice"]["type"] == "tool"


async def test_responses_refuses_what_it_cannot_serve_before_any_upstream_call(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path) as gw:
        sdk = openai_sdk(gw)
        with pytest.raises(openai.BadRequestError, match="web_search"):
            await sdk.responses.create(model="fast", input="Hi", tools=[{"type": "web_search"}])
        with pytest.raises(openai.BadRequestError, match="background"):
            await sdk.responses.create(model="fast", input="Hi", background=True)
        # A call's output that answers no call (a provider would refuse it in chat terms).
        with pytest.raises(openai.BadRequestError, match="'call_nope' answers no") as caught:
            await sdk.responses.create(
                model="claude",
                input=[
                    {"role": "user", "content": "Weather in Paris?"},
                    {"type": "function_call_output", "call_id": "call_nope", "output": "21 C"},
                ],
            )
        assert caught.value.param == "input[1].call_id"
        rows = await gw.rows(3)
        assert {r["outcome"] for r in rows} == {"client_error"}
        assert {r["error_class"] for r in rows} == {"invalid_request_error"}
        assert all(r["attempt_count"] == 0 for r in rows)
        assert not gw.transports["sim"].requests and not gw.transports["claude-api"].requests


# ---------------------------------------------------------------------- /v1/messages


@pytest.mark.parametrize("target", TARGETS)
async def test_messages_create_and_stream(tmp_path: Path, target: str) -> None:
    async with serving(tmp_path) as gw:
        sdk = anthropic_sdk(gw)  # authenticates with x-api-key, as the SDK does
        raw = await sdk.messages.with_raw_response.create(
            model=target,
            max_tokens=200,
            system=[{"type": "text", "text": "Be brief."}],
            messages=[{"role": "user", "content": "Say hello to the gateway."}],
        )
        message = await raw.parse()
        assert message.id == "msg_" + raw.headers["x-request-id"].replace("-", "")
        assert message.type == "message" and message.role == "assistant"
        assert message.content[0].type == "text" and message.content[0].text
        assert message.stop_reason == "end_turn"
        assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0

        async with sdk.messages.stream(
            model=target,
            max_tokens=200,
            messages=[{"role": "user", "content": "Say hello to the gateway."}],
        ) as stream:
            text = "".join([piece async for piece in stream.text_stream])
            final = await stream.get_final_message()
        assert text and final.content[0].text == text
        assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0

        rows = await gw.rows(2)
        plain = row_of(rows, raw.headers["x-request-id"])
        assert plain["endpoint"] == "messages" and plain["outcome"] == "ok"
        assert plain["model_alias"] == expected_alias(target) and plain["cost_usd"] > 0
        assert plain["completion_tokens"] == message.usage.output_tokens
        [streamed] = [r for r in rows if r["id"] != plain["id"]]
        assert streamed["stream"] is True and streamed["ttft_delivered_ms"] is not None
        assert streamed["completion_tokens"] == final.usage.output_tokens


@pytest.mark.parametrize("target", TARGETS)
async def test_messages_tools_round_trip(tmp_path: Path, target: str) -> None:
    async with serving(tmp_path) as gw:
        sdk = anthropic_sdk(gw)
        question = {"role": "user", "content": "What is the weather in Lisbon?"}
        first = await sdk.messages.create(
            model=target,
            max_tokens=300,
            tools=MESSAGES_TOOLS,
            tool_choice={"type": "any"},
            messages=[question],
        )
        [use] = [block for block in first.content if block.type == "tool_use"]
        assert first.stop_reason == "tool_use" and use.name == "get_weather"
        assert set(use.input) >= {"city", "unit"}

        follow_up = await sdk.messages.create(
            model=target,
            max_tokens=300,
            tools=MESSAGES_TOOLS,
            messages=[
                question,
                {"role": "assistant", "content": [b.model_dump() for b in first.content]},
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "21 C"}],
                },
            ],
        )
        assert follow_up.stop_reason == "end_turn" and follow_up.content[0].type == "text"

        async with sdk.messages.stream(
            model=target,
            max_tokens=300,
            tools=MESSAGES_TOOLS,
            tool_choice={"type": "tool", "name": "get_weather"},
            messages=[question],
        ) as stream:
            final = await stream.get_final_message()
        [streamed_use] = [block for block in final.content if block.type == "tool_use"]
        assert final.stop_reason == "tool_use" and set(streamed_use.input) >= {"city", "unit"}


async def test_messages_errors_use_anthropics_shape(tmp_path: Path) -> None:
    async with serving(tmp_path) as gw:
        sdk = anthropic_sdk(gw)
        hello = [{"role": "user", "content": "Hi"}]
        with pytest.raises(anthropic.NotFoundError) as caught:
            await sdk.messages.create(model="no-such-model", max_tokens=10, messages=hello)
        assert caught.value.body["type"] == "error"  # type: ignore[index]
        assert caught.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
        with pytest.raises(anthropic.BadRequestError, match="document"):
            await sdk.messages.create(
                model="fast",
                max_tokens=10,
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "document",
                                "source": {"type": "text", "media_type": "text/plain", "data": "x"},
                            }
                        ],
                    }
                ],
            )
        with pytest.raises(anthropic.BadRequestError, match="'toolu_nope' answers no"):
            await sdk.messages.create(
                model="claude",
                max_tokens=10,
                messages=[
                    *hello,
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": "toolu_nope", "content": "x"}
                        ],
                    },
                ],
            )
        wrong = anthropic_sdk(gw, key="not-a-key")
        with pytest.raises(anthropic.AuthenticationError):
            await wrong.messages.create(model="fast", max_tokens=10, messages=hello)
        # Bearer works on /v1/messages too; x-api-key only there.
        bearer = await gw.client.post(
            "/v1/messages",
            json={"model": "fast", "max_tokens": 10, "messages": hello},
            headers=gw.auth,
        )
        assert bearer.status_code == 200 and bearer.json()["type"] == "message"
        on_chat = await gw.client.post(
            "/v1/chat/completions",
            json={"model": "fast", "messages": hello},
            headers={"x-api-key": gw.key},
        )
        assert on_chat.status_code == 401

        rows = await gw.rows(6)
        orphan = [r for r in rows if r["model_alias"] == "claude"]
        assert [(r["status_code"], r["attempt_count"]) for r in orphan] == [(400, 0)]
        unknown = [r for r in rows if r["model_alias"] == "no-such-model"]
        assert len(unknown) == 1 and unknown[0]["outcome"] == "client_error"
        assert unknown[0]["endpoint"] == "messages" and unknown[0]["status_code"] == 404
        metrics = (await gw.client.get("/metrics")).text
        assert "no-such-model" not in metrics  # never a metrics label
