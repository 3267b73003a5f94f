"""Changelog entries: what a promotion, canary change or rollback of a route, or a move of
a protected prompt label, changed, and what the gate said; written in the transaction of
the change itself, with one webhook delivery per subscriber, so neither can be lost.

An entry, as `GET /api/changelog` and the webhooks (`data` of event `changelog.entry`)
carry it:

    {"id": 12, "at": "...", "subject": {"kind": "prompt", "name": "triage"},
     "action": "label_move",          # label_move | label_rollback | include_move (prompts);
                                      # promote | canary | canary_stop | rollback (routes)
     "author": "admin", "reason": "...", "forced": false, "forced_past": [],
     "change": {...},                 # prompts: label, from/to {version, hash, composition_hash}
                                      # routes: arm, from/to {release, prompt, composition_hash,
                                      #   model, params, fragments}, canary_weight from/to
     "changed": ["version"],          # what differs: version, fragments, prompt, model, params.*
     "gate": {...} | null,            # the promotion gate's report on the new state
     "diff": null}                    # the semantic diff summary, when a dataset is attached
"""

from __future__ import annotations

import contextlib
import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from pilothouse.config import CHANGELOG_WEBHOOK_PREFIX
from pilothouse.contracts.gate import GateReport
from pilothouse.registry import composition
from pilothouse.releases.release import Release
from pilothouse.store import changelog as rows
from pilothouse.store import deliveries
from pilothouse.store import prompts as prompt_rows
from pilothouse.store.tolerant import DamagedRow

EVENT = "changelog.entry"


def prompt_state(conn: Connection, name: str, version: int | None) -> dict[str, Any] | None:
    """A prompt version as an entry records it: its hashes and the fragment versions it
    composes with now (with `problem` when it does not compose)."""
    if version is None:
        return None
    try:
        resolved = composition.resolve(conn, name, version)
        return {
            "version": version,
            "hash": resolved.hash,
            "composition_hash": resolved.composition_hash,
            "fragments": {ref: f.version for ref, f in sorted(resolved.fragments.items())},
        }
    except (composition.Unresolvable, DamagedRow) as exc:
        row = None
        with contextlib.suppress(DamagedRow):
            row = prompt_rows.get_version(conn, name, version)
        return {"version": version, "hash": row["hash"] if row else None, "problem": str(exc)}


def label_entry(
    conn: Connection,
    *,
    name: str,
    label: str,
    before: int | None,
    after: int,
    rollback: bool,
    actor: str,
    reason: str | None,
    gate: GateReport | None,
    forced: dict[str, Any] | None,
) -> dict[str, Any]:
    """The entry for pointing protected label `label` of prompt `name` at `after`."""
    old, new = prompt_state(conn, name, before), prompt_state(conn, name, after)
    changed = [] if old is not None and old["version"] == after else ["version"]
    if old is not None and new is not None and old.get("fragments") != new.get("fragments"):
        changed.append("fragments")
    return _entry(
        ("prompt", name),
        "label_rollback" if rollback else "label_move",
        {"label": label, "from": old, "to": new},
        changed,
        actor=actor,
        reason=reason,
        gate=gate,
        forced=forced,
    )


def include_entry(
    *,
    name: str,
    label: str,
    before: dict[str, Any] | None,
    after: dict[str, Any],
    via: str,
    actor: str,
    reason: str | None,
    gate: GateReport | None,
    forced: dict[str, Any] | None,
) -> dict[str, Any]:
    """The entry for protected label `label` of prompt `name` composing differently because
    the label of a fragment it includes (`via`) moved: same version, other fragments."""
    return _entry(
        ("prompt", name),
        "include_move",
        {"label": label, "from": before, "to": after, "via": via},
        ["fragments"],
        actor=actor,
        reason=reason,
        gate=gate,
        forced=forced,
    )


def _release_state(release: Release | None) -> dict[str, Any] | None:
    if release is None:
        return None
    return {
        "release": release.id,
        "prompt": f"{release.prompt_name}@{release.prompt_version}",
        "composition_hash": release.composition_hash or release.prompt_hash,
        "model": release.model_alias,
        "params": release.params,
        "fragments": {
            ref: f.get("version") for ref, f in sorted((release.fragments or {}).items())
        },
    }


def release_entry(
    *,
    action: str,
    route: str,
    before: Release | None,
    after: Release | None,
    actor: str,
    reason: str | None,
    gate: GateReport | None,
    forced: dict[str, Any] | None = None,
    weights: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """The entry for a promotion, canary change or rollback of `route`: `before` and
    `after` are what the arm served (the active release; the canary for canary moves)."""
    old, new = _release_state(before), _release_state(after)
    change: dict[str, Any] = {
        "arm": "canary" if action.startswith("canary") else "active",
        "from": old,
        "to": new,
    }
    if weights is not None:
        change["canary_weight"] = {"from": weights[0], "to": weights[1]}
    return _entry(
        ("route", route),
        action,
        change,
        _release_changes(old, new, weights),
        actor=actor,
        reason=reason,
        gate=gate,
        forced=forced,
    )


def _release_changes(
    old: dict[str, Any] | None, new: dict[str, Any] | None, weights: tuple[int, int] | None
) -> list[str]:
    if old is None or new is None:
        changed = ["release"] if old != new else []
    else:
        changed = [k for k in ("prompt", "model") if old[k] != new[k]]
        if old["prompt"] == new["prompt"] and old["composition_hash"] != new["composition_hash"]:
            changed.append("fragments")
        keys = sorted(set(old["params"]) | set(new["params"]))
        changed += [f"params.{k}" for k in keys if old["params"].get(k) != new["params"].get(k)]
    if weights is not None and weights[0] != weights[1]:
        changed.append("canary_weight")
    return changed


def _entry(
    subject: tuple[str, str],
    action: str,
    change: dict[str, Any],
    changed: list[str],
    *,
    actor: str,
    reason: str | None,
    gate: GateReport | None,
    forced: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "subject": {"kind": subject[0], "name": subject[1]},
        "action": action,
        "author": actor,
        "reason": reason,
        "forced": bool(forced),
        "forced_past": list((forced or {}).get("gate_refused") or ())
        + [d.get("ref", "") for d in (forced or {}).get("broken") or ()],
        "change": change,
        "changed": changed,
        "gate": gate.public() if gate is not None else None,
        # Filled by the semantic diff (`pilothouse diff`) when the change has a dataset
        # attached; None until then.
        "diff": None,
    }


def public(row: dict[str, Any]) -> dict[str, Any]:
    """An entry row as readers and webhooks get it."""
    return {"id": row["id"], "at": row["created_at"].isoformat(), **row["entry"]}


def record(conn: Connection, entry: dict[str, Any]) -> dict[str, Any]:
    """Store `entry` and a pending webhook delivery for every subscriber to its subject,
    in the caller's transaction; the entry with its id and time."""
    now = datetime.now(UTC)
    kind, name = entry["subject"]["kind"], entry["subject"]["name"]
    row = {
        "subject_kind": kind,
        "subject_name": name,
        "action": entry["action"],
        "entry": entry,
        "actor": entry["author"],
        "created_at": now,
    }
    stored = public({**row, "id": rows.insert_entry(conn, row)})
    subscribers = rows.subscriptions_to(conn, kind, name)
    if subscribers:
        deliveries.insert(
            conn,
            [
                {
                    "id": "dlv_" + secrets.token_hex(10),
                    "webhook": CHANGELOG_WEBHOOK_PREFIX + sub["id"],
                    "event": EVENT,
                    "payload": stored,
                    "state": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for sub in subscribers
            ],
        )
    return stored
