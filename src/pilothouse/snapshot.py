"""The immutable in-memory configuration a request is served from: what it holds and how
one is loaded (in full, or updated item by item); `snapshot_holder.py` says when.

No request reads the database: keys, model aliases, routes and the admin token's hash come
from a `Snapshot`. Each kind of item is one `Part`, loaded by the domain that owns it
(`policy.keys.load_keys`, `releases.serving.load_routes`, `policy.admin_token`); this
module only knows what to load. Adding a kind of snapshot item is one entry in
`PARTS`: a loader that reads all of its items, or only those a change names.

Loading never fails because of one item: what cannot be loaded is quarantined (the
loaders keep it, answering its callers with an error naming the problem), logged once and
counted; only a store that cannot be read at all keeps the last snapshot.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, cast

from immutables import Map
from sqlalchemy import Connection

from pilothouse.fleet.deployments import ModelAlias
from pilothouse.policy.admin_token import SETTING as ADMIN_TOKEN_SETTING
from pilothouse.policy.admin_token import load_admin_hash
from pilothouse.policy.keys import ApiKey, load_keys
from pilothouse.policy.quotas import QuotaSet, load_quota_part
from pilothouse.quarantine import Loaded, Quarantined
from pilothouse.releases.serving import RouteTarget, load_routes
from pilothouse.store import changes
from pilothouse.store.changes import Item

Loader = Callable[[Connection, Collection[str] | None, Mapping[str, Any] | None], Loaded[Any]]
Problems = Map[str, tuple[Quarantined, ...]]


@dataclass(frozen=True, slots=True)
class Part:
    """One kind of snapshot item. `load(conn, None, None)` reads every item;
    `load(conn, ids, current)` only the items a change named (`current` is the part as
    served, for a loader that must find what to remove)."""

    kind: str  # the kind changes name its items by: ("route", name)
    load: Loader


PARTS: tuple[Part, ...] = (
    Part("key", lambda conn, ids, current: load_keys(conn, ids, current)),
    Part("route", lambda conn, ids, _current: load_routes(conn, ids)),
    Part("setting", lambda conn, ids, _current: load_admin_hash(conn, ids)),
    # Policies are few: any change reloads them all, as one set the request path reads.
    Part("quota", lambda conn, _ids, _current: load_quota_part(conn)),
)
QUOTA_SET = "*"
_NO_QUOTAS = QuotaSet()


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: int
    models: Mapping[str, ModelAlias]
    parts: Mapping[str, Map[str, Any]]  # kind -> the request path's lookup key -> item
    problems: Mapping[str, Problems]  # kind -> changed item's id -> what is quarantined

    @property
    def keys_by_hash(self) -> Mapping[str, ApiKey]:
        return cast(Mapping[str, ApiKey], self.parts.get("key", _EMPTY))

    @property
    def routes(self) -> Mapping[str, RouteTarget]:
        return cast(Mapping[str, RouteTarget], self.parts.get("route", _EMPTY))

    @property
    def admin_token_sha256(self) -> str | None:
        value = self.parts.get("setting", _EMPTY).get(ADMIN_TOKEN_SETTING)
        return value if isinstance(value, str) else None

    @property
    def quotas(self) -> QuotaSet:
        found = self.parts.get("quota", _EMPTY).get(QUOTA_SET)
        return found if isinstance(found, QuotaSet) else _NO_QUOTAS

    @property
    def quarantined(self) -> tuple[Quarantined, ...]:
        return tuple(
            item for part in self.problems.values() for found in part.values() for item in found
        )

    def quarantined_count(self, kind: str) -> int:
        return Counter(q.kind for q in self.quarantined)[kind]


_EMPTY: Map[str, Any] = Map()


def full_snapshot(
    conn: Connection, parts: Iterable[Part], models: Mapping[str, ModelAlias]
) -> Snapshot:
    """Every item of every part, at the store's current version."""
    version = changes.current(conn)
    entries: dict[str, Map[str, Any]] = {}
    problems: dict[str, Problems] = {}
    for part in parts:
        loaded = part.load(conn, None, None)
        entries[part.kind] = Map({k: v for k, v in loaded.entries.items() if v is not None})
        problems[part.kind] = Map(loaded.problems)
    return Snapshot(version, models, MappingProxyType(entries), MappingProxyType(problems))


def updated(
    snapshot: Snapshot,
    conn: Connection,
    parts: Iterable[Part],
    version: int,
    items: Collection[Item],
) -> Snapshot:
    """`snapshot` with the named items re-read, at `version`; everything else shared.
    Items of a kind no part holds (e.g. prompts: routes serve frozen releases) only move
    the version."""
    by_kind: dict[str, set[str]] = {}
    for kind, item_id in items:
        by_kind.setdefault(kind, set()).add(item_id)
    entries = dict(snapshot.parts)
    problems = dict(snapshot.problems)
    for part in parts:
        ids = by_kind.get(part.kind)
        if not ids:
            continue
        current = entries.get(part.kind, _EMPTY)
        loaded = part.load(conn, ids, current)
        with current.mutate() as changing:
            for key, value in loaded.entries.items():
                if value is None:
                    changing.pop(key, None)
                else:
                    changing[key] = value
            entries[part.kind] = changing.finish()
        with problems.get(part.kind, Map()).mutate() as changing_problems:
            for owner in ids:
                changing_problems.pop(owner, None)
            for owner, found in loaded.problems.items():
                changing_problems[owner] = found
            problems[part.kind] = changing_problems.finish()
    return Snapshot(version, snapshot.models, MappingProxyType(entries), MappingProxyType(problems))


_MISSING = object()


def drift(served: Snapshot, fresh: Snapshot) -> dict[str, list[str]]:
    """By kind, the ids whose entry or quarantine differs between the two snapshots."""
    found: dict[str, list[str]] = {}
    for kind in sorted(set(served.parts) | set(fresh.parts)):
        ids: set[str] = set()
        for side in ("parts", "problems"):
            mine = getattr(served, side).get(kind, _EMPTY)
            theirs = getattr(fresh, side).get(kind, _EMPTY)
            if mine == theirs:
                continue
            ids.update(
                str(key)
                for key in set(mine) | set(theirs)
                if mine.get(key, _MISSING) != theirs.get(key, _MISSING)
            )
        if ids:
            found[kind] = sorted(ids)
    return found
