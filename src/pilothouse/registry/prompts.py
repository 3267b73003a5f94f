"""The prompt registry: immutable content-hashed versions, movable labels, an audit trail.

A version's identity is the SHA-256 of its canonical form, so pushing identical content
returns the existing version. Every write locks the prompt's row first (concurrent writers
to one prompt queue, so version numbers and audit values are exact), records an audit
entry and a prompt event (the SSE stream and label rollback read those) and bumps the
configuration version, which tells every process and every SDK client. A push of several
prompts (a directory) is one transaction: all of it is stored, or none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from pilothouse import errors
from pilothouse.config import PromotionSpec
from pilothouse.registry import composition, names
from pilothouse.registry.composition import ResolvedPrompt
from pilothouse.registry.labels import (
    DEFAULT_POLICY,
    LabelWriter,
    check_label,
    delete_label,
    move_label,
    rollback_label,
)
from pilothouse.registry.prompt_content import PromptContent, content_hash
from pilothouse.store import Store, audit, changes
from pilothouse.store import prompts as rows
from pilothouse.store.tolerant import DamagedRow

__all__ = [
    "PushItem",
    "ResolvedPrompt",
    "create_version",
    "delete_label",
    "get",
    "move_label",
    "push",
    "rollback_label",
]


def check_name(name: str, param: str = "name") -> str:
    try:
        return names.check_name(name, "prompt name")
    except names.InvalidName as exc:
        raise errors.InvalidRequest(str(exc), param=param) from None


def resolve_in(
    conn: Connection, name: str, *, label: str | None = None, version: int | None = None
) -> ResolvedPrompt:
    """Like `get`, inside the caller's transaction."""
    number = composition.version_number(conn, name, label, version)
    try:
        return composition.resolve(conn, name, number)
    except composition.Unresolvable as exc:
        raise errors.Conflict(
            f"prompt {name}@{number} cannot be composed: {exc}",
            hint="restore the include's label or version, or push a version that does not need it",
            code="unresolvable_prompt",
        ) from None


def get(
    store: Store, name: str, *, label: str | None = None, version: int | None = None
) -> ResolvedPrompt:
    """A version by number, or the one a label points at (default: production), with its
    includes resolved now. NotFound, or Conflict when an include no longer resolves."""
    with store.connect() as conn:
        return resolve_in(conn, name, label=label, version=version)


@dataclass(frozen=True)
class PushItem:
    """One prompt of a push: its content and the prompt's descriptive fields."""

    name: str
    content: PromptContent
    description: str | None = None
    owner: str | None = None
    tags: list[str] | None = None
    expected_latest: int | None = None  # If-Match: the latest version the caller saw

    def meta(self) -> dict[str, Any]:
        fields = (("description", self.description), ("owner", self.owner), ("tags", self.tags))
        return {k: v for k, v in fields if v is not None}


def push(
    store: Store,
    items: Sequence[PushItem],
    *,
    labels: Sequence[str] = (),
    note: str | None = None,
    reason: str | None = None,
    actor: str = "admin",
    force: bool = False,
    policy: PromotionSpec = DEFAULT_POLICY,
) -> list[tuple[ResolvedPrompt, bool]]:
    """Store each item's version unless identical content exists, then point `labels` at
        them: all in one transaction, so a refused item leaves nothing behind. Every pushed
        version must compose (includes resolve, every variable a fragment uses declared) as it
        stands after the push; label moves that would break a dependent are refused (Conflict)
        unless forced with a reason (default: the note), and so are moves of protected labels
    the promotion gate refuses. Returns (version, created) per item."""
    if not items:
        raise errors.InvalidRequest("nothing to push: give at least one prompt")
    seen: set[str] = set()
    for index, item in enumerate(items):
        check_name(item.name, f"files.{index}.name" if len(items) > 1 else "name")
        if item.name in seen:
            raise errors.InvalidRequest(f"prompt {item.name!r} is in the push twice")
        seen.add(item.name)
    for label in labels:
        check_label(label)
    with store.write() as conn:
        for name in sorted(seen):  # one order for every writer: no deadlock between pushes
            rows.lock_prompt(conn, name, create=True)
        numbers = [_store_version(conn, item, note, actor) for item in items]
        writer = LabelWriter(conn, actor, reason or note, policy)
        moved = [
            writer.move(item.name, label, number)
            for item, (number, _) in zip(items, numbers, strict=True)
            for label in labels
        ]
        for index, (item, (number, _)) in enumerate(zip(items, numbers, strict=True)):
            _check_composes(conn, item.name, number, index if len(items) > 1 else None)
        what = (
            "pushing " + ", ".join(sorted(seen)) + (f" with {', '.join(labels)}" if labels else "")
        )
        writer.finish(what, force=force)
        if any(created for _, created in numbers) or any(moved) or any(i.meta() for i in items):
            changes.bump(conn, *changes.touched("prompt", seen))
        return [
            (composition.resolve(conn, item.name, number), created)
            for item, (number, created) in zip(items, numbers, strict=True)
        ]


def _store_version(
    conn: Connection, item: PushItem, note: str | None, actor: str
) -> tuple[int, bool]:
    latest = rows.latest_version_number(conn, item.name)
    if item.expected_latest is not None and item.expected_latest != latest:
        raise errors.Conflict(
            f"prompt {item.name!r} is at version {latest or '(none)'}, not "
            f"{item.expected_latest} as If-Match said: someone pushed meanwhile",
            hint="read the current version and retry",
            code="if_match_failed",
            details={"current": {"name": item.name, "latest_version": latest}},
        )
    rows.update_prompt(conn, item.name, item.meta())
    canonical = item.content.canonical()
    digest = content_hash(canonical)
    existing = rows.version_by_hash(conn, item.name, digest)
    if existing is not None:
        return existing["version"], False
    number = latest + 1
    rows.insert_version(
        conn,
        {
            "prompt_name": item.name,
            "version": number,
            "hash": digest,
            "content": canonical,
            "note": note,
            "created_by": actor,
            "created_at": datetime.now(UTC),
        },
    )
    rows.add_event(conn, kind="version_created", prompt_name=item.name, version=number, hash=digest)
    audit.record(
        conn,
        actor=actor,
        action="prompt.version",
        target=f"prompt:{item.name}",
        after={"version": number, "hash": digest},
        reason=note,
    )
    return number, True


def _check_composes(conn: Connection, name: str, number: int, index: int | None) -> None:
    try:
        prompt = composition.resolve(conn, name, number)
        composition.check(name, prompt.content, prompt.fragments)
    except composition.Unresolvable as exc:
        where = f"files.{index}" if index is not None else None
        raise errors.InvalidRequest(f"prompt {name!r}: {exc}", param=where) from None


def create_version(
    store: Store,
    name: str,
    content: PromptContent,
    *,
    description: str | None = None,
    owner: str | None = None,
    tags: list[str] | None = None,
    note: str | None = None,
    labels: list[str] | None = None,
    reason: str | None = None,
    actor: str = "admin",
    force: bool = False,
    expected_latest: int | None = None,
    policy: PromotionSpec = DEFAULT_POLICY,
) -> tuple[ResolvedPrompt, bool]:
    """Store a version unless identical content exists; (version, created)."""
    item = PushItem(name, content, description, owner, tags, expected_latest)
    ((prompt, created),) = push(
        store,
        [item],
        labels=labels or (),
        note=note,
        reason=reason,
        actor=actor,
        force=force,
        policy=policy,
    )
    return prompt, created


def list_prompts(
    store: Store, *, after: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Prompts by name with their latest version and labels: every one, or the page of
    `limit` after the name `after` (three queries, whatever the page size)."""
    with store.connect() as conn:
        found = rows.all_prompts(conn, after=after, limit=limit)
        names = [str(p["name"]) for p in found]
        labels: dict[str, dict[str, int]] = {}
        for r in rows.labels(conn, names=names):
            labels.setdefault(r["prompt_name"], {})[r["label"]] = r["version"]
        latest = rows.latest_version_numbers(conn, names)
        return [
            {
                "name": prompt["name"],
                "description": prompt.get("description"),
                "owner": prompt.get("owner"),
                "tags": prompt["tags"] if isinstance(prompt.get("tags"), list) else [],
                **({"problem": prompt["problem"]} if "problem" in prompt else {}),
                "latest_version": latest.get(prompt["name"], 0),
                "labels": labels.get(prompt["name"], {}),
            }
            for prompt in found
        ]


def list_versions(store: Store, name: str) -> list[dict[str, Any]]:
    with store.connect() as conn:
        if rows.get_prompt(conn, name) is None:
            raise composition.not_found(name)
        labels = rows.labels(conn, name)
        return [
            {
                "version": v["version"],
                "hash": v.get("hash"),
                "note": v.get("note"),
                "created_by": v.get("created_by"),
                "created_at": v["created_at"].isoformat() if "created_at" in v else None,
                "labels": [label["label"] for label in labels if label["version"] == v["version"]],
                **({"problem": v["problem"]} if "problem" in v else {}),
            }
            for v in rows.versions(conn, name)
        ]


def history(store: Store, name: str) -> list[dict[str, Any]]:
    with store.connect() as conn:
        if rows.get_prompt(conn, name) is None:
            raise composition.not_found(name)
        return audit.history(conn, f"prompt:{name}", limit=1000)


def events_after(store: Store, last_id: int) -> list[dict[str, Any]]:
    with store.connect() as conn:
        return rows.events_after(conn, last_id)


PROMPTS_PER_READ = 100  # beyond this many label moves at once, readers fetch them


def events_with_prompts(store: Store, last_id: int) -> list[dict[str, Any]]:
    """`events_after`, each label move carrying what a reader of that label got from it:
    `prompt` (the version it moved to, composed as `get` composes it now, as its public
    payload) and `etag` (as `get`'s). A move whose prompt does not compose carries none
    (its readers fetch it and get the error), nor do the moves of a read with more than
    `PROMPTS_PER_READ` of them (a push of a whole catalogue: each instance would compose
    it all)."""
    with store.connect() as conn:
        events = rows.events_after(conn, last_id)
        moves = [e for e in events if e["kind"] == "label_moved" and e["version"] is not None]
        for event in moves if len(moves) <= PROMPTS_PER_READ else ():
            try:
                prompt = resolve_in(conn, event["prompt_name"], version=event["version"])
            except (errors.PilothouseError, DamagedRow):
                continue
            event["prompt"], event["etag"] = prompt.public(), prompt.etag
        return events


def last_event_id(store: Store) -> int:
    with store.connect() as conn:
        return rows.last_event_id(conn)
