"""Whether a gating eval suite passed on one exact candidate, read from the stored runs.

A run is evidence for a candidate when one of its *gated* targets ran that exact thing:
the same composition hash (a prompt target records it; a route target's `prompt_hash` is
its release's composition hash) and, for a release, the same model alias and parameters.
The newest such run decides: it must have passed, and that target with it. No such run
is no evidence, and no evidence fails the gate.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from pilothouse.contracts.subjects import Candidate
from pilothouse.store import evals as eval_rows

RUNS_READ = 500  # per suite, newest first: older evidence is not looked for


def _matches(target: dict[str, Any], candidate: Candidate) -> bool:
    prompt = str(target.get("prompt") or "")
    composed = target.get("composition_hash") or target.get("prompt_hash")
    if prompt.rpartition("@")[0] != candidate.prompt.rpartition("@")[0]:
        return False
    if composed != candidate.composition_hash:
        return False
    if candidate.kind == "route":
        return target.get("model_alias") == candidate.model and (
            target.get("params") or {}
        ) == dict(candidate.params)
    return True


def latest_run(conn: Connection, suite: str, candidate: Candidate) -> dict[str, Any] | None:
    """The newest stored run of `suite` whose gated target ran `candidate`: its id, time,
    the target's name and whether it passed; None when there is none."""
    for run in eval_rows.runs_with_manifest(conn, suite, RUNS_READ):
        manifest = run["manifest"] if isinstance(run["manifest"], dict) else {}
        summary = run["summary"] if isinstance(run["summary"], dict) else {}
        gated = set(summary.get("gated_targets") or ())
        for target in manifest.get("targets") or ():
            if not isinstance(target, dict) or target.get("name") not in gated:
                continue
            if not _matches(target, candidate):
                continue
            result = (summary.get("targets") or {}).get(target["name"]) or {}
            return {
                "id": run["id"],
                "created_at": run["created_at"].isoformat(),
                "target": target["name"],
                "passed": bool(run["passed"]) and bool(result.get("passed")),
                "reasons": list(result.get("reasons") or ())[:5],
            }
    return None
