"""Streams pass through frame by frame: nothing merged, reordered or held back."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from harness import Gateway, Simulator

BODY = {
    "messages": [{"role": "user", "content": "Stream something long enough to count."}],
    "stream": True,
    "seed": 11,
}


@pytest.fixture(scope="module")
def key(gateway: Gateway) -> str:
    return gateway.create_key(name="stream-tests")


def data_frames(raw: str) -> list[str]:
    return [part for part in raw.split("\n\n") if part.startswith("data:")]


def without_ids(frames: list[str]) -> list[str]:
    """Frames with the per-request id and creation second blanked, everything else intact."""
    return [
        re.sub(r'"created":\d+', '"created":0', re.sub(r'"id":"chatcmpl-[^"]*"', '"id":""', frame))
        for frame in frames
    ]


def test_frames_in_equal_frames_out_byte_for_byte(
    gateway: Gateway, simulator: Simulator, key: str
) -> None:
    direct = httpx.post(
        simulator.openai_url + "/chat/completions",
        json={**BODY, "model": "sim-small", "stream_options": {"include_usage": True}},
    ).text
    through = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={**BODY, "model": "fast", "stream_options": {"include_usage": True}},
        headers={"Authorization": f"Bearer {key}"},
    ).text
    assert without_ids(data_frames(through)) == without_ids(data_frames(direct))
    assert len(data_frames(through)) > 5


def test_keep_alive_comments_while_the_first_token_is_slow(gateway: Gateway, key: str) -> None:
    started = time.monotonic()
    seen: list[tuple[float, str]] = []
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        json={**BODY, "model": "slow-first-token"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=20,
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line:
                seen.append((time.monotonic() - started, line))
    keepalives = [t for t, line in seen if line.startswith(": keep-alive")]
    first_data = next(
        t
        for t, line in seen
        if line.startswith("data:") and '"content":"' in line and '"content":""' not in line
    )
    assert len(keepalives) >= 3, seen[:5]  # 1.5 s first token, one every 0.3 s
    assert all(t < first_data for t in keepalives)
    assert seen[-1][1] == "data: [DONE]"


def test_client_disconnect_cancels_the_upstream_call(gateway: Gateway, key: str) -> None:
    rid = f"leave-{gateway.database_url[:6]}"
    started = time.monotonic()
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        json={**BODY, "model": "slow-stream"},  # 200 tokens at 10/s: 20 s if not cancelled
        headers={"Authorization": f"Bearer {key}", "x-request-id": rid},
        timeout=20,
    ) as response:
        frames = 0
        for line in response.iter_lines():
            frames += line.startswith("data:")
            if frames == 3:
                break
    rows = []
    deadline = time.monotonic() + 10
    while not rows and time.monotonic() < deadline:
        rows = [r for r in gateway.log_rows() if r["client_request_id"] == rid]
        time.sleep(0.2)
    assert rows, "the abandoned request must still be logged"
    assert rows[0]["status_code"] == 499 and rows[0]["error_class"] == "client_disconnected"
    assert rows[0]["latency_ms"] < 5000 and time.monotonic() - started < 10


def test_mid_stream_failure_ends_with_an_error_event(gateway: Gateway, key: str) -> None:
    raw = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={**BODY, "model": "f-truncate"},
        headers={"Authorization": f"Bearer {key}"},
    ).text
    frames = data_frames(raw)
    assert '"error"' in frames[-1] and "truncated" in frames[-1]
    assert "data: [DONE]" not in frames
