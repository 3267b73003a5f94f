"""Recording a verification: the outputs `pilothouse contracts verify` got for every
sample, judged here against the contract as the server holds it.

The client runs the samples (through the eval runner and its cache); the verdict is the
server's. It refuses a submission that is not evidence for what it claims: a contract
revision other than the current one, a target that ran something other than the candidate
as the registry composes it now (another version, composition, model or parameters, or a
route call answered by another release), or samples missing, extra or short of repeats.
A contract that passes for the first time becomes active, and records when and on what.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from pilothouse import errors
from pilothouse.contracts import checks, subjects
from pilothouse.contracts.gate import public_verification
from pilothouse.contracts.register import not_found, public
from pilothouse.contracts.subjects import Candidate
from pilothouse.evals.datasets import cases
from pilothouse.evals.scorers_options import clip
from pilothouse.evals.types import Output
from pilothouse.releases.params import check_params
from pilothouse.releases.release import Release
from pilothouse.store import Store, audit
from pilothouse.store import contracts as rows
from pilothouse.store import evals as eval_rows
from pilothouse.store import releases as release_rows

FAILURES_KEPT = 50
OUTPUT_FIELDS = {f.name for f in dataclasses.fields(Output)}


def record(
    store: Store, contract_id: str, submitted: Mapping[str, Any], *, actor: str
) -> dict[str, Any]:
    """Judge and store one verification; the verification (with its failures), the
    contract as it now stands, whether this one activated it, and the candidate."""
    with store.connect() as conn:
        contract = rows.get(conn, contract_id)
        if contract is None:
            raise not_found(contract_id)
        _same_revision(contract, submitted)
        candidate = _candidate(conn, contract, submitted["subject"])
        _ran_the_candidate(contract, candidate, submitted.get("target") or {})
        sample_ids = _sample_ids(conn, contract["spec"])
    repeats = int(contract["spec"]["tolerance"]["repeats"])
    outputs = _outputs(submitted["samples"], sample_ids, repeats)
    verdict = _judge(contract["spec"], outputs)
    now = datetime.now(UTC)
    row = {
        "id": "ver_" + secrets.token_hex(8),
        "contract_id": contract_id,
        "spec_hash": contract["spec_hash"],
        "subject_ref": candidate.ref,
        "subject_hash": candidate.hash,
        "run_id": submitted.get("run_id"),
        "created_by": actor,
        "created_at": now,
        **verdict,
    }
    activated = False
    with store.write() as conn:
        current = rows.find(
            conn,
            contract["subject_kind"],
            contract["subject_name"],
            contract["consumer"],
            contract["name"],
            lock=True,
        )
        if current is None or current["id"] != contract_id:
            raise not_found(contract_id)
        _same_revision(current, submitted)
        rows.insert_verification(conn, row)
        if row["passed"] and current["status"] == "pending":
            fields = {
                "status": "active",
                "activated_at": now,
                "activated_on": candidate.ref,
                "activated_hash": candidate.hash,
            }
            rows.change(conn, contract_id, **fields)
            current = {**current, **fields}
            activated = True
            audit.record(
                conn,
                actor=actor,
                action="contract.activate",
                target=f"{current['subject_kind']}:{current['subject_name']}",
                before={"status": "pending"},
                after={"status": "active", "on": candidate.ref, "verification": row["id"]},
            )
    shown = public_verification(row)
    shown["failures"] = row["failures"]
    return {
        "verification": shown,
        "contract": public(current),
        "activated": activated,
        "candidate": candidate.public(),
    }


def _same_revision(contract: Mapping[str, Any], submitted: Mapping[str, Any]) -> None:
    if submitted.get("spec_hash") != contract["spec_hash"]:
        raise errors.Conflict(
            f"contract {contract['consumer']}/{contract['name']} changed since these samples "
            "ran (its spec hash is not the one verified)",
            hint="run `pilothouse contracts verify` again",
            code="contract_changed",
        )


def _candidate(conn: Connection, contract: Mapping[str, Any], subject: Any) -> Candidate:
    """The candidate the submission says it verified, resolved here."""
    if not isinstance(subject, Mapping):
        raise errors.InvalidRequest("`subject` must be an object", param="subject")
    kind, name = contract["subject_kind"], contract["subject_name"]
    if kind == "prompt":
        ref = subject.get("prompt")
        if not isinstance(ref, str) or set(subject) != {"prompt"}:
            raise errors.InvalidRequest(
                f"a contract on prompt {name} is verified on {{prompt: {name}@VERSION}}",
                param="subject",
            )
        candidate = subjects.for_prompt(conn, ref)
        if candidate.name != name:
            raise errors.InvalidRequest(
                f"this contract is on prompt {name!r}, not {candidate.name!r}", param="subject"
            )
        return candidate
    if subject.get("route") != name:
        raise errors.InvalidRequest(
            f"a contract on route {name} is verified on {{route: {name}, release: active|canary}} "
            f"or {{route: {name}, prompt, model, params}}",
            param="subject",
        )
    if "release" in subject:
        arm = subject["release"]
        if arm not in ("active", "canary"):
            raise errors.InvalidRequest("`subject.release` is active or canary", param="subject")
        route = release_rows.get_route(conn, name)
        release_id = route and route[f"{arm}_release_id"]
        if not release_id:
            raise errors.Conflict(f"route {name!r} has no {arm} release")
        found = release_rows.get_release(conn, release_id)
        if found is None:
            raise errors.Conflict(f"release {release_id} is not in the store")
        return subjects.for_release(Release.from_row(found))
    prompt, model = subject.get("prompt"), subject.get("model")
    if not isinstance(prompt, str) or not isinstance(model, str):
        raise errors.InvalidRequest(
            "`subject` needs `release`, or `prompt` and `model`", param="subject"
        )
    params = check_params(subject.get("params") or {})
    return subjects.for_new_release(conn, name, prompt, model, params)


def _ran_the_candidate(
    contract: Mapping[str, Any], candidate: Candidate, target: Mapping[str, Any]
) -> None:
    """Conflict unless the runner's record of its target is the candidate."""
    spec = contract["spec"]
    composed = target.get("composition_hash") or target.get("prompt_hash")
    want: dict[str, Any] = {"prompt": candidate.prompt, "composition": candidate.composition_hash}
    got: dict[str, Any] = {"prompt": target.get("prompt"), "composition": composed}
    if candidate.kind == "prompt":
        want.update(model=spec["model"], params=spec.get("params") or {})
    else:
        want.update(model=candidate.model, params=candidate.params)
    got.update(model=target.get("model_alias"), params=target.get("params") or {})
    if candidate.release_id is not None:
        want["served"] = [candidate.release_id]
        got["served"] = target.get("served_release_ids")
    differ = [k for k in want if want[k] != got[k]]
    if differ:
        detail = ", ".join(f"{k} {got[k]!r} (expected {want[k]!r})" for k in differ)
        raise errors.Conflict(
            f"these outputs are not evidence for {candidate.ref}: the calls ran {detail}",
            hint="a fragment label or the route may have moved meanwhile; verify again",
            code="not_the_candidate",
        )


def _sample_ids(conn: Connection, spec: Mapping[str, Any]) -> list[str]:
    samples = spec["samples"]
    if isinstance(samples, Mapping):
        stored = eval_rows.dataset(conn, samples["dataset"], samples["version"])
        if stored is None:
            raise errors.Conflict(
                f"the contract's dataset {samples['dataset']} version {samples['version']} "
                "is no longer stored"
            )
        samples = stored["rows"]
    return [case.id for case in cases(list(samples))]


def _outputs(
    submitted: Any, sample_ids: Sequence[str], repeats: int
) -> list[tuple[str, list[Output]]]:
    if not isinstance(submitted, list):
        raise errors.InvalidRequest("`samples` must be a list", param="samples")
    by_id: dict[str, list[Output]] = {}
    for index, sample in enumerate(submitted):
        where = f"samples[{index}]"
        sample_id = str(sample.get("id")) if isinstance(sample, Mapping) else None
        outputs = sample.get("outputs") if isinstance(sample, Mapping) else None
        if sample_id is None or not isinstance(outputs, list):
            raise errors.InvalidRequest(f"{where}: needs `id` and `outputs`", param=where)
        if sample_id in by_id:
            raise errors.InvalidRequest(f"{where}: sample {sample_id!r} twice", param=where)
        if len(outputs) != repeats:
            raise errors.InvalidRequest(
                f"{where}: sample {sample_id!r} has {len(outputs)} outputs; the contract "
                f"runs each sample {repeats} time(s)",
                param=where,
            )
        parsed = []
        for number, output in enumerate(outputs):
            if not isinstance(output, Mapping) or set(output) - OUTPUT_FIELDS:
                raise errors.InvalidRequest(
                    f"{where}.outputs[{number}]: an output has only "
                    + ", ".join(sorted(OUTPUT_FIELDS)),
                    param=where,
                )
            parsed.append(Output(**{"text": None, **output}))
        by_id[sample_id] = parsed
    missing = [s for s in sample_ids if s not in by_id]
    extra = sorted(set(by_id) - set(sample_ids))
    if missing or extra:
        parts = [f"missing {', '.join(missing[:10])}" if missing else ""]
        parts.append(f"not in the contract: {', '.join(extra[:10])}" if extra else "")
        raise errors.InvalidRequest(
            "the samples are not the contract's: " + "; ".join(p for p in parts if p),
            param="samples",
        )
    return [(s, by_id[s]) for s in sample_ids]


def _judge(spec: Mapping[str, Any], outputs: list[tuple[str, list[Output]]]) -> dict[str, Any]:
    """Every output against every expectation: counts, verdict and the first failures."""
    built = checks.build(spec["expect"])

    async def judge_all() -> list[tuple[str, int, Output, list[str]]]:
        return [
            (sample, number, output, await checks.failures(built, output))
            for sample, repeats in outputs
            for number, output in enumerate(repeats, start=1)
        ]

    # The scorers never wait on anything; a loop of its own keeps this off the server's.
    judged = asyncio.run(judge_all())
    total = len(judged)
    met = sum(1 for *_, reasons in judged if not reasons)
    min_rate = float(spec["tolerance"]["min_pass_rate"])
    failures = [
        {
            "sample": sample,
            "repeat": number,
            "output": clip(
                output.text or "" if output.error is None else f"error: {output.error}", 500
            ),
            "reasons": reasons,
        }
        for sample, number, output, reasons in judged
        if reasons
    ]
    return {
        "passed": total > 0 and met / total >= min_rate,
        "outputs": total,
        "passed_outputs": met,
        "infra_errors": sum(1 for _, _, o, _ in judged if o.error_kind == "infra"),
        "min_pass_rate": min_rate,
        "failures": failures[:FAILURES_KEPT],
    }
