"""End-to-end proof for the front doors: the official SDKs over real HTTP against a
`pilothouse serve` process on the simulator process, on SQLite and PostgreSQL. (The
in-process tests in test_doors_sdk.py cover each door in depth.)"""

from __future__ import annotations

import time

import anthropic
import openai
import pydantic
import pytest

from harness import Gateway


class Ticket(pydantic.BaseModel):
    label: str
    urgent: bool


@pytest.fixture(scope="module")
def key(gateway: Gateway) -> str:
    return gateway.create_key(name="doors-e2e")


def rows_for(gateway: Gateway, ids: set[str]) -> list[dict]:
    deadline = time.monotonic() + 10
    while True:
        rows = [r for r in gateway.log_rows() if r["id"] in ids]
        if len(rows) == len(ids) or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


@pytest.mark.parametrize("model", ["fast", "claude"])
def test_responses_over_http(gateway: Gateway, key: str, model: str) -> None:
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=20)
    with sdk.responses.stream(model=model, input="Say hello to the gateway.") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text and final.output_text == text and final.usage is not None
    parsed = sdk.responses.with_raw_response.parse(
        model=model, input="Triage: the app crashes.", text_format=Ticket
    )
    assert isinstance(parsed.parse().output_parsed, Ticket)
    [row] = rows_for(gateway, {parsed.headers["x-request-id"]})
    assert row["endpoint"] == "responses" and row["model_alias"] == model
    assert row["outcome"] == "ok" and row["cost_usd"] > 0


@pytest.mark.parametrize("model", ["fast", "claude"])
def test_messages_over_http(gateway: Gateway, key: str, model: str) -> None:
    sdk = anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0, timeout=20)
    tools = [
        {
            "name": "get_weather",
            "input_schema": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        }
    ]
    question = {"role": "user", "content": "Weather in Lisbon?"}
    with sdk.messages.stream(
        model=model, max_tokens=200, tools=tools, messages=[question]
    ) as stream:
        first = stream.get_final_message()
    [use] = [b for b in first.content if b.type == "tool_use"]
    assert first.stop_reason == "tool_use" and "city" in use.input
    raw = sdk.messages.with_raw_response.create(
        model=model,
        max_tokens=200,
        tools=tools,
        messages=[
            question,
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "21 C"}],
            },
        ],
    )
    answer = raw.parse()
    assert answer.stop_reason == "end_turn" and answer.content[0].type == "text"
    [row] = rows_for(gateway, {raw.headers["x-request-id"]})
    assert row["endpoint"] == "messages" and row["model_alias"] == model
    assert row["completion_tokens"] == answer.usage.output_tokens
