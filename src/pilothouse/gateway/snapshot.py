"""The immutable in-memory configuration a request is served from, and its swapping.

No request reads the database: keys and models come from a `Snapshot`. A watcher polls
the store's configuration version a few times a second (the backstop that works on every
deployment) and, when it moved, builds a new snapshot and swaps one reference. Requests
that already hold the old snapshot finish on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sqlalchemy import Connection

from pilothouse.config import ConfigFile, ModelSpec, Pricing
from pilothouse.gateway.providers import build_provider
from pilothouse.gateway.providers.base import Provider
from pilothouse.policy.keys import ApiKey
from pilothouse.registry import prompts as prompt_registry
from pilothouse.registry.prompts import ResolvedPrompt
from pilothouse.store import Store, changes
from pilothouse.store import keys as key_rows
from pilothouse.store import releases as release_rows

log = logging.getLogger("pilothouse.snapshot")


@dataclass(frozen=True, slots=True)
class ModelTarget:
    alias: str
    provider_name: str
    provider: Provider
    provider_model: str
    pricing: Pricing
    spec: ModelSpec


@dataclass(frozen=True, slots=True)
class ReleaseTarget:
    """A release ready to serve: its prompt already resolved (fragments included)."""

    id: str
    prompt: ResolvedPrompt
    model_alias: str
    params: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RouteTarget:
    name: str
    active: ReleaseTarget
    canary: ReleaseTarget | None
    canary_weight: int  # percent of users

    def choose(self, sticky: str) -> tuple[ReleaseTarget, str]:
        """The release for this caller: the same caller always lands on the same side."""
        if self.canary is not None and self.canary_weight > 0:
            digest = hashlib.blake2b(f"{self.name}\0{sticky}".encode(), digest_size=8).digest()
            if int.from_bytes(digest, "big") % 10_000 < self.canary_weight * 100:
                return self.canary, "canary"
        return self.active, "active"


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: int
    keys_by_hash: Mapping[str, ApiKey]
    models: Mapping[str, ModelTarget]
    routes: Mapping[str, RouteTarget] = field(default_factory=dict)


def build_models(config: ConfigFile) -> dict[str, ModelTarget]:
    """One provider client per declared provider, shared by the aliases that use it."""
    providers = {name: build_provider(name, spec) for name, spec in config.providers.items()}
    return {
        alias: ModelTarget(
            alias=alias,
            provider_name=spec.provider,
            provider=providers[spec.provider],
            provider_model=spec.model,
            pricing=spec.pricing,
            spec=spec,
        )
        for alias, spec in config.models.items()
    }


def _release(conn: Connection, release_id: str) -> ReleaseTarget:
    row = release_rows.get_release(conn, release_id)
    assert row is not None, f"release {release_id} vanished"
    prompt = prompt_registry.resolve_in(conn, row["prompt_name"], version=row["prompt_version"])
    return ReleaseTarget(
        id=row["id"],
        prompt=prompt,
        model_alias=row["model_alias"],
        params=MappingProxyType(row["params"]),
    )


class SnapshotHolder:
    def __init__(self, store: Store, models: Mapping[str, ModelTarget]):
        self._store = store
        self._models = MappingProxyType(dict(models))
        self.current = self._build()
        self._watch_task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    def _build(self) -> Snapshot:
        with self._store.connect() as conn:
            version = changes.current(conn)
            keys = {row["key_hash"]: ApiKey.from_row(row) for row in key_rows.all_keys(conn)}
            routes = {}
            for row in release_rows.all_routes(conn):
                if row["active_release_id"]:
                    canary_id = row["canary_release_id"]
                    routes[row["name"]] = RouteTarget(
                        name=row["name"],
                        active=_release(conn, row["active_release_id"]),
                        canary=_release(conn, canary_id) if canary_id else None,
                        canary_weight=row["canary_weight"],
                    )
        return Snapshot(
            version=version,
            keys_by_hash=MappingProxyType(keys),
            models=self._models,
            routes=MappingProxyType(routes),
        )

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
        closed: set[int] = set()
        for target in self._models.values():
            if id(target.provider) not in closed:
                closed.add(id(target.provider))
                await target.provider.close()
