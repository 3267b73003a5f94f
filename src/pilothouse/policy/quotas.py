"""Quota policies: what may be used by a key, a user (the key's user; on an application key
without one, the request's `user`) or a team, per window (minute, hour, day, month;
calendar or rolling), in one dimension (requests, tokens or cost in USD), with a soft and
a hard limit.

Past the soft limit a request is served with a warning and the policy's degradation (a
cheaper model alias, a cap on `max_tokens`); past the hard limit it is refused. Policies
live in the store, are loaded into the configuration snapshot (`load_quotas`) and are
changed with `set_policy` / `remove_policy`, audited and announced like every write, so
every instance obeys a change within a second. Counting is `policy/quota_backends.py`;
the gateway's one call is `policy/quota_gate.py`.

A policy whose subject is `*` applies to each key, user or team on its own.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal, get_args

from sqlalchemy import Connection

from pilothouse import errors
from pilothouse.quarantine import Loaded, Quarantined
from pilothouse.store import Store, audit, changes
from pilothouse.store import quotas as quota_rows

SubjectKind = Literal["key", "user", "team"]
Dimension = Literal["requests", "tokens", "cost"]
Window = Literal["minute", "hour", "day", "month"]
SUBJECT_KINDS: tuple[str, ...] = get_args(SubjectKind)
DIMENSIONS: tuple[str, ...] = get_args(Dimension)
WINDOWS: tuple[str, ...] = get_args(Window)
WINDOW_SECONDS = {"minute": 60, "hour": 3600, "day": 86400, "month": 30 * 86400}
ROLLING_SLICES = 60  # a rolling window is counted in 60 slices (a 1-minute one: by second)
# Counters hold integers: a request, a token, a nano-dollar. Exact sums, no float drift.
UNITS_PER = {"requests": 1, "tokens": 1, "cost": 1_000_000_000}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
EACH = "*"


@dataclass(frozen=True, slots=True)
class QuotaPolicy:
    name: str
    subject_kind: str
    subject: str
    dimension: str
    window: str
    rolling: bool = False
    soft_limit: float | None = None
    hard_limit: float | None = None
    degrade_to: str | None = None
    degrade_max_tokens: int | None = None
    on_backend_down: str = "open"  # open: serve, counted and alerted; closed: refuse (503)
    created_by: str = "admin"
    updated_at: datetime | None = None
    # limits in counter units (see UNITS_PER), computed once
    soft_units: int | None = field(default=None, compare=False)
    hard_units: int | None = field(default=None, compare=False)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> QuotaPolicy:
        """The policy a row describes; ValueError when the row is damaged or invalid."""
        values = {k: row[k] for k in _COLUMNS if k in row}
        policy = cls(**values)
        problem = policy.problem()
        if problem:
            raise ValueError(problem)
        unit = UNITS_PER[policy.dimension]
        soft = None if policy.soft_limit is None else round(policy.soft_limit * unit)
        hard = None if policy.hard_limit is None else round(policy.hard_limit * unit)
        object.__setattr__(policy, "soft_units", soft)
        object.__setattr__(policy, "hard_units", hard)
        return policy

    def problem(self) -> str | None:
        """What is wrong with this policy, or None."""
        if not NAME.match(self.name):
            return f"invalid quota name {self.name[:100]!r}: letters, digits, . _ - (up to 100)"
        if self.subject_kind not in SUBJECT_KINDS:
            return f"subject kind must be one of {', '.join(SUBJECT_KINDS)}"
        if not self.subject or len(self.subject) > 200:
            return "a quota needs a subject: a key id, user or team name, or * for each"
        if self.dimension not in DIMENSIONS:
            return f"dimension must be one of {', '.join(DIMENSIONS)}"
        if self.window not in WINDOWS:
            return f"window must be one of {', '.join(WINDOWS)}"
        if self.on_backend_down not in ("open", "closed"):
            return "on_backend_down must be `open` or `closed`"
        if self.soft_limit is None and self.hard_limit is None:
            return "a quota needs a soft limit, a hard limit or both"
        for label, limit in (("soft", self.soft_limit), ("hard", self.hard_limit)):
            if limit is not None and not (0 <= limit < 1e12):
                return f"the {label} limit must be a number from 0 up"
        if (
            self.soft_limit is not None
            and self.hard_limit is not None
            and self.soft_limit > self.hard_limit
        ):
            return f"the soft limit ({self.soft_limit:g}) is above the hard limit ({self.hard_limit:g})"
        if self.degrade_max_tokens is not None and self.degrade_max_tokens < 1:
            return "degrade_max_tokens must be at least 1"
        if (self.degrade_to or self.degrade_max_tokens) and self.soft_limit is None:
            return "a degradation applies past the soft limit: set a soft limit"
        return None

    @property
    def window_label(self) -> str:
        return f"{'rolling ' if self.rolling else ''}{self.window}"

    def bucket_ids(self, now: float) -> tuple[tuple[int, ...], float]:
        """The counter slices this window covers at `now` (the first one takes new usage),
        and when the window (calendar) or its oldest slice (rolling) next gives back."""
        if self.rolling:
            width = WINDOW_SECONDS[self.window] / ROLLING_SLICES
            current = int(now // width)
            return tuple(range(current, current - ROLLING_SLICES, -1)), (current + 1) * width
        if self.window == "month":
            moment = datetime.fromtimestamp(now, UTC)
            year, month = (
                (moment.year, moment.month + 1) if moment.month < 12 else (moment.year + 1, 1)
            )
            reset = calendar.timegm((year, month, 1, 0, 0, 0))
            return (moment.year * 12 + moment.month - 1,), float(reset)
        size = WINDOW_SECONDS[self.window]
        current = int(now // size)
        return (current,), float((current + 1) * size)

    @property
    def ttl_seconds(self) -> int:
        """How long a counter slice must live (a calendar month: up to 31 days)."""
        return int(WINDOW_SECONDS[self.window] * (1.1 if self.window != "month" else 1.05)) + 60

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "subject_kind": self.subject_kind,
            "subject": self.subject,
            "dimension": self.dimension,
            "window": self.window,
            "rolling": self.rolling,
            "soft_limit": self.soft_limit,
            "hard_limit": self.hard_limit,
            "degrade_to": self.degrade_to,
            "degrade_max_tokens": self.degrade_max_tokens,
            "on_backend_down": self.on_backend_down,
            "created_by": self.created_by,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


_COLUMNS = (
    "name",
    "subject_kind",
    "subject",
    "dimension",
    "window",
    "rolling",
    "soft_limit",
    "hard_limit",
    "degrade_to",
    "degrade_max_tokens",
    "on_backend_down",
    "created_by",
    "updated_at",
)


@dataclass(frozen=True, slots=True)
class QuotaSet:
    """The snapshot's policies, by (subject kind, subject); `*` policies under EACH."""

    by_subject: Mapping[tuple[str, str], tuple[QuotaPolicy, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    policies: tuple[QuotaPolicy, ...] = ()

    def applicable(
        self, key_id: str, user: str | None, team: str | None
    ) -> list[tuple[QuotaPolicy, str]]:
        """Each policy that applies to a request, with the subject it counts for."""
        if not self.policies:
            return []
        found: list[tuple[QuotaPolicy, str]] = []
        get = self.by_subject.get
        for kind, value in (("key", key_id), ("user", user), ("team", team)):
            if value is None:
                continue
            for policy in (*get((kind, value), ()), *get((kind, EACH), ())):
                found.append((policy, f"{kind}:{value}"))
        return found


def quota_set(policies: list[QuotaPolicy]) -> QuotaSet:
    grouped: dict[tuple[str, str], list[QuotaPolicy]] = {}
    for policy in sorted(policies, key=lambda p: p.name):
        grouped.setdefault((policy.subject_kind, policy.subject), []).append(policy)
    return QuotaSet(
        MappingProxyType({k: tuple(v) for k, v in grouped.items()}),
        tuple(sorted(policies, key=lambda p: p.name)),
    )


def load_quotas(conn: Connection) -> tuple[QuotaSet, list[Quarantined]]:
    """Every policy (the snapshot's quota set) and the ones that could not be loaded. A
    damaged policy is left out and reported: the others are still enforced."""
    policies: list[QuotaPolicy] = []
    problems: list[Quarantined] = []
    for name, row, unreadable in quota_rows.all_checked(conn):
        try:
            if row is None:
                raise ValueError(unreadable)
            policies.append(QuotaPolicy.from_row(row))
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(
                Quarantined("quota", str(name), f"quota {name} cannot be loaded: {exc}")
            )
    return quota_set(policies), problems


def load_quota_part(conn: Connection) -> Loaded[QuotaSet]:
    """The snapshot's quota part: the whole set under `*` (it is rebuilt from every policy
    on any quota change); each damaged policy quarantined under its own name."""
    policies, problems = load_quotas(conn)
    loaded: Loaded[QuotaSet] = Loaded(entries={"*": policies})
    for item in problems:
        loaded.quarantine(item.id, item)
    return loaded


def set_policy(
    store: Store,
    spec: Mapping[str, Any],
    *,
    known_aliases: set[str],
    actor: str = "admin",
    reason: str | None = None,
) -> tuple[QuotaPolicy, bool]:
    """Create or replace the policy `spec["name"]` (audited, announced by the caller);
    (policy, created). InvalidRequest names what is wrong."""
    row = {k: spec.get(k) for k in _COLUMNS if k not in ("created_by", "updated_at")}
    row["rolling"] = bool(row.get("rolling"))
    row["on_backend_down"] = row.get("on_backend_down") or "open"
    row["created_by"] = actor
    row["updated_at"] = datetime.now(UTC)
    try:
        policy = QuotaPolicy.from_row(row)
    except (TypeError, ValueError) as exc:
        raise errors.InvalidRequest(
            str(exc), hint="`pilothouse quotas set --help` lists the options"
        ) from None
    if policy.degrade_to is not None and policy.degrade_to not in known_aliases:
        raise errors.InvalidRequest(
            f"degrade_to names {policy.degrade_to!r}, which is not a model alias; known: "
            f"{', '.join(sorted(known_aliases)) or '(none)'}",
            param="degrade_to",
        )
    with store.write() as conn:
        if policy.subject_kind == "key" and policy.subject != EACH:
            row["subject"] = _key_id(conn, policy.subject)
            policy = QuotaPolicy.from_row(row)
        before = quota_rows.get(conn, policy.name, lock=True)
        quota_rows.upsert(conn, row, exists=before is not None)
        audit.record(
            conn,
            actor=actor,
            action="quota.set",
            target=f"quota:{policy.name}",
            before=QuotaPolicy.from_row(before).public() if before else None,
            after=policy.public(),
            reason=reason,
        )
        changes.bump(conn, ("quota", policy.name))
    return policy, before is None


def _key_id(conn: Connection, id_or_name: str) -> str:
    from pilothouse.policy.keys import find_key_row  # keys import nothing of quotas

    return str(find_key_row(conn, id_or_name)["id"])


def list_policies(store: Store) -> list[QuotaPolicy]:
    with store.connect() as conn:
        found, _ = load_quotas(conn)
    return list(found.policies)


def remove_policy(
    store: Store, name: str, *, actor: str = "admin", reason: str | None = None
) -> QuotaPolicy:
    with store.write() as conn:
        row = quota_rows.get(conn, name, lock=True)
        if row is None:
            raise errors.NotFound(
                f"no quota named {name[:100]!r}", hint="`pilothouse quotas ls` lists them"
            )
        quota_rows.remove(conn, name)
        policy = QuotaPolicy.from_row(row)
        audit.record(
            conn,
            actor=actor,
            action="quota.remove",
            target=f"quota:{name}",
            before=policy.public(),
            reason=reason,
        )
        changes.bump(conn, ("quota", name))
    return policy
