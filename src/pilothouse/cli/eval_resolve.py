"""What a suite names, fetched from the registry: its targets resolved (a route's release
and prompt, a prompt version, a candidate from the command line) and its dataset."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import click

from pilothouse.cli.eval_api import EvalApi, SuiteProblem
from pilothouse.evals import datasets
from pilothouse.evals.suite import Suite, SuiteTarget
from pilothouse.evals.targets import Target
from pilothouse.registry import names
from pilothouse.yamlfile import FileError


def select_targets(suite: Suite, options: Any) -> list[SuiteTarget]:
    targets = suite.targets
    if options.targets:
        names = [t.name for t in targets]
        unknown = [n for n in options.targets if n not in names]
        if unknown:
            raise SuiteProblem(
                f"--target {', '.join(unknown)}: the suite has no such target; it has "
                + ", ".join(names)
            )
        targets = [t for t in targets if t.name in options.targets]
    overrides = options.prompt or options.model or options.params or options.release
    if overrides and len(targets) > 1:
        raise SuiteProblem(
            f"the suite has {len(targets)} targets; --prompt, --model, --param and --release "
            "change one: pick it with --target NAME"
        )
    return targets


def resolve(
    suite: Suite, spec: SuiteTarget, options: Any, api: EvalApi, models: dict[str, Any]
) -> Target:
    """The suite target (or the candidate the command line builds from it), resolved."""
    arm = options.release or spec.release
    overrides = options.prompt or options.model or options.params
    if spec.route and not overrides:
        name = spec.name if options.release is None else f"{spec.route}/{arm}"
        return route_target(
            api, fetch_route(api, spec.route), arm, models, name=name, candidate=spec.candidate
        )
    base_prompt, base_model, base_params = spec.prompt, spec.model, spec.params_dict()
    if spec.route:  # a candidate for a route starts from what the route serves now
        current = fetch_route(api, spec.route).get(arm)
        if current is None:
            raise SuiteProblem(
                f"route {spec.route!r} has no {arm} release to build a candidate from"
            )
        base_prompt, base_model, base_params = (
            current["prompt"],
            current["model"],
            current["params"],
        )
    prompt = fetch_prompt(api, options.prompt or str(base_prompt))
    model = options.model or str(base_model)
    name = spec.name if not overrides else f"{prompt['name']}@{prompt['version']}/{model}"
    return Target(
        kind="prompt",
        prompt=prompt,
        model=model,
        params={**base_params, **options.params},
        name=name,
        candidate=spec.candidate,
        identity={"model": models.get(model, model)},
    )


def route_target(
    api: EvalApi,
    route: dict[str, Any],
    arm: str,
    models: dict[str, Any],
    *,
    name: str,
    candidate: bool = False,
) -> Target:
    """The target that calls `route` (GET /api/routes's entry) pinned to its `arm`
    (active or canary); SuiteProblem when the route has no such release."""
    release = route.get(arm)
    if release is None:
        raise SuiteProblem(f"route {route['name']!r} has no {arm} release")
    return Target(
        kind="route",
        route=route["name"],
        release=arm,
        name=name,
        candidate=candidate,
        release_info=release,
        release_prompt=fetch_prompt(api, release["prompt"]),
        identity={
            "release": release["id"],
            "prompt_hash": release["prompt_hash"],
            "params": release["params"],
            "model": models.get(release["model"], release["model"]),
        },
    )


def fetch_route(api: EvalApi, name: str) -> dict[str, Any]:
    """The route as GET /api/routes lists it; SuiteProblem naming the routes there are."""
    routes = {r["name"]: r for r in api.get("/api/routes")["data"]}
    if name not in routes:
        raise SuiteProblem(f"no route {name!r}; routes: {', '.join(sorted(routes)) or '(none)'}")
    return dict(routes[name])


def fetch_prompt(api: EvalApi, ref: str) -> dict[str, Any]:
    """The chat prompt version `ref` (NAME@VERSION or NAME@LABEL) names, as the registry
    serves it; SuiteProblem for a malformed reference, an unknown one or a fragment."""
    try:
        parsed = names.parse_ref(ref)
    except names.InvalidName as exc:
        raise SuiteProblem(str(exc)) from None
    if parsed.legacy:
        click.echo(
            f"warning: {ref!r}: write {parsed} (NAME@LABEL); NAME:LABEL is the old spelling",
            err=True,
        )
    name = parsed.name
    fetched = api.get(f"/api/prompts/{quote(name)}", version=parsed.version, label=parsed.label)
    if fetched.get("messages") is None:
        raise SuiteProblem(f"prompt {name!r} is a fragment: a target needs a chat prompt")
    return dict(fetched)


def dataset(suite: Suite, api: EvalApi) -> tuple[list[dict[str, Any]], list[str], dict[str, Any]]:
    path = suite.dataset_path()
    if path is not None:
        try:
            rows, where = datasets.load_located(path)
        except FileError as exc:
            raise SuiteProblem(
                "the dataset is not valid:\n  " + "\n  ".join(exc.problems)
            ) from None
        return (
            rows,
            where,
            {"source": str(path), "hash": datasets.dataset_hash(rows), "rows": len(rows)},
        )
    ref = suite.spec.dataset
    assert not isinstance(ref, str)
    return stored_dataset(api, ref.name, ref.version)


def stored_dataset(
    api: EvalApi, name: str, version: int | None
) -> tuple[list[dict[str, Any]], list[str], dict[str, Any]]:
    """A dataset version the server keeps (None: the latest): its rows, where each row
    came from (`NAME@V row N`) and what a manifest says of it."""
    stored = api.get(f"/api/datasets/{quote(name)}", version=version)
    source = f"{stored['name']}@{stored['version']}"
    where = [f"{source} row {i + 1}" for i in range(len(stored["rows"]))]
    return (
        stored["rows"],
        where,
        {"source": source, "hash": stored["hash"], "rows": len(stored["rows"])},
    )


def models_in(manifest: dict[str, Any]) -> dict[str, Any]:
    """The GET /v1/models entries a recorded run resolved its aliases to."""
    found: dict[str, Any] = {}
    identities = [t.get("identity") for t in manifest.get("targets") or []]
    identities += [(manifest.get(k) or {}).get("identity") for k in ("judge", "embedding_model")]
    for identity in identities:
        for entry in (identity, identity.get("model") if isinstance(identity, dict) else None):
            if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                found[entry["id"]] = entry
    return found
