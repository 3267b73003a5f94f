"""Identical prompt reads that arrive together share one store read, and stay exact.

When a fragment's label moves, every SDK client holding a prompt that includes it fetches
that prompt again at once: a thousand clients on one instance are a thousand identical
reads. A read that arrives while the same read is running waits for the next one, which
starts as soon as the running one lands and serves everyone who arrived meanwhile: at
most two store reads for any burst, and every reader gets a read that started after it
arrived, so it sees every write committed before it asked (no cache, nothing stale).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pilothouse.registry.composition import ResolvedPrompt

Key = tuple[str, str | None, int | None]  # (name, label, version) as the reader asked
Load = Callable[[], Awaitable[ResolvedPrompt]]


class CoalescedReads:
    def __init__(self) -> None:
        self._running: dict[Key, asyncio.Future[ResolvedPrompt]] = {}
        self._next: dict[Key, tuple[asyncio.Future[ResolvedPrompt], Load]] = {}

    async def read(self, key: Key, load: Load) -> ResolvedPrompt:
        """The prompt `key` names, read with `load` by a read that starts after this call
        (shared with the identical reads that arrive with it). What `load` raises, every
        reader of that read gets."""
        if key not in self._running:
            flight = self._start(key, load)
        elif key in self._next:
            flight = self._next[key][0]
        else:
            flight = asyncio.get_running_loop().create_future()
            self._next[key] = (flight, load)
        # A reader that goes away does not cancel the read the others wait for.
        return await asyncio.shield(flight)

    def _start(self, key: Key, load: Load) -> asyncio.Future[ResolvedPrompt]:
        flight = asyncio.ensure_future(load())
        self._running[key] = flight
        flight.add_done_callback(lambda done: self._landed(key, done))
        return flight

    def _landed(self, key: Key, done: asyncio.Future[ResolvedPrompt]) -> None:
        if not done.cancelled():
            done.exception()  # every waiter gets it; none left is not an error to log
        del self._running[key]
        waiting = self._next.pop(key, None)
        if waiting is None:
            return
        future, load = waiting
        self._start(key, load).add_done_callback(lambda read: _pass_on(read, future))


def _pass_on(read: asyncio.Future[ResolvedPrompt], to: asyncio.Future[ResolvedPrompt]) -> None:
    if to.done():
        return
    if read.cancelled():
        to.cancel()
    elif (exc := read.exception()) is not None:
        to.set_exception(exc)
        to.exception()  # retrieved: the waiters re-raise it
    else:
        to.set_result(read.result())
