"""One feed of prompt-registry events per process, shared by every SSE subscriber.

Each configuration change costs one query, however many SDK clients listen: new events
go into a bounded in-memory buffer and every stream reads from it. A label move carries
the prompt its readers now get (`registry.events_with_prompts`), so a thousand SDK
clients holding it update from the event instead of each fetching it again. A subscriber resuming
from an id older than the buffer is served from the store first. On shutdown the feed
closes, so open streams end and the server can drain.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from pilothouse.registry import prompts as registry
from pilothouse.store import Store
from pilothouse.store.prompts import EVENTS_PAGE

if TYPE_CHECKING:
    from pilothouse.snapshot_holder import ConfigChanges

log = logging.getLogger("pilothouse.prompt_feed")
BUFFER_SIZE = 2000


class PromptFeed:
    def __init__(self, store: Store, changes: ConfigChanges, *, heartbeat_seconds: float = 15.0):
        self._store = store
        self._changes = changes
        self._heartbeat = heartbeat_seconds
        self._buffer: deque[dict[str, Any]] = deque(maxlen=BUFFER_SIZE)
        self._last_id = 0
        self._arrived = asyncio.Event()  # set (and replaced) when events arrive
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    @property
    def last_id(self) -> int:
        return self._last_id

    async def start(self) -> None:
        self._last_id = await asyncio.to_thread(registry.last_event_id, self._store)
        self._task = asyncio.create_task(self._follow(), name="prompt-feed")

    async def _follow(self) -> None:
        while not self._closing:
            await self._changes.wait_for_change(self._heartbeat)
            if self._closing:
                break
            try:
                while await self._read_page() == EVENTS_PAGE:
                    pass  # a push of more events than a page: read on at once
            except Exception as exc:  # the store is away: try again at the next change or tick
                log.warning("cannot read prompt events: %s", exc)

    async def _read_page(self) -> int:
        """Buffer the next page of events and wake the subscribers; how many there were."""
        new = await asyncio.to_thread(registry.events_with_prompts, self._store, self._last_id)
        if new:
            self._buffer.extend(new)
            self._last_id = new[-1]["id"]
            self._wake()
        return len(new)

    def _wake(self) -> None:
        """Wake every subscriber waiting now; later ones wait on a fresh event."""
        arrived, self._arrived = self._arrived, asyncio.Event()
        arrived.set()

    async def subscribe(self, after_id: int) -> AsyncIterator[dict[str, Any] | None]:
        """Events with id > after_id, in order, then each new one; None means "send a ping".

        Ends when the feed closes.
        """
        oldest = self._buffer[0]["id"] if self._buffer else self._last_id + 1
        if after_id < oldest - 1:  # older than the buffer: catch up from the store
            for event in await asyncio.to_thread(registry.events_after, self._store, after_id):
                if event["id"] >= oldest:
                    break
                after_id = event["id"]
                yield event
        while not self._closing:
            arrived = self._arrived  # taken first: what arrives while we send wakes us
            for event in self._newer_than(after_id):
                after_id = event["id"]
                yield event
            if self._closing:
                return
            try:
                async with asyncio.timeout(self._heartbeat):
                    await arrived.wait()
            except TimeoutError:
                yield None

    def _newer_than(self, after_id: int) -> list[dict[str, Any]]:
        """The buffered events after `after_id`, oldest first: read from the newest end,
        so a wake costs each subscriber the new events, not the whole buffer."""
        found = []
        for event in reversed(self._buffer):
            if event["id"] <= after_id:
                break
            found.append(event)
        found.reverse()
        return found

    async def close(self) -> None:
        """End every open subscription (called when the server starts draining)."""
        self._closing = True
        self._wake()
        if self._task is not None:
            self._task.cancel()
