"""Who depends on a label, and whether a change to it would break them.

A label change (a move, a delete, a rollback, a push with `--label`) is made inside its
transaction first; then every labelled prompt that included the label before the change
is composed again, as readers (SDK clients) would get it after the change. If one would
not render, the change is refused (Conflict naming them) and the transaction rolls back,
unless the caller forces it with a reason (then it is audited).

Routes are not broken by a label change: a release froze its fragments when it was made.
The routes whose releases took a fragment from the label are still named (`unaffected`),
since promoting the same prompt again would take the new state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from pilothouse import errors
from pilothouse.registry import composition, templates
from pilothouse.store import prompts as prompt_rows
from pilothouse.store import releases as release_rows
from pilothouse.store.tolerant import DamagedRow


@dataclass(frozen=True)
class Dependent:
    kind: str  # "prompt" (a labelled version) or "release" (a route's active/canary release)
    name: str  # the prompt, or the route
    ref: str  # `triage@production (version 3)`, or `active release rel_..., triage@2`
    prompt: str
    version: int
    problem: str = ""
    label: str | None = None  # for a prompt: the label readers follow

    def public(self) -> dict[str, Any]:
        out = {"kind": self.kind, "name": self.name, "ref": self.ref, "problem": self.problem}
        return {k: v for k, v in out.items() if v}

    def describe(self) -> str:
        what = f"prompt {self.ref}" if self.kind == "prompt" else f"route {self.name} ({self.ref})"
        return f"{what}: {self.problem}" if self.problem else what


class Watch:
    """Collects, before label changes, who uses each changed label; `check` re-composes
    them after the changes and returns those that would not render."""

    def __init__(self, conn: Connection):
        self._conn = conn
        self._watched: dict[tuple[str, str, int], Dependent] = {}
        self._own: list[tuple[str, int, str]] = []  # (prompt, version, how it is reached)
        # Read at the first label change, before any (and as the registry grows, only
        # the versions and releases with includes are read):
        self._graph: dict[str, set[str]] | None = None  # fragment -> prompts that include it
        self._fragment_refs: list[tuple[str, str, str, str]] | None = None  # live releases'

    def label_changing(self, name: str, label: str) -> list[Dependent]:
        """Call before moving or deleting `label` of `name`; who includes it now."""
        key = templates.include_ref(name, label)
        found = []
        for dependent, fragments in self._users(name, key):
            if key in fragments:
                self._watched[(dependent.kind, dependent.ref, dependent.version)] = dependent
                found.append(dependent)
        return found

    def version_served(self, name: str, version: int, how: str) -> None:
        """A label now points at `version` of `name`: it must compose and render itself."""
        self._own.append((name, version, how))

    def check(self) -> tuple[list[Dependent], list[Dependent]]:
        """(broken, unaffected): labelled prompts that would no longer render, as their
        labels point after the changes; routes whose frozen releases used a changed label."""
        broken: dict[tuple[str, int], Dependent] = {}
        for name, version, how in self._own:
            problem = self._problem(name, version)
            if problem:
                broken[(name, version)] = Dependent("prompt", name, how, name, version, problem)
        unaffected = []
        for dependent in self._watched.values():
            if dependent.kind == "release":
                unaffected.append(dependent)
                continue
            assert dependent.label is not None
            now = prompt_rows.label_version(self._conn, dependent.name, dependent.label)
            if now is None or (dependent.name, now) in broken:
                continue  # the label went away with this change, or is already named
            problem = self._problem(dependent.name, now)
            if problem:
                ref = f"{dependent.name}@{dependent.label} (version {now})"
                broken[(dependent.name, now)] = Dependent(
                    "prompt", dependent.name, ref, dependent.name, now, problem, dependent.label
                )
        return list(broken.values()), unaffected

    def _problem(self, name: str, version: int) -> str:
        try:
            prompt = composition.resolve(self._conn, name, version)
            composition.check(name, prompt.content, prompt.fragments)
        except composition.Unresolvable as exc:
            return str(exc)
        return ""

    def _users(self, name: str, key: str) -> list[tuple[Dependent, set[str]]]:
        """The labelled versions and live releases that may use `key` (an include of
        `name`), each with the include refs it uses now. Only the prompts that can reach
        `name` through the include graph are composed, and only the releases whose
        frozen fragments mention `key` are read: a label nothing includes costs lookups
        in memory, however large the registry."""
        conn = self._conn
        users: list[tuple[Dependent, set[str]]] = []
        reaching = sorted(self._includers_of(name))
        for start in range(0, len(reaching), 500):
            for row in prompt_rows.labelled_with_includes(conn, reaching[start : start + 500]):
                user, label, version = row["prompt_name"], row["label"], row["version"]
                refs = self._refs_live(user, version)
                if refs:
                    ref = f"{user}@{label} (version {version})"
                    users.append((Dependent("prompt", user, ref, user, version, label=label), refs))
        if self._fragment_refs is None:
            self._fragment_refs = release_rows.live_fragment_refs(conn)
        arms = [(route, arm, rid) for route, arm, rid, text in self._fragment_refs if key in text]
        releases = release_rows.releases_by_id(conn, [release_id for _, _, release_id in arms])
        for route, arm, release_id in arms:
            release = releases.get(release_id)
            if release is None or not isinstance(release.get("fragments"), dict):
                continue
            refs = set(release["fragments"])
            if refs:
                ref = f"{arm} release {release['id']}, {release['prompt_name']}@{release['prompt_version']}"
                dependent = Dependent(
                    "release", route, ref, release["prompt_name"], release["prompt_version"]
                )
                users.append((dependent, refs))
        return users

    def _includers_of(self, name: str) -> set[str]:
        """The prompts with a version that includes `name`, directly or through other
        includes (any version, any label: a superset of those that use it now)."""
        if self._graph is None:
            self._graph = include_graph(self._conn)
        found: set[str] = set()
        todo = [name]
        while todo:
            for user in self._graph.get(todo.pop(), ()):
                if user not in found:
                    found.add(user)
                    todo.append(user)
        return found

    def _refs_live(self, name: str, version: int) -> set[str]:
        return _refs_live(self._conn, name, version)


def users(conn: Connection) -> list[tuple[Dependent, set[str]]]:
    """Every labelled version and live release with the include refs it uses now (a
    labelled version: as it composes now; a release: as it froze them)."""
    found: list[tuple[Dependent, set[str]]] = []
    for row in prompt_rows.labels(conn):
        name, label, version = row["prompt_name"], row["label"], row["version"]
        refs = _refs_live(conn, name, version)
        if refs:
            ref = f"{name}@{label} (version {version})"
            found.append((Dependent("prompt", name, ref, name, version, label=label), refs))
    routes = [r for r in release_rows.all_routes(conn) if "problem" not in r]
    ids = [r[k] for r in routes for k in ("active_release_id", "canary_release_id") if r[k]]
    releases = release_rows.releases_by_id(conn, ids)
    for route in routes:
        for arm in ("active", "canary"):
            release = releases.get(route[f"{arm}_release_id"] or "")
            if release is None or not isinstance(release.get("fragments"), dict):
                continue
            refs = set(release["fragments"])
            if refs:
                ref = (
                    f"{arm} release {release['id']}, "
                    f"{release['prompt_name']}@{release['prompt_version']}"
                )
                dependent = Dependent(
                    "release",
                    route["name"],
                    ref,
                    release["prompt_name"],
                    release["prompt_version"],
                )
                found.append((dependent, refs))
    return found


def _refs_live(conn: Connection, name: str, version: int) -> set[str]:
    try:
        row = prompt_rows.get_version(conn, name, version)
        if row is None or "{{>" not in str(row["content"]):
            return set()
        return set(composition.collect_fragments(conn, name, row["content"]))
    except (composition.Unresolvable, DamagedRow):
        return set()  # already broken before this change: not this change's doing


def refuse_or_record(
    broken: list[Dependent],
    unaffected: list[Dependent],
    *,
    what: str,
    force: bool,
    reason: str | None,
) -> dict[str, Any] | None:
    """Raise Conflict naming what `what` would break, unless forced (with a reason); the
    record to keep in the audit trail when forced."""
    if not broken:
        return None
    listed = "; ".join(d.describe() for d in broken)
    routes = [d.public() for d in unaffected]
    if not force:
        kept = (
            f" (routes keep serving their frozen releases: {', '.join(d.name for d in unaffected)})"
            if unaffected
            else ""
        )
        raise errors.Conflict(
            f"{what} would break {len(broken)} dependent(s): {listed}{kept}",
            hint="fix the dependents first, or force it with a reason "
            "(`--force --reason TEXT`; API: `force: true` and `reason`); forcing is audited",
            code="would_break_dependents",
            details={"dependents": [d.public() for d in broken], "routes_unaffected": routes},
        )
    require_reason(force, reason)
    return {"forced": True, "broken": [d.public() for d in broken], "routes_unaffected": routes}


def require_reason(force: bool, reason: str | None) -> None:
    if force and not (reason and reason.strip()):
        raise errors.InvalidRequest(
            "forcing a change needs a reason (kept in the audit trail)", param="reason"
        )


def include_graph(conn: Connection) -> dict[str, set[str]]:
    """For each prompt some version includes, the prompts with such a version (read from
    the versions with an include tag only; a damaged one is left out)."""
    graph: dict[str, set[str]] = {}
    for user, raw in prompt_rows.versions_with_includes(conn):
        try:
            content = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(content, dict):
            continue
        for text in composition.template_texts(content):
            for fragment, _ref in templates.includes(text):
                graph.setdefault(fragment, set()).add(user)
    return graph
