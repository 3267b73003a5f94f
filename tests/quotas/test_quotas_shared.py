"""Quotas shared by several instances (process tier): two `pilothouse serve` processes on
one PostgreSQL schema and one Redis, the simulator as the provider, concurrent bursts sent
to both. Request quotas overshoot by at most one request; cost quotas by nothing when
`max_tokens` is set. And, in-process, what a policy does when Redis cannot be reached."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_quotas import CONFIG, completion

from harness import Gateway, Simulator, fresh_schema, gateway_config, start_gateway
from inprocess import InProcess, Scripted

HELLO = [{"role": "user", "content": "Say hello to the gateway."}]


def wait_for_key(gateway: Gateway, key: str) -> None:
    """The key reaches the other instance through the change bus."""
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        for _ in range(200):
            answer = client.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
            if answer.status_code == 200:
                return
            time.sleep(0.02)
    raise AssertionError("the key never reached the second instance")


async def burst(
    urls: list[str], key: str, count: int, concurrency: int, **body: Any
) -> list[httpx.Response]:
    """`count` chat calls, `concurrency` at a time, alternating between the instances."""
    gate = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(timeout=30) as client:

        async def one(index: int) -> httpx.Response:
            async with gate:
                return await client.post(
                    urls[index % len(urls)] + "/v1/chat/completions",
                    json={"model": "fast", "messages": HELLO, **body},
                    headers=headers,
                )

        return list(await asyncio.gather(*(one(i) for i in range(count))))


def set_quota(gateway: Gateway, name: str, key: str, **spec: Any) -> None:
    body = {"subject_kind": "key", "subject": key, "window": "day", **spec}
    answer = gateway.admin.put(f"/api/quotas/{name}", json=body)
    assert answer.status_code == 201, answer.text


def test_two_instances_on_redis_and_postgresql_never_overshoot(
    tmp_path: Path, simulator: Simulator, postgres_base_url: str, redis_url: str
) -> None:
    env = {"PILOTHOUSE_REDIS_URL": redis_url}
    config = gateway_config(simulator)
    run = secrets.token_hex(4)  # counters in the shared Redis are this run's own
    with fresh_schema(postgres_base_url) as database_url:
        one = start_gateway(config, database_url, tmp_path / "one", env=env)
        two = start_gateway(config, database_url, tmp_path / "two", env=env)
        try:
            requests_key = one.create_key(name="requests")
            dollars_key = one.create_key(name="dollars")
            set_quota(one, f"req-{run}", "requests", dimension="requests", hard_limit=40)
            set_quota(one, f"usd-{run}", "dollars", dimension="cost", hard_limit=0.002)
            wait_for_key(two, dollars_key)
            urls = [one.url, two.url]

            answers = asyncio.run(burst(urls, requests_key, 160, 24))
            served = [a for a in answers if a.status_code == 200]
            refused = [a for a in answers if a.status_code == 429]
            assert len(served) + len(refused) == 160
            overshoot = len(served) - 40
            print(f"\nrequest quota of 40: {len(served)} served (overshoot {overshoot})")
            assert 0 <= overshoot <= 1
            assert {a.json()["error"]["quota"] for a in refused} == {f"req-{run}"}
            assert {a.url.host + str(a.url.port) for a in served} == {
                u.removeprefix("http://").replace(":", "") for u in urls
            }  # both instances served part of it

            answers = asyncio.run(burst(urls, dollars_key, 300, 24, max_tokens=40))
            served = [a for a in answers if a.status_code == 200]
            assert served and len(served) < 300
            spent = sum(float(a.headers["x-pilothouse-cost-usd"]) for a in served)
            print(f"cost quota of $0.002: {len(served)} served, ${spent:.6f} spent")
            assert spent <= 0.002  # $0 overshoot
            assert spent > 0.002 * 0.5  # and the quota was really used, not refused early
            key_id = one.admin.get("/api/keys/dollars/usage").json()["key"]["id"]
            rows = one.log_rows(len(served) + 1, key=key_id, status=200)
            rows = [r for r in rows if r["endpoint"] == "chat"]  # not the key's /v1/models
            assert len(rows) == len(served)
            assert sum(r["cost_usd"] for r in rows) == pytest.approx(spent, abs=1e-8)
            usage = one.admin.get("/api/keys/dollars/usage").json()["quotas"][0]
            assert usage["used"] == pytest.approx(spent, abs=1e-8)  # reconciled exactly
        finally:
            one.stop()
            two.stop()


@pytest.mark.anyio
@pytest.mark.parametrize("on_down", ["open", "closed"])
async def test_with_redis_unreachable_the_policy_fails_open_counted_and_alerted_or_closed(
    tmp_path: Path, on_down: str
) -> None:
    async with InProcess.start(tmp_path, CONFIG, redis_url="redis://127.0.0.1:9/0") as gw:
        gw.transports["sim"].default = Scripted.json(completion())
        answer = await gw.client.put(
            "/api/quotas/q",
            json={
                "subject_kind": "key",
                "subject": "inprocess",
                "dimension": "requests",
                "window": "minute",
                "hard_limit": 5,
                "on_backend_down": on_down,
            },
            headers=gw.admin,
        )
        assert answer.status_code == 201
        response = await gw.chat()
        metrics = (await gw.client.get("/metrics")).text
        if on_down == "open":
            assert response.status_code == 200 and "ratelimit" not in response.headers
            assert 'pilothouse_quota_decisions_total{decision="fail_open"} 1.0' in metrics
            for _ in range(50):
                alerts = (await gw.client.get("/api/alerts", headers=gw.admin)).json()["data"]
                if alerts:
                    break
                await asyncio.sleep(0.05)
            assert [(a["kind"], a["subject"]) for a in alerts] == [("quota", "quota:backend")]
        else:
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "quota_backend_unavailable"
            assert response.headers["retry-after"] == "1"
            assert 'pilothouse_quota_decisions_total{decision="fail_closed"} 1.0' in metrics


@pytest.mark.anyio
async def test_a_huge_max_tokens_on_redis_is_refused_alone_not_taken_for_redis_down(
    tmp_path: Path, redis_url: str
) -> None:
    """A client's max_tokens of 2**62 makes a cost bound past any 64-bit integer: it is
    refused at the hard limit, like any request too big for it, and the requests sent
    with it are counted as usual (Redis is not reported down, nothing fails open)."""
    name = f"usd-{secrets.token_hex(4)}"
    async with InProcess.start(tmp_path, CONFIG, redis_url=redis_url) as gw:
        gw.transports["sim"].default = Scripted.json(completion())
        answer = await gw.client.put(
            f"/api/quotas/{name}",
            json={
                "subject_kind": "key",
                "subject": "inprocess",
                "dimension": "cost",
                "window": "day",
                "hard_limit": 100,
                "on_backend_down": "open",
            },
            headers=gw.admin,
        )
        assert answer.status_code == 201, answer.text
        huge, *usual = await asyncio.gather(
            gw.chat(max_tokens=2**62), *(gw.chat(max_tokens=5) for _ in range(3))
        )
        assert huge.status_code == 429, huge.text
        assert huge.json()["error"]["code"] == "quota_exceeded"
        assert [r.status_code for r in usual] == [200, 200, 200]
        assert all("x-pilothouse-quota-usd-remaining" in r.headers for r in usual)
        metrics = (await gw.client.get("/metrics")).text
        assert 'pilothouse_quota_decisions_total{decision="fail_open"} 0.0' in metrics
