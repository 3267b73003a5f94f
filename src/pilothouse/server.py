"""The composition root: one ASGI app that serves the gateway (/v1) and the web (/api, ...).

`/v1/*` goes straight to the gateway's plain ASGI handler, so no routing framework sits on
the hot path; everything else goes to a small Starlette app that is handed the process's
`Services` at start-up.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

from starlette.applications import Starlette

from pilothouse.bus import ChangeBus
from pilothouse.changelog import subscriptions
from pilothouse.clock import Clock
from pilothouse.conversations.stored import StoredResponses
from pilothouse.fleet.deployments import TransportFor
from pilothouse.fleet.state import Fleet
from pilothouse.gateway.app import GatewayApp
from pilothouse.gateway.http_io import Receive, Scope, Send
from pilothouse.monitor.alerts import Condition, raise_alert
from pilothouse.monitor.engine import Monitor
from pilothouse.monitor.scheduler import EvalScheduler, SubprocessRunner, scheduler_key
from pilothouse.monitor.spend import SpendWatch
from pilothouse.notify.webhooks import WebhookSender
from pilothouse.policy.quota_backends import InProcessBackend, QuotaBackend, RedisBackend
from pilothouse.policy.quota_gate import QuotaGate
from pilothouse.quarantine import KINDS
from pilothouse.registry.feed import PromptFeed
from pilothouse.releases.routes import list_routes
from pilothouse.services import Services
from pilothouse.settings import Settings
from pilothouse.snapshot_holder import SnapshotHolder
from pilothouse.store import Store, open_store
from pilothouse.telemetry.metrics import Metrics
from pilothouse.telemetry.request_log import RequestLogWriter
from pilothouse.web.app import create_web

log = logging.getLogger("pilothouse.server")
COMPANION_STOP_SECONDS = 10.0


class Companion(Protocol):
    """Work that runs beside the server while it serves (the demo's traffic): `run` starts
    once everything is up and is handed the server as an ASGI app; `stop` is called when
    the server starts draining; whatever is still running some seconds later is cancelled,
    before anything it may use is closed."""

    async def run(self, app: Server) -> None: ...

    def stop(self) -> None: ...


class Server:
    """Everything one Pilothouse process serves. Build with `create_server`; run it as an
    ASGI app (its lifespan starts everything) or, in tests, with `async with server.running()`.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        transport_for: TransportFor | None = None,
        clock: Clock | None = None,
        companions: Sequence[Companion] = (),
    ):
        self.settings = settings
        self.store = store
        self.metrics = Metrics()
        self.bus = ChangeBus(
            redis_url=settings.redis_url,
            postgres_url=settings.database_url if store.dialect == "postgresql" else None,
        )
        self._transport_for = transport_for
        self.clock = clock or Clock()  # tests pass a ManualClock to move time
        self.holder: SnapshotHolder | None = None
        self.fleet: Fleet | None = None
        self.monitor: Monitor | None = None
        self.webhooks: WebhookSender | None = None
        self.writer: RequestLogWriter | None = None
        self.gateway: GatewayApp | None = None
        self.prompt_feed: PromptFeed | None = None
        self.quotas: QuotaGate | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.companions = tuple(companions)
        self._companion_tasks: list[asyncio.Task[None]] = []
        self.web = create_web(self._lifespan)

    async def announce(self) -> int:
        """A write committed here: tell the other processes and apply it to this one's
        snapshot (only the items it touched); return the configuration version that
        includes it. Never raises: the write is committed, and its answer is its own (a
        failed load is logged, and the poll repairs it)."""
        if self.holder is None:
            return 0
        try:
            return await self.holder.apply_local()
        except Exception as exc:
            log.error("a write was committed but loading it into the snapshot failed: %s", exc)
            return self.holder.committed_here

    async def refresh(self) -> None:
        assert self.holder is not None
        await self.holder.refresh()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Server]:
        """Start everything this process serves; stop it (flushing the log) on exit."""
        gateway_settings = self.settings.config.gateway
        self.fleet = Fleet(
            self.settings.config,
            self._transport_for,
            registry=self.metrics.registry,
            redis_url=self.settings.redis_url,
            installation=self.settings.effective_database_url,
        )
        metrics = self.metrics
        self.holder = SnapshotHolder(
            self.store,
            self.fleet.aliases,
            publish=self.bus.publish,
            count_load=lambda mode, reason: metrics.config_loads.labels(mode, reason).inc(),
            count_drift=lambda kind, n: metrics.config_drift.labels(kind).inc(n),
        )
        holder = self.holder
        self.metrics.config_version.set_function(lambda: holder.current.version)
        for kind in KINDS:
            self.metrics.quarantined.labels(kind).set_function(_counter(holder, kind))
        self.quotas = QuotaGate(
            self._quota_backend(),
            clock=self.clock,
            notify=self._quota_event,
            count=self._quota_counter(),
        )
        self.writer = RequestLogWriter(
            self.store, self.settings.data_dir, self.metrics, spec=self.settings.config.request_log
        )
        stored = StoredResponses(
            self.store,
            retention_days=self.settings.config.responses.retention_days,
            clock=self.clock,
        )
        self.gateway = GatewayApp(
            self.holder,
            self.writer,
            self.metrics,
            max_body_bytes=gateway_settings.max_body_bytes,
            keepalive_seconds=gateway_settings.keepalive_interval_seconds,
            body_read_timeout_seconds=gateway_settings.body_read_timeout_seconds,
            clock=self.clock,
            quotas=self.quotas,
            stored=stored,
        )
        self.prompt_feed = PromptFeed(self.store, self.holder)
        self.webhooks = WebhookSender(
            self.store,
            self.settings.config.notifications.webhooks,
            clock=self.clock,
            resolve=functools.partial(subscriptions.webhook, self.store),
        )
        host = self.settings.host if self.settings.host not in ("0.0.0.0", "::") else "127.0.0.1"
        runner = SubprocessRunner(
            f"http://{host}:{self.settings.port}",
            self._scheduler_secret,
            self.settings.data_dir / "scheduled-evals",
        )
        self.monitor = Monitor(
            self.store,
            self.settings.config.monitoring,
            clock=self.clock,
            publish=self.webhooks.publish,
            scheduler=EvalScheduler(self.store, clock=self.clock, runner=runner),
            owners=self._owners,
            shared=self.store.dialect == "postgresql",
            stored_responses=stored,
        )
        self.monitor.spend_watch = SpendWatch(
            self.store,
            self.settings.config.monitoring.spend_watch,
            clock=self.clock,
            publish=self.webhooks.publish,
            announce=self.announce,
        )
        # First: a second process on this data dir is refused before anything else starts.
        self.writer.start()
        await self.prompt_feed.start()
        self.web.state.services = Services(
            store=self.store,
            config=self.settings.config,
            metrics=self.metrics,
            holder=self.holder,
            prompt_feed=self.prompt_feed,
            request_log=self.writer,
            bus=self.bus,
            announce=self.announce,
            fleet=self.fleet,
            monitor=self.monitor,
            webhooks=self.webhooks,
            clock=self.clock,
            quotas=self.quotas,
        )
        self.holder.start(
            gateway_settings.config_poll_interval_seconds,
            gateway_settings.config_check_interval_seconds,
        )
        self.bus.start(self.holder.receive)
        self.fleet.start()
        self.monitor.start()
        self.webhooks.start()
        self._companion_tasks = [
            asyncio.create_task(_companion(c, self), name=f"companion {type(c).__name__}")
            for c in self.companions
        ]
        log.info("pilothouse ready", extra={"models": sorted(self.settings.config.models)})
        try:
            yield self
        finally:
            # In-flight requests have finished by now (the server drains them first).
            await self.begin_shutdown()
            await self._stop_companions()
            await self.monitor.close()
            for task in list(self._background):  # quota notifications still being recorded
                await asyncio.wait({task}, timeout=5)
            await self.webhooks.close()
            await self.quotas.backend.close()
            await self.bus.close()
            await self.fleet.close()
            await self.holder.close()
            await self.writer.close()
            log.info("pilothouse stopped; request log flushed")

    async def _stop_companions(self) -> None:
        """Companions were told to stop (begin_shutdown): wait a little, then cancel."""
        tasks = [t for t in self._companion_tasks if not t.done()]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=COMPANION_STOP_SECONDS)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self._companion_tasks = []

    async def _scheduler_secret(self) -> str:
        """The key scheduled suites run with; a new one is loaded before it is used."""
        secret, made = await asyncio.to_thread(scheduler_key, self.store, self.settings.data_dir)
        if made:
            await self.announce()
        return secret

    def _quota_backend(self) -> QuotaBackend:
        """Redis when the deployment has it (exact across instances), else this process."""
        if self.settings.redis_url:
            return RedisBackend(self.settings.redis_url)
        if self.store.dialect == "postgresql":
            log.warning(
                "quotas are counted per instance (no PILOTHOUSE_REDIS_URL): with several "
                "instances each one enforces its own share, not the deployment's"
            )
        return InProcessBackend()

    def _quota_counter(self) -> Callable[[str], None]:
        """Counts a quota decision (the labelled children looked up once, not per request)."""
        children = {
            d: self.metrics.quota_decisions.labels(d)
            for d in ("allowed", "soft", "refused", "fail_open", "fail_closed", "settle_failed")
        }
        return lambda decision: children[decision].inc()

    def _quota_event(self, event: str, payload: dict[str, Any]) -> None:
        """A quota crossed a line: a webhook event, and an alert when it was exceeded or
        its counters are unreachable. Off the request path (a background task)."""
        task = asyncio.get_running_loop().create_task(self._tell_quota(event, payload))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _tell_quota(self, event: str, payload: dict[str, Any]) -> None:
        try:
            if self.webhooks is not None:
                await self.webhooks.publish(event, payload)
            if event in ("quota.exceeded", "quota.backend_down"):
                subject = (
                    f"quota:{payload['quota']}:{payload['subject']}"
                    if event == "quota.exceeded"
                    else "quota:backend"
                )
                condition = Condition(
                    kind="quota",
                    subject=subject,
                    signal=event.split(".", 1)[1],
                    direction="up",
                    severity="ticket" if event == "quota.exceeded" else "page",
                    summary=(
                        f"quota {payload.get('quota')} exhausted for {payload.get('subject')}"
                        if event == "quota.exceeded"
                        else f"quota counters unreachable: {payload.get('error')}"
                    ),
                    details=payload,
                )
                now = datetime.fromtimestamp(self.clock.now(), UTC)
                await asyncio.to_thread(raise_alert, self.store, condition, now)
        except Exception:
            log.exception("could not publish quota event %s", event)

    def _owners(self) -> dict[str, str | None]:
        """Who is told about a subject: each route's owner, each provider's (config)."""
        owners: dict[str, str | None] = {
            f"provider:{name}": spec.owner for name, spec in self.settings.config.providers.items()
        }
        for route in list_routes(self.store):
            owners[f"route:{route['name']}"] = route.get("owner")
        return owners

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        async with self.running():
            yield
        self.store.close()

    async def begin_shutdown(self) -> None:
        """The server stopped accepting: end long-lived streams so in-flight work drains,
        and from now on count a cancelled call as cut by the shutdown."""
        if self.gateway is not None:
            self.gateway.draining = True
        for companion in self.companions:
            companion.stop()
        if self.prompt_feed is not None:
            await self.prompt_feed.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/") and self.gateway:
            await self.gateway(scope, receive, send)
        else:
            await self.web(scope, receive, send)


async def _companion(companion: Companion, server: Server) -> None:
    try:
        await companion.run(server)
    except asyncio.CancelledError:
        raise
    except Exception:  # a companion's failure is logged; the server goes on serving
        log.exception("%s stopped with an error", type(companion).__name__)


def _counter(holder: SnapshotHolder, kind: str) -> Callable[[], float]:
    return lambda: holder.current.quarantined_count(kind)


def create_server(
    settings: Settings,
    store: Store | None = None,
    *,
    transport_for: TransportFor | None = None,
    clock: Clock | None = None,
    companions: Sequence[Companion] = (),
) -> Server:
    """A server over an already-migrated store (whose admin token is prepared:
    `policy.admin_token.prepare`), with `companions` running beside it while it serves."""
    return Server(
        settings,
        store or open_store(settings.effective_database_url),
        transport_for=transport_for,
        clock=clock,
        companions=companions,
    )
