"""Failover in-process (tests/inprocess.py): two scripted providers behind one alias, the
real gateway stages, codecs, breakers and request log, and a clock the test moves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from inprocess import InProcess, Scripted
from pilothouse.clock import ManualClock

pytestmark = pytest.mark.anyio

CONFIG = """
providers:
  primary: {type: openai, base_url: "http://primary.invalid/v1", owner: team-primary}
  secondary: {type: openai, base_url: "http://secondary.invalid/v1", owner: team-secondary}
models:
  fast:
    pricing: {input_per_mtok: 1, output_per_mtok: 2}
    deployments:
      - {provider: primary, model: p-small, priority: 1}
      - {provider: secondary, model: s-small, priority: 2, pricing: {input_per_mtok: 10, output_per_mtok: 20}}
  solo: {provider: primary, model: p-solo}
fleet:
  breaker: {min_requests: 5, failure_ratio: 0.5, window_seconds: 60, cooldown_seconds: 10}
"""

MALFORMED = Scripted(status=200, body=b"{'simulated': malformed, ...")


def completion(content: Any = "Hello!", *, tool_calls: Any = None) -> Scripted:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls is not None:
        message["tool_calls"] = tool_calls
    return Scripted.json(
        {
            "id": "c1",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500},
        }
    )


def chunk(
    content: str | None = None, finish: str | None = None, role: bool = False
) -> dict[str, Any]:
    delta: dict[str, Any] = {"role": "assistant"} if role else {}
    if content:
        delta["content"] = content
    return {
        "id": "s1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


USAGE = {
    "id": "s1",
    "object": "chat.completion.chunk",
    "choices": [],
    "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
}


def good_stream(text: str = "Hi") -> Scripted:
    return Scripted.sse(chunk(role=True), chunk(text), chunk(finish="stop"), USAGE, "[DONE]")


def clocked(gw: InProcess) -> ManualClock:
    """Give the fleet a clock the test moves."""
    assert gw.server.fleet is not None
    clock = ManualClock()
    gw.server.fleet.clock.now = clock.now  # type: ignore[method-assign]
    return clock


def breaker_state(gw: InProcess, deployment: str) -> str:
    assert gw.server.fleet is not None
    return gw.server.fleet.healths[deployment].breaker.state


async def test_a_malformed_200_fails_over_and_the_row_takes_the_deployment_that_answered(
    tmp_path: Path,
) -> None:
    async with InProcess.start(tmp_path, CONFIG) as gw:
        gw.script("primary", MALFORMED)
        gw.script("secondary", completion("from secondary"))
        response = await gw.chat()
        assert response.status_code == 200
        assert response.json()["choices"][0]["message"]["content"] == "from secondary"
        # 1000 prompt tokens at $10/M + 500 completion tokens at $20/M: the secondary's price
        assert response.headers["x-pilothouse-cost-usd"] == "0.02000000"
        [row] = await gw.rows(1)
        assert (row["provider"], row["provider_model"], row["cost_usd"]) == (
            "secondary",
            "s-small",
            0.02,
        )
        assert row["attempt_count"] == 2 and row["outcome"] == "ok"
        assert [(a["deployment"], a["error_class"]) for a in row["attempts"]] == [
            ("primary/p-small", "malformed"),
            ("secondary/s-small", None),
        ]


async def test_a_first_attempt_that_answers_leaves_attempts_empty(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path, CONFIG) as gw:
        gw.script("primary", completion())
        assert (await gw.chat()).status_code == 200
        [row] = await gw.rows(1)
        assert (row["provider"], row["attempt_count"], row["attempts"]) == ("primary", 1, None)


async def test_the_breaker_opens_traffic_moves_then_a_probe_brings_it_back(
    tmp_path: Path,
) -> None:
    async with InProcess.start(tmp_path, CONFIG) as gw:
        clock = clocked(gw)
        gw.transports["secondary"].default = completion("from secondary")
        for _ in range(5):
            gw.script("primary", MALFORMED)
            response = await gw.chat()
            assert response.json()["choices"][0]["message"]["content"] == "from secondary"
        assert breaker_state(gw, "primary/p-small") == "open"
        sent_to_primary = len(gw.transports["primary"].requests)
        for _ in range(3):  # open: the primary is not even tried
            assert (await gw.chat()).status_code == 200
        assert len(gw.transports["primary"].requests) == sent_to_primary
        clock.advance(10.5)  # past the cool-down: the next request probes the primary
        gw.script("primary", completion("primary is back"))
        response = await gw.chat()
        assert response.json()["choices"][0]["message"]["content"] == "primary is back"
        assert breaker_state(gw, "primary/p-small") == "closed"
        gw.script("primary", completion("still primary"))
        assert (await gw.chat()).json()["choices"][0]["message"]["content"] == "still primary"
        status = (await gw.client.get("/api/fleet", headers=gw.admin)).json()
        [fast] = [a for a in status["aliases"] if a["alias"] == "fast"]
        primary = fast["deployments"][0]
        assert primary["deployment"] == "primary/p-small" and primary["owner"] == "team-primary"
        assert primary["state"] == "closed" and primary["trips"] == 1
        assert "5 of 5 calls failed" in primary["last_trip_reason"]
        kinds = [(e["kind"], e["deployment"]) for e in status["events"]]
        assert ("breaker_opened", "primary/p-small") in kinds
        assert ("breaker_closed", "primary/p-small") in kinds


async def test_a_failed_probe_reopens_for_longer(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path, CONFIG) as gw:
        clock = clocked(gw)
        gw.transports["secondary"].default = completion()
        gw.transports["primary"].default = Scripted.json({"error": {"message": "down"}}, status=500)
        for _ in range(5):
            assert (await gw.chat()).status_code == 200
        assert gw.server.fleet is not None
        breaker = gw.server.fleet.healths["primary/p-small"].breaker
        assert breaker.state == "open" and breaker.retry_after_seconds() == pytest.approx(10)
        clock.advance(10.5)
        assert (await gw.chat()).status_code == 200  # the probe failed; the secondary answered
        assert breaker.state == "open" and breaker.trips == 2
        assert breaker.retry_after_seconds() == pytest.approx(20)  # the cool-down doubled


async def test_retry_after_lengthens_the_cool_down(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path, CONFIG) as gw:
        clocked(gw)
        gw.transports["secondary"].default = completion()
        gw.transports["primary"].default = Scripted.json(
            {"error": {"message": "slow down"}}, status=429, **{"Retry-After": "45"}
        )
        for _ in range(5):
            assert (await gw.chat()).status_code == 200
        assert gw.server.fleet is not None
        breaker = gw.server.fleet.healths["primary/p-small"].breaker
        assert breaker.state == "open" and breaker.retry_after_seconds() == pytest.approx(45)


async def test_both_down_is_a_503_naming_the_alias_with_retry_after(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path, CONFIG) as gw:
        clocked(gw)
        gw.transports["primary"].default = Scripted.json({"error": {"message": "x"}}, status=503)
        gw.transports["secondary"].default = MALFORMED
        first = await gw.chat()
        assert first.status_code == 503
        error = first.json()["error"]
        assert error["type"] == "no_healthy_deployment" and error["model"] == "fast"
        assert "'fast'" in error["message"] and "primary/p-small: upstream_5xx" in error["message"]
        assert "secondary/s-small: malformed" in error["message"]
        assert int(first.headers["retry-after"]) >= 1
        for _ in range(4):
            assert (await gw.chat()).status_code == 503
        calls = len(gw.transports["primary"].requests) + len(gw.transports["secondary"].requests)
        assert calls == 10  # both breakers are open now
        shut = await gw.chat()  # nothing is tried: refused at once
        assert shut.status_code == 503 and "breaker open" in shut.json()["error"]["message"]
        assert int(shut.headers["retry-after"]) == 10
        assert (
            len(gw.transports["primary"].requests) + len(gw.transports["secondary"].requests)
            == calls
        )
        rows = await gw.rows(6)
        assert sorted(r["attempt_count"] for r in rows) == [0, 2, 2, 2, 2, 2]
        assert all(r["outcome"] == "upstream_error" and r["status_code"] == 503 for r in rows)
        tried = [r for r in rows if r["attempt_count"] == 2]
        assert all(
            [a["deployment"] for a in r["attempts"]] == ["primary/p-small", "secondary/s-small"]
            for r in tried
        )


async def test_a_single_deployment_keeps_the_providers_own_error(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path, CONFIG) as gw:
        gw.script(
            "primary",
            Scripted.json({"error": {"message": "slow down"}}, status=429, **{"Retry-After": "7"}),
        )
        response = await gw.chat("solo")
        assert response.status_code == 429 and response.headers["retry-after"] == "7"


async def test_a_single_deployment_answering_unusably_is_counted_but_never_locked_out(
    tmp_path: Path,
) -> None:
    """Nowhere else to send traffic: its breaker would only turn bad answers into none."""
    async with InProcess.start(tmp_path, CONFIG) as gw:
        clocked(gw)
        json_mode = {"response_format": {"type": "json_object"}}
        gw.script("primary", *[completion("sure: {not json") for _ in range(8)])
        gw.script("primary", completion('{"ok": true}'))
        statuses = [(await gw.chat("solo", **json_mode)).status_code for _ in range(9)]
        assert statuses == [200] * 9, "each answer delivered as the provider gave it"
        assert breaker_state(gw, "primary/p-solo") == "closed"
        totals = gw.server.fleet.healths["primary/p-solo"].totals()  # type: ignore[union-attr]
        assert (totals["failed"], totals["ok"]) == (8, 1)
        rows = await gw.rows(9)
        assert sorted(r["outcome"] for r in rows).count("ok") == 9
        assert sum(bool(r["sig_json_valid"] is False) for r in rows) == 8
        # Transport failures still trip it: 10 upstream 5xx make 10 of 19 calls failed.
        gw.script("primary", *[Scripted.json({"error": {"message": "x"}}, status=500)] * 10)
        for _ in range(10):
            await gw.chat("solo")
        assert breaker_state(gw, "primary/p-solo") == "open"


async def test_the_clients_own_error_is_not_retried(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path, CONFIG) as gw:
        error = {
            "message": "too long",
            "type": "invalid_request_error",
            "code": "context_length_exceeded",
        }
        gw.script("primary", Scripted.json({"error": error}, status=400))
        response = await gw.chat()
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "context_length_exceeded"
        assert gw.transports["secondary"].requests == []
        assert gw.server.fleet is not None
        assert gw.server.fleet.healths["primary/p-small"].totals()["failed"] == 0


@pytest.mark.parametrize(
    ("why", "answer", "body"),
    [
        ("empty_answer", completion(""), {}),
        (
            "invalid_json",
            completion("sure: {not json"),
            {"response_format": {"type": "json_object"}},
        ),
        (
            "invalid_tool_arguments",
            completion(
                None,
                tool_calls=[
                    {
                        "id": "t1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": 42}'},
                    }
                ],
            ),
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "weather",
                            "parameters": {
                                "type": "object",
                                "properties": {"city": {"type": "string"}},
                                "required": ["city"],
                            },
                        },
                    }
                ]
            },
        ),
    ],
)
async def test_a_semantic_failure_on_a_200_fails_over(
    tmp_path: Path, why: str, answer: Scripted, body: dict[str, Any]
) -> None:
    async with InProcess.start(tmp_path, CONFIG) as gw:
        gw.script("primary", answer)
        good = {"city": "Paris"} if "tools" in body else None
        gw.script(
            "secondary",
            completion(
                None if good else '{"ok": true}',
                tool_calls=[
                    {
                        "id": "t1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": json.dumps(good)},
                    }
                ]
                if good
                else None,
            ),
        )
        response = await gw.chat(**body)
        assert response.status_code == 200
        [row] = await gw.rows(1)
        assert row["provider"] == "secondary"
        assert row["attempts"][0]["error_class"] == why
        assert gw.server.fleet is not None
        assert gw.server.fleet.healths["primary/p-small"].totals()["failures_by_class"] == {why: 1}


async def test_the_last_deployment_delivers_its_unusable_answer_and_counts_it(
    tmp_path: Path,
) -> None:
    async with InProcess.start(tmp_path, CONFIG) as gw:
        gw.script("primary", completion(""))
        gw.script("secondary", completion(""))
        response = await gw.chat()
        assert response.status_code == 200  # a well-formed answer, though empty
        assert response.json()["choices"][0]["message"]["content"] == ""
        [row] = await gw.rows(1)
        assert [a["error_class"] for a in row["attempts"]] == ["empty_answer", "empty_answer"]


async def test_a_deployment_timeout_fails_over(tmp_path: Path) -> None:
    config = CONFIG.replace(
        "{provider: primary, model: p-small, priority: 1}",
        "{provider: primary, model: p-small, priority: 1, timeout_seconds: 0.05}",
    )
    async with InProcess.start(tmp_path, config) as gw:
        slow = completion("too late")
        slow.delay_seconds = 5
        gw.script("primary", slow)
        gw.script("secondary", completion("in time"))
        response = await gw.chat()
        assert response.json()["choices"][0]["message"]["content"] == "in time"
        [row] = await gw.rows(1)
        assert row["attempts"][0]["error_class"] == "timeout"


async def test_a_stream_that_fails_before_content_goes_to_the_next_deployment(
    tmp_path: Path,
) -> None:
    async with InProcess.start(tmp_path, CONFIG) as gw:
        gw.script("primary", Scripted.sse(chunk(role=True)))  # cut before any content
        gw.script("secondary", good_stream("from secondary"))
        response = await gw.chat(stream=True)
        assert response.status_code == 200
        text = response.text
        assert "from secondary" in text and text.endswith("data: [DONE]\n\n")
        assert text.count('"role"') == 1  # the primary's held role chunk never went out
        [row] = await gw.rows(1)
        assert row["provider"] == "secondary" and row["outcome"] == "ok"
        assert [a["error_class"] for a in row["attempts"]] == ["truncated", None]


async def test_an_empty_stream_goes_to_the_next_deployment(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path, CONFIG) as gw:
        gw.script("primary", Scripted.sse(chunk(role=True), chunk(finish="stop"), USAGE, "[DONE]"))
        gw.script("secondary", good_stream("words"))
        response = await gw.chat(stream=True)
        assert "words" in response.text
        [row] = await gw.rows(1)
        assert [a["error_class"] for a in row["attempts"]] == ["empty_answer", None]


async def test_a_stream_cut_after_content_is_an_error_event_and_never_restarted(
    tmp_path: Path,
) -> None:
    async with InProcess.start(tmp_path, CONFIG) as gw:
        gw.script("primary", Scripted.sse(chunk(role=True), chunk("Hel"), chunk("lo")))
        response = await gw.chat(stream=True)
        assert response.status_code == 200
        events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
        assert "[DONE]" not in events
        assert orjson.loads(events[-1])["error"]["type"] == "truncated"
        assert gw.transports["secondary"].requests == []  # not retried after content
        [row] = await gw.rows(1)
        assert row["outcome"] == "upstream_truncated" and row["provider"] == "primary"
        assert gw.server.fleet is not None
        assert gw.server.fleet.healths["primary/p-small"].totals()["failures_by_class"] == {
            "truncated": 1
        }


async def test_a_stream_with_no_deployment_left_is_a_json_503(tmp_path: Path) -> None:
    async with InProcess.start(tmp_path, CONFIG) as gw:
        gw.script("primary", Scripted.json({"error": {"message": "x"}}, status=500))
        gw.script("secondary", Scripted.sse(chunk(role=True)))
        response = await gw.chat(stream=True)
        assert response.status_code == 503
        assert response.json()["error"]["type"] == "no_healthy_deployment"


async def test_weighted_and_least_latency_choose_by_their_rule(tmp_path: Path) -> None:
    config = CONFIG.replace(
        "models:\n",
        """models:
  weighted:
    strategy: weighted
    deployments:
      - {provider: primary, model: p-w, weight: 0}
      - {provider: secondary, model: s-w, weight: 5}
""",
    )
    async with InProcess.start(tmp_path, config) as gw:
        gw.transports["secondary"].default = completion()
        for _ in range(10):
            assert (await gw.chat("weighted")).status_code == 200
        assert gw.transports["primary"].requests == []  # weight 0: only a fallback
        gw.transports["secondary"].default = None
        gw.script("secondary", MALFORMED)
        gw.script("primary", completion("fallback"))
        response = await gw.chat("weighted")
        assert response.json()["choices"][0]["message"]["content"] == "fallback"


async def test_a_deployment_refusing_unlike_its_peer_is_flagged_while_it_answers_200(
    tmp_path: Path,
) -> None:
    config = CONFIG.replace("fleet:\n", "fleet:\n  compare_min_samples: 10\n")
    config = config.replace(
        "    pricing: {input_per_mtok: 1, output_per_mtok: 2}\n",
        "    strategy: weighted\n    pricing: {input_per_mtok: 1, output_per_mtok: 2}\n",
        1,
    )
    async with InProcess.start(tmp_path, config) as gw:
        gw.transports["primary"].default = completion("I'm sorry, but I can't help with that.")
        gw.transports["secondary"].default = completion("Paris is the capital of France.")
        for _ in range(60):
            assert (await gw.chat()).status_code == 200
        assert gw.server.fleet is not None
        gw.server.fleet.sweep()
        status = (await gw.client.get("/api/fleet", headers=gw.admin)).json()
        [fast] = [a for a in status["aliases"] if a["alias"] == "fast"]
        by_id = {d["deployment"]: d for d in fast["deployments"]}
        primary, secondary = by_id["primary/p-small"], by_id["secondary/s-small"]
        assert primary["outlier"] and "refusal rate 100%" in primary["outlier_reasons"][0]
        assert not secondary["outlier"]
        assert primary["state"] == "closed" and primary["failed"] == 0  # still serving
        assert primary["signals"]["refusal_rate"] == 1.0
        outlier = [e for e in status["events"] if e["kind"] == "outlier"]
        assert outlier[0]["deployment"] == "primary/p-small"
        assert outlier[0]["owner"] == "team-primary" and outlier[0]["alias"] == "fast"


async def test_equal_priorities_share_the_traffic_and_least_latency_prefers_the_faster(
    tmp_path: Path,
) -> None:
    config = CONFIG.replace(
        "models:\n",
        """models:
  shared:
    deployments:
      - {provider: primary, model: p-shared, priority: 1}
      - {provider: secondary, model: s-shared, priority: 1}
  quick:
    strategy: least_latency
    deployments:
      - {provider: primary, model: p-quick}
      - {provider: secondary, model: s-quick}
""",
    )
    async with InProcess.start(tmp_path, config) as gw:
        gw.transports["primary"].default = completion()
        gw.transports["secondary"].default = completion()
        for _ in range(40):
            assert (await gw.chat("shared")).status_code == 200
        served = (len(gw.transports["primary"].requests), len(gw.transports["secondary"].requests))
        assert min(served) > 0 and sum(served) == 40
        assert gw.server.fleet is not None
        healths = gw.server.fleet.healths
        healths["primary/p-quick"].succeeded(250.0)
        healths["secondary/s-quick"].succeeded(40.0)
        before = len(gw.transports["secondary"].requests)
        for _ in range(5):
            assert (await gw.chat("quick")).status_code == 200
        assert len(gw.transports["secondary"].requests) - before == 5


async def test_a_stream_may_fail_over_after_keep_alives_and_ends_with_an_error_if_none_is_left(
    tmp_path: Path,
) -> None:
    config = CONFIG + "gateway: {keepalive_interval_seconds: 0.01}\n"
    async with InProcess.start(tmp_path, config) as gw:
        slow_cut = Scripted.sse(chunk(role=True), b"data: {half")
        slow_cut.chunk_delay_seconds = 0.1  # keep-alives go out while it waits
        gw.script("primary", slow_cut)
        gw.script("secondary", good_stream("after keep-alives"))
        response = await gw.chat(stream=True)
        assert response.status_code == 200
        assert response.text.startswith(": keep-alive")  # the response had started
        assert "after keep-alives" in response.text and response.text.endswith("[DONE]\n\n")
        [row] = await gw.rows(1)
        assert [a["error_class"] for a in row["attempts"]] == ["truncated", None]

        again = Scripted.sse(chunk(role=True), b"data: {half")
        again.chunk_delay_seconds = 0.1
        gw.script("primary", again)
        gw.script("secondary", Scripted.json({"error": {"message": "down"}}, status=500))
        failed = await gw.chat(stream=True)
        assert failed.status_code == 200  # keep-alives had started it: the error is an event
        last = [line for line in failed.text.splitlines() if line.startswith("data: ")][-1]
        assert orjson.loads(last[6:])["error"]["type"] == "no_healthy_deployment"
        assert '"role"' not in failed.text  # held frames never reached the client
