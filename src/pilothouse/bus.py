"""The change bus: how a configuration change made in one process reaches the others.

Three layers, fastest first: Redis pub/sub (when PILOTHOUSE_REDIS_URL is set) and
PostgreSQL LISTEN/NOTIFY (when the store is PostgreSQL) wake every process at once; a
cheap poll of the store's version, a few times a second, is the backstop that works
everywhere, including SQLite and a bus that is down. A message is a `changes.Change`: the
new version and the items it touched, so a receiver reloads only those. The version in
the store stays the truth: a duplicated message is ignored, and a lost one shows as a
version gap, which the receiver repairs with a full load.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from pilothouse.store import notify
from pilothouse.store.changes import Change

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("pilothouse.bus")

REDIS_CHANNEL = "pilothouse:changes"
PUBLISH_TIMEOUT_SECONDS = 1.0
PUBLISH_PAUSE_SECONDS = 5.0
Wake = Callable[[Change | None], Awaitable[object]]  # None: a message that is not a change


class ChangeBus:
    def __init__(self, *, redis_url: str | None, postgres_url: str | None):
        self._redis_url = redis_url
        self._postgres_url = postgres_url
        self._redis: Redis | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._publish_paused_until = 0.0

    @property
    def transports(self) -> list[str]:
        return [
            name
            for name, url in (("redis", self._redis_url), ("postgres", self._postgres_url))
            if url
        ]

    def start(self, wake: Wake) -> None:
        """Call `wake` whenever another process announces a change."""
        if self._redis_url:
            self._tasks.append(asyncio.create_task(self._redis_loop(wake), name="bus-redis"))
        if self._postgres_url:
            self._tasks.append(asyncio.create_task(self._postgres_loop(wake), name="bus-postgres"))

    async def publish(self, change: Change) -> None:
        """Announce a change made by this process (PostgreSQL announced it at commit).

        An admin write's answer waits for this, so it is bounded: a Redis that accepts
        connections and never answers (frozen, or behind a silent network) costs one write
        PUBLISH_TIMEOUT_SECONDS, and the writes in the next PUBLISH_PAUSE_SECONDS nothing
        (the poll carries their changes, as it carries any lost message)."""
        if not self._redis_url or time.monotonic() < self._publish_paused_until:
            return
        try:
            await asyncio.wait_for(
                self._redis_client().publish(REDIS_CHANNEL, change.payload()),
                PUBLISH_TIMEOUT_SECONDS,
            )
        except Exception as exc:  # the poll still carries the change
            self._publish_paused_until = time.monotonic() + PUBLISH_PAUSE_SECONDS
            reason = f"no answer in {PUBLISH_TIMEOUT_SECONDS:g} s" if _timed_out(exc) else exc
            log.warning(
                "could not publish change %d on Redis (%s); the poll carries changes, and "
                "publishing pauses for %g s",
                change.version,
                reason,
                PUBLISH_PAUSE_SECONDS,
            )

    async def ping(self) -> bool | None:
        """Whether Redis answers (None when no Redis is configured)."""
        if not self._redis_url:
            return None
        try:
            return bool(await self._redis_client().ping())
        except Exception:
            return False

    def _redis_client(self) -> Redis:
        if self._redis is None:
            from redis.asyncio import Redis

            assert self._redis_url is not None
            self._redis = Redis.from_url(self._redis_url, socket_connect_timeout=2)
        return self._redis

    async def _redis_loop(self, wake: Wake) -> None:
        async def subscribe() -> None:
            pubsub = self._redis_client().pubsub()
            await pubsub.subscribe(REDIS_CHANNEL)
            try:
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        await wake(Change.parse(message.get("data")))
            finally:
                await pubsub.aclose()

        await self._forever("redis", subscribe)

    async def _postgres_loop(self, wake: Wake) -> None:
        async def subscribe() -> None:
            assert self._postgres_url is not None
            async for payload in notify.listen(self._postgres_url):
                await wake(Change.parse(payload))

        await self._forever("postgres", subscribe)

    async def _forever(self, name: str, subscribe: Callable[[], Awaitable[None]]) -> None:
        delay = 0.5
        while True:
            try:
                await subscribe()
                delay = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("change bus %s unavailable (retrying in %.1f s): %s", name, delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._redis is not None:
            await self._redis.aclose()


def _timed_out(exc: BaseException) -> bool:
    from redis.exceptions import TimeoutError as RedisTimeout

    return isinstance(exc, TimeoutError | RedisTimeout)
