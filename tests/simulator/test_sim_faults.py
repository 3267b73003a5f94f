"""One test per fault: what a client actually sees when the simulator misbehaves."""

from __future__ import annotations

import asyncio
import json
import time

import anthropic
import httpx
import openai
import pytest
from sim_harness import RunningSimulator

pytestmark = pytest.mark.timeout(30)

MESSAGES = [{"role": "user", "content": "Describe a reliable deployment pipeline."}]


def fault(name: str) -> dict[str, str]:
    return {"X-Simulator-Fault": name}


def test_429_is_a_rate_limit_error_with_retry_after(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, extra_headers=fault("429")
        )
    error = caught.value
    assert error.status_code == 429
    assert error.response.headers["retry-after"] == "1"
    assert error.code == "rate_limit_exceeded"


def test_429_on_anthropic_is_a_rate_limit_error(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.RateLimitError) as caught:
        claude.messages.create(
            model="claude", max_tokens=10, messages=MESSAGES, extra_headers=fault("429")
        )
    assert caught.value.response.headers["retry-after"] == "1"
    body = caught.value.response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "rate_limit_error"
    assert "rate limit" in body["error"]["message"]


def test_500_is_an_internal_server_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, extra_headers=fault("500")
        )
    assert caught.value.status_code == 500
    assert caught.value.type == "server_error"


def test_503_is_an_internal_server_error_with_status_503(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, extra_headers=fault("503")
        )
    assert caught.value.status_code == 503


def test_timeout_holds_until_the_client_gives_up(sim: RunningSimulator) -> None:
    with sim.openai(timeout=0.5) as client:
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, extra_headers=fault("timeout")
            )
        assert 0.45 <= time.monotonic() - started < 3


def test_timeout_does_not_block_other_requests(sim: RunningSimulator) -> None:
    async def main() -> tuple[float, BaseException | None]:
        async with sim.async_openai(timeout=1.5) as client:
            held = asyncio.create_task(
                client.chat.completions.create(
                    model="m", messages=MESSAGES, extra_headers=fault("timeout")
                )
            )
            await asyncio.sleep(0.1)
            started = time.monotonic()
            answer = await client.chat.completions.create(model="m", messages=MESSAGES)
            elapsed = time.monotonic() - started
            assert answer.choices[0].message.content
            try:
                await held
            except openai.APITimeoutError as exc:
                return elapsed, exc
            return elapsed, None

    elapsed, held_error = asyncio.run(main())
    assert elapsed < 1.0  # well under the 1.5 s the held request waits
    assert isinstance(held_error, openai.APITimeoutError)


def test_malformed_body_makes_the_sdk_fail_to_decode(
    client: openai.OpenAI, sim: RunningSimulator
) -> None:
    raw = httpx.post(
        f"{sim.openai_url}/chat/completions",
        json={"model": "m", "messages": MESSAGES},
        headers=fault("malformed"),
    )
    assert raw.status_code == 200
    assert raw.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        raw.json()
    # The SDK trusts the content type, so the decode error surfaces as-is.
    with pytest.raises(json.JSONDecodeError):
        client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, extra_headers=fault("malformed")
        )


def test_malformed_stream_has_a_broken_data_line(
    client: openai.OpenAI, sim: RunningSimulator
) -> None:
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    with httpx.stream(
        "POST", f"{sim.openai_url}/chat/completions", json=body, headers=fault("malformed")
    ) as response:
        payloads = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert payloads[-1] == "[DONE]"
    broken = []
    for payload in payloads[:-1]:
        try:
            json.loads(payload)
        except json.JSONDecodeError:
            broken.append(payload)
    assert len(broken) == 1
    with pytest.raises(json.JSONDecodeError):
        list(
            client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True, extra_headers=fault("malformed")
            )
        )


def test_truncate_cuts_the_stream_without_finish_or_done(
    client: openai.OpenAI, sim: RunningSimulator
) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, extra_headers=fault("truncate")
        )
    )
    assert chunks, "some chunks arrive before the cut"
    assert all(chunk.choices[0].finish_reason is None for chunk in chunks)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    full = (
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices[0].message.content
        or ""
    )
    assert text and full.startswith(text) and len(text) < len(full)

    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    with httpx.stream(
        "POST", f"{sim.openai_url}/chat/completions", json=body, headers=fault("truncate")
    ) as response:
        assert response.headers["connection"] == "close"
        lines = [line for line in response.iter_lines() if line]
    assert "data: [DONE]" not in lines
    assert all(json.loads(line[6:])["choices"][0]["finish_reason"] is None for line in lines)


def test_truncate_non_stream_body_is_cut_short(sim: RunningSimulator) -> None:
    body = {"model": "gpt-4o", "messages": MESSAGES}
    whole = httpx.post(f"{sim.openai_url}/chat/completions", json=body)
    cut = httpx.post(f"{sim.openai_url}/chat/completions", json=body, headers=fault("truncate"))
    assert cut.status_code == 200
    assert cut.headers["content-type"] == "application/json"
    assert cut.content.startswith(b'{"id":"chatcmpl-')
    # About half the body arrives (ids differ between requests, so allow a little slack).
    assert abs(len(cut.content) - len(whole.content) // 2) < 10
    with pytest.raises(json.JSONDecodeError):
        cut.json()


def test_truncate_anthropic_stream_has_no_message_stop(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model="claude", max_tokens=300, messages=MESSAGES, extra_headers=fault("truncate")
    ) as stream:
        types = [event.type for event in stream]
        final = stream.current_message_snapshot
    assert "text" in types
    assert "message_stop" not in types and "content_block_stop" not in types
    assert final.stop_reason is None


def test_empty_gives_empty_content(client: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    result = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, extra_headers=fault("empty")
    )
    assert result.choices[0].message.content == ""
    assert result.choices[0].finish_reason == "stop"
    assert result.usage is not None and result.usage.completion_tokens == 0
    message = claude.messages.create(
        model="claude", max_tokens=50, messages=MESSAGES, extra_headers=fault("empty")
    )
    assert message.content[0].text == ""
    assert message.usage.output_tokens == 0


def test_refusal_gives_refusal_text(client: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    result = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, extra_headers=fault("refusal")
    )
    content = result.choices[0].message.content or ""
    assert content.startswith(("I'm sorry", "I can't"))
    assert "can't" in content
    message = claude.messages.create(
        model="claude", max_tokens=50, messages=MESSAGES, extra_headers=fault("refusal")
    )
    assert "can't" in message.content[0].text


def test_refusal_under_structured_output_uses_the_refusal_field(client: openai.OpenAI) -> None:
    result = client.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"type": "object"}},
        },
        extra_headers=fault("refusal"),
    )
    assert result.choices[0].message.content is None
    assert "can't" in (result.choices[0].message.refusal or "")


def test_slow_drips_chunks_with_long_gaps(client: openai.OpenAI) -> None:
    arrivals = []
    for chunk in client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, max_tokens=6, extra_headers=fault("slow")
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic())
    assert len(arrivals) == 2
    # The default drip is 200-500 ms between token-bearing chunks.
    assert 0.2 <= arrivals[1] - arrivals[0] < 1.0


def test_slow_anthropic_gaps(claude: anthropic.Anthropic) -> None:
    arrivals = []
    with claude.messages.stream(
        model="claude", max_tokens=6, messages=MESSAGES, extra_headers=fault("slow")
    ) as stream:
        for _ in stream.text_stream:
            arrivals.append(time.monotonic())
    assert len(arrivals) == 2
    assert arrivals[1] - arrivals[0] >= 0.2


def test_faults_apply_to_embeddings(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="e", input="x", extra_headers=fault("429"))
    # Content faults make no sense for vectors and are ignored.
    result = client.embeddings.create(model="e", input="x", extra_headers=fault("refusal"))
    assert len(result.data[0].embedding) == 256


def test_fault_header_is_echoed_and_counted(sim: RunningSimulator) -> None:
    before = httpx.get(f"{sim.url}/simulator/stats").json()["by_fault"].get("503", 0)
    response = httpx.post(
        f"{sim.openai_url}/chat/completions",
        json={"model": "m", "messages": MESSAGES},
        headers=fault("503"),
    )
    assert response.headers["x-simulator-fault"] == "503"
    stats = httpx.get(f"{sim.url}/simulator/stats").json()
    assert stats["by_fault"]["503"] == before + 1
    assert stats["by_api"]["openai.chat"] >= 1
