"""Labels: movable pointers to versions. Moves, rollbacks and deletes are checked against
what depends on the label (registry/dependents.py) and refused when they would break it,
unless forced with a reason; every change is an event (SSE, rollback) and an audit entry
with exact before and after values (the prompt's row is locked first).

A move of a protected label (`promotion.protected_labels`, default `production`) is also
held to the promotion gate (contracts/gate.py) and refused when it says no, unless forced
with a reason; rollbacks are not held. Every move of a protected label, rollbacks
included, writes a changelog entry (changelog/entries.py) in the same transaction; so
does a fragment's label move that changes what a protected label of a prompt including
it composes to (`support-triage@production` includes `house-style@production`), with the
gate's findings on the new composition. That one is reported, not held: no verification
can run on a composition before the label move makes it (to hold such a change, pin the
fragment version in a new version of the includer and move its label).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from pilothouse import errors
from pilothouse.changelog import entries as changelog
from pilothouse.config import PromotionSpec
from pilothouse.contracts import gate, subjects
from pilothouse.registry import composition, dependents, names
from pilothouse.registry.composition import ResolvedPrompt
from pilothouse.store import Store, audit, changes
from pilothouse.store import prompts as rows

DEFAULT_POLICY = PromotionSpec()


def check_label(label: str) -> str:
    try:
        return names.check_label(label)
    except names.InvalidName as exc:
        raise errors.InvalidRequest(str(exc), param="label") from None


def lock(conn: Connection, name: str) -> None:
    """Lock prompt `name` for this transaction; NotFound when there is no such prompt."""
    if rows.lock_prompt(conn, name, create=False) is None:
        raise composition.not_found(name)


def expect(conn: Connection, name: str, label: str, expected: int | None) -> int | None:
    """The label's current version; Conflict (with the current state) when the caller's
    If-Match said another (0: the label must not exist yet)."""
    current = rows.label_version(conn, name, label)
    if expected is not None and (current or 0) != expected:
        raise errors.Conflict(
            f"label {label!r} of prompt {name!r} points at "
            + (f"version {current}" if current else "nothing")
            + f", not {expected} as If-Match said: someone changed it meanwhile",
            hint="read the current state and retry",
            code="if_match_failed",
            details={"current": {"name": name, "label": label, "version": current}},
        )
    return current


@dataclass(frozen=True)
class ProtectedMove:
    name: str
    label: str
    before: int | None
    version: int
    rollback: bool


@dataclass(frozen=True)
class IncluderBefore:
    """A protected label of a prompt that includes a label being moved, as it composed
    before the move (the changelog's `from`)."""

    name: str
    label: str
    state: dict[str, Any] | None
    via: str  # the include that moves, e.g. house-style@production


@dataclass
class LabelWriter:
    """The label changes of one transaction: made at once, checked and audited at the end."""

    conn: Connection
    actor: str
    reason: str | None
    policy: PromotionSpec = DEFAULT_POLICY
    watch: dependents.Watch = field(init=False)
    _audit: list[dict[str, Any]] = field(default_factory=list)
    _protected: list[ProtectedMove] = field(default_factory=list)
    _includers: dict[tuple[str, str], IncluderBefore] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.watch = dependents.Watch(self.conn)

    def move(self, name: str, label: str, version: int, *, rollback: bool = False) -> bool:
        """Point `label` at `version` (it must exist); False when it already did."""
        check_label(label)
        before = rows.label_version(self.conn, name, label)
        if before == version and not rollback:
            return False
        try:
            target = composition.resolve_row(self.conn, name, version)
        except composition.Unresolvable as exc:
            raise errors.Conflict(
                f"cannot point {name}@{label} at version {version}: {exc}"
            ) from None
        self._includers_before(name, label, self.watch.label_changing(name, label))
        rows.set_label(self.conn, name, label, version, self.actor)
        self.watch.version_served(name, version, f"{name}@{label} (version {version})")
        rows.add_event(
            self.conn,
            kind="label_moved",
            prompt_name=name,
            label=label,
            version=version,
            previous_version=before,
            hash=target["hash"],
            rollback=rollback,
        )
        if label in self.policy.protected_labels:
            self._protected.append(ProtectedMove(name, label, before, version, rollback))
        self._audit.append(
            {
                "action": "prompt.rollback" if rollback else "prompt.label",
                "target": f"prompt:{name}",
                "before": {"label": label, "version": before},
                "after": {"label": label, "version": version},
            }
        )
        return True

    def delete(self, name: str, label: str) -> int:
        before = composition.version_number(self.conn, name, label, None)
        self.watch.label_changing(name, label)
        rows.delete_label(self.conn, name, label)
        rows.add_event(
            self.conn, kind="label_deleted", prompt_name=name, label=label, previous_version=before
        )
        self._audit.append(
            {
                "action": "prompt.label_delete",
                "target": f"prompt:{name}",
                "before": {"label": label, "version": before},
                "after": None,
            }
        )
        return before

    def finish(self, what: str, *, force: bool) -> dict[str, Any] | None:
        """Refuse (Conflict) if the changes break a dependent or a protected label's move
        fails the promotion gate, unless forced; write the audit and changelog entries.
        Returns the forced record, if the change was forced."""
        dependents.require_reason(force, self.reason)
        broken, unaffected = self.watch.check()
        forced = dependents.refuse_or_record(
            broken, unaffected, what=what, force=force, reason=self.reason
        )
        reports = [self._gate(m.name, m.version, m.label) for m in self._protected]
        held = [r for move, r in zip(self._protected, reports, strict=True) if not move.rollback]
        gated = gate.refuse_or_record(held, what=what, force=force, reason=self.reason)
        if gated is not None:
            forced = {**(forced or {}), **gated}
        for move, report in zip(self._protected, reports, strict=True):
            changelog.record(
                self.conn,
                changelog.label_entry(
                    self.conn,
                    name=move.name,
                    label=move.label,
                    before=move.before,
                    after=move.version,
                    rollback=move.rollback,
                    actor=self.actor,
                    reason=self.reason,
                    gate=report,
                    forced=forced,
                ),
            )
        for before, after, report in self._includers_after():
            changelog.record(
                self.conn,
                changelog.include_entry(
                    name=before.name,
                    label=before.label,
                    before=before.state,
                    after=after,
                    via=before.via,
                    actor=self.actor,
                    reason=self.reason,
                    gate=report,
                    forced=forced,
                ),
            )
        for entry in self._audit:
            after = entry["after"]
            if forced is not None:
                after = {**(after or {}), **forced}
            audit.record(
                self.conn,
                actor=self.actor,
                action=entry["action"],
                target=entry["target"],
                before=entry["before"],
                after=after,
                reason=self.reason,
            )
        return forced

    def _includers_before(self, name: str, label: str, users: list[dependents.Dependent]) -> None:
        """Remember how the protected labels that include `name@label` compose now."""
        for user in users:
            if user.kind != "prompt" or user.label not in self.policy.protected_labels:
                continue
            key = (user.name, user.label)
            if key not in self._includers:
                state = changelog.prompt_state(self.conn, user.name, user.version)
                via = f"{name}@{label}"
                self._includers[key] = IncluderBefore(user.name, user.label, state, via)

    def _includers_after(
        self,
    ) -> list[tuple[IncluderBefore, dict[str, Any], gate.GateReport]]:
        """The includers whose composition the moves changed: how they compose now, and the
        gate's report on that. One whose own label moved here is its own move's concern."""
        moved = {(m.name, m.label) for m in self._protected}
        found = []
        for key, before in self._includers.items():
            version = rows.label_version(self.conn, *key)
            if key in moved or version is None:
                continue
            after = changelog.prompt_state(self.conn, before.name, version)
            if after is None or (before.state or {}).get("composition_hash") == after.get(
                "composition_hash"
            ):
                continue
            report = self._gate(before.name, version, before.label)
            found.append((before, after, report))
        return found

    def _gate(self, name: str, version: int, label: str) -> gate.GateReport:
        """The gate on `label` of `name` serving `version` as it composes now."""
        try:
            candidate = subjects.for_prompt(self.conn, f"{name}@{version}")
        except errors.Conflict:  # a forced move onto a version that does not compose
            row = rows.get_version(self.conn, name, version)
            digest = str(row["hash"]) if row else "unknown"
            candidate = subjects.Candidate("prompt", name, f"{name}@{version}", digest, digest)
        return gate.check_prompt(self.conn, self.policy, candidate, label)


def move_label(
    store: Store,
    name: str,
    label: str,
    version: int,
    *,
    actor: str = "admin",
    reason: str | None = None,
    force: bool = False,
    expected: int | None = None,
    policy: PromotionSpec = DEFAULT_POLICY,
) -> ResolvedPrompt:
    """Point `label` of `name` at `version`; Conflict if that breaks a dependent or fails
    the promotion gate (unless forced) or if `expected` (If-Match) is not the label's
    current version."""
    check_label(label)
    with store.write() as conn:
        lock(conn, name)
        composition.version_number(conn, name, None, version)
        expect(conn, name, label, expected)
        writer = LabelWriter(conn, actor, reason, policy)
        if writer.move(name, label, version):
            writer.finish(f"moving {name}@{label} to version {version}", force=force)
            changes.bump(conn, ("prompt", name))
        return _read(conn, name, version)


def rollback_label(
    store: Store,
    name: str,
    label: str,
    *,
    actor: str = "admin",
    reason: str | None = None,
    force: bool = False,
    expected: int | None = None,
    policy: PromotionSpec = DEFAULT_POLICY,
) -> ResolvedPrompt:
    """Point the label back at the version it had before its current one.

    Rollbacks stack: rolling back twice goes two assignments back, not forth and back.
    """
    check_label(label)
    with store.write() as conn:
        lock(conn, name)
        composition.version_number(conn, name, label, None)
        expect(conn, name, label, expected)
        stack: list[int] = []
        for event in rows.label_events(conn, name, label):
            if event["kind"] == "label_deleted":
                stack = []
            elif event["rollback"]:
                if stack:
                    stack.pop()
            else:
                stack.append(event["version"])
        if len(stack) < 2:
            raise errors.Conflict(
                f"label {label!r} of prompt {name!r} has no earlier version to roll back to"
            )
        writer = LabelWriter(conn, actor, reason, policy)
        writer.move(name, label, stack[-2], rollback=True)
        writer.finish(f"rolling {name}@{label} back to version {stack[-2]}", force=force)
        changes.bump(conn, ("prompt", name))
        return _read(conn, name, stack[-2])


def delete_label(
    store: Store,
    name: str,
    label: str,
    *,
    actor: str = "admin",
    reason: str | None = None,
    force: bool = False,
    expected: int | None = None,
) -> dict[str, Any]:
    """Remove a label; Conflict if a prompt or release includes it and would no longer
    render, unless forced with a reason."""
    check_label(label)
    with store.write() as conn:
        lock(conn, name)
        expect(conn, name, label, expected)
        writer = LabelWriter(conn, actor, reason)
        before = writer.delete(name, label)
        forced = writer.finish(f"deleting {name}@{label}", force=force)
        changes.bump(conn, ("prompt", name))
    return {"deleted": True, "name": name, "label": label, "version": before, **(forced or {})}


def _read(conn: Connection, name: str, version: int) -> ResolvedPrompt:
    """The version as readers now see it; its composition may be broken when forced."""
    try:
        return composition.resolve(conn, name, version)
    except composition.Unresolvable:
        return composition.from_row(composition.resolve_row(conn, name, version), [], {})
