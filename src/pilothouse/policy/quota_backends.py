"""Where quota usage is counted: in this process (one instance) or in Redis (several).

Both do the same two operations, each atomic:
- `reserve(charges)`: for every charge, sum its window's counter slices; if any charge
  would pass its hard limit, change nothing and say which; otherwise add every amount.
- `adjust(deltas)`: add corrections (a reconciliation with the real usage, or a release).

Counters are integers (a request, a token, a nano-dollar), so sums are exact. In Redis
the check and the add run as one Lua script, so two instances can never both take the
last unit of a quota.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pilothouse.policy.quotas import QuotaPolicy


@dataclass(slots=True)
class Charge:
    """One policy's part of a request: its counter slices (the first takes the usage),
    how much this request takes, and what the window held before it."""

    policy: QuotaPolicy
    subject: str  # "key:key_1", "user:alice", "team:payments"
    slices: tuple[str, ...]
    amount: int
    resets_at: float
    used: int = 0  # before this request, filled by reserve (or peek)


class BackendDown(Exception):
    """The counter store cannot be reached; each policy says whether to fail open."""


class QuotaBackend(Protocol):
    name: str

    async def reserve(self, charges: Sequence[Charge]) -> int | None:
        """Add every charge's amount, or none when one would pass its hard limit (its
        index is returned). Fills each charge's `used`."""
        ...

    async def adjust(self, deltas: Sequence[tuple[str, int, int]]) -> None:
        """Add (slice, delta, ttl seconds) corrections."""
        ...

    async def peek(self, charges: Sequence[Charge]) -> None:
        """Fill each charge's `used` without changing anything."""
        ...

    async def close(self) -> None: ...


def refused(used: int, amount: int, limit: int | None) -> bool:
    return limit is not None and (used >= limit or used + amount > limit)


class InProcessBackend:
    """Counters in this process's memory: exact for a single instance (SQLite). Every
    operation runs without awaiting, so on the event loop each one is atomic."""

    name = "in-process"
    PRUNE_EVERY = 10_000

    def __init__(self, monotonic: Any = time.monotonic):
        self._counts: dict[str, int] = {}
        self._expires: dict[str, float] = {}
        self._monotonic = monotonic
        self._ops = 0

    def _used(self, charge: Charge) -> int:
        get = self._counts.get
        return sum(get(s, 0) for s in charge.slices)

    async def reserve(self, charges: Sequence[Charge]) -> int | None:
        return self.reserve_now(charges)

    def reserve_now(self, charges: Sequence[Charge]) -> int | None:
        for index, charge in enumerate(charges):
            charge.used = self._used(charge)
            if refused(charge.used, charge.amount, charge.policy.hard_units):
                return index
        for charge in charges:
            self._add(charge.slices[0], charge.amount, charge.policy.ttl_seconds)
        return None

    async def adjust(self, deltas: Sequence[tuple[str, int, int]]) -> None:
        for slice_, delta, ttl in deltas:
            self._add(slice_, delta, ttl)

    async def peek(self, charges: Sequence[Charge]) -> None:
        for charge in charges:
            charge.used = self._used(charge)

    def _add(self, slice_: str, amount: int, ttl: int) -> None:
        if amount:
            self._counts[slice_] = self._counts.get(slice_, 0) + amount
            if slice_ not in self._expires:
                self._expires[slice_] = self._monotonic() + ttl
        self._ops += 1
        if self._ops >= self.PRUNE_EVERY:
            self._prune()

    def _prune(self) -> None:
        self._ops = 0
        now = self._monotonic()
        for slice_ in [s for s, at in self._expires.items() if at <= now]:
            del self._expires[slice_]
            self._counts.pop(slice_, None)

    async def close(self) -> None:
        pass


# Several requests' reservations in one call, in order, each all-or-nothing: every charge
# of a request fits under its hard limit and all are added, or none is.
# ARGV: request count, then per request: charge count, then per charge: slice count,
# amount, hard limit (-1: none), ttl. Returns per request: ok, refused charge, used...
_RESERVE_MANY = """
local out = {}
local requests = tonumber(ARGV[1])
local k, a = 1, 2
for r = 1, requests do
  local n = tonumber(ARGV[a])
  a = a + 1
  local used, refused = {}, 0
  local k0, a0 = k, a
  for i = 1, n do
    local slices, amount, limit = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    local total = 0
    for j = 0, slices - 1 do
      local v = redis.call('GET', KEYS[k + j])
      if v then total = total + tonumber(v) end
    end
    used[i] = total
    if refused == 0 and limit >= 0 and (total >= limit or total + amount > limit) then
      refused = i
    end
    k, a = k + slices, a + 4
  end
  if refused == 0 then
    local k1, a1 = k0, a0
    for i = 1, n do
      local slices, amount, ttl = tonumber(ARGV[a1]), tonumber(ARGV[a1 + 1]), tonumber(ARGV[a1 + 3])
      if amount ~= 0 then
        redis.call('INCRBY', KEYS[k1], amount)
        if redis.call('TTL', KEYS[k1]) < 0 then redis.call('EXPIRE', KEYS[k1], ttl) end
      end
      k1, a1 = k1 + slices, a1 + 4
    end
  end
  table.insert(out, refused == 0 and 1 or 0)
  table.insert(out, refused)
  for i = 1, n do table.insert(out, used[i]) end
end
return out
"""
# KEYS: slices; ARGV: delta, ttl per slice.
_ADJUST = """
for i = 1, #KEYS do
  local delta = tonumber(ARGV[2 * i - 1])
  if delta ~= 0 then
    redis.call('INCRBY', KEYS[i], delta)
    if redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], tonumber(ARGV[2 * i])) end
  end
end
return 1
"""
KEY_PREFIX = "pilothouse:quota:"
FLUSH_SECONDS = 0.005  # reconciliations are sent together at most this late
log = logging.getLogger("pilothouse.quotas")


class RedisBackend:
    """Counters in Redis, shared by every instance; each operation is one Lua script
    (one round trip, atomic). A Redis that does not answer within `timeout_seconds` is
    BackendDown."""

    name = "redis"

    def __init__(self, url: str, *, timeout_seconds: float = 0.5):
        from redis.asyncio import Redis  # the server extra; not imported by the CLI

        self._client: Any = Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry_on_timeout=False,
        )
        self._reserve_many = self._client.register_script(_RESERVE_MANY)
        self._queue: list[tuple[Sequence[Charge], asyncio.Future[int | None]]] = []
        self._sending: set[asyncio.Task[None]] = set()
        self._adjust = self._client.register_script(_ADJUST)
        self._pending: dict[str, tuple[int, int]] = {}
        self._flusher: asyncio.Task[None] | None = None
        self.failed_flushes = 0

    async def reserve(self, charges: Sequence[Charge]) -> int | None:
        """Joins the reservations made in the same turn of the event loop into one script
        call (each request still all-or-nothing): one round trip for many requests."""
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._queue.append((charges, future))
        if len(self._queue) == 1:
            asyncio.get_running_loop().call_soon(self._send_reservations)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:  # the caller left: give back what it may get
            future.add_done_callback(lambda done: self._undo(charges, done))
            raise

    def _undo(self, charges: Sequence[Charge], done: asyncio.Future[int | None]) -> None:
        if not done.cancelled() and done.exception() is None and done.result() is None:
            self._queue_adjust([(c.slices[0], -c.amount, c.policy.ttl_seconds) for c in charges])

    def _send_reservations(self) -> None:
        batch, self._queue = self._queue, []
        task = asyncio.get_running_loop().create_task(self._reserve_batch(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _reserve_batch(
        self, batch: list[tuple[Sequence[Charge], asyncio.Future[int | None]]]
    ) -> None:
        keys: list[str] = []
        args: list[int] = [len(batch)]
        for charges, _ in batch:
            args.append(len(charges))
            for charge in charges:
                keys += charge.slices
                hard = charge.policy.hard_units
                args += [
                    len(charge.slices),
                    charge.amount,
                    -1 if hard is None else hard,
                    charge.policy.ttl_seconds,
                ]
        try:
            result = await self._call(self._reserve_many, keys, args)
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(
                        exc if isinstance(exc, BackendDown) else BackendDown(str(exc))
                    )
            if not isinstance(exc, Exception):
                raise
            return
        position = 0
        for charges, future in batch:
            ok, refused_at = int(result[position]), int(result[position + 1])
            for charge, used in zip(charges, result[position + 2 :], strict=False):
                charge.used = int(used)
            position += 2 + len(charges)
            if not future.done():
                future.set_result(None if ok == 1 else refused_at - 1)

    async def adjust(self, deltas: Sequence[tuple[str, int, int]]) -> None:
        """Queued, merged per slice, and sent as one script every few milliseconds: a
        request does not wait for its reconciliation (until it lands, the counter holds
        the larger reservation, so a limit is never passed because of the delay)."""
        self._queue_adjust(deltas)

    def _queue_adjust(self, deltas: Sequence[tuple[str, int, int]]) -> None:
        for slice_, delta, ttl in deltas:
            if delta:
                pending = self._pending.get(slice_)
                self._pending[slice_] = (delta + (pending[0] if pending else 0), ttl)
        if self._pending and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(FLUSH_SECONDS)
        await self.flush()

    async def flush(self) -> None:
        """Send every queued correction now; on failure they stay queued for the next."""
        while self._pending:
            batch, self._pending = self._pending, {}
            try:
                args = [v for delta, ttl in batch.values() for v in (delta, ttl)]
                await self._call(self._adjust, list(batch), args)
            except BackendDown as exc:
                for slice_, (delta, ttl) in batch.items():  # put back, merged with newer
                    pending = self._pending.get(slice_)
                    self._pending[slice_] = (delta + (pending[0] if pending else 0), ttl)
                self.failed_flushes += 1
                log.error(
                    "quota reconciliations wait for Redis (%d slices): %s", len(self._pending), exc
                )
                return

    async def peek(self, charges: Sequence[Charge]) -> None:
        keys = [s for c in charges for s in c.slices]
        try:
            values = await self._client.mget(keys) if keys else []
        except Exception as exc:
            raise BackendDown(f"Redis did not answer: {exc}") from exc
        position = 0
        for charge in charges:
            part = values[position : position + len(charge.slices)]
            charge.used = sum(int(v) for v in part if v is not None)
            position += len(charge.slices)

    async def _call(self, script: Any, keys: list[str], args: list[int]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except Exception as exc:  # connection refused, timeout, a Redis that is loading
            raise BackendDown(f"Redis did not answer: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        await self.flush()
        await self._client.aclose()
