"""The promotion gate: may this exact candidate become what a protected label or a route's
active release serves?

Yes when every *active* contract on the prompt (for a label) or the route (for a release)
has a passing verification of the current revision of the contract on that candidate,
and the newest stored run of every gating suite (`promotion.suites` in the config) on it
passed. Missing evidence is a no. *Pending* contracts are reported, never blocking: a new
contract cannot stop a promotion before it has passed once.

With no active contract and no gating suite there is nothing to hold the candidate to,
and the answer is yes: the gate is evidence-based, and a deployment that asked for no
evidence is not refused (so the demo and every existing flow go on as before).

Moving a label that is not protected is never refused; rolling back is never refused
(it goes back to what passed before, and must work in an emergency). Both are still
reported to the changelog with what the gate says about them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection

from pilothouse import errors
from pilothouse.config import PromotionSpec
from pilothouse.contracts import suite_evidence
from pilothouse.contracts.subjects import Candidate
from pilothouse.registry.dependents import require_reason
from pilothouse.store import contracts as contract_rows

FAILURES_SHOWN = 5


@dataclass
class GateReport:
    """What the gate found for one candidate; `allowed` is its answer."""

    candidate: Candidate
    protected: bool  # False: a label the gate does not hold (nothing blocks)
    label: str | None = None
    contracts: list[dict[str, Any]] = field(default_factory=list)
    suites: list[dict[str, Any]] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        """Why the answer is no (empty when it is yes)."""
        if not self.protected:
            return []
        found = [c["reason"] for c in self.contracts if c["blocking"]]
        return found + [s["reason"] for s in self.suites if s["blocking"]]

    @property
    def allowed(self) -> bool:
        return not self.reasons

    def public(self) -> dict[str, Any]:
        notes = [c["reason"] for c in self.contracts if not c["blocking"] and c.get("reason")]
        if not self.protected:
            notes.insert(0, f"label {self.label!r} is not protected: the gate does not hold it")
        return {
            "allowed": self.allowed,
            "candidate": self.candidate.public(),
            "label": self.label,
            "protected": self.protected,
            "reasons": self.reasons,
            "notes": notes,
            "contracts": self.contracts,
            "suites": self.suites,
        }


def check_prompt(
    conn: Connection, policy: PromotionSpec, candidate: Candidate, label: str
) -> GateReport:
    """The gate for pointing `label` of the candidate's prompt at it."""
    report = GateReport(candidate, label in policy.protected_labels, label=label)
    _fill(conn, policy, report, "prompt")
    return report


def check_release(conn: Connection, policy: PromotionSpec, candidate: Candidate) -> GateReport:
    """The gate for making the candidate its route's active release."""
    report = GateReport(candidate, True)
    _fill(conn, policy, report, "route")
    return report


def _fill(conn: Connection, policy: PromotionSpec, report: GateReport, kind: str) -> None:
    candidate = report.candidate
    for row in contract_rows.on_subject(conn, kind, candidate.name):
        report.contracts.append(_contract(conn, row, candidate))
    for suite in policy.suites_for(kind, candidate.name):
        run = suite_evidence.latest_run(conn, suite, candidate)
        if run is None:
            verdict = "missing"
            reason = (
                f"suite {suite}: no stored run on {candidate.ref} (composition "
                f"{candidate.composition_hash[:12]}); run it on this version and store the run"
            )
        elif run["passed"]:
            verdict, reason = "passed", ""
        else:
            verdict = "failed"
            why = "; ".join(run["reasons"]) or "the run failed its gate"
            reason = f"suite {suite}: run {run['id']} on {candidate.ref} failed: {why}"
        report.suites.append(
            {
                "suite": suite,
                "verdict": verdict,
                "blocking": verdict != "passed",
                "run": run,
                "reason": reason,
            }
        )


def _contract(conn: Connection, row: dict[str, Any], candidate: Candidate) -> dict[str, Any]:
    found = contract_rows.latest_verification(conn, row["id"], row["spec_hash"], candidate.hash)
    name = f"contract {row['consumer']}/{row['name']}"
    active = row["status"] == "active"
    status = "" if active else " (pending: reported, not blocking)"
    if found is None:
        verdict = "missing"
        reason = (
            f"{name}{status}: no verification of {candidate.ref} under its current revision; "
            f"run `pilothouse contracts verify {_verify_ref(candidate)}`"
        )
    elif found["passed"]:
        verdict, reason = "passed", ""
    else:
        verdict = "failed"
        reason = f"{name}{status}: {describe(found)} on {candidate.ref}"
    return {
        "id": row["id"],
        "consumer": row["consumer"],
        "name": row["name"],
        "status": row["status"],
        "verdict": verdict,
        "blocking": active and verdict != "passed",
        "verification": public_verification(found) if found else None,
        "reason": reason,
    }


def _verify_ref(candidate: Candidate) -> str:
    if candidate.kind == "prompt":
        return candidate.prompt
    params = "".join(
        f" --param {k}={orjson.dumps(v).decode()}" for k, v in sorted(candidate.params.items())
    )
    return f"route:{candidate.name} --prompt {candidate.prompt} --model {candidate.model}{params}"


def describe(verification: dict[str, Any]) -> str:
    """`18 of 24 outputs met it (75.0%, needs 98.0%); e.g. refund (repeat 1): ...`."""
    total, met = verification["outputs"], verification["passed_outputs"]
    rate = f"{met / total:.1%}" if total else "no outputs"
    text = f"{met} of {total} outputs met it ({rate}, needs {verification['min_pass_rate']:.1%})"
    if verification["infra_errors"]:
        text += f"; {verification['infra_errors']} calls failed for infrastructure reasons"
    failures = verification.get("failures") or []
    if failures:
        first = failures[0]
        text += f"; e.g. sample {first['sample']} (repeat {first['repeat']}): "
        text += "; ".join(first["reasons"])
    return text


def public_verification(row: dict[str, Any]) -> dict[str, Any]:
    total = row["outputs"]
    return {
        "id": row["id"],
        "contract_id": row["contract_id"],
        "subject": row["subject_ref"],
        "subject_hash": row["subject_hash"],
        "run_id": row["run_id"],
        "passed": row["passed"],
        "outputs": total,
        "passed_outputs": row["passed_outputs"],
        "pass_rate": row["passed_outputs"] / total if total else None,
        "min_pass_rate": row["min_pass_rate"],
        "infra_errors": row["infra_errors"],
        "failures": list(row.get("failures") or [])[:FAILURES_SHOWN],
        "created_by": row["created_by"],
        "created_at": row["created_at"].isoformat(),
    }


def refuse_or_record(
    reports: list[GateReport], *, what: str, force: bool, reason: str | None
) -> dict[str, Any] | None:
    """Raise Conflict (409, every report in `details.gate`) when a report says no, unless
    forced with a reason; the record to keep in the audit trail when forced."""
    refused = [r for r in reports if not r.allowed]
    if not refused:
        return None
    reasons = [why for r in refused for why in r.reasons]
    if not force:
        raise errors.Conflict(
            f"{what} is refused by the promotion gate: " + " | ".join(reasons),
            hint="verify the contracts and run the gating suites on this exact version "
            "(`pilothouse can-i-promote` lists what is missing), or force it with a reason "
            "(`--force --reason TEXT`; API: `force: true` and `reason`); forcing is audited",
            code="promotion_gate",
            details={"gate": [r.public() for r in refused]},
        )
    require_reason(force, reason)
    return {"forced": True, "gate_refused": reasons}
