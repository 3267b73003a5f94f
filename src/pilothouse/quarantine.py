"""Configuration items that cannot be loaded, kept aside instead of failing the whole load.

A snapshot is built from many rows; one that cannot be read or resolved (a damaged row, a
release whose prompt version vanished) must not stop the others. Each loader reports such
an item as `Quarantined`: the snapshot keeps it, requests that reach it get an error
naming the problem, a metric counts it and the holder logs it once.
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("key", "route", "release", "setting", "quota")


@dataclass(frozen=True, slots=True)
class Quarantined:
    kind: str  # one of KINDS
    id: str  # the key id, route name, release id or setting name
    problem: str  # what is wrong, for the log and the error a caller sees

    def describe(self) -> str:
        return f"{self.kind} {self.id}: {self.problem}"
