"""Dependencies that accept connections and never answer (frozen, or behind a silent
network). Redis is only the fast path (change bus, shared breakers), and a database
outage is `degraded`: either way the gateway stays ready, says what is down, and answers
its health probes (and admin writes) at once.

Before, a frozen Redis made /readyz and /healthz answer 500 (the Redis check's timeout
escaped), so a load balancer would have pulled every instance at once, and every admin
write waited for the Redis client's own read timeout (5 s); a database that hung held
each probe 2 s (past a readiness probe's usual 1 s) and a thread and a connection per
probe."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from harness import Simulator, gateway_config, start_gateway
from inprocess import InProcess
from pilothouse.services import CHECK_TIMEOUT_SECONDS


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


@pytest.mark.anyio
async def test_a_hung_database_check_is_shared_and_the_probe_answers_within_its_bound(
    tmp_path: Path,
) -> None:
    async with InProcess.start(tmp_path) as gw:
        services = gw.server.web.state.services
        started = 0
        release = asyncio.Event()
        real = services.schema_state

        async def hung() -> Any:
            nonlocal started
            started += 1
            await release.wait()
            return await real()

        services.schema_state = hung
        begin = time.monotonic()
        probes = await asyncio.gather(*(gw.client.get("/readyz") for _ in range(5)))
        again = await gw.client.get("/healthz")
        took = time.monotonic() - begin
        for probe in [*probes, again]:
            assert probe.status_code == 200, probe.text
            assert probe.json()["status"] == "degraded"
            database = probe.json()["checks"]["database"]
            assert database["up"] is False and database["error"] == "no answer in time"
        assert started == 1, "every probe waits on the one check in flight"
        assert took < 2 * CHECK_TIMEOUT_SECONDS + 1, took  # two rounds of probes
        release.set()
        assert (await services._checked()).at_head  # the hung check ends, answered late
        # Once it has ended, each probe checks afresh: no answer is kept past its check.
        for count in (2, 3):
            recovered = await gw.client.get("/readyz")
            assert recovered.json()["status"] == "ready", recovered.text
            assert started == count
