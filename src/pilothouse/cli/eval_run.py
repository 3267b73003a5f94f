"""One `pilothouse eval run` from the command line: prepare, perform, finish.

`prepare` does everything that can fail before the first model call (the suite, the
dataset, every case against every target and scorer, every model through GET /v1/models,
options, output paths, recorded runs) and raises `SuiteProblem` (exit 2) listing every
fault. `perform` runs it; `finish` writes every output file and stores the run, and
returns what went wrong with the infrastructure (exit 3), never raising for it.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson

from pilothouse import errors
from pilothouse.cli import eval_resolve
from pilothouse.cli.eval_api import (
    EXIT_FAIL,
    EXIT_INFRA,
    EXIT_PASS,
    EvalApi,
    Interrupted,
    SuiteProblem,
    cache_dir,
    journal_path,
    load_artifact,
)
from pilothouse.evals import compare as comparing
from pilothouse.evals import datasets, preflight
from pilothouse.evals import suite as suite_module
from pilothouse.evals.cache import Journal, JournalError, ResponseCache
from pilothouse.evals.calls import GatewayCalls, ReplayMiss
from pilothouse.evals.manifest import plan_manifest
from pilothouse.evals.runner import EvalConfigError, Progress, run
from pilothouse.evals.suite import Suite
from pilothouse.evals.targets import Target
from pilothouse.evals.types import Case
from pilothouse.releases.params import check_params
from pilothouse.yamlfile import FileError


@dataclass
class Options:
    """What the command line asked for, beyond the suite file."""

    prompt: str | None = None
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    release: str | None = None
    targets: tuple[str, ...] = ()
    replay: str | None = None
    rescore: str | None = None
    resume: str | None = None
    baseline: str | None = None
    alpha: float = 0.05
    min_delta: float = 0.0
    cache: bool = True
    cache_dir: Path | None = None
    outputs: dict[str, Path] = field(default_factory=dict)  # option name -> path


@dataclass
class Plan:
    """A run that passed every check: what `perform` needs."""

    suite: Suite
    cases: list[Case]
    targets: list[Target]
    dataset: dict[str, Any]
    models: dict[str, Any]
    run_id: str
    material: dict[str, Any]
    options: Options
    api: EvalApi
    origin: dict[str, Any] = field(default_factory=dict)
    recorded: dict[str, Any] | None = None
    offline_kinds: frozenset[str] = frozenset()
    resumed: dict[str, Any] | None = None
    resumed_journal: Path | None = None
    baseline: dict[str, Any] | None = None


def new_run_id() -> str:
    return "run_" + datetime.now(UTC).strftime("%Y%m%d%H%M%S") + "_" + secrets.token_hex(3)


def prepare(suite_path: Path, options: Options, api: EvalApi | None = None) -> Plan:
    """Check everything, call no model; raises SuiteProblem (2) or InfraProblem (3)."""
    try:
        suite = suite_module.load(suite_path)
    except FileError as exc:
        raise SuiteProblem("the suite is not valid:\n  " + "\n  ".join(exc.problems)) from None
    chosen = [o for o in ("replay", "rescore", "resume") if getattr(options, o)]
    if len(chosen) > 1:
        raise SuiteProblem(f"--{chosen[0]} and --{chosen[1]} cannot be combined")
    selected = eval_resolve.select_targets(suite, options)
    try:
        check_params(options.params)
    except errors.InvalidRequest as exc:
        raise SuiteProblem(f"--param: {exc.message}") from None
    api = api or EvalApi()
    replayed = load_artifact(options.replay, api) if options.replay else None
    if replayed is not None:  # a replay calls nothing under /v1: the record says what was served
        models = eval_resolve.models_in(replayed["manifest"])
    else:
        models = {m["id"]: m for m in api.get("/v1/models").get("data", [])}
    targets = [eval_resolve.resolve(suite, t, options, api, models) for t in selected]
    rows, where, dataset = eval_resolve.dataset(suite, api)
    try:
        cases = datasets.cases(rows, where)
    except FileError as exc:
        raise SuiteProblem("the dataset is not valid:\n  " + "\n  ".join(exc.problems)) from None
    problems = [] if replayed else preflight.check_models(suite, targets, models)
    problems += preflight.check_cases(suite, cases, targets, where)
    for option, path in options.outputs.items():
        problem = preflight.output_problem(path, option)
        if problem:
            problems.append(problem)
    if problems:
        raise SuiteProblem(
            "nothing was called; fix these first:\n  " + "\n  ".join(preflight.shown(problems))
        )
    material = preflight.material(plan_manifest(suite, targets, dataset, models))
    plan = Plan(suite, cases, targets, dataset, models, new_run_id(), material, options, api)
    _recorded(plan, replayed)
    if options.baseline:
        plan.baseline = load_artifact(options.baseline, api)
        _check_baseline(plan)
        plan.origin["baseline"] = plan.baseline["id"]
    return plan


def _recorded(plan: Plan, replayed: dict[str, Any] | None) -> None:
    """Attach the recorded run (--replay, --rescore) or journal (--resume), if it matches."""
    options = plan.options
    if options.replay or options.rescore:
        ref = options.replay or options.rescore
        assert ref is not None
        artifact = replayed or load_artifact(ref, plan.api)
        fields = preflight.EVERYTHING if options.replay else preflight.ANSWERS
        changed = preflight.changes(preflight.material(artifact["manifest"]), plan.material, fields)
        if changed:
            verb = "replayed" if options.replay else "re-scored"
            hint = (
                " (--rescore re-scores recorded answers under changed scorers)"
                if options.replay
                else ""
            )
            raise SuiteProblem(
                f"run {artifact['id']} cannot be {verb}: since it ran, these changed: "
                + "; ".join(changed)
                + hint
            )
        plan.recorded = artifact["results"]["cache"]
        if options.replay:
            plan.offline_kinds = frozenset({"chat", "judge", "embed"})
            plan.origin["replay_of"] = artifact["id"]
        else:
            plan.offline_kinds = frozenset({"chat"})
            plan.origin["rescore_of"] = artifact["id"]
            plan.origin["rescored"] = (
                f"answers recorded by run {artifact['id']}, scored under the current scorers"
            )
    elif options.resume:
        path = (
            Path(options.resume)
            if options.resume.endswith(".jsonl")
            else journal_path(options.resume)
        )
        if not path.exists():
            raise SuiteProblem(
                f"no journal for run {options.resume!r} at {path}: only a run cut short on this "
                "machine can be resumed"
            )
        try:
            header, records = Journal.read(path)
        except JournalError as exc:
            raise SuiteProblem(str(exc)) from None
        changed = preflight.changes(
            header.get("material") or {}, plan.material, preflight.EVERYTHING
        )
        if changed:
            raise SuiteProblem(
                f"run {header.get('run_id')} cannot be resumed: since it started, these changed: "
                + "; ".join(changed)
            )
        plan.resumed = records
        plan.resumed_journal = path
        plan.origin["resumed_from"] = header.get("run_id")


def _check_baseline(plan: Plan) -> None:
    assert plan.baseline is not None
    manifest = plan.baseline["manifest"]
    found = []
    if (manifest.get("dataset") or {}).get("hash") != plan.dataset["hash"]:
        found.append("a different dataset")
    ids = {str(c["id"]) for c in plan.baseline["results"]["cases"]}
    if ids != {c.id for c in plan.cases}:
        found.append("different cases")
    mine = {s["key"]: (s["type"], s["options"]) for s in plan.material["scorers"]}
    theirs = {s["key"]: (s["type"], s.get("options")) for s in manifest.get("scorers") or []}
    if mine != theirs:
        found.append("different scorers")
    for name in ("repeat", "reducer", "ties"):
        if manifest.get(name) != plan.material[name]:
            found.append(f"a different {name}")
    if found:
        raise SuiteProblem(
            f"baseline {plan.baseline['id']} is not comparable with this suite: it has "
            + ", ".join(found)
        )


def perform(plan: Plan, progress: Progress | None = None) -> dict[str, Any]:
    """Run the plan; returns the artifact. Raises Interrupted on Ctrl-C (the journal stays)."""
    options = plan.options
    cache = None
    if options.cache and not options.replay:
        cache = ResponseCache(cache_dir(options.cache_dir))
    journal = None
    if not options.replay:
        try:
            journal = Journal.create(
                journal_path(plan.run_id),
                {"run_id": plan.run_id, "suite": str(plan.suite.path), "material": plan.material},
            )
        except JournalError as exc:
            click.echo(f"warning: {exc}; this run cannot be resumed if cut short", err=True)
    if journal is not None and plan.resumed_journal is not None:
        for key, record in (plan.resumed or {}).items():  # carried over: one journal per run
            journal.append(key, record)
        if journal.write_error is None:
            plan.resumed_journal.unlink(missing_ok=True)
    calls = GatewayCalls(
        plan.api.url,
        plan.api.token,
        concurrency=plan.suite.spec.concurrency,
        run_id=plan.run_id,
        recorded=plan.recorded,
        offline_kinds=plan.offline_kinds,
        resumed=plan.resumed,
        cache=cache,
        journal=journal,
    )

    async def go() -> Any:
        try:
            return await run(
                plan.suite,
                plan.cases,
                plan.targets,
                calls,
                dataset=plan.dataset,
                run_id=plan.run_id,
                models=plan.models,
                origin=plan.origin,
                progress=progress,
            )
        finally:
            await calls.close()

    try:
        outcome = asyncio.run(go())
    except KeyboardInterrupt:
        if journal is not None:
            journal.close()
        raise Interrupted(plan.run_id, journal.path if journal else None) from None
    except (EvalConfigError, ReplayMiss) as exc:
        if journal is not None:
            journal.discard()
        raise SuiteProblem(str(exc)) from None
    artifact = outcome.artifact()
    warnings = [w for w in (cache and cache.write_error, journal and journal.write_error) if w]
    artifact["stats"]["warnings"] = [f"not written: {w}" for w in warnings]
    if journal is not None:
        if artifact["stats"]["infra_failures"]:
            journal.close()  # kept: `--resume` retries only what failed
            artifact["stats"]["journal"] = str(journal.path)
        else:
            journal.discard()
    if plan.baseline is not None:
        _against_baseline(plan, artifact)
    return artifact


def _against_baseline(plan: Plan, artifact: dict[str, Any]) -> None:
    assert plan.baseline is not None
    gated = artifact["summary"]["gated_targets"][0]
    names = comparing.target_names(plan.baseline)
    theirs = gated if gated in names else None
    try:
        result = comparing.compare(
            plan.baseline,
            artifact,
            target_a=theirs,
            target_b=gated,
            alpha=plan.options.alpha,
            min_delta=plan.options.min_delta,
        )
    except comparing.Incomparable as exc:  # checked before the run; a matrix baseline may remain
        result = {"run_a": plan.baseline["id"], "regressions": [], "problems": exc.problems}
    artifact["summary"]["baseline"] = result
    if result["regressions"]:
        artifact["passed"] = False
        artifact["summary"]["passed"] = False


def finish(
    artifact: dict[str, Any], outputs: dict[str, Path], *, store: bool, api: EvalApi | None
) -> list[str]:
    """Write every output and store the run; returns what failed (each one is exit 3)."""
    from pilothouse.evals import report, report_html

    failed = []
    writers = {
        "--output": lambda: orjson.dumps(artifact, option=orjson.OPT_INDENT_2),
        "--junit": lambda: report.junit(artifact).encode(),
        "--markdown": lambda: report.markdown(artifact).encode(),
        "--html": lambda: report_html.render(artifact).encode(),
    }
    for option, path in outputs.items():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(writers[option]())
        except OSError as exc:
            failed.append(f"{option} {path}: could not write: {exc.strerror or exc}")
    if store:
        try:
            (api or EvalApi()).post("/api/evals/runs", artifact)
        except click.ClickException as exc:
            failed.append(f"the run was not stored: {exc.message}")
    return failed


def exit_code(artifact: dict[str, Any], failures: list[str]) -> tuple[int, list[str]]:
    """The exit status and why: 3 when the infrastructure failed (also when it may have
    failed the gate), else 1 when the gate failed, else 0."""
    why = list(failures)
    stats = artifact["stats"]
    if stats.get("aborted"):
        why.insert(0, f"the run stopped calling: {stats['aborted']}")
    elif stats.get("infra_failures") and not artifact["passed"]:
        why.insert(
            0,
            f"{stats['infra_failures']} calls failed for infrastructure reasons (gateway or "
            "provider), so the failed gate may be the outage's, not the model's",
        )
    if why:
        return EXIT_INFRA, why
    return (EXIT_PASS if artifact["passed"] else EXIT_FAIL), []
