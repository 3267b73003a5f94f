"""The immutable in-memory configuration a request is served from, and its swapping.

No request reads the database: keys, model aliases, routes and the admin token's hash come
from a `Snapshot`. Each part is loaded by the domain that owns it
(`policy.keys.load_keys`, `releases.serving.load_routes`, `policy.admin_token`); this
module only knows when to load. A watcher polls the store's configuration version a few
times a second (the backstop that works on every deployment) and, when it moved, builds a
new snapshot and swaps one reference. Requests that already hold the old snapshot finish
on it.

Building a snapshot never fails because of one item: what cannot be loaded is quarantined
(the loaders keep it, answering its callers with an error naming the problem), logged
once and counted; only a store that cannot be read at all keeps the last snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from pilothouse.fleet.deployments import ModelAlias, close_providers
from pilothouse.policy.admin_token import load_admin_hash
from pilothouse.policy.keys import ApiKey, load_keys
from pilothouse.policy.quotas import QuotaSet, load_quotas
from pilothouse.quarantine import Quarantined
from pilothouse.releases.serving import RouteTarget, load_routes
from pilothouse.store import Store, changes

log = logging.getLogger("pilothouse.snapshot")


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: int
    keys_by_hash: Mapping[str, ApiKey]
    models: Mapping[str, ModelAlias]
    routes: Mapping[str, RouteTarget] = field(default_factory=dict)
    admin_token_sha256: str | None = None
    quotas: QuotaSet = field(default_factory=QuotaSet)
    quarantined: tuple[Quarantined, ...] = ()

    def quarantined_count(self, kind: str) -> int:
        return Counter(q.kind for q in self.quarantined)[kind]


class ConfigChanges(Protocol):
    """What listeners of configuration changes need (the prompt feed, SSE streams)."""

    async def wait_for_change(self, timeout_seconds: float) -> bool: ...


class SnapshotHolder:
    """Holds the current snapshot; `refresh` swaps in a new one when the store moved."""

    def __init__(self, store: Store, models: Mapping[str, ModelAlias]):
        self._store = store
        self._models = MappingProxyType(dict(models))
        self._reported: set[Quarantined] = set()
        self._report_lock = threading.Lock()  # builds run in worker threads
        self.current = self._build()
        self._watch_task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    def _build(self) -> Snapshot:
        with self._store.connect() as conn:
            version = changes.current(conn)
            keys, key_problems = load_keys(conn)
            routes, route_problems = load_routes(conn)
            admin_hash, admin_problems = load_admin_hash(conn)
            quotas, quota_problems = load_quotas(conn)
        quarantined = (*key_problems, *route_problems, *admin_problems, *quota_problems)
        self._report(quarantined)
        return Snapshot(
            version=version,
            keys_by_hash=MappingProxyType(keys),
            models=self._models,
            routes=MappingProxyType(routes),
            admin_token_sha256=admin_hash,
            quotas=quotas,
            quarantined=quarantined,
        )

    def _report(self, quarantined: tuple[Quarantined, ...]) -> None:
        """Log each quarantined item once (and once more when it is cleared)."""
        now = set(quarantined)
        with self._report_lock:
            new, cleared, self._reported = now - self._reported, self._reported - now, now
        for item in sorted(new, key=lambda q: (q.kind, q.id)):
            log.error(
                "quarantined %s (everything else is served): %s",
                item.kind,
                item.describe(),
                extra={"kind": item.kind, "item": item.id},
            )
        for item in sorted(cleared, key=lambda q: (q.kind, q.id)):
            log.info("%s %s is no longer quarantined", item.kind, item.id)

    def _version(self) -> int:
        with self._store.connect() as conn:
            return changes.current(conn)

    async def refresh(self, *, force: bool = False) -> bool:
        """Rebuild if the store's version moved (or `force`); True when swapped."""
        version = await asyncio.to_thread(self._version)
        if not force and version == self.current.version:
            return False
        snapshot = await asyncio.to_thread(self._build)
        if snapshot.version >= self.current.version or force:
            self.current = snapshot
            log.info("configuration version %d loaded", snapshot.version)
            # Wake everyone waiting on the old event; later waiters get a fresh one.
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()
            return True
        return False

    async def wait_for_change(self, timeout_seconds: float) -> bool:
        """Wait until a new snapshot is swapped in (True) or the timeout passes (False)."""
        try:
            await asyncio.wait_for(self._changed.wait(), timeout_seconds)
            return True
        except TimeoutError:
            return False

    def start(self, poll_interval_seconds: float = 0.25) -> None:
        self._watch_task = asyncio.create_task(self._watch(poll_interval_seconds), name="snapshot")

    async def _watch(self, interval: float) -> None:
        failing = False
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
                if failing:
                    log.info("configuration store reachable again")
                failing = False
            except Exception as exc:  # keep serving the last snapshot while the store is away
                if not failing:
                    log.error("cannot refresh configuration (serving the last one): %s", exc)
                failing = True

    async def close(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
        await close_providers(self._models)
