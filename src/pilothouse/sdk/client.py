"""Client and AsyncClient: prompts from the registry, served from memory.

One mechanism behind both (`_Core`):

- the first `get_prompt` for a (name, label | version) fetches it (GET /api/prompts/{name});
  every later call is a dict lookup that never touches the network;
- a daemon thread listens to GET /api/prompts/stream (Server-Sent Events) and refreshes
  the affected entries with conditional GETs (If-None-Match); while the stream is down it
  reconnects with backoff and Last-Event-ID, and polls every cached entry every
  `poll_interval_seconds` as a backstop;
- each good copy is also written to disk, so a cold start with the registry down still
  gets its prompts; failing that, the code's `fallback`; failing that, PromptUnavailable;
- on any server error the last good copy keeps being served, and the client says so
  (`stats`, one warning per outage, `missing_labels`).
"""

from __future__ import annotations

import asyncio
import os

from pilothouse.registry.templates import DEFAULT_LABEL
from pilothouse.sdk.core import Fallback, OnChange, _Core
from pilothouse.sdk.prompt import Prompt


class _ClientBase:
    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        strict: bool = False,
        poll_interval_seconds: float = 30.0,
        timeout_seconds: float = 5.0,
        on_change: OnChange | None = None,
    ):
        self._core = _Core(
            base_url,
            api_key,
            cache_dir,
            strict,
            poll_interval_seconds,
            timeout_seconds,
            on_change,
        )
        self._prompts = self._core.prompts

    @property
    def base_url(self) -> str:
        return self._core.base_url

    @property
    def stats(self) -> dict[str, int]:
        """Counters (see STAT_NAMES); the live dict, so read, never write."""
        return self._core.stats

    @property
    def missing_labels(self) -> set[tuple[str, str]]:
        """(name, label) pairs that the registry no longer has; their last copy is served."""
        with self._core.lock:
            return set(self._core.missing_labels)

    @property
    def stream_connected(self) -> bool:
        """Whether the push stream is up right now (otherwise the poll is the backstop)."""
        return self._core.listener.connected

    @property
    def last_event_id(self) -> str | None:
        """The id of the last registry event handled; sent as Last-Event-ID on reconnect."""
        return self._core.listener.last_event_id

    @property
    def healthy(self) -> bool:
        """False while the registry is failing and cached copies may be stale."""
        return not self._core.outage

    def cached(self) -> list[Prompt]:
        """Every prompt currently held in memory."""
        return list(self._prompts.values())


class Client(_ClientBase):
    """Prompts from the Pilothouse registry, served from memory and kept fresh in the
    background. Thread-safe; make one per process and share it.

    `base_url` defaults to $PILOTHOUSE_URL (else http://127.0.0.1:8080), `api_key` to
    $PILOTHOUSE_API_KEY, `cache_dir` to $PILOTHOUSE_PROMPT_CACHE (else
    ~/.cache/pilothouse/prompts). `on_change(name, label, old_version, new_version)` is
    called from the background thread when a cached label moves.
    """

    def get_prompt(
        self,
        name: str,
        *,
        label: str | None = None,
        version: int | None = None,
        fallback: Fallback | None = None,
    ) -> Prompt:
        """The prompt at `label` (default "production") or a pinned `version`.

        From memory once loaded. The first call fetches it; if the registry cannot answer,
        the disk cache, then `fallback` (a string or a list of messages) unless `strict`;
        otherwise PromptUnavailable.
        """
        if label is None and version is None:
            label = DEFAULT_LABEL
        prompt = self._prompts.get((name, label, version))
        if prompt is not None:
            if self._core.outage:
                self._core.stats["stale_serves"] += 1
            return prompt
        return self._core.load((name, label, version), fallback)

    def close(self) -> None:
        """Stop the background thread and close connections."""
        self._core.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_ClientBase):
    """The asyncio face of `Client`: the same cache and background thread; the first fetch
    of a prompt runs in a worker thread, every later call is a dict lookup."""

    async def get_prompt(
        self,
        name: str,
        *,
        label: str | None = None,
        version: int | None = None,
        fallback: Fallback | None = None,
    ) -> Prompt:
        """See `Client.get_prompt`."""
        if label is None and version is None:
            label = DEFAULT_LABEL
        prompt = self._prompts.get((name, label, version))
        if prompt is not None:
            if self._core.outage:
                self._core.stats["stale_serves"] += 1
            return prompt
        return await asyncio.to_thread(self._core.load, (name, label, version), fallback)

    async def aclose(self) -> None:
        await asyncio.to_thread(self._core.close)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
