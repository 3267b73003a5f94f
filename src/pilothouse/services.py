"""What the web faces (the admin API, later the dashboard) are handed at start-up: the
domain services of one process, so no web module reaches for the server or the store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError

from pilothouse import errors
from pilothouse.bus import ChangeBus
from pilothouse.clock import Clock
from pilothouse.config import ConfigFile
from pilothouse.fleet.state import Fleet
from pilothouse.monitor.engine import Monitor
from pilothouse.notify.webhooks import WebhookSender
from pilothouse.policy.quota_gate import QuotaGate
from pilothouse.registry.coalesced_reads import CoalescedReads
from pilothouse.registry.feed import PromptFeed
from pilothouse.snapshot import Snapshot
from pilothouse.snapshot_holder import SnapshotHolder
from pilothouse.store import Store, database
from pilothouse.store.tolerant import DamagedRow
from pilothouse.telemetry.metrics import Metrics
from pilothouse.telemetry.request_log import RequestLogWriter

# A probe's answer waits this long for the database: a readiness probe's own timeout is
# often 1 s, and a probe that times out pulls the instance, which a database outage must
# not do to every instance at once (it is `degraded`, still 200).
CHECK_TIMEOUT_SECONDS = 0.8
# A Redis PING answers in well under a millisecond: one that takes this long is down (a
# frozen Redis would otherwise hold every readiness probe, whose own timeout is often 1 s).
REDIS_CHECK_SECONDS = 0.5


@dataclass
class Services:
    store: Store
    config: ConfigFile
    metrics: Metrics
    holder: SnapshotHolder
    prompt_feed: PromptFeed
    request_log: RequestLogWriter
    bus: ChangeBus
    # A write committed in this process: tell the other processes and apply it here;
    # returns the configuration version that includes it.
    announce: Callable[[], Awaitable[int]]
    fleet: Fleet
    monitor: Monitor
    webhooks: WebhookSender
    clock: Clock  # the time monitors, schedules and alerts read
    quotas: QuotaGate
    # Identical prompt reads (GET /api/prompts/{name}) that arrive together share one.
    prompt_reads: CoalescedReads = field(default_factory=CoalescedReads)
    # The database check in flight: probes share it, so a database that hangs holds one
    # thread and one connection, not one per probe.
    _schema_check: asyncio.Task[database.RevisionState] | None = field(
        default=None, init=False, repr=False
    )

    @property
    def snapshot(self) -> Snapshot:
        return self.holder.current

    async def run(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run a blocking domain call (it talks to the database) off the event loop."""
        return await asyncio.to_thread(function, *args, **kwargs)

    async def schema_state(self) -> database.RevisionState:
        return await asyncio.to_thread(database.revision_state, self.store.engine)

    def _checked(self) -> asyncio.Task[database.RevisionState]:
        if self._schema_check is None or self._schema_check.done():
            self._schema_check = asyncio.ensure_future(self.schema_state())
            # Its failure is read by the probes still waiting, or by nobody: not an error.
            self._schema_check.add_done_callback(lambda t: t.cancelled() or t.exception())
        return self._schema_check

    async def dependencies(self) -> dict[str, dict[str, Any]]:
        """Each dependency's state, every check bounded in time (a hung database is down),
        the checks side by side: their waits do not add up."""
        database_state, redis = await asyncio.gather(self._database(), self._redis())
        checks = {"database": database_state, **({"redis": redis} if redis else {})}
        checks["request_log"] = self.request_log.health()
        checks["configuration"] = {"version": self.snapshot.version}
        return checks

    async def _database(self) -> dict[str, Any]:
        try:
            state = await asyncio.wait_for(asyncio.shield(self._checked()), CHECK_TIMEOUT_SECONDS)
        except Exception as exc:
            reason = "no answer in time" if isinstance(exc, TimeoutError) else str(exc)[:300]
            return {"up": False, "dialect": self.store.dialect, "error": reason}
        return {
            "up": True,
            "dialect": self.store.dialect,
            "schema": state.current,
            "schema_at_head": state.at_head,
        }

    async def _redis(self) -> dict[str, Any] | None:
        """None when no Redis is configured."""
        try:
            up = await asyncio.wait_for(self.bus.ping(), REDIS_CHECK_SECONDS)
        except TimeoutError:  # a Redis that accepts and never answers (frozen) is down
            return {"up": False, "error": "no answer in time"}
        return None if up is None else {"up": up}

    def explain(self, exc: Exception) -> errors.PilothouseError | None:
        """Our error for a failure the store raised (the database is away, or a row it
        holds is damaged), else None."""
        if isinstance(exc, DamagedRow):
            return errors.ServiceUnavailable(
                f"{exc}; nothing else is affected",
                hint="an admin can repair or replace it; the server log has the details",
                code="damaged_row",
            )
        if isinstance(exc, IntegrityError):  # writers lock what they change; a safety net
            return errors.Conflict(
                "a concurrent write changed this first; nothing was stored",
                hint="read the current state and retry",
            )
        if database.is_unavailable(exc):
            return errors.ServiceUnavailable(
                "the database is unavailable, so this request was not completed",
                hint="retry shortly; the gateway keeps serving from memory meanwhile",
            )
        return None
