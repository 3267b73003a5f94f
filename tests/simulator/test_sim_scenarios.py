"""Scenario files: scripted replies, latency profiles, fault rates and drift phases."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import openai
import pytest
from sim_harness import RunningSimulator

from pilothouse.simulator.text import HEDGES, REFUSAL_TEXTS, tokenize

pytestmark = pytest.mark.timeout(30)

Start = Callable[[str], RunningSimulator]

SCRIPTED = """
replies:
  - match: "(?i)capital of france"
    reply: "The capital of France is Paris."
  - match: "(?i)weather"
    tool_call: {name: get_weather, arguments: {city: Paris, unit: celsius}}
  - match: "^classify:"
    json: {label: positive, score: 0.9}
  - match: "(?i)refund"
    model: "claude-*"
    reply: "Refunds take 5 days."
"""


def ask(client: openai.OpenAI, text: str, model: str = "gpt-4o", **extra: object) -> str:
    result = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}], **extra
    )
    return result.choices[0].message.content or ""


WORDING = """
replies:
  - system: "(?i)in one word"
    match: "(?i)refund"
    reply: "Billing."
  - match: "(?i)refund"
    json: {queue: billing}
"""


def test_a_rule_keyed_on_the_system_prompt_answers_by_the_wording(scenario_sim: Start) -> None:
    running = scenario_sim(WORDING)
    asked = "Refund my last order"
    with running.openai() as client:
        for system, role, expected in [
            ("Route the ticket, in one word.", "system", "Billing."),
            ("Route the ticket, IN ONE WORD.", "developer", "Billing."),
            ("Route the ticket as JSON.", "system", '{"queue": "billing"}'),
        ]:
            result = client.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": role, "content": system}, {"role": "user", "content": asked}],
            )
            assert result.choices[0].message.content == expected, (system, role)
        assert ask(client, f"{asked}, in one word") == '{"queue": "billing"}'  # not the system
    with running.anthropic() as claude:
        for system in ("Answer in one word.", [{"type": "text", "text": "Answer in one word."}]):
            message = claude.messages.create(
                model="claude-x", max_tokens=50, system=system,
                messages=[{"role": "user", "content": asked}],
            )  # fmt: skip
            assert message.content[0].text == "Billing."  # type: ignore[union-attr]


def test_scripted_text_reply_streamed_and_not(scenario_sim: Start) -> None:
    running = scenario_sim(SCRIPTED)
    with running.openai() as client:
        assert ask(client, "What is the capital of France?") == "The capital of France is Paris."
        streamed = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "capital of france"}], stream=True
        )
        assert (
            "".join(c.choices[0].delta.content or "" for c in streamed)
            == "The capital of France is Paris."
        )
        three_tokens = "".join(tokenize("The capital of France is Paris.")[:3])
        assert three_tokens == "The capital of"
        assert ask(client, "capital of france", max_tokens=3) == three_tokens
    with running.anthropic() as claude:
        message = claude.messages.create(
            model="claude-x",
            max_tokens=50,
            messages=[{"role": "user", "content": "Capital of France?"}],
        )
        assert message.content[0].text == "The capital of France is Paris."


def test_scripted_tool_call_and_json(scenario_sim: Start) -> None:
    running = scenario_sim(SCRIPTED)
    with running.openai() as client:
        result = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "What's the weather?"}]
        )
        call = result.choices[0].message.tool_calls[0]
        assert call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "celsius"}
        assert json.loads(ask(client, "classify: I love it")) == {"label": "positive", "score": 0.9}
        # The same prompt after the tool answered gets text, so agent loops end.
        follow_up = client.chat.completions.create(
            model="gpt-4o",
            messages=[
                {"role": "user", "content": "What's the weather?"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            ],
        )
        assert follow_up.choices[0].message.tool_calls is None
    with running.anthropic() as claude:
        message = claude.messages.create(
            model="claude-x", max_tokens=50, messages=[{"role": "user", "content": "weather?"}]
        )
        assert message.stop_reason == "tool_use"
        assert message.content[0].input == {"city": "Paris", "unit": "celsius"}


def test_rule_model_filter(scenario_sim: Start) -> None:
    running = scenario_sim(SCRIPTED)
    with running.openai() as client:
        assert ask(client, "I want a refund", model="claude-haiku") == "Refunds take 5 days."
        assert ask(client, "I want a refund", model="gpt-4o") != "Refunds take 5 days."


def test_ttft_profile_delays_the_first_chunk(scenario_sim: Start) -> None:
    running = scenario_sim("models:\n  slow-model: {ttft_ms: 300}\n")
    with running.openai() as client:
        started = time.monotonic()
        stream = client.chat.completions.create(
            model="slow-model", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        next(iter(stream))
        first_chunk = time.monotonic() - started
        assert float(stream.response.headers["x-simulator-ttft-ms"]) == 300
        stream.close()
        assert 0.3 <= first_chunk < 1.5
        # Models without a profile get no delay; the simulator reports the TTFT it planned.
        fast = client.chat.completions.with_raw_response.create(
            model="fast-model", messages=[{"role": "user", "content": "hi"}]
        )
        assert float(fast.headers["x-simulator-ttft-ms"]) == 0


def test_ttft_header_overrides_the_profile(sim: RunningSimulator) -> None:
    with sim.openai() as client:
        started = time.monotonic()
        ask(client, "hi", extra_headers={"X-Simulator-TTFT-Ms": "300"})
        assert time.monotonic() - started >= 0.3


def test_tokens_per_second_paces_the_stream(scenario_sim: Start) -> None:
    running = scenario_sim("defaults: {tokens_per_second: 100, tokens_per_chunk: 2}\n")
    with running.openai() as client:
        started = time.monotonic()
        chunks = list(
            client.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                max_tokens=30,
                stream_options={"include_usage": True},
            )
        )
        elapsed = time.monotonic() - started
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 30
    # 30 tokens at 100 tokens/s take 0.3 s.
    assert 0.3 <= elapsed < 1.5
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == 15


def test_lognormal_ttft_is_seeded_and_reproducible(scenario_sim: Start) -> None:
    text = "seed: 11\nmodels:\n  m: {ttft_ms: {dist: lognormal, median_ms: 20, p99_ms: 80}}\n"
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    planned = []
    for running in (scenario_sim(text), scenario_sim(text)):
        with httpx.Client(base_url=running.openai_url) as http:
            runs = []
            for _ in range(8):
                started = time.monotonic()
                response = http.post("/chat/completions", json=body)
                ttft_ms = float(response.headers["x-simulator-ttft-ms"])
                assert time.monotonic() - started >= ttft_ms / 1000
                runs.append(ttft_ms)
            planned.append(runs)
    # Same seed, same draws, in the same order; and the draws really vary.
    assert planned[0] == planned[1]
    assert len(set(planned[0])) == 8
    assert all(0 < ms < 400 for ms in planned[0])


def test_fault_rates_are_seeded_and_reproducible(scenario_sim: Start) -> None:
    text = 'seed: 5\nfaults: {"429": 0.2, "500": 0.2}\nmodels:\n  calm: {faults: {"429": 0, "500": 0}}\n'
    statuses = []
    for running in (scenario_sim(text), scenario_sim(text)):
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client(base_url=running.openai_url) as http:
            statuses.append(
                [http.post("/chat/completions", json=body).status_code for _ in range(40)]
            )
            calm = [
                http.post("/chat/completions", json={**body, "model": "calm"}).status_code
                for _ in range(10)
            ]
        assert calm == [200] * 10
        stats = httpx.get(f"{running.url}/simulator/stats").json()
        assert stats["by_fault"]["429"] == statuses[-1].count(429)
    assert statuses[0] == statuses[1]
    assert {200, 429, 500} <= set(statuses[0])
    assert 0.2 < statuses[0].count(200) / 40 < 0.9


def test_drift_after_requests_adds_hedging_then_refusals(scenario_sim: Start) -> None:
    running = scenario_sim(
        """
drift:
  - name: hedgy
    after_requests: 3
    hedging: 1.0
  - name: refusing
    model: gpt-4o
    after_requests: 5
    refusal_rate: 1.0
"""
    )
    with running.openai() as client:
        replies = [ask(client, "Explain caching") for _ in range(7)]
    assert not any(r.startswith(HEDGES) for r in replies[:3])
    assert all(r.startswith(HEDGES) for r in replies[3:5])
    assert all(r in REFUSAL_TEXTS for r in replies[5:])
    stats = httpx.get(f"{running.url}/simulator/stats").json()
    assert stats["by_phase"] == {"hedgy": 4, "refusing": 2}


def test_drift_lengthens_answers_and_slows_ttft(scenario_sim: Start) -> None:
    running = scenario_sim(
        "defaults: {reply_tokens: 20}\n"
        "drift:\n  - {after_requests: 1, length_multiplier: 4, ttft_add_ms: 250}\n"
    )
    with running.openai() as client:
        first = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}]
        )
        started = time.monotonic()
        second = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}]
        )
        elapsed = time.monotonic() - started
    assert first.usage is not None and second.usage is not None
    assert second.usage.completion_tokens > 2.5 * first.usage.completion_tokens
    assert elapsed >= 0.25


def test_drift_after_seconds_and_reset(scenario_sim: Start) -> None:
    running = scenario_sim('drift:\n  - {after_seconds: 1.0, faults: {"503": 1.0}}\n')
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    url = f"{running.openai_url}/chat/completions"
    # The drift clock starts when the app is created; restart it just before the first request.
    assert httpx.post(f"{running.url}/simulator/reset").status_code == 200
    assert httpx.post(url, json=body).status_code == 200
    time.sleep(1.05)
    assert httpx.post(url, json=body).status_code == 503
    # The X-Simulator-Fault header wins over drift rates.
    assert httpx.post(url, json=body, headers={"X-Simulator-Fault": "none"}).status_code == 200
    assert httpx.post(f"{running.url}/simulator/reset").status_code == 200
    assert httpx.post(url, json=body).status_code == 200
