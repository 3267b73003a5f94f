"""Making a release: the prompt (a version, or a label resolved now) with every fragment
it includes frozen to a version, on a model of the catalog, with checked parameters; and
the check that a release about to be served again is on a model that still serves."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection

from pilothouse import errors
from pilothouse.config import ModelSpec
from pilothouse.registry import catalog, composition, names
from pilothouse.registry import prompts as prompt_registry
from pilothouse.releases.params import check_params
from pilothouse.releases.release import Release
from pilothouse.store import releases as rows


def new_release(
    conn: Connection,
    models: Mapping[str, ModelSpec],
    route: str,
    prompt: str | None,
    model: str | None,
    params: Mapping[str, Any] | None,
    note: str | None,
    actor: str,
) -> Release:
    """Make (and store) the release `prompt` on `model` with `params` would be: the prompt
    version and every fragment it includes resolved now and frozen. InvalidRequest for an
    unknown or retired model, a fragment, or a prompt that would not render."""
    today = date.today()
    if not prompt:
        raise errors.InvalidRequest(
            "a release needs a prompt: NAME@VERSION or NAME@LABEL", param="prompt"
        )
    if not model:
        serving = sorted(m for m, spec in models.items() if not catalog.is_retired(spec, today))
        raise errors.InvalidRequest(
            f"a release needs a model alias: one of {', '.join(serving)}", param="model"
        )
    spec = models.get(model)
    if spec is None:
        raise errors.InvalidRequest(
            f"unknown model alias {model!r}; known: {', '.join(sorted(models))}",
            param="model",
        )
    if catalog.is_retired(spec, today):
        successor = f"; use its successor {spec.successor!r}" if spec.successor else ""
        raise errors.InvalidRequest(f"model {model!r} is retired{successor}", param="model")
    try:
        ref = names.parse_ref(prompt)
    except names.InvalidName as exc:
        raise errors.InvalidRequest(str(exc), param="prompt") from None
    resolved = prompt_registry.resolve_in(conn, ref.name, label=ref.label, version=ref.version)
    if resolved.content.get("messages") is None:
        raise errors.InvalidRequest(
            f"prompt {ref.name!r} is a fragment; a release needs a chat prompt", param="prompt"
        )
    problems = composition.variable_problems(resolved.name, resolved.content, resolved.fragments)
    if problems:
        raise errors.InvalidRequest(
            f"{resolved.name}@{resolved.version} would not render: {'; '.join(problems)}",
            param="prompt",
        )
    row = {
        "id": "rel_" + secrets.token_hex(6),
        "route": route,
        "prompt_name": resolved.name,
        "prompt_version": resolved.version,
        "prompt_hash": resolved.hash,
        "model_alias": model,
        "params": check_params(params or {}),
        "fragments": composition.frozen_record(resolved.fragments),
        "composition_hash": resolved.composition_hash,
        "note": note,
        "created_by": actor,
        "created_at": datetime.now(UTC),
    }
    rows.insert_release(conn, row)
    return Release.from_row(row)


def refuse_unservable(
    models: Mapping[str, ModelSpec], release: Release, what: str, force: bool
) -> dict[str, Any] | None:
    """Conflict when `release` pins a retired or unknown model, unless forced."""
    spec = models.get(release.model_alias)
    if spec is None:
        problem = f"model alias {release.model_alias!r} is not in this deployment's catalog"
    elif catalog.is_retired(spec, date.today()):
        successor = f"; its successor is {spec.successor!r}" if spec.successor else ""
        problem = f"model {release.model_alias!r} is retired{successor}"
    else:
        return None
    if not force:
        raise errors.Conflict(
            f"{what} would serve release {release.id}, whose {problem}: every call "
            "would be refused",
            hint="promote a release on a current model instead, or force it with a reason",
            code="release_not_servable",
            details={"release": release.id, "model": release.model_alias},
        )
    return {"forced": True, "problem": problem}
