"""What the web faces (the admin API, later the dashboard) are handed at start-up: the
domain services of one process, so no web module reaches for the server or the store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pilothouse import errors
from pilothouse.config import ConfigFile
from pilothouse.policy.admin_token import AdminAuth
from pilothouse.registry.feed import PromptFeed
from pilothouse.snapshot import Snapshot, SnapshotHolder
from pilothouse.store import Store, database
from pilothouse.telemetry.metrics import Metrics


@dataclass
class Services:
    store: Store
    config: ConfigFile
    metrics: Metrics
    admin_auth: AdminAuth
    holder: SnapshotHolder
    prompt_feed: PromptFeed
    # A write happened in this process: load it now and tell the other processes.
    announce: Callable[[], Awaitable[None]]

    @property
    def snapshot(self) -> Snapshot:
        return self.holder.current

    async def run(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run a blocking domain call (it talks to the database) off the event loop."""
        return await asyncio.to_thread(function, *args, **kwargs)

    async def schema_state(self) -> database.RevisionState:
        return await asyncio.to_thread(database.revision_state, self.store.engine)

    def explain(self, exc: Exception) -> errors.PilothouseError | None:
        """Our error for a failure the store raised (the database is away), else None."""
        if database.is_unavailable(exc):
            return errors.ServiceUnavailable(
                "the database is unavailable, so this request was not completed",
                hint="retry shortly; the gateway keeps serving from memory meanwhile",
            )
        return None
