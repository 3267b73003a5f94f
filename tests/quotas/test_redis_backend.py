"""The Redis counters under concurrency (real Redis): reservations made together go in one
call and each stays all-or-nothing, so a burst takes exactly the quota; corrections ride
along with reservations; a caller that leaves mid-call has its reservation given back."""

from __future__ import annotations

import asyncio
import secrets
from urllib.parse import urlsplit

import pytest

from pilothouse.policy.quota_backends import Charge, RedisBackend
from pilothouse.policy.quotas import QuotaPolicy
from tcp_proxy import TcpProxy

pytestmark = pytest.mark.anyio


def policy(name: str, hard: float, dimension: str = "requests") -> QuotaPolicy:
    return QuotaPolicy.from_row(
        {
            "name": name,
            "subject_kind": "key",
            "subject": "k",
            "dimension": dimension,
            "window": "day",
            "hard_limit": hard,
            "on_backend_down": "open",
            "created_by": "test",
        }
    )


def charges(requests: QuotaPolicy, tokens: QuotaPolicy, run: str, amount: int) -> list[Charge]:
    return [
        Charge(requests, "key:k", (f"pilothouse:quota:test:{run}:requests",), 1, 0.0),
        Charge(tokens, "key:k", (f"pilothouse:quota:test:{run}:tokens",), amount, 0.0),
    ]


async def test_a_burst_takes_exactly_the_quota_in_few_calls(redis_url: str) -> None:
    run = secrets.token_hex(4)
    requests, tokens = policy(f"r-{run}", 1e9), policy(f"t-{run}", 1000, "tokens")
    backend = RedisBackend(redis_url)
    calls = 0
    call = backend._call

    async def counted(*args: object) -> object:
        nonlocal calls
        calls += 1
        return await call(*args)  # type: ignore[arg-type]

    backend._call = counted  # type: ignore[method-assign]
    try:
        made = [charges(requests, tokens, run, 30) for _ in range(50)]
        answers = await asyncio.gather(*(backend.reserve(c) for c in made))
        admitted = [c for c, refused in zip(made, answers, strict=True) if refused is None]
        # 1000 tokens at 30 a request: 33 fit; the others are refused on their token charge
        # and take nothing (not even their request).
        assert len(admitted) == 33
        assert {refused for refused in answers if refused is not None} == {1}
        assert calls < 10
        peek = charges(requests, tokens, run, 0)
        await backend.peek(peek)
        assert [c.used for c in peek] == [33, 990]

        # Corrections (the real usage: 10 tokens each) go with the next reservations.
        await backend.adjust([(c[1].slices[0], -20, 86400) for c in admitted])
        assert await backend.reserve(charges(requests, tokens, run, 30)) is None
        await backend.peek(peek)
        assert [c.used for c in peek] == [34, 990 - 33 * 20 + 30]
    finally:
        await backend.close()


async def test_a_caller_that_leaves_mid_reservation_gets_it_given_back(redis_url: str) -> None:
    run = secrets.token_hex(4)
    requests, tokens = policy(f"r-{run}", 1e9), policy(f"t-{run}", 1000, "tokens")
    backend = RedisBackend(redis_url)
    try:
        leaving = asyncio.ensure_future(backend.reserve(charges(requests, tokens, run, 300)))
        await asyncio.sleep(0)  # queued, and on the wire at the end of this turn
        staying = asyncio.ensure_future(backend.reserve(charges(requests, tokens, run, 300)))
        await asyncio.sleep(0)
        leaving.cancel()
        assert await staying is None
        with pytest.raises(asyncio.CancelledError):
            await leaving
        await backend.flush()
        peek = charges(requests, tokens, run, 0)
        await backend.peek(peek)
        assert [c.used for c in peek] == [1, 300]  # only the one that stayed
    finally:
        await backend.close()


async def test_corrections_wait_for_a_redis_that_is_away_without_hammering_it(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis cut with corrections queued: they are retried less and less often (not every
    few milliseconds), the outage is logged once, and they all land once it is back."""
    parts = urlsplit(redis_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 6379)
    proxy.start()
    run = secrets.token_hex(4)
    requests, tokens = policy(f"r-{run}", 1e9), policy(f"t-{run}", 1000, "tokens")
    backend = RedisBackend(
        redis_url.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}")
    )
    calls = 0
    call = backend._call

    async def counted(*args: object) -> object:
        nonlocal calls
        calls += 1
        return await call(*args)  # type: ignore[arg-type]

    backend._call = counted  # type: ignore[method-assign]
    try:
        assert await backend.reserve(charges(requests, tokens, run, 300)) is None
        proxy.cut()
        await backend.adjust([(f"pilothouse:quota:test:{run}:tokens", -200, 86400)])
        for _ in range(6):  # six calls that fail: the retry is then 320 ms away
            await backend.flush()
        calls = 0
        await asyncio.sleep(0.3)
        assert calls <= 2  # a few milliseconds apart, there would be dozens
        failures = [r for r in caplog.records if "wait for Redis" in r.getMessage()]
        assert len(failures) == 1
        proxy.restore()
        await backend.flush()
        peek = charges(requests, tokens, run, 0)
        await backend.peek(peek)
        assert [c.used for c in peek] == [1, 100]
    finally:
        proxy.cut()
        await backend.close()
