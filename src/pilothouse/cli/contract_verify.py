"""`pilothouse contracts verify`: each contract's samples through the eval runner (the
gateway as an application, every answer through the response cache), the outputs sent to
the server, which judges them against the contract and records the verdict.

Everything that can be wrong before a call (the subject, a sample that does not render, a
model the gateway does not serve) is found first and nothing is called (exit 2).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from pilothouse.cli import eval_resolve
from pilothouse.cli.eval_api import (
    EXIT_FAIL,
    EXIT_INFRA,
    EXIT_PASS,
    EvalApi,
    SuiteProblem,
    no_traceback,
)
from pilothouse.cli.eval_api import cache_dir as response_cache_dir
from pilothouse.cli.eval_run import Options, new_run_id
from pilothouse.cli.output import print_json
from pilothouse.cli.releases import _params
from pilothouse.cli.subjects import parse_subject
from pilothouse.contracts import checks
from pilothouse.evals import datasets, preflight
from pilothouse.evals.cache import ResponseCache
from pilothouse.evals.calls import GatewayCalls
from pilothouse.evals.runner import run
from pilothouse.evals.suite import Suite, SuiteFile, SuiteTarget
from pilothouse.evals.targets import Target
from pilothouse.evals.types import Case, ScorerSpec
from pilothouse.yamlfile import FileError

CONCURRENCY = 8


@dataclass
class Plan:
    """One contract, ready to run: its suite, target and cases, and what it verifies."""

    contract: dict[str, Any]
    suite: Suite
    target: Target
    cases: list[Case]
    subject: dict[str, Any]  # the API's `subject` of the verification


def main(
    subject: str,
    *,
    only: str | None,
    prompt: str | None,
    model: str | None,
    params: tuple[str, ...],
    cache: bool,
    cache_dir: Path | None,
    as_json: bool,
) -> None:
    no_traceback(_main)(subject, only, prompt, model, params, cache, cache_dir, as_json)


def _main(
    subject: str,
    only: str | None,
    prompt: str | None,
    model: str | None,
    params: tuple[str, ...],
    cache: bool,
    cache_dir: Path | None,
    as_json: bool,
) -> None:
    kind, name, ref = parse_subject(subject)
    candidate = _subject(kind, name, ref, prompt, model, _params(params))
    api = EvalApi()
    found = api.get("/api/contracts", **{kind: name})["data"]
    if only is not None:
        found = [c for c in found if f"{c['consumer']}/{c['name']}" == only]
        if not found:
            raise SuiteProblem(f"no contract {only} on {kind} {name}")
    models = {m["id"]: m for m in api.get("/v1/models").get("data", [])}
    _check_subject(api, candidate, models)
    if not found:
        click.echo(f"no contracts on {kind} {name}: nothing to verify", err=True)
        raise SystemExit(EXIT_PASS)
    plans = [_plan(api, contract, candidate, models) for contract in found]
    responses = ResponseCache(response_cache_dir(cache_dir))
    results = [_verify(api, plan, responses if cache else None) for plan in plans]
    if as_json:
        print_json(results)
    else:
        for result in results:
            _show(result)
    raise SystemExit(_exit_status(results))


def _subject(
    kind: str,
    name: str,
    ref: str | None,
    prompt: str | None,
    model: str | None,
    params: dict[str, Any],
) -> dict[str, Any]:
    """The verification's subject, as the API takes it."""
    if kind == "prompt":
        if ref is None or prompt or model or params:
            raise SuiteProblem(
                f"verify a prompt at a version: {name}@VERSION (--prompt, --model and --param "
                "are for route contracts)"
            )
        return {"prompt": f"{name}@{ref}"}
    if ref is not None:
        if ref not in ("active", "canary") or prompt or model or params:
            raise SuiteProblem(
                f"route:{name}@{ref}: give route:{name}@canary or @active, or route:{name} "
                "with --prompt, --model (and --param)"
            )
        return {"route": name, "release": ref}
    if not prompt or not model:
        raise SuiteProblem(
            f"route:{name}: say which release: route:{name}@canary, route:{name}@active, or "
            "--prompt NAME@VERSION --model ALIAS [--param NAME=VALUE]"
        )
    return {"route": name, "prompt": prompt, "model": model, "params": params}


def _check_subject(api: EvalApi, subject: dict[str, Any], models: dict[str, Any]) -> None:
    """Refuse (SuiteProblem, exit 2) a subject that names nothing, with or without
    contracts to verify on it: an unknown prompt version, a route with no such arm, or a
    release whose prompt version or model does not exist."""
    if "release" in subject:
        route = eval_resolve.fetch_route(api, subject["route"])
        if route.get(subject["release"]) is None:
            raise SuiteProblem(f"route {subject['route']!r} has no {subject['release']} release")
        return
    if "route" in subject:
        eval_resolve.fetch_route(api, subject["route"])
        if subject["model"] not in models:
            raise SuiteProblem(
                f"model {subject['model']!r} is not served to this key; models: "
                + (", ".join(sorted(models)) or "(none)")
            )
    eval_resolve.fetch_prompt(api, subject["prompt"])


def _plan(
    api: EvalApi, contract: dict[str, Any], subject: dict[str, Any], models: dict[str, Any]
) -> Plan:
    spec = contract["spec"]
    label = f"contract {contract['consumer']}/{contract['name']}"
    if "release" in subject:
        target_spec = SuiteTarget(
            name=f"route:{subject['route']}@{subject['release']}",
            route=subject["route"],
            release=subject["release"],
        )
    else:
        prompt = subject["prompt"]
        on_route = "route" in subject  # a route contract on the release --prompt would make
        target_model = subject["model"] if on_route else spec.get("model")
        target_params = subject["params"] if on_route else (spec.get("params") or {})
        target_spec = SuiteTarget(
            name=f"{prompt}/{target_model}",
            prompt=prompt,
            model=target_model,
            params=tuple(target_params.items()),
        )
    built = checks.build(spec["expect"])
    file = SuiteFile.model_validate(
        {
            "name": f"contract-{contract['id']}",
            "owner": contract["consumer"],
            "target": {"prompt": "-", "model": "-"},  # the target is resolved below
            "dataset": "(the contract's samples)",
            "repeat": spec["tolerance"]["repeats"],
            "concurrency": CONCURRENCY,
            "scorers": [{"type": "contract", "name": "contract"}],
        }
    )
    suite = Suite(
        path=Path(label),
        file_hash=contract["spec_hash"],
        spec=file,
        scorers=[(ScorerSpec(type="contract", name="contract"), checks.contract_scorer(built))],
        targets=[target_spec],
    )
    target = eval_resolve.resolve(suite, target_spec, Options(), api, models)
    rows, where = _samples(api, spec["samples"])
    try:
        cases = datasets.cases(rows, where)
    except FileError as exc:
        listed = "\n  ".join(exc.problems)
        raise SuiteProblem(f"{label}: the samples are not valid:\n  {listed}") from None
    problems = preflight.check_models(suite, [target], models)
    problems += preflight.check_cases(suite, cases, [target], where)
    if problems:
        raise SuiteProblem(
            f"{label}: nothing was called; fix these first:\n  "
            + "\n  ".join(preflight.shown(problems))
        )
    return Plan(contract, suite, target, cases, subject)


def _samples(api: EvalApi, samples: Any) -> tuple[list[dict[str, Any]], list[str]]:
    if isinstance(samples, list):
        return samples, [f"samples[{i}]" for i in range(len(samples))]
    stored = api.get(f"/api/datasets/{quote(samples['dataset'])}", version=samples["version"])
    source = f"{stored['name']}@{stored['version']}"
    return stored["rows"], [f"{source} row {i + 1}" for i in range(len(stored["rows"]))]


def _verify(api: EvalApi, plan: Plan, cache: ResponseCache | None) -> dict[str, Any]:
    """Run one contract's samples and record them; the server's verdict."""
    run_id = new_run_id()
    calls = GatewayCalls(api.url, api.token, concurrency=CONCURRENCY, run_id=run_id, cache=cache)

    async def go() -> Any:
        try:
            return await run(
                plan.suite,
                plan.cases,
                [plan.target],
                calls,
                dataset={"source": "contract samples", "hash": plan.contract["spec_hash"]},
                run_id=run_id,
            )
        finally:
            await calls.close()

    outcome = asyncio.run(go())
    name = plan.target.name
    body = {
        "subject": plan.subject,
        "spec_hash": plan.contract["spec_hash"],
        "run_id": run_id,
        "target": outcome.manifest["targets"][0],
        "samples": [
            {"id": row["id"], "outputs": row["targets"][name]["outputs"]} for row in outcome.cases
        ],
    }
    recorded = api.post(f"/api/contracts/{quote(plan.contract['id'])}/verifications", body)
    recorded["aborted"] = outcome.stats.get("aborted")
    return dict(recorded)


def _show(result: dict[str, Any]) -> None:
    contract, verification = result["contract"], result["verification"]
    name = f"{contract['consumer']}/{contract['name']}"
    total, met = verification["outputs"], verification["passed_outputs"]
    verdict = "holds" if verification["passed"] else "FAILS"
    status = contract["status"]
    if result["activated"]:
        status = f"now active (since {contract['activated_at'][:19]} on {contract['activated_on']})"
    elif status == "pending":
        status = "pending: reported, not blocking"
    click.echo(
        f"{name}: {verdict} on {result['candidate']['ref']}: {met} of {total} outputs met it "
        f"({met / total:.1%}, needs {verification['min_pass_rate']:.1%}) [{status}]"
    )
    for failure in verification["failures"]:
        click.echo(f"  sample {failure['sample']} (repeat {failure['repeat']}):")
        click.echo(f"    output: {failure['output']}")
        for reason in failure["reasons"]:
            click.echo(f"    - {reason}")
    if verification["infra_errors"]:
        click.echo(
            f"  {verification['infra_errors']} calls failed for infrastructure reasons "
            "(the gateway or a provider): run it again when they answer",
            err=True,
        )


def _exit_status(results: list[dict[str, Any]]) -> int:
    if any(r["verification"]["infra_errors"] or r.get("aborted") for r in results):
        return EXIT_INFRA
    failed = [
        r
        for r in results
        if not r["verification"]["passed"] and r["contract"]["status"] == "active"
    ]
    return EXIT_FAIL if failed else EXIT_PASS
