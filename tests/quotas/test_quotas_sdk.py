"""Quotas as an application sees them through the official `openai` SDK: the headers on
every answer, the soft-limit degradation to the cheaper alias, and the 429 as
`openai.RateLimitError` carrying our body. The server is in-process (httpx.ASGITransport
under the SDK's own client)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest
from test_quotas import CONFIG, START, echo, set_quota

from inprocess import InProcess
from pilothouse.clock import ManualClock

pytestmark = pytest.mark.anyio


@pytest.fixture
async def sdk(tmp_path: Path) -> AsyncIterator[tuple[InProcess, openai.AsyncOpenAI]]:
    async with InProcess.start(tmp_path, CONFIG, clock=ManualClock(START + 30)) as gw:
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.server))
        client = openai.AsyncOpenAI(
            base_url="http://gw/v1", api_key=gw.key, http_client=http, max_retries=0
        )
        yield gw, client
        await client.close()


async def test_the_sdk_sees_headers_degradation_and_a_rate_limit_error_with_our_body(
    sdk: tuple[InProcess, openai.AsyncOpenAI],
) -> None:
    gw, client = sdk
    await set_quota(
        gw,
        "daily-usd",
        dimension="cost",
        window="day",
        soft_limit=0.0015,
        hard_limit=0.004,
        degrade_to="cheap",
    )
    await set_quota(gw, "rpm", dimension="requests", window="minute", hard_limit=100)
    gw.script("sim", *[echo] * 20)
    messages = [{"role": "user", "content": "hello"}]

    raw = await client.chat.completions.with_raw_response.create(
        model="fast",
        messages=messages,
        max_tokens=600,  # type: ignore[arg-type]
    )
    first = raw.parse()
    assert first.model == "sim-small"
    assert raw.headers["ratelimit-policy"] == '"rpm";q=100;w=60'
    assert raw.headers["ratelimit"] == '"rpm";r=99;t=30'
    # what is left of the day's $0.004 after this call's reservation (up to 600 x $2/M + prompt)
    assert 0.0027 < float(raw.headers["x-pilothouse-quota-usd-remaining"]) < 0.0028
    assert raw.headers["x-pilothouse-quota-usd-reset"] == str(86400 - 30)
    assert "x-pilothouse-quota-warning" not in raw.headers

    raw = await client.chat.completions.with_raw_response.create(
        model="fast",
        messages=messages,
        max_tokens=600,  # type: ignore[arg-type]
    )
    assert raw.parse().model == "sim-small"  # $0.00202 used: past the soft limit now
    raw = await client.chat.completions.with_raw_response.create(
        model="fast",
        messages=messages,
        max_tokens=600,  # type: ignore[arg-type]
    )
    assert raw.parse().model == "sim-tiny"  # degraded to the cheaper alias
    assert raw.headers["x-pilothouse-quota-degraded"] == "cheap"
    assert "daily-usd" in raw.headers["x-pilothouse-quota-warning"]

    with pytest.raises(openai.RateLimitError) as refused:
        for _ in range(20):
            await client.chat.completions.create(
                model="fast",
                messages=messages,
                max_tokens=600,  # type: ignore[arg-type]
            )
    error = refused.value
    assert error.status_code == 429 and error.code == "quota_exceeded"
    assert error.type == "quota_exceeded"
    body = error.body
    assert isinstance(body, dict)
    assert body["quota"] == "daily-usd" and body["limit"] == 0.004
    assert body["used"] <= 0.004 and body["resets_at"].endswith("T00:00:00Z")
    assert body["display_message"].startswith("You have reached the day limit of $0.00")
    assert error.response.headers["retry-after"] == str(86400 - 30)
