"""A prompt version composed with its fragments: resolved live (by the labels as they are
now, for the registry's readers) or frozen (the exact versions a release took), checked
as a whole (every include resolves, every variable any fragment uses is declared by the
includer), and hashed as a whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from pilothouse import errors
from pilothouse.registry import templates
from pilothouse.store import prompts as rows
from pilothouse.store.tolerant import DamagedRow


class Unresolvable(Exception):
    """A composition that cannot be built: a missing include, a cycle, a chat prompt
    included as a fragment, or a version that is not in the store."""


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

    @property
    def composition_hash(self) -> str:
        return composition_hash(self.hash, self.fragments)

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "hash": self.hash,
            "messages": self.content.get("messages"),
            "text": self.content.get("text"),
            "variables": self.content.get("variables", {}),
            "tools": self.content.get("tools"),
            "response_format": self.content.get("response_format"),
            "fragments": {
                ref: {"name": f.name, "version": f.version, "hash": f.hash, "text": f.text}
                for ref, f in sorted(self.fragments.items())
            },
            "composition_hash": self.composition_hash,
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
        variables = templates.parse_variables(self.content.get("variables"))
        return templates.render(
            self.name, self.content["messages"], variables, values, self.fragments
        )


def composition_hash(prompt_hash: str, fragments: Mapping[str, templates.Fragment]) -> str:
    """The hash of a version and the exact fragment versions it includes; the version's own
    hash when it includes nothing. (Migration 0006 writes the same function out.)"""
    if not fragments:
        return prompt_hash
    parts = [prompt_hash]
    for ref, fragment in sorted(fragments.items()):
        parts.append(f"{ref}={fragment.name}@{fragment.version}:{fragment.hash}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def label_of(ref: str) -> str | None:
    """The label an include follows (`tone@production` -> production), None for a pin."""
    after = ref.rpartition("@")[2]
    return None if after.isdigit() else after


def not_found(name: str, detail: str = "") -> errors.NotFound:
    return errors.NotFound(
        f"no prompt {name!r}{detail}", hint="`pilothouse prompts ls` lists prompts and labels"
    )


def version_number(conn: Connection, name: str, label: str | None, version: int | None) -> int:
    """The version a label points at (default: production), or `version` checked to exist."""
    if version is not None:
        if not rows.version_exists(conn, name, version):
            latest = rows.latest_version_number(conn, name)
            if latest == 0:
                raise not_found(name)
            raise not_found(name, f" version {version} (versions are 1 to {latest})")
        return version
    label = label or templates.DEFAULT_LABEL
    number = rows.label_version(conn, name, label)
    if number is None:
        if rows.get_prompt(conn, name) is None:
            raise not_found(name)
        known = ", ".join(r["label"] for r in rows.labels(conn, name)) or "(none)"
        raise not_found(name, f" label {label!r}; its labels are: {known}")
    return number


def template_texts(content: Mapping[str, Any]) -> list[str]:
    """The texts of a prompt's content that may hold template tags (its messages', its
    fragment text)."""
    texts = [m.get("content") for m in content.get("messages") or []]
    texts.append(content.get("text") or "")
    return [t for t in texts if isinstance(t, str)]


def resolve_row(conn: Connection, name: str, number: int) -> dict[str, Any]:
    """Version `number` of `name` as stored; Unresolvable if missing or damaged."""
    try:
        row = rows.get_version(conn, name, number)
    except DamagedRow as exc:
        raise Unresolvable(str(exc)) from None
    if row is None:
        raise Unresolvable(f"prompt {name}@{number} is not in the store")
    if not isinstance(row["content"], dict):
        raise Unresolvable(f"prompt {name}@{number} has no readable content")
    return row


def collect_fragments(
    conn: Connection, name: str, content: Mapping[str, Any]
) -> dict[str, templates.Fragment]:
    """Every include of `content`, recursively, resolved by the labels as they are now."""
    found: dict[str, templates.Fragment] = {}
    _collect(conn, content, found, (name,))
    return found


def _collect(
    conn: Connection,
    content: Mapping[str, Any],
    into: dict[str, templates.Fragment],
    stack: tuple[str, ...],
) -> None:
    for text in template_texts(content):
        for fragment_name, ref in templates.includes(text):
            key = templates.include_ref(fragment_name, ref)
            if fragment_name in stack:
                raise Unresolvable(f"include cycle: {' -> '.join((*stack, fragment_name))}")
            if key in into:
                continue
            pinned = int(ref) if ref and ref.isdigit() else None
            try:
                number = version_number(conn, fragment_name, None if pinned else ref, pinned)
            except errors.NotFound as exc:
                raise Unresolvable(f"include {{{{> {key}}}}}: {exc.message}") from None
            try:
                row = resolve_row(conn, fragment_name, number)
            except Unresolvable as exc:
                raise Unresolvable(f"include {{{{> {key}}}}}: {exc}") from None
            if not isinstance(row["content"], dict) or "text" not in row["content"]:
                raise Unresolvable(
                    f"include {{{{> {key}}}}}: prompt {fragment_name!r} is a chat prompt, "
                    "not a fragment"
                )
            into[key] = templates.Fragment(
                fragment_name, number, row["hash"], row["content"]["text"]
            )
            _collect(conn, row["content"], into, (*stack, fragment_name))


def variable_problems(
    name: str, content: Mapping[str, Any], fragments: Mapping[str, templates.Fragment]
) -> list[str]:
    """What would stop a chat prompt rendering: a fragment using a variable the includer
    does not declare (fragments' placeholders belong to their includer)."""
    if "messages" not in content:
        return []
    declared = set(content.get("variables") or {})
    problems = []
    for ref, fragment in sorted(fragments.items()):
        undeclared = sorted(templates.placeholders(fragment.text) - declared)
        if undeclared:
            listed = ", ".join("{{" + v + "}}" for v in undeclared)
            problems.append(
                f"fragment {ref} (version {fragment.version}) uses {listed}, which "
                f"{name} does not declare under `variables`"
            )
    return problems


def check(
    name: str, content: Mapping[str, Any], fragments: Mapping[str, templates.Fragment]
) -> None:
    """Unresolvable unless the composed prompt would render (given its variables)."""
    problems = variable_problems(name, content, fragments)
    if problems:
        raise Unresolvable("; ".join(problems))


def resolve(conn: Connection, name: str, number: int) -> ResolvedPrompt:
    """Version `number` of `name` with its includes resolved live; Unresolvable when an
    include cannot be (the version itself must exist)."""
    row = resolve_row(conn, name, number)
    fragments = collect_fragments(conn, name, row["content"])
    labels = [r["label"] for r in rows.labels(conn, name) if r["version"] == number]
    return from_row(row, labels, fragments)


def resolve_frozen(
    conn: Connection, name: str, number: int, frozen: Mapping[str, Mapping[str, Any]]
) -> ResolvedPrompt:
    """Version `number` of `name` with exactly the fragment versions in `frozen` (what a
    release took when it was made); labels are not read. Unresolvable when a frozen
    version is missing, changed, or the set does not cover every include."""
    keys = [(name, number)]
    for ref, entry in frozen.items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("version"), int):
            raise Unresolvable(f"frozen fragment {ref!r} is not a version record")
        keys.append((str(entry.get("name")), entry["version"]))
    try:
        found = rows.versions_by_key(conn, keys)
    except DamagedRow as exc:
        raise Unresolvable(str(exc)) from None
    row = found.get((name, number))
    if row is None:
        raise Unresolvable(f"prompt {name}@{number} is not in the store")
    fragments: dict[str, templates.Fragment] = {}
    for ref, entry in frozen.items():
        version = found.get((str(entry["name"]), entry["version"]))
        if version is None:
            raise Unresolvable(f"fragment {entry['name']}@{entry['version']} is not in the store")
        if version["hash"] != entry.get("hash"):
            raise Unresolvable(
                f"fragment {entry['name']}@{entry['version']} no longer has the hash the "
                "release was made with"
            )
        if not isinstance(version["content"], dict) or "text" not in version["content"]:
            raise Unresolvable(f"fragment {entry['name']}@{entry['version']} has no text")
        fragments[ref] = templates.Fragment(
            version["prompt_name"], version["version"], version["hash"], version["content"]["text"]
        )
    if not isinstance(row["content"], dict):
        raise Unresolvable(f"prompt {name}@{number} has no readable content")
    missing = _includes_of(row["content"], fragments) - set(fragments)
    if missing:
        raise Unresolvable(f"includes {', '.join(sorted(missing))} were not frozen")
    return from_row(row, [], fragments)


def _includes_of(
    content: Mapping[str, Any], fragments: Mapping[str, templates.Fragment]
) -> set[str]:
    refs: set[str] = set()
    for text in [*template_texts(content), *(f.text for f in fragments.values())]:
        refs.update(templates.include_ref(n, r) for n, r in templates.includes(text))
    return refs


def from_row(
    row: Mapping[str, Any], labels: list[str], fragments: dict[str, templates.Fragment]
) -> ResolvedPrompt:
    return ResolvedPrompt(
        name=row["prompt_name"],
        version=row["version"],
        hash=row["hash"],
        content=row["content"],
        labels=labels,
        fragments=fragments,
        note=row["note"],
        created_by=row["created_by"],
        created_at=row["created_at"],
    )


def frozen_record(fragments: Mapping[str, templates.Fragment]) -> dict[str, dict[str, Any]]:
    """How a release stores its fragments: name, version, hash and the label it followed."""
    return {
        ref: {"name": f.name, "version": f.version, "hash": f.hash, "label": label_of(ref)}
        for ref, f in sorted(fragments.items())
    }
