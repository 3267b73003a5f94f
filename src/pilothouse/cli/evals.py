"""`pilothouse eval`: run a suite as a gate, list, show and compare runs.

Exit status of `eval run` (and `eval compare --fail-on-regression`): 0 the gate passed,
1 it failed on quality, 2 the suite, dataset or command is wrong (found before any call),
3 the infrastructure failed (gateway, provider, storage, output files), 130 interrupted.
No traceback reaches the user.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from pilothouse.cli import eval_api, eval_run
from pilothouse.cli.eval_api import (
    EXIT_CONFIG,
    EXIT_FAIL,
    EXIT_INFRA,
    EXIT_PASS,
    EvalApi,
    InfraProblem,
    SuiteProblem,
    no_traceback,
)
from pilothouse.cli.eval_compare import compare, compare_table, requalify
from pilothouse.cli.eval_run import Options
from pilothouse.cli.eval_schedule import run_now, schedule, schedules, unschedule
from pilothouse.cli.output import print_json, print_table

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAIL",
    "EXIT_INFRA",
    "EXIT_PASS",
    "InfraProblem",
    "SuiteProblem",
    "eval_",
    "execute",
    "no_traceback",
    "requalify",
]


def parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    from pilothouse.cli.releases import _params

    try:
        return _params(pairs)
    except click.BadParameter as exc:
        raise SuiteProblem(f"--param: {exc.message}") from None


def execute(
    suite_path: Path,
    *,
    prompt: str | None = None,
    model: str | None = None,
    params: dict[str, Any] | None = None,
    release: str | None = None,
    replay: str | None = None,
    cache: bool = True,
) -> dict[str, Any]:
    """Prepare and run a suite in this process; return the artifact (no output, no store)."""
    options = Options(
        prompt=prompt, model=model, params=params or {}, release=release, replay=replay, cache=cache
    )
    plan = eval_run.prepare(suite_path, options)
    try:
        return eval_run.perform(plan)
    finally:
        plan.api.close()


def report(artifact: dict[str, Any]) -> None:
    """The per-target tables, the reasons a gate failed, and the headline, on stdout."""
    from pilothouse.evals import report as reports

    if "targets" not in artifact.get("summary", {}):
        click.echo(f"run {artifact.get('id')} was recorded by an older Pilothouse: its manifest")
        return
    targets = artifact["summary"]["targets"]
    parts = {t["name"]: t for t in artifact["manifest"]["targets"]}
    for name, target in targets.items():
        if len(targets) > 1:
            part = parts.get(name, {})
            role = (
                "candidate"
                if part.get("candidate")
                else ("gated" if target["gated"] else "reported")
            )
            state = "passed" if target["passed"] else "FAILED"
            click.echo(f"\n{name} ({role}): {state}")
        print_table(reports.summary_rows(target), reports.COLUMNS)
        tags = reports.tag_rows(target)
        if tags:
            click.echo("")
            print_table(tags, ["tag", "cases", *target["scorers"]])
    why = reports.reasons(artifact)
    if why:
        click.echo("\nwhy the gate failed:")
        for line in why:
            click.echo(f"  {line}")
    baseline = artifact["summary"].get("baseline")
    if baseline:
        _baseline_lines(baseline)
    click.echo(reports.headline(artifact))


def _baseline_lines(result: dict[str, Any]) -> None:
    if result.get("problems") and "scorers" not in result:
        click.echo(f"baseline {result['run_a']}: not compared ({'; '.join(result['problems'])})")
        return
    click.echo(f"\nagainst baseline {result['run_a']} ({result['target_a']}):")
    compare_table(result)


@click.group(name="eval")
def eval_() -> None:
    """Eval-as-code: run suites as CI gates or on a schedule, list and compare runs."""


def _path(**kwargs: Any) -> click.Path:
    return click.Path(dir_okay=False, path_type=Path, **kwargs)


@eval_.command("run")
@click.argument("suite_path", type=_path(exists=True))
@click.option(
    "--prompt", default=None, help="Candidate prompt NAME@VERSION instead of the suite's target."
)
@click.option("--model", default=None, help="Candidate model alias.")
@click.option(
    "--param", "params", multiple=True, help="Candidate parameter NAME=VALUE (repeatable)."
)
@click.option(
    "--release",
    type=click.Choice(["active", "canary"]),
    default=None,
    help="Which release of a route target.",
)
@click.option(
    "--target", "targets", multiple=True, help="Run only this target of the suite (repeatable)."
)
@click.option(
    "--replay",
    default=None,
    help="Run id or artifact file: re-score its recorded answers exactly, call nobody.",
)
@click.option(
    "--rescore",
    default=None,
    help="Run id or artifact file: its recorded answers under the current scorers.",
)
@click.option(
    "--resume", default=None, help="Run id of a run cut short on this machine: continue it."
)
@click.option(
    "--baseline",
    default=None,
    help="Run id or artifact file: exit 1 on a significant regression from it.",
)
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.05,
    show_default=True,
    help="Significance level for --baseline.",
)
@click.option(
    "--min-delta",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Smallest drop --baseline counts as a regression.",
)
@click.option(
    "--no-cache", is_flag=True, help="Call the gateway even for answers in the response cache."
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Response cache folder [PILOTHOUSE_EVAL_CACHE_DIR; default .pilothouse/eval-cache].",
)
@click.option(
    "--output",
    type=_path(),
    default=None,
    help="Write the run artifact here [default .pilothouse/evals/RUN.json].",
)
@click.option("--junit", type=_path(), default=None, help="Write JUnit XML here.")
@click.option("--markdown", type=_path(), default=None, help="Write a Markdown summary here.")
@click.option("--html", type=_path(), default=None, help="Write a self-contained HTML report here.")
@click.option("--no-store", is_flag=True, help="Do not record the run on the server.")
@click.option(
    "--progress-every",
    type=click.FloatRange(0),
    default=10.0,
    show_default=True,
    help="Seconds between progress lines when stderr is not a terminal.",
)
@no_traceback
def run(
    suite_path: Path,
    prompt: str | None,
    model: str | None,
    params: tuple[str, ...],
    release: str | None,
    targets: tuple[str, ...],
    replay: str | None,
    rescore: str | None,
    resume: str | None,
    baseline: str | None,
    alpha: float,
    min_delta: float,
    no_cache: bool,
    cache_dir: Path | None,
    output: Path | None,
    junit: Path | None,
    markdown: Path | None,
    html: Path | None,
    no_store: bool,
    progress_every: float,
) -> None:
    """Run SUITE_PATH as a gate.

    Exit 0 when the gate passes, 1 when it fails on quality, 2 when the suite, dataset or
    command is wrong (found before any call), 3 when the gateway, a provider, storage or
    an output file failed, 130 when interrupted (continue with --resume RUN).
    """
    from pilothouse.evals.progress import ProgressPrinter

    outputs = {
        k: v for k, v in (("--junit", junit), ("--markdown", markdown), ("--html", html)) if v
    }
    if output:
        outputs["--output"] = output
    options = Options(
        prompt=prompt,
        model=model,
        params=parse_params(params),
        release=release,
        targets=targets,
        replay=replay,
        rescore=rescore,
        resume=resume,
        baseline=baseline,
        alpha=alpha,
        min_delta=min_delta,
        cache=not no_cache,
        cache_dir=cache_dir,
        outputs=outputs,
    )
    plan = eval_run.prepare(suite_path, options)
    try:
        bar = eval_api.stderr_is_tty()
        printer = ProgressPrinter(
            sys.stderr, bar=bar, every_seconds=progress_every, label=f"{plan.suite.name}: "
        )
        try:
            artifact = eval_run.perform(plan, progress=printer)
        finally:
            printer.finish()
        outputs.setdefault("--output", eval_api.data_dir() / "evals" / f"{artifact['id']}.json")
        failures = eval_run.finish(artifact, outputs, store=not no_store, api=plan.api)
    finally:
        plan.api.close()
    report(artifact)
    for warning in artifact["stats"].get("warnings") or []:
        eval_api.say(f"warning: {warning}")
    click.echo(f"artifact: {outputs['--output']}")
    code, why = eval_run.exit_code(artifact, failures)
    if code == EXIT_INFRA:
        for line in why:
            eval_api.say(f"Error: {line}")
        if artifact["stats"].get("journal"):
            eval_api.say(f"retry what failed with --resume {artifact['id']}")
    raise SystemExit(code)


@eval_.command("runs")
@click.option("--suite", default=None, help="Only runs of this suite.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
@no_traceback
def runs(suite: str | None, as_json: bool) -> None:
    """Recorded runs, newest first."""
    data = EvalApi().get("/api/evals/runs", suite=suite)["data"]
    if as_json:
        print_json(data)
        return
    for row in data:
        row["gate"] = "passed" if row["passed"] else "FAILED"
        row["replay"] = row["replay_of"] or "-"
    print_table(data, ["created_at", "id", "suite", "gate", "replay"])


@eval_.command("show")
@click.argument("run_id")
@no_traceback
def show(run_id: str) -> None:
    """A recorded run's summary and manifest."""
    artifact = eval_api.load_artifact(run_id, None)
    report(artifact)
    print_json(artifact["manifest"])


eval_.add_command(compare)
eval_.add_command(schedule)
eval_.add_command(schedules)
eval_.add_command(unschedule)
eval_.add_command(run_now)
