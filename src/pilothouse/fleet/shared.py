"""Breaker state shared between instances through Redis (when PILOTHOUSE_REDIS_URL is set).

Each instance keeps its own breakers in memory, so a closed breaker never waits on
Redis. Only transitions travel: an instance that opens or closes a breaker writes it to
the hash `pilothouse:fleet:breakers:<installation>` (the state a newly started instance loads) and
publishes it on `pilothouse:fleet:breakers`; every other instance applies it on receipt
(milliseconds on a LAN). Half-open is local: each instance probes after the cool-down,
and the first probe's verdict is published to all. `<installation>` is a hash of the
database URL: instances that share a database share breakers, and two installations on one
Redis do not mix.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from pilothouse.fleet.breaker import HALF_OPEN, Transition
from pilothouse.fleet.health import DeploymentHealth

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("pilothouse.fleet")

PREFIX = "pilothouse:fleet:breakers"
KEEP_SECONDS = 86_400  # the stored state of an installation that stopped writing expires


class SharedBreakers:
    """Publishes this instance's breaker transitions and applies everyone else's."""

    def __init__(self, redis_url: str, healths: Mapping[str, DeploymentHealth], installation: str):
        self._url = redis_url
        self.key = f"{PREFIX}:{hashlib.sha256(installation.encode()).hexdigest()[:16]}"
        self._healths = healths
        self.instance = secrets.token_hex(6)
        self._redis: Redis | None = None
        self._outbox: asyncio.Queue[Transition] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.subscribed = asyncio.Event()  # set once listening (tests wait on it)

    def start(self) -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(self._url, socket_connect_timeout=2)
        for health in self._healths.values():
            health.publish = self._outbox.put_nowait
        self._tasks = [
            asyncio.create_task(self._listen(), name="fleet-breakers-listen"),
            asyncio.create_task(self._send(), name="fleet-breakers-send"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._redis is not None:
            await self._redis.aclose()

    async def _send(self) -> None:
        assert self._redis is not None
        while True:
            transition = await self._outbox.get()
            if transition.new == HALF_OPEN:
                continue
            message = orjson.dumps(
                {
                    "instance": self.instance,
                    "deployment": transition.deployment,
                    "state": transition.new,
                    "until": transition.until,
                    "trips": transition.trips,
                    "reason": transition.reason,
                }
            )
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.hset(self.key, transition.deployment, message)
                    pipe.expire(self.key, KEEP_SECONDS)
                    pipe.publish(self.key, message)
                    await pipe.execute()
            except Exception as exc:  # the other instances will trip on their own
                log.warning("could not share a breaker transition on Redis: %s", exc)

    async def _listen(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._subscribe()
                delay = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "shared breakers: Redis unavailable (retrying in %.1f s): %s", delay, exc
                )
            self.subscribed.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _subscribe(self) -> None:
        assert self._redis is not None
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(self.key)
        try:
            # Subscribed first, then the stored state: nothing published between is lost.
            for raw in (await self._redis.hgetall(self.key)).values():
                self._apply(raw)
            self.subscribed.set()
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    self._apply(message["data"])
        finally:
            await pubsub.aclose()

    def _apply(self, raw: Any) -> None:
        try:
            message = orjson.loads(raw)
            health = self._healths.get(message["deployment"])
            if health is None or message["instance"] == self.instance:
                return
            health.breaker.apply_remote(
                str(message["state"]),
                float(message["until"]) if message.get("until") is not None else None,
                int(message.get("trips") or 0),
                f"{message.get('reason')} (on instance {message['instance']})",
            )
        except Exception as exc:  # one bad message must not stop the listener
            log.warning("ignoring a bad shared-breaker message %.200r: %s", raw, exc)
