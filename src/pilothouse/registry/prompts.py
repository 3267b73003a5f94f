"""The prompt registry: immutable content-hashed versions, movable labels, an audit trail.

A version's identity is the SHA-256 of its canonical form, so pushing identical content
returns the existing version. Every write records an audit entry and a prompt event (the
SSE stream and label rollback read those) and bumps the configuration version, which
tells every process and every SDK client.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from pilothouse import errors
from pilothouse.registry import templates
from pilothouse.registry.prompt_content import PromptContent, content_hash
from pilothouse.store import Store, audit, changes
from pilothouse.store import prompts as rows


@dataclass(frozen=True)
class ResolvedPrompt:
    """One version with every include resolved, as the API and the SDK see it."""

    name: str
    version: int
    hash: str
    content: dict[str, Any]
    labels: list[str]
    fragments: dict[str, templates.Fragment]
    note: str | None
    created_by: str
    created_at: datetime

    @property
    def etag(self) -> str:
        parts = [
            self.hash,
            *(f"{ref}:{f.version}:{f.hash}" for ref, f in sorted(self.fragments.items())),
        ]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "hash": self.hash,
            "messages": self.content.get("messages"),
            "text": self.content.get("text"),
            "variables": self.content["variables"],
            "tools": self.content.get("tools"),
            "response_format": self.content.get("response_format"),
            "fragments": {
                ref: {"name": f.name, "version": f.version, "hash": f.hash, "text": f.text}
                for ref, f in sorted(self.fragments.items())
            },
            "labels": self.labels,
            "note": self.note,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
        }

    def render(self, values: dict[str, Any]) -> templates.Rendered:
        if "messages" not in self.content:
            raise errors.InvalidRequest(
                f"prompt {self.name!r} is a fragment: it has text, not messages"
            )
        variables = templates.parse_variables(self.content["variables"])
        return templates.render(
            self.name, self.content["messages"], variables, values, self.fragments
        )


def _not_found(name: str, detail: str = "") -> errors.NotFound:
    return errors.NotFound(
        f"no prompt {name!r}{detail}", hint="`pilothouse prompts ls` lists prompts and labels"
    )


def _version_number(conn: Connection, name: str, label: str | None, version: int | None) -> int:
    if version is not None:
        if rows.get_version(conn, name, version) is None:
            latest = rows.latest_version_number(conn, name)
            if latest == 0:
                raise _not_found(name)
            raise _not_found(name, f" version {version} (versions are 1 to {latest})")
        return version
    label = label or templates.DEFAULT_LABEL
    number = rows.label_version(conn, name, label)
    if number is None:
        if rows.get_prompt(conn, name) is None:
            raise _not_found(name)
        known = ", ".join(r["label"] for r in rows.labels(conn, name)) or "(none)"
        raise _not_found(name, f" label {label!r}; its labels are: {known}")
    return number


def _resolve(conn: Connection, name: str, number: int) -> ResolvedPrompt:
    row = rows.get_version(conn, name, number)
    assert row is not None
    fragments: dict[str, templates.Fragment] = {}
    _collect_fragments(conn, row["content"], fragments, (name,))
    labels = [r["label"] for r in rows.labels(conn, name) if r["version"] == number]
    return ResolvedPrompt(
        name=name,
        version=number,
        hash=row["hash"],
        content=row["content"],
        labels=labels,
        fragments=fragments,
        note=row["note"],
        created_by=row["created_by"],
        created_at=row["created_at"],
    )


def _collect_fragments(
    conn: Connection,
    content: dict[str, Any],
    into: dict[str, templates.Fragment],
    stack: tuple[str, ...],
) -> None:
    texts = [m["content"] for m in content.get("messages") or []] + [content.get("text") or ""]
    for text in texts:
        for fragment_name, ref in templates.includes(text):
            key = templates.include_ref(fragment_name, ref)
            if fragment_name in stack:
                raise errors.InvalidRequest(
                    f"include cycle: {' -> '.join((*stack, fragment_name))}"
                )
            if key in into:
                continue
            version = int(ref) if ref and ref.isdigit() else None
            try:
                number = _version_number(conn, fragment_name, None if version else ref, version)
            except errors.NotFound as exc:
                raise errors.InvalidRequest(f"include {{{{> {key}}}}}: {exc.message}") from None
            row = rows.get_version(conn, fragment_name, number)
            assert row is not None
            if "text" not in row["content"]:
                raise errors.InvalidRequest(
                    f"include {{{{> {key}}}}}: prompt {fragment_name!r} is a chat prompt, not a fragment"
                )
            into[key] = templates.Fragment(
                fragment_name, number, row["hash"], row["content"]["text"]
            )
            _collect_fragments(conn, row["content"], into, (*stack, fragment_name))


def resolve_in(
    conn: Connection, name: str, *, label: str | None = None, version: int | None = None
) -> ResolvedPrompt:
    """Like `get`, inside the caller's transaction."""
    return _resolve(conn, name, _version_number(conn, name, label, version))


def get(
    store: Store, name: str, *, label: str | None = None, version: int | None = None
) -> ResolvedPrompt:
    """A version by number, or the one a label points at (default: production)."""
    with store.connect() as conn:
        return _resolve(conn, name, _version_number(conn, name, label, version))


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
    actor: str = "admin",
) -> tuple[ResolvedPrompt, bool]:
    """Store a version unless identical content exists; (version, created)."""
    canonical = content.canonical()
    digest = content_hash(canonical)
    meta = {
        k: v
        for k, v in (("description", description), ("owner", owner), ("tags", tags))
        if v is not None
    }
    for attempt in range(3):
        try:
            with store.begin() as conn:
                rows.upsert_prompt(conn, name, meta)
                existing = rows.version_by_hash(conn, name, digest)
                created = existing is None
                if existing is None:
                    number = rows.latest_version_number(conn, name) + 1
                    rows.insert_version(
                        conn,
                        {
                            "prompt_name": name,
                            "version": number,
                            "hash": digest,
                            "content": canonical,
                            "note": note,
                            "created_by": actor,
                            "created_at": datetime.now(UTC),
                        },
                    )
                    _collect_fragments(conn, canonical, {}, (name,))  # refuse bad includes now
                    rows.add_event(
                        conn, kind="version_created", prompt_name=name, version=number, hash=digest
                    )
                    audit.record(
                        conn,
                        actor=actor,
                        action="prompt.version",
                        target=f"prompt:{name}",
                        after={"version": number, "hash": digest},
                        reason=note,
                    )
                else:
                    number = existing["version"]
                for label in labels or ():
                    _move(conn, name, label, number, actor, note, rollback=False)
                if created or labels or meta:
                    changes.bump(conn)
                return _resolve(conn, name, number), created
        except IntegrityError:
            if attempt == 2:  # another writer took the same number three times running
                raise
    raise AssertionError("unreachable")


def _move(
    conn: Connection,
    name: str,
    label: str,
    version: int,
    actor: str,
    reason: str | None,
    *,
    rollback: bool,
) -> None:
    before = rows.label_version(conn, name, label)
    if before == version and not rollback:
        return
    rows.set_label(conn, name, label, version, actor)
    target = rows.get_version(conn, name, version)
    assert target is not None
    rows.add_event(
        conn,
        kind="label_moved",
        prompt_name=name,
        label=label,
        version=version,
        previous_version=before,
        hash=target["hash"],
        rollback=rollback,
    )
    audit.record(
        conn,
        actor=actor,
        action="prompt.rollback" if rollback else "prompt.label",
        target=f"prompt:{name}",
        before={"label": label, "version": before},
        after={"label": label, "version": version},
        reason=reason,
    )


def move_label(
    store: Store,
    name: str,
    label: str,
    version: int,
    *,
    actor: str = "admin",
    reason: str | None = None,
) -> ResolvedPrompt:
    _check_label_name(label)
    with store.begin() as conn:
        _version_number(conn, name, None, version)
        _move(conn, name, label, version, actor, reason, rollback=False)
        changes.bump(conn)
        return _resolve(conn, name, version)


def rollback_label(
    store: Store, name: str, label: str, *, actor: str = "admin", reason: str | None = None
) -> ResolvedPrompt:
    """Point the label back at the version it had before its current one.

    Rollbacks stack: rolling back twice goes two assignments back, not forth and back.
    """
    with store.begin() as conn:
        _version_number(conn, name, label, None)
        stack: list[int] = []
        for event in rows.label_events(conn, name, label):
            if event["kind"] == "label_deleted":
                stack = []
            elif event["rollback"]:
                stack.pop()
            else:
                stack.append(event["version"])
        if len(stack) < 2:
            raise errors.Conflict(
                f"label {label!r} of prompt {name!r} has no earlier version to roll back to"
            )
        _move(conn, name, label, stack[-2], actor, reason, rollback=True)
        changes.bump(conn)
        return _resolve(conn, name, stack[-2])


def delete_label(
    store: Store, name: str, label: str, *, actor: str = "admin", reason: str | None = None
) -> None:
    with store.begin() as conn:
        before = _version_number(conn, name, label, None)
        rows.delete_label(conn, name, label)
        rows.add_event(
            conn, kind="label_deleted", prompt_name=name, label=label, previous_version=before
        )
        audit.record(
            conn,
            actor=actor,
            action="prompt.label_delete",
            target=f"prompt:{name}",
            before={"label": label, "version": before},
            reason=reason,
        )
        changes.bump(conn)


def _check_label_name(label: str) -> None:
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$", label) or label.isdigit():
        raise errors.InvalidRequest(
            f"invalid label {label!r}: letters, digits, '.', '_', '-', not only digits",
            param="label",
        )


def list_prompts(store: Store) -> list[dict[str, Any]]:
    with store.connect() as conn:
        label_rows = rows.labels(conn)
        out = []
        for prompt in rows.all_prompts(conn):
            out.append(
                {
                    "name": prompt["name"],
                    "description": prompt["description"],
                    "owner": prompt["owner"],
                    "tags": prompt["tags"] or [],
                    "latest_version": rows.latest_version_number(conn, prompt["name"]),
                    "labels": {
                        r["label"]: r["version"]
                        for r in label_rows
                        if r["prompt_name"] == prompt["name"]
                    },
                }
            )
        return out


def list_versions(store: Store, name: str) -> list[dict[str, Any]]:
    with store.connect() as conn:
        if rows.get_prompt(conn, name) is None:
            raise _not_found(name)
        labels = rows.labels(conn, name)
        return [
            {
                "version": v["version"],
                "hash": v["hash"],
                "note": v["note"],
                "created_by": v["created_by"],
                "created_at": v["created_at"].isoformat(),
                "labels": [label["label"] for label in labels if label["version"] == v["version"]],
            }
            for v in rows.versions(conn, name)
        ]


def history(store: Store, name: str) -> list[dict[str, Any]]:
    with store.connect() as conn:
        if rows.get_prompt(conn, name) is None:
            raise _not_found(name)
        return audit.history(conn, f"prompt:{name}", limit=1000)


def events_after(store: Store, last_id: int) -> list[dict[str, Any]]:
    with store.connect() as conn:
        return rows.events_after(conn, last_id)


def last_event_id(store: Store) -> int:
    with store.connect() as conn:
        return rows.last_event_id(conn)
