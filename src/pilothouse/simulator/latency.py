"""Latency: sampling time-to-first-token and pacing chunks in real time.

Pacing follows an absolute schedule (start + TTFT + tokens / tokens_per_second)
rather than sleeping a fixed amount per chunk, so scheduler jitter does not add
up over a long stream. With no TTFT and no token rate nothing ever sleeps.
"""

from __future__ import annotations

import asyncio
import math
import random
import time

from pilothouse.simulator.scenario import FixedLatency, LognormalLatency, UniformLatency

# z-score of the 99th percentile of a standard normal distribution.
_Z99 = 2.3263478740408408


def sample_ms(
    latency: FixedLatency | UniformLatency | LognormalLatency, rng: random.Random
) -> float:
    """One delay in milliseconds drawn from `latency` with `rng` (fixed ones ignore `rng`)."""
    if isinstance(latency, FixedLatency):
        return latency.ms
    if isinstance(latency, UniformLatency):
        return rng.uniform(latency.min_ms, latency.max_ms)
    mu = math.log(latency.median_ms)
    sigma = (math.log(latency.p99_ms) - mu) / _Z99
    return math.exp(rng.gauss(mu, sigma))


class Pacer:
    """Sleeps so that chunks leave at the planned times.

    `ttft_s` is the delay before the first chunk; `token_interval_s` the time per
    token after it (0 = as fast as possible); `drip_ms` (min, max), when given,
    replaces token pacing with a random gap before every token-bearing chunk.
    """

    def __init__(
        self,
        ttft_s: float,
        token_interval_s: float,
        drip_ms: tuple[float, float] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._start = time.monotonic()
        self._ttft_s = ttft_s
        self._interval = token_interval_s
        self._drip = drip_ms
        self._rng = rng or random.Random(0)
        self._tokens = 0

    @property
    def instant(self) -> bool:
        """True when this pacer never sleeps (the fast path for benchmarks)."""
        return self._ttft_s <= 0 and self._interval <= 0 and self._drip is None

    async def first_chunk(self) -> None:
        """Wait until the time-to-first-token has passed since the pacer was created."""
        await _sleep_until(self._start + self._ttft_s)

    async def next_chunk(self, tokens: int) -> None:
        """Wait before a chunk carrying `tokens` tokens (no wait for 0 unless dripping)."""
        if tokens <= 0:
            return
        if self._drip is not None:
            low, high = self._drip
            await _sleep_until(time.monotonic() + self._rng.uniform(low, high) / 1000.0)
            return
        self._tokens += tokens
        if self._interval > 0:
            await _sleep_until(self._start + self._ttft_s + self._tokens * self._interval)

    async def whole_response(self, tokens: int, chunks: int) -> None:
        """Wait as long as streaming `tokens` tokens in `chunks` chunks would have taken."""
        if self._drip is not None:
            low, high = self._drip
            gap_ms = sum(self._rng.uniform(low, high) for _ in range(max(chunks, 1)))
            await _sleep_until(self._start + self._ttft_s + gap_ms / 1000.0)
            return
        await _sleep_until(self._start + self._ttft_s + tokens * self._interval)


async def _sleep_until(deadline: float) -> None:
    # Event-loop timers may fire a hair early; loop so a promised delay is never cut short.
    remaining = deadline - time.monotonic()
    while remaining > 0:
        await asyncio.sleep(remaining)
        remaining = deadline - time.monotonic()
