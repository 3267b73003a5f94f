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

import orjson

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


# One call carries the queued corrections, then several requests' reservations, in order,
# each all-or-nothing: every charge of a request fits under its hard limit and all are
# added, or none is. KEYS: every slice the call touches, once. ARGV[1]: JSON
# {"c": [[key, delta, ttl], ...], "r": [[[[key, ...], amount, hard limit (-1: none),
# ttl], ...charges], ...requests]}, keys as 1-based indexes into KEYS (one argument to
# encode, not hundreds). Returns per request: ok, refused charge, used per charge.
_EXCHANGE = """
local call = cjson.decode(ARGV[1])
local function add(key, amount, ttl)
  if amount ~= 0 then
    redis.call('INCRBY', key, amount)
    if redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, ttl) end
  end
end
for _, c in ipairs(call.c) do add(KEYS[c[1]], c[2], c[3]) end
local out = {}
for _, charges in ipairs(call.r) do
  local used, refused = {}, 0
  for i, charge in ipairs(charges) do
    local total = 0
    for _, k in ipairs(charge[1]) do
      local v = redis.call('GET', KEYS[k])
      if v then total = total + tonumber(v) end
    end
    used[i] = total
    local amount, limit = charge[2], charge[3]
    if refused == 0 and limit >= 0 and (total >= limit or total + amount > limit) then
      refused = i
    end
  end
  if refused == 0 then
    for _, charge in ipairs(charges) do add(KEYS[charge[1][1]], charge[2], charge[4]) end
  end
  table.insert(out, refused == 0 and 1 or 0)
  table.insert(out, refused)
  for i = 1, #charges do table.insert(out, used[i]) end
end
return out
"""
KEY_PREFIX = "pilothouse:quota:"
FLUSH_SECONDS = 0.005  # reconciliations are sent together at most this late
RETRY_MAX_SECONDS = 5.0  # while Redis is away, reconciliations alone are retried this often
log = logging.getLogger("pilothouse.quotas")


class RedisBackend:
    """Counters in Redis, shared by every instance; every call is one Lua script (one
    round trip, atomic). A Redis that does not answer within `timeout_seconds` is
    BackendDown.

    One call at a time is on the wire: the reservations made while it is out, and the
    corrections queued by then, go together in the next (a group commit). Under load a
    call carries many requests, so Redis costs the gateway little per request; an idle
    gateway's request waits for one round trip, as before."""

    name = "redis"

    def __init__(self, url: str, *, timeout_seconds: float = 0.5):
        from redis.asyncio import Redis  # the server extra; not imported by the CLI

        self._client: Any = Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry_on_timeout=False,
        )
        self._exchange = self._client.register_script(_EXCHANGE)
        self._queue: list[tuple[Sequence[Charge], asyncio.Future[int | None]]] = []
        self._wire: asyncio.Task[None] | None = None  # the call on the wire
        self._send_soon = False  # a send is scheduled for the end of this loop turn
        self._pending: dict[str, tuple[int, int]] = {}  # slice -> (delta, ttl)
        self._flusher: asyncio.Task[None] | None = None
        # How late corrections alone are sent: doubled by each call that fails, back to
        # FLUSH_SECONDS when one lands (a Redis that is away is not asked 200 times a second).
        self._retry_seconds = FLUSH_SECONDS
        self.failed_flushes = 0

    async def reserve(self, charges: Sequence[Charge]) -> int | None:
        """Sent with the other reservations of this loop turn, or of the time the call
        before is out (each request still all-or-nothing). A caller that leaves before
        the answer gets nothing, and what it was given is handed back."""
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._queue.append((charges, future))
        self._schedule()
        return await future

    def _schedule(self) -> None:
        if not self._send_soon and self._wire is None:
            self._send_soon = True
            asyncio.get_running_loop().call_soon(self._send)

    def _send(self) -> None:
        """Put the queued reservations and corrections on the wire, if it is free."""
        self._send_soon = False
        if self._wire is not None or not (self._queue or self._pending):
            return
        batch, self._queue = self._queue, []
        corrections, self._pending = self._pending, {}
        self._wire = asyncio.get_running_loop().create_task(self._call_out(batch, corrections))
        self._wire.add_done_callback(self._landed)

    def _landed(self, _wire: asyncio.Task[None]) -> None:
        self._wire = None
        if self._queue:  # arrived while the call was out: they go now, together
            self._send()
        elif self._pending:  # corrections alone wait a little for reservations to join
            self._flush_later()

    async def _call_out(
        self,
        batch: list[tuple[Sequence[Charge], asyncio.Future[int | None]]],
        corrections: dict[str, tuple[int, int]],
    ) -> None:
        keys: dict[str, int] = {}  # slice -> its 1-based index in KEYS
        ref = keys.setdefault
        fixes = [[ref(s, len(keys) + 1), delta, ttl] for s, (delta, ttl) in corrections.items()]
        requests = [
            [
                [
                    [ref(s, len(keys) + 1) for s in charge.slices],
                    charge.amount,
                    -1 if charge.policy.hard_units is None else charge.policy.hard_units,
                    charge.policy.ttl_seconds,
                ]
                for charge in charges
            ]
            for charges, _ in batch
        ]
        try:
            result = await self._call(
                self._exchange, list(keys), [orjson.dumps({"c": fixes, "r": requests})]
            )
        except BaseException as exc:
            self._put_back(corrections, exc)
            for _, future in batch:
                if not future.done():
                    future.set_exception(
                        exc if isinstance(exc, BackendDown) else BackendDown(str(exc))
                    )
            if not isinstance(exc, Exception):
                raise
            return
        if self._retry_seconds != FLUSH_SECONDS:
            log.warning(
                "quota reconciliations reach Redis again (%d failed calls since start)",
                self.failed_flushes,
            )
            self._retry_seconds = FLUSH_SECONDS
        position = 0
        for charges, future in batch:
            ok, refused_at = int(result[position]), int(result[position + 1])
            for charge, used in zip(charges, result[position + 2 :], strict=False):
                charge.used = int(used)
            position += 2 + len(charges)
            if future.cancelled():  # its caller left: give back what it was given
                if ok == 1:
                    self._queue_adjust(
                        [(c.slices[0], -c.amount, c.policy.ttl_seconds) for c in charges]
                    )
            else:
                future.set_result(None if ok == 1 else refused_at - 1)

    def _put_back(self, corrections: dict[str, tuple[int, int]], exc: BaseException) -> None:
        """Corrections a failed call did not apply wait for the next one."""
        if not corrections:
            return
        for slice_, (delta, ttl) in corrections.items():
            pending = self._pending.get(slice_)
            self._pending[slice_] = (delta + (pending[0] if pending else 0), ttl)
        self.failed_flushes += 1
        if self._retry_seconds == FLUSH_SECONDS:  # the first failure since Redis answered
            log.error(
                "quota reconciliations wait for Redis (%d slices; retried every %.0f s at "
                "most): %s",
                len(self._pending),
                RETRY_MAX_SECONDS,
                exc,
            )
        self._retry_seconds = min(self._retry_seconds * 2, RETRY_MAX_SECONDS)

    async def adjust(self, deltas: Sequence[tuple[str, int, int]]) -> None:
        """Queued, merged per slice, and sent with the next reservations, or on their own
        within a few milliseconds: a request does not wait for its reconciliation (until
        it lands, the counter holds the larger reservation, so a limit is never passed
        because of the delay)."""
        self._queue_adjust(deltas)

    def _queue_adjust(self, deltas: Sequence[tuple[str, int, int]]) -> None:
        for slice_, delta, ttl in deltas:
            if delta:
                pending = self._pending.get(slice_)
                self._pending[slice_] = (delta + (pending[0] if pending else 0), ttl)
        if self._pending:
            self._flush_later()

    def _flush_later(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush_soon(self._retry_seconds)
            )

    async def _flush_soon(self, delay_seconds: float) -> None:
        await asyncio.sleep(delay_seconds)
        if self._pending:  # not carried by a reservation meanwhile (else: when it lands)
            self._schedule()

    async def flush(self) -> None:
        """Send every queued correction now; on failure they stay queued for the next
        call."""
        while self._wire is not None or self._pending:
            if self._wire is None:
                failed = self.failed_flushes
                self._send()
                assert self._wire is not None
                await asyncio.wait({self._wire})
                if self.failed_flushes != failed:
                    return
            else:
                await asyncio.wait({self._wire})

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

    async def _call(self, script: Any, keys: list[str], args: list[bytes]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except Exception as exc:  # connection refused, timeout, a Redis that is loading
            raise BackendDown(f"Redis did not answer: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        await self.flush()
        await self._client.aclose()
