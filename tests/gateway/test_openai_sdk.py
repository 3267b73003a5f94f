"""The gateway driven by the official openai SDK, against the simulator in OpenAI mode
(`fast`) and Anthropic mode (`claude`), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pydantic
import pytest

from harness import Gateway

PROVIDER_ALIASES = ["fast", "claude"]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
                "required": ["city", "unit"],
            },
        },
    }
]
HELLO = [{"role": "user", "content": "Say hello to the gateway."}]


@pytest.fixture(scope="module")
def key(gateway: Gateway) -> str:
    return gateway.create_key(name="sdk-tests", user="ana", team="support")


def client(gateway: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=20)


def async_client(gateway: Gateway, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=20)


@pytest.mark.parametrize("model", PROVIDER_ALIASES)
def test_completion_sync(gateway: Gateway, key: str, model: str) -> None:
    completion = client(gateway, key).chat.completions.create(
        model=model, messages=[{"role": "system", "content": "Be brief."}, *HELLO]
    )
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    assert completion.usage.completion_tokens > 0


@pytest.mark.parametrize("model", PROVIDER_ALIASES)
def test_stream_async_with_usage(gateway: Gateway, key: str, model: str) -> None:
    async def run() -> tuple[str, list[openai.types.chat.ChatCompletionChunk]]:
        # Closed inside its loop: a client left to the garbage collector closes itself
        # from whatever loop runs then (the SDK's __del__), failing an unrelated test.
        async with async_client(gateway, key) as sdk:
            stream = await sdk.chat.completions.create(
                model=model, messages=HELLO, stream=True, stream_options={"include_usage": True}
            )
            chunks = [chunk async for chunk in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return text, chunks

    text, chunks = asyncio.run(run())
    assert text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


@pytest.mark.parametrize("model", PROVIDER_ALIASES)
def test_stream_without_include_usage_gets_no_usage_chunk(
    gateway: Gateway, key: str, model: str
) -> None:
    chunks = list(
        client(gateway, key).chat.completions.create(model=model, messages=HELLO, stream=True)
    )
    assert chunks and all(c.choices for c in chunks), "the gateway's own usage chunk leaked"
    assert all(c.usage is None for c in chunks)


@pytest.mark.parametrize("model", PROVIDER_ALIASES)
def test_tool_calls_non_stream_and_stream(gateway: Gateway, key: str, model: str) -> None:
    sdk = client(gateway, key)
    messages = [{"role": "user", "content": "What is the weather in Lisbon?"}]
    completion = sdk.chat.completions.create(model=model, messages=messages, tools=TOOLS)
    call = completion.choices[0].message.tool_calls[0]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert set(arguments) >= {"city", "unit"} and arguments["unit"] in ("c", "f")

    parts: list[str] = []
    finish = None
    for chunk in sdk.chat.completions.create(
        model=model, messages=messages, tools=TOOLS, stream=True
    ):
        if chunk.choices:
            for delta_call in chunk.choices[0].delta.tool_calls or []:
                parts.append(delta_call.function.arguments or "")
            finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert len([p for p in parts if p]) > 1, "arguments should arrive in several deltas"
    assert set(json.loads("".join(parts))) >= {"city", "unit"}

    # The tool's result goes back in the next turn and the model answers in text.
    follow_up = sdk.chat.completions.create(
        model=model,
        tools=TOOLS,
        tool_choice="none",
        messages=[
            *messages,
            completion.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": '{"temp": 21}'},
        ],
    )
    assert follow_up.choices[0].message.content


def test_json_response_format_passes_through(gateway: Gateway, key: str) -> None:
    completion = client(gateway, key).chat.completions.create(
        model="fast",
        messages=HELLO,
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "triage",
                "schema": {
                    "type": "object",
                    "properties": {"label": {"enum": ["bug", "question"]}},
                    "required": ["label"],
                },
            },
        },
    )
    assert json.loads(completion.choices[0].message.content)["label"] in ("bug", "question")


def test_n_and_seed_pass_through(gateway: Gateway, key: str) -> None:
    sdk = client(gateway, key)
    many = sdk.chat.completions.create(model="fast", messages=HELLO, n=3, seed=1)
    assert len(many.choices) == 3
    again = sdk.chat.completions.create(model="fast", messages=HELLO, seed=1)
    other = sdk.chat.completions.create(model="fast", messages=HELLO, seed=2)
    assert again.choices[0].message.content == many.choices[0].message.content
    assert other.choices[0].message.content != again.choices[0].message.content


def test_embeddings(gateway: Gateway, key: str) -> None:
    sdk = client(gateway, key)
    result = sdk.embeddings.create(model="embed", input=["alpha", "beta"], dimensions=64)
    assert [len(item.embedding) for item in result.data] == [64, 64]
    assert result.usage.prompt_tokens > 0
    again = sdk.embeddings.create(model="embed", input="alpha", dimensions=64)
    assert again.data[0].embedding == result.data[0].embedding
    with pytest.raises(openai.BadRequestError, match="embeddings"):
        sdk.embeddings.create(model="claude", input="alpha")


def test_models_lists_what_the_key_may_use(gateway: Gateway) -> None:
    narrow = gateway.create_key(name="narrow", models=["fast", "embed"])
    sdk = client(gateway, narrow)
    assert sorted(m.id for m in sdk.models.list()) == ["embed", "fast"]
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.chat.completions.create(model="smart", messages=HELLO)
    assert "models available to this key: embed, fast" in str(caught.value)
    with pytest.raises(openai.NotFoundError, match="'nonexistent' does not exist"):
        client(gateway, gateway.create_key(name="wide")).chat.completions.create(
            model="nonexistent", messages=HELLO
        )


def test_authentication_errors(gateway: Gateway, key: str) -> None:
    with pytest.raises(openai.AuthenticationError, match="invalid API key"):
        client(gateway, "ph-not-a-key").chat.completions.create(model="fast", messages=HELLO)
    bare = httpx.post(
        gateway.url + "/v1/chat/completions", json={"model": "fast", "messages": HELLO}
    )
    assert bare.status_code == 401
    assert "Authorization: Bearer" in bare.json()["error"]["message"]


@pytest.mark.parametrize("prefix", ["f", "c"])
def test_each_upstream_failure_raises_the_matching_sdk_error(
    gateway: Gateway, key: str, prefix: str
) -> None:
    sdk = client(gateway, key)

    def call(fault: str, **kwargs: object) -> object:
        return sdk.chat.completions.create(model=f"{prefix}-{fault}", messages=HELLO, **kwargs)

    with pytest.raises(openai.RateLimitError) as rate_limited:
        call("429")
    assert rate_limited.value.response.headers["retry-after"] == "3"
    assert "'sim" in rate_limited.value.message  # the provider is named
    for fault in ("500", "503", "malformed"):
        with pytest.raises(openai.InternalServerError) as failed:
            call(fault)
        assert failed.value.status_code == 502, fault
    with pytest.raises(openai.InternalServerError) as timed_out:
        call("timeout")
    assert timed_out.value.status_code == 504
    assert "did not answer within 2 s" in timed_out.value.message
    with pytest.raises(openai.APIError, match="without"):
        list(call("truncate", stream=True))
    assert call("empty").choices[0].message.content in ("", None)
    refusal = call("refusal").choices[0].message.content
    assert refusal and refusal.startswith("I'm sorry")


def test_bad_requests_name_what_is_wrong(gateway: Gateway, key: str) -> None:
    url = gateway.url + "/v1/chat/completions"
    auth = {"Authorization": f"Bearer {key}"}
    broken = httpx.post(url, content=b'{"model": "fast", "messages": [', headers=auth)
    assert broken.status_code == 400
    assert "not valid JSON" in broken.json()["error"]["message"]
    assert "line 1 column" in broken.json()["error"]["message"]
    wrong = httpx.post(url, json={"model": "fast", "messages": "hi"}, headers=auth)
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "messages"
    missing = httpx.post(url, json={"messages": HELLO}, headers=auth)
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "model"
    role = httpx.post(url, json={"model": "fast", "messages": [{"role": "robot"}]}, headers=auth)
    assert role.json()["error"]["param"] == "messages[0].role"
    huge = httpx.post(url, content=b"x" * (9 * 1024 * 1024), headers=auth)
    assert huge.status_code == 413 and "limit is 8388608 bytes" in huge.json()["error"]["message"]
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client(gateway, key).chat.completions.create(model="fast", messages=HELLO, max_tokens=-3)


class City(pydantic.BaseModel):
    city: str
    country: str
    population: int


@pytest.mark.parametrize("model", ["fast", "claude"])
def test_structured_output_parses_on_every_kind_of_alias(
    gateway: Gateway, key: str, model: str
) -> None:
    # On the Anthropic-backed alias the schema is a forced tool, not an instruction.
    sdk = client(gateway, key)
    parsed = sdk.chat.completions.parse(
        model=model,
        messages=[{"role": "user", "content": "Name a big city."}],
        response_format=City,
    )
    city = parsed.choices[0].message.parsed
    assert isinstance(city, City) and city.city and isinstance(city.population, int)
    assert parsed.choices[0].finish_reason == "stop"
    with sdk.chat.completions.stream(
        model=model,
        messages=[{"role": "user", "content": "Name a big city."}],
        response_format=City,
    ) as stream:
        final = stream.get_final_completion()
    assert isinstance(final.choices[0].message.parsed, City)
