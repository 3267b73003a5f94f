"""The snapshot a process serves, moved forward change by change (`SnapshotHolder`); what
a snapshot holds and how it is loaded is `snapshot.py`'s.

How a snapshot changes:

- **Incremental** (every change): a committed `changes.Change` names what it touched
  (`("route", name)`, `("key", id)`, ...). The holder re-reads only those items and builds
  the next snapshot by structural sharing (each part is an `immutables.Map`: a replaced
  entry copies a few tree nodes, not the part). Changes apply in version order; the
  snapshot's `version` means every change up to it is applied.
- **Full**: at start-up; when a change's items are unknown; when the store is ahead by
  changes its change log cannot name (pruned, or made by hand); and periodically as a
  consistency check that compares the served snapshot with a fresh full load, counts and
  logs any item that differed, and serves the fresh one (`check`).

Changes arrive from this process's own commits (`Store.on_commit`; `apply_local` applies
them before an admin write answers: read-your-writes on the instance that took the
write), from the change bus (other processes), and from a poll of the store's version
(the backstop), which reads what it missed from the store's change log
(`changes.since`): with no bus, or a lost message, the poll is incremental too. Requests
that already hold the old snapshot finish on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Protocol

from pilothouse.fleet.deployments import ModelAlias, close_providers
from pilothouse.quarantine import Quarantined
from pilothouse.snapshot import PARTS, Part, Snapshot, drift, full_snapshot, updated
from pilothouse.store import Store, changes
from pilothouse.store.changes import Change, Item

log = logging.getLogger("pilothouse.snapshot")


class ConfigChanges(Protocol):
    """What listeners of configuration changes need (the prompt feed, SSE streams)."""

    async def wait_for_change(self, timeout_seconds: float) -> bool: ...


def _ignore(*_args: object) -> None:
    return None


class SnapshotHolder:
    """Holds the current snapshot and moves it forward, change by change.

    `publish` announces this process's committed changes to the others (the change bus);
    `count_load(mode, reason)` and `count_drift(kind, n)` feed the metrics.
    """

    def __init__(
        self,
        store: Store,
        models: Mapping[str, ModelAlias],
        *,
        parts: tuple[Part, ...] = PARTS,
        publish: Callable[[Change], Awaitable[None]] | None = None,
        count_load: Callable[[str, str], None] = _ignore,
        count_drift: Callable[[str, int], None] = _ignore,
    ):
        self._store = store
        self._models = MappingProxyType(dict(models))
        self._parts = parts
        self._publish = publish
        self._count_load = count_load
        self._count_drift = count_drift
        self._reported: set[Quarantined] = set()
        self._local: list[Change] = []  # committed here, not yet applied (any thread)
        self._local_high = 0
        self._local_lock = threading.Lock()
        self._pending: dict[int, Change] = {}  # arrived ahead of a missing version
        self._lock = asyncio.Lock()  # one load at a time, each from the current snapshot
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # Listen first: a commit during the first load is then applied (or found stale).
        self._stop_listening = store.on_commit(self._committed)
        self.current = self._build()
        self._report(self.current.quarantined)

    # -- loading (in worker threads) ---------------------------------------------------

    def _build(self) -> Snapshot:
        with self._store.connect() as conn:
            return full_snapshot(conn, self._parts, self._models)

    def _build_settled(self) -> Snapshot | None:
        """A full load during which the version did not move (None when it did)."""
        with self._store.connect() as conn:
            before = changes.current(conn)
            snapshot = full_snapshot(conn, self._parts, self._models)
            return snapshot if changes.current(conn) == before == snapshot.version else None

    def _update(self, base: Snapshot, version: int, items: frozenset[Item]) -> Snapshot:
        with self._store.connect() as conn:
            return updated(base, conn, self._parts, version, items)

    def _logged_since(self, version: int) -> tuple[int, list[Change] | None]:
        with self._store.connect() as conn:
            return changes.since(conn, version)

    # -- arriving changes --------------------------------------------------------------

    def _committed(self, made: list[Change]) -> None:
        """A transaction of this process committed (called in the writing thread)."""
        with self._local_lock:
            self._local.extend(made)
            self._local_high = max(self._local_high, *(c.version for c in made))

    @property
    def committed_here(self) -> int:
        """The newest version this process committed."""
        return self._local_high

    async def apply_local(self) -> int:
        """Publish and apply the changes this process committed; return the version now
        served, which includes them all (read-your-writes). A change another process
        made in between is read from the change log (or, if it cannot say, loaded in
        full)."""
        with self._local_lock:
            made, self._local = self._local, []
            target = self._local_high
        for change in made:
            if self._publish is not None:
                await self._publish(change)
        if made:
            await self._accept(made)
        if self.current.version < target:
            await self._catch_up("gap")
        return self.current.version

    async def receive(self, change: Change | None) -> None:
        """A change another process announced (None: a message that said only "look")."""
        if change is None:
            await self.refresh()
        elif change.version > self.current.version:
            await self._accept([change])

    async def refresh(self, *, force: bool = False) -> bool:
        """Catch up with the store now: apply this process's changes, then what the
        change log says the store has beyond them, in full when it cannot say (or
        `force`). True when a full load was swapped in."""
        await self.apply_local()
        if force:
            return await self._full("refresh", force=True)
        return await self._catch_up("refresh")

    async def _catch_up(self, reason: str) -> bool:
        """Apply the changes the store has beyond the served version, as its change log
        names them; load in full when the log cannot say. True when loaded in full."""
        latest, logged = await asyncio.to_thread(self._logged_since, self.current.version)
        if latest <= self.current.version:
            return False
        if logged is None:
            return await self._full(reason)
        await self._accept(logged, reason)
        return False

    async def _accept(self, arrived: list[Change], reason: str = "change") -> None:
        async with self._lock:
            for change in arrived:
                if change.version > self.current.version:
                    self._pending[change.version] = change
            await self._drain_pending(reason)

    async def _drain_pending(self, reason: str = "change") -> None:
        """Apply the pending changes that follow the current version (lock held)."""
        while True:
            version = self.current.version
            for stale in [v for v in self._pending if v <= version]:
                del self._pending[stale]
            run: list[Change] = []
            while version + 1 in self._pending:
                version += 1
                run.append(self._pending.pop(version))
            if not run:
                return
            items: set[Item] = set()
            for change in run:
                if change.items is None:
                    await self._full_locked("unknown change")
                    break
                items |= change.items
            else:
                base = self.current
                snapshot = await asyncio.to_thread(self._update, base, version, frozenset(items))
                self._swap(snapshot)
                self._count_load("incremental", reason)

    async def _full(self, reason: str, *, force: bool = False) -> bool:
        async with self._lock:
            return await self._full_locked(reason, force=force)

    async def _full_locked(self, reason: str, *, force: bool = False) -> bool:
        snapshot = await asyncio.to_thread(self._build)
        self._count_load("full", reason)
        if snapshot.version < self.current.version and not force:
            return False
        self._swap(snapshot)
        log.info("configuration version %d loaded in full (%s)", snapshot.version, reason)
        await self._drain_pending()
        return True

    def _swap(self, snapshot: Snapshot) -> None:
        self.current = snapshot
        self._report(snapshot.quarantined)
        # Wake everyone waiting on the old event; later waiters get a fresh one.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # -- the consistency check ---------------------------------------------------------

    async def check(self) -> dict[str, list[str]]:
        """Compare the served snapshot with a fresh full load at the same version; serve
        the fresh one if they differ, and return (log, count) what differed by kind.
        Nothing is compared while changes are arriving (the versions must match)."""
        fresh = await asyncio.to_thread(self._build_settled)
        self._count_load("full", "check")
        if fresh is None:
            return {}
        async with self._lock:
            if fresh.version != self.current.version:
                return {}
            found = drift(self.current, fresh)
            if not found:
                return {}
            for kind, ids in found.items():
                shown = ", ".join(ids[:10]) + (
                    f" and {len(ids) - 10} more" if len(ids) > 10 else ""
                )
                log.error(
                    "consistency check: %d %s item(s) differed from the store at version %d "
                    "and were reloaded: %s",
                    len(ids),
                    kind,
                    fresh.version,
                    shown,
                    extra={"kind": kind, "items": ids[:100]},
                )
                self._count_drift(kind, len(ids))
            self._swap(fresh)
            return found

    # -- waiting -----------------------------------------------------------------------

    async def wait_for_change(self, timeout_seconds: float) -> bool:
        """Wait until a new snapshot is swapped in (True) or the timeout passes (False)."""
        try:
            await asyncio.wait_for(self._changed.wait(), timeout_seconds)
            return True
        except TimeoutError:
            return False

    async def wait_for_version(self, version: int, timeout_seconds: float) -> bool:
        """Wait until the served snapshot is at `version` or later (False: timed out)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_seconds
        while self.current.version < version:
            remaining = deadline - loop.time()
            if remaining <= 0 or not await self.wait_for_change(remaining):
                return self.current.version >= version
        return True

    # -- background work ---------------------------------------------------------------

    def start(self, poll_interval_seconds: float = 0.25, check_interval_seconds: float = 0) -> None:
        """Poll the store's version every `poll_interval_seconds`; run the consistency
        check every `check_interval_seconds` (0: never)."""
        self._tasks.append(
            asyncio.create_task(
                self._every(poll_interval_seconds, self._tick, "refresh"), name="snapshot"
            )
        )
        if check_interval_seconds > 0:
            self._tasks.append(
                asyncio.create_task(
                    self._every(check_interval_seconds, self.check, "check"),
                    name="snapshot-check",
                )
            )

    async def _tick(self) -> None:
        """The poll: apply local changes, then whatever the store has beyond them (a
        change whose bus message was lost or is late, or with no bus, every change)."""
        await self.apply_local()
        await self._catch_up("poll")

    async def _every(
        self, interval: float, work: Callable[[], Awaitable[object]], what: str
    ) -> None:
        failing = False
        while True:
            await asyncio.sleep(interval)
            try:
                await work()
                if failing:
                    log.info("configuration store reachable again")
                failing = False
            except Exception as exc:  # keep serving the last snapshot while the store is away
                if not failing:
                    log.error("cannot %s the configuration (serving the last one): %s", what, exc)
                failing = True

    def _report(self, quarantined: tuple[Quarantined, ...]) -> None:
        """Log each quarantined item once (and once more when it is cleared)."""
        now = set(quarantined)
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

    async def close(self) -> None:
        self._stop_listening()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await close_providers(self._models)
