"""What evidence is about: one exact candidate, named by a hash.

- A prompt version is named by its *composition hash*: the version's content and every
  fragment version it includes as the registry composes it now (what readers of a label
  get once the label points at it). A fragment label that moves makes a new candidate.
- A release (made, or about to be made) is named by its *fingerprint*: the hash of its
  composition hash, model alias and parameters, the three things a release freezes. Two
  releases with the same fingerprint serve the same thing, so evidence for one (a canary)
  holds for the other (the release a direct promotion would make).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection

from pilothouse import errors
from pilothouse.registry import composition, names
from pilothouse.releases.release import Release
from pilothouse.store import prompts as prompt_rows
from pilothouse.store import releases as release_rows


@dataclass(frozen=True)
class Candidate:
    """A prompt version, or a release of a route, about to be promoted or verified."""

    kind: str  # prompt | route
    name: str  # the prompt, or the route
    prompt: str  # NAME@VERSION of the prompt it serves
    composition_hash: str
    hash: str  # the evidence key: composition hash (prompt) or fingerprint (route)
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    release_id: str | None = None

    @property
    def ref(self) -> str:
        if self.kind == "prompt":
            return self.prompt
        made = f" ({self.release_id})" if self.release_id else ""
        return f"route:{self.name}: {self.prompt} on {self.model}{made}"

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "name": self.name,
            "ref": self.ref,
            "prompt": self.prompt,
            "composition_hash": self.composition_hash,
            "hash": self.hash,
        }
        if self.kind == "route":
            out.update(model=self.model, params=self.params, release=self.release_id)
        return out


def fingerprint(composition_hash: str, model: str, params: Mapping[str, Any]) -> str:
    """What a release serves, as one hash."""
    canonical = {"composition_hash": composition_hash, "model": model, "params": dict(params)}
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


def resolve_prompt(conn: Connection, ref: str) -> composition.ResolvedPrompt:
    """NAME@VERSION or NAME@LABEL composed now; InvalidRequest, NotFound or Conflict."""
    try:
        parsed = names.parse_ref(ref)
    except names.InvalidName as exc:
        raise errors.InvalidRequest(str(exc), param="prompt") from None
    number = composition.version_number(conn, parsed.name, parsed.label, parsed.version)
    try:
        return composition.resolve(conn, parsed.name, number)
    except composition.Unresolvable as exc:
        raise errors.Conflict(
            f"prompt {parsed.name}@{number} cannot be composed: {exc}",
            code="unresolvable_prompt",
        ) from None


def for_prompt(conn: Connection, ref: str) -> Candidate:
    prompt = resolve_prompt(conn, ref)
    return Candidate(
        kind="prompt",
        name=prompt.name,
        prompt=f"{prompt.name}@{prompt.version}",
        composition_hash=prompt.composition_hash,
        hash=prompt.composition_hash,
    )


def for_release(release: Release) -> Candidate:
    composed = release.composition_hash or release.prompt_hash
    return Candidate(
        kind="route",
        name=release.route,
        prompt=f"{release.prompt_name}@{release.prompt_version}",
        composition_hash=composed,
        hash=fingerprint(composed, release.model_alias, release.params),
        model=release.model_alias,
        params=dict(release.params),
        release_id=release.id,
    )


def for_new_release(
    conn: Connection, route: str, prompt_ref: str, model: str, params: Mapping[str, Any]
) -> Candidate:
    """The release `promote --prompt --model --param` would make now."""
    prompt = resolve_prompt(conn, prompt_ref)
    return Candidate(
        kind="route",
        name=route,
        prompt=f"{prompt.name}@{prompt.version}",
        composition_hash=prompt.composition_hash,
        hash=fingerprint(prompt.composition_hash, model, params),
        model=model,
        params=dict(params),
    )


def subject_exists(conn: Connection, kind: str, name: str) -> None:
    """NotFound when there is no such prompt (or route); InvalidRequest for a fragment."""
    if kind == "prompt":
        if prompt_rows.get_prompt(conn, name) is None:
            raise errors.NotFound(
                f"no prompt {name!r}", hint="`pilothouse prompts ls` lists prompts"
            )
        latest = prompt_rows.latest_version_number(conn, name)
        row = prompt_rows.get_version(conn, name, latest) if latest else None
        if row is not None and isinstance(row["content"], dict) and "text" in row["content"]:
            raise errors.InvalidRequest(
                f"prompt {name!r} is a fragment: a contract is on a chat prompt or a route",
                param="prompt",
            )
    elif release_rows.get_route(conn, name) is None:
        raise errors.NotFound(f"no route {name!r}", hint="`pilothouse releases ls` lists routes")
