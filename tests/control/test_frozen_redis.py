"""A Redis that accepts connections and never answers (frozen, or behind a silent
network): Redis is only the fast path (change bus, shared breakers), so the gateway stays
ready, says Redis is down, and its admin writes (a rollback among them) answer at once.

Before, /readyz and /healthz answered 500 (the Redis check's timeout escaped), so a load
balancer would have pulled every instance at once, and every admin write waited for the
Redis client's own read timeout (5 s)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from harness import Simulator, gateway_config, start_gateway


@pytest.fixture
def frozen_redis() -> Iterator[str]:
    """A listening socket nobody accepts from: connections complete (the kernel's
    backlog) and every command waits for ever."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as listener:
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


def test_a_frozen_redis_leaves_the_gateway_ready_and_its_writes_prompt(
    simulator: Simulator, frozen_redis: str, tmp_path: Path
) -> None:
    gw = start_gateway(
        gateway_config(simulator),
        f"sqlite:///{tmp_path / 'p.db'}",
        tmp_path / "gw",
        env={"PILOTHOUSE_REDIS_URL": frozen_redis},
    )
    try:
        for path in ("/readyz", "/healthz"):
            answer = httpx.get(gw.url + path, timeout=30)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["status"] == "degraded"
            assert body["checks"]["redis"] == {"up": False, "error": "no answer in time"}

        # The first write waits for the publish's bound (1 s), the next ones not at all:
        # the poll carries their changes to the other instances.
        timings = []
        for name in ("first", "second", "third"):
            start = time.monotonic()
            gw.create_key(name=name)
            timings.append(time.monotonic() - start)
        assert timings[0] < 3.0 and max(timings[1:]) < 0.9, timings
        assert gw.output().count("could not publish change") == 1

        key = gw.create_key(name="serves")
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
        reply = client.chat.completions.create(
            model="fast", messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.choices[0].message.content
    finally:
        gw.stop()
