"""`pilothouse can-i-promote`: the promotion gate's answer for a candidate, without
promoting anything. The same check a label move or a promotion runs in its transaction,
so a yes here is a yes there unless the evidence or the contracts change in between."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pilothouse import errors
from pilothouse.config import ModelSpec, PromotionSpec
from pilothouse.contracts import gate, subjects
from pilothouse.registry import names
from pilothouse.releases.params import check_params
from pilothouse.releases.release import Release
from pilothouse.store import Store
from pilothouse.store import releases as release_rows


def prompt_label(store: Store, policy: PromotionSpec, ref: str, label: str) -> dict[str, Any]:
    """May `label` of the prompt point at the version `ref` names (NAME@VERSION, or the
    version a label points at now)?"""
    try:
        names.check_label(label)
    except names.InvalidName as exc:
        raise errors.InvalidRequest(str(exc), param="label") from None
    with store.connect() as conn:
        candidate = subjects.for_prompt(conn, ref)
        return gate.check_prompt(conn, policy, candidate, label).public()


def route_release(
    store: Store,
    policy: PromotionSpec,
    models: Mapping[str, ModelSpec],
    route: str,
    *,
    from_canary: bool,
    prompt: str | None,
    model: str | None,
    params: Mapping[str, Any],
) -> dict[str, Any]:
    """May the route's running canary (`from_canary`), or the release `prompt`, `model`
    and `params` would make, become its active release?"""
    with store.connect() as conn:
        state = release_rows.get_route(conn, route)
        if state is None:
            raise errors.NotFound(
                f"no route {route!r}", hint="`pilothouse releases ls` lists routes"
            )
        if from_canary:
            release_id = state["canary_release_id"]
            row = release_rows.get_release(conn, release_id) if release_id else None
            if row is None:
                raise errors.Conflict(f"route {route!r} has no canary to promote")
            candidate = subjects.for_release(Release.from_row(row))
        else:
            if not prompt or not model:
                raise errors.InvalidRequest("give `prompt` and `model`, or `from_canary`")
            if model not in models:
                raise errors.InvalidRequest(
                    f"unknown model alias {model!r}; known: {', '.join(sorted(models))}",
                    param="model",
                )
            candidate = subjects.for_new_release(conn, route, prompt, model, check_params(params))
        return gate.check_release(conn, policy, candidate).public()
