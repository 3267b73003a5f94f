"""What a route serves, ready for the request path: each route's active and canary release
with its prompt composed from the versions frozen in the release (never from labels),
loaded into the configuration snapshot: all of them at start-up, or only the routes a
change touched (a route's target depends on its own row and its releases alone, since a
release freezes its composition: a label move elsewhere changes nothing it serves).

Loading never fails because of one item: a route or release that cannot be built is kept
as a problem on its `RouteTarget` (the gateway answers calls that reach it with an error
naming it) and reported as `Quarantined`, and every other route loads.

`RouteTarget.choose` is the canary split: the same caller always lands on the same side.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sqlalchemy import Connection

from pilothouse.quarantine import Loaded, Quarantined
from pilothouse.registry import composition
from pilothouse.registry.composition import ResolvedPrompt
from pilothouse.store import releases as release_rows
from pilothouse.store.tolerant import DamagedRow

_BUCKETS = 10_000


@dataclass(frozen=True, slots=True)
class ReleaseTarget:
    """A release ready to serve: its prompt composed from the frozen fragment versions."""

    id: str
    prompt: ResolvedPrompt
    model_alias: str
    params: Mapping[str, Any]
    hash: str  # the composition hash: the request log's and the headers' prompt hash


@dataclass(frozen=True, slots=True)
class RouteTarget:
    name: str
    active: ReleaseTarget | None
    canary: ReleaseTarget | None
    canary_weight: int  # percent of users
    canary_salt: str = ""
    # Why an arm cannot be served ("active", "canary"), when it cannot.
    problems: Mapping[str, str] = field(default_factory=dict)
    store_responses: bool = False  # the gateway keeps this route's Responses answers

    @property
    def has_canary(self) -> bool:
        return self.canary is not None or "canary" in self.problems

    def choose(self, sticky: str) -> str:
        """The arm for this caller: the same caller always lands on the same side, and a
        wider canary keeps everyone already in it (a bucket below the threshold stays)."""
        if self.has_canary and self.canary_weight > 0:
            key = (
                f"{self.name}\0{self.canary_salt}\0{sticky}"
                if self.canary_salt
                else (
                    f"{self.name}\0{sticky}"  # canaries from before per-canary salts
                )
            )
            digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
            if int.from_bytes(digest, "big") % _BUCKETS < self.canary_weight * (_BUCKETS // 100):
                return "canary"
        return "active"

    def arm(self, name: str) -> ReleaseTarget | None:
        return self.active if name == "active" else self.canary

    def prompt_names(self) -> frozenset[str]:
        """The prompts and fragments this route's releases serve (their frozen composition)."""
        served = set()
        for release in (self.active, self.canary):
            if release is not None:
                served.add(release.prompt.name)
                served.update(f.name for f in release.prompt.fragments.values())
        return frozenset(served)


class _Unservable(Exception):
    pass


def _release(conn: Connection, release_id: str) -> ReleaseTarget:
    try:
        row = release_rows.get_release(conn, release_id)
    except DamagedRow as exc:
        raise _Unservable(str(exc)) from None
    if row is None:
        raise _Unservable(f"release {release_id} is not in the store")
    frozen = row.get("fragments")
    if not isinstance(frozen, dict):
        raise _Unservable(
            f"release {release_id} was made before releases froze their fragments and could "
            "not be frozen when migrated (see the audit trail); promote a new release"
        )
    if not isinstance(row.get("params"), dict):
        raise _Unservable(f"release {release_id} has unreadable parameters")
    try:
        prompt = composition.resolve_frozen(conn, row["prompt_name"], row["prompt_version"], frozen)
    except composition.Unresolvable as exc:
        raise _Unservable(f"release {release_id}: {exc}") from None
    if "messages" not in prompt.content:
        raise _Unservable(f"release {release_id}: {prompt.name} is not a chat prompt")
    return ReleaseTarget(
        id=row["id"],
        prompt=prompt,
        model_alias=row["model_alias"],
        params=MappingProxyType(row["params"]),
        hash=row.get("composition_hash") or prompt.composition_hash,
    )


def load_routes(conn: Connection, names: Collection[str] | None = None) -> Loaded[RouteTarget]:
    """Every route that has an active release (or, incremental, the routes in `names`,
    with None for one that is gone or serves nothing now), as the request path serves it,
    and what could not be loaded, under the route's name. Raises only when the store
    cannot be read at all."""
    loaded: Loaded[RouteTarget] = Loaded()
    if names is not None:
        loaded.entries.update(dict.fromkeys(names))  # replaced below by what still serves
    for row in release_rows.all_routes(conn, names):
        name = str(row["name"])
        if "problem" in row:
            loaded.quarantine(name, Quarantined("route", name, row["problem"]))
            loaded.entries[name] = RouteTarget(
                name, None, None, 0, problems={"active": f"route {name}: {row['problem']}"}
            )
            continue
        if not row["active_release_id"]:
            continue
        arms: dict[str, ReleaseTarget | None] = {"active": None, "canary": None}
        arm_problems: dict[str, str] = {}
        for arm in ("active", "canary"):
            release_id = row[f"{arm}_release_id"]
            if not release_id:
                continue
            try:
                arms[arm] = _release(conn, str(release_id))
            except _Unservable as exc:
                arm_problems[arm] = str(exc)
                loaded.quarantine(name, Quarantined("release", str(release_id), str(exc)))
        weight = row["canary_weight"]
        salt = row["canary_salt"]
        loaded.entries[name] = RouteTarget(
            name=name,
            active=arms["active"],
            canary=arms["canary"],
            canary_weight=weight if isinstance(weight, int) and 0 <= weight <= 100 else 0,
            canary_salt=salt if isinstance(salt, str) else "",
            problems=MappingProxyType(arm_problems),
            store_responses=row.get("store_responses") is True,
        )
    return loaded
