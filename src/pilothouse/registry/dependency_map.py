"""Who depends on a prompt (`pilothouse deps PROMPT`): what its labels point at, which
routes serve which version of it (as their prompt, or frozen as a fragment of theirs),
which labelled prompts include it now, and who holds contracts on it and on those routes,
and which suites gate it. Built on the same reading of labels and releases as
registry/dependents.py, which guards label changes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from pilothouse.config import PromotionSpec
from pilothouse.registry import composition, dependents
from pilothouse.store import Store
from pilothouse.store import contracts as contract_rows
from pilothouse.store import prompts as prompt_rows
from pilothouse.store import releases as release_rows
from pilothouse.store.tolerant import DamagedRow


def dependency_map(store: Store, name: str, policy: PromotionSpec) -> dict[str, Any]:
    """The map for prompt `name`; NotFound when there is no such prompt."""
    with store.connect() as conn:
        if prompt_rows.get_prompt(conn, name) is None:
            raise composition.not_found(name)
        labels = {r["label"]: r["version"] for r in prompt_rows.labels(conn, name)}
        routes = _routes(conn, name)
        includers = _includers(conn, name)
        route_names = sorted({r["route"] for r in routes})
        contracts = [_contract(r) for r in contract_rows.on_subject(conn, "prompt", name)] + [
            _contract(r) for r in contract_rows.on_subjects(conn, "route", route_names)
        ]
    suites = [{"suite": s, "prompt": name} for s in policy.suites_for("prompt", name)]
    suites += [
        {"suite": s, "route": route}
        for route in route_names
        for s in policy.suites_for("route", route)
    ]
    return {
        "prompt": name,
        "labels": labels,
        "routes": routes,
        "included_by": includers,
        "contracts": contracts,
        "gating_suites": suites,
    }


def _routes(conn: Connection, name: str) -> list[dict[str, Any]]:
    """Every active or canary release that serves `name` or froze it as a fragment."""
    states = [r for r in release_rows.all_routes(conn) if "problem" not in r]
    ids = [r[k] for r in states for k in ("active_release_id", "canary_release_id") if r[k]]
    releases = release_rows.releases_by_id(conn, ids)
    found = []
    for route in states:
        for arm in ("active", "canary"):
            release = releases.get(route[f"{arm}_release_id"] or "")
            if release is None:
                continue
            base = {
                "route": route["name"],
                "arm": arm,
                "release": release["id"],
                "serves": f"{release['prompt_name']}@{release['prompt_version']}",
                "model": release["model_alias"],
            }
            if arm == "canary":
                base["canary_weight"] = route["canary_weight"]
            if release["prompt_name"] == name:
                found.append({**base, "as": "prompt", "version": release["prompt_version"]})
            for ref, frozen in sorted((release.get("fragments") or {}).items()):
                if isinstance(frozen, dict) and frozen.get("name") == name:
                    found.append(
                        {**base, "as": "fragment", "include": ref, "version": frozen["version"]}
                    )
    return found


def _includers(conn: Connection, name: str) -> list[dict[str, Any]]:
    """Labelled versions of other prompts that include `name` as they compose now."""
    found = []
    for dependent, refs in dependents.users(conn):
        if dependent.kind != "prompt" or dependent.name == name:
            continue
        for ref in sorted(refs):
            if ref.rpartition("@")[0] != name:
                continue
            try:
                prompt = composition.resolve(conn, dependent.name, dependent.version)
                version: int | None = prompt.fragments[ref].version
            except (composition.Unresolvable, DamagedRow, KeyError):
                version = None
            found.append(
                {
                    "prompt": dependent.name,
                    "label": dependent.label,
                    "version": dependent.version,
                    "include": ref,
                    "includes_version": version,
                }
            )
    return found


def _contract(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        row["subject_kind"]: row["subject_name"],
        "consumer": row["consumer"],
        "name": row["name"],
        "status": row["status"],
        "activated_on": row["activated_on"],
    }
