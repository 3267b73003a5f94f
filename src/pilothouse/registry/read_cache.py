"""Resolved prompts as readers fetched them, kept for one configuration version.

When a label moves, every SDK client that holds the prompt fetches it again at once: a
thousand clients on one instance are a thousand identical reads. Every registry write
moves the configuration version, so what a read resolved at version V is what any read
at V resolves: the first read of a (prompt, label or version) at V goes to the store,
the readers that ask meanwhile wait for that one read, and later ones are served from
here; the first read at a newer version starts afresh. The version is the one this
process serves (its snapshot's), so a reader here sees a change when this instance has
applied it, as its gateway does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pilothouse.registry.composition import ResolvedPrompt

Key = tuple[str, str | None, int | None]  # (name, label, version) as the reader asked


class ResolvedPrompts:
    """At most `max_entries` reads of the newest configuration version seen."""

    def __init__(self, max_entries: int = 4096):
        self._max_entries = max_entries
        self._version = -1
        self._entries: dict[Key, ResolvedPrompt] = {}
        self._reading: dict[tuple[int, Key], asyncio.Future[ResolvedPrompt]] = {}

    async def read(
        self, config_version: int, key: Key, load: Callable[[], Awaitable[ResolvedPrompt]]
    ) -> ResolvedPrompt:
        """The prompt `key` names at `config_version`: kept, being read (wait for it), or
        read now with `load`. What `load` raises, every reader waiting on it gets."""
        if config_version == self._version and (found := self._entries.get(key)) is not None:
            return found
        flight = self._reading.get((config_version, key))
        if flight is None:
            flight = asyncio.ensure_future(load())
            self._reading[(config_version, key)] = flight
            flight.add_done_callback(lambda done: self._landed(config_version, key, done))
        # A reader that goes away does not cancel the read the others wait for.
        return await asyncio.shield(flight)

    def _landed(self, config_version: int, key: Key, done: asyncio.Future[ResolvedPrompt]) -> None:
        del self._reading[(config_version, key)]
        if done.cancelled() or done.exception() is not None:
            return
        if config_version < self._version:
            return  # a newer version was read meanwhile
        if config_version > self._version:
            self._version, self._entries = config_version, {}
        if len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]  # the oldest read
        self._entries[key] = done.result()
