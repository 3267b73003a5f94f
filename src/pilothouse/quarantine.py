"""Configuration items that cannot be loaded, kept aside instead of failing the whole load.

A snapshot is built from many rows; one that cannot be read or resolved (a damaged row, a
release whose prompt version vanished) must not stop the others. Each loader reports such
an item as `Quarantined`: the snapshot keeps it, requests that reach it get an error
naming the problem, a metric counts it and the holder logs it once. `Loaded` is what
every snapshot loader returns, for a full load and for an incremental one alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

KINDS = ("key", "route", "release", "setting", "quota")


@dataclass(frozen=True, slots=True)
class Quarantined:
    kind: str  # one of KINDS
    id: str  # the key id, route name, release id or setting name
    problem: str  # what is wrong, for the log and the error a caller sees

    def describe(self) -> str:
        return f"{self.kind} {self.id}: {self.problem}"


@dataclass(slots=True)
class Loaded(Generic[T]):
    """What a snapshot loader read: the entries of its part of the snapshot (by the key the
    request path looks them up with; None: remove the entry) and the quarantined items,
    grouped by the id of the changed item they belong to (a route owns the problems of its
    releases), so an incremental load replaces exactly the problems it re-read."""

    entries: dict[str, T | None] = field(default_factory=dict)
    problems: dict[str, tuple[Quarantined, ...]] = field(default_factory=dict)

    def quarantine(self, owner: str, item: Quarantined) -> None:
        self.problems[owner] = (*self.problems.get(owner, ()), item)
