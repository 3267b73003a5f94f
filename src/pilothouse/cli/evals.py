"""`pilothouse eval`: run a suite as a gate, list, show and compare runs.

Exit status of `eval run` (and `eval compare --fail-on-regression`): 0 the gate passed,
1 it failed on quality, 2 the suite, dataset or command is wrong (found before any call),
3 the infrastructure failed (gateway, provider, storage, output files), 130 interrupted.
No traceback reaches the user.
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from pilothouse.cli import eval_run
from pilothouse.cli.eval_run import (
    EXIT_CONFIG,
    EXIT_FAIL,
    EXIT_INFRA,
    EXIT_INTERRUPTED,
    EXIT_PASS,
    EvalApi,
    InfraProblem,
    Interrupted,
    Options,
    SuiteProblem,
)
from pilothouse.cli.output import print_json, print_table

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAIL",
    "EXIT_INFRA",
    "EXIT_PASS",
    "SuiteProblem",
    "eval_",
    "execute",
]

ConfigProblem = SuiteProblem  # the name other commands used


def no_traceback(command: Callable[..., None]) -> Callable[..., None]:
    """Turn anything unexpected into one line and exit 3; the traceback goes to a file."""

    @functools.wraps(command)
    def wrapped(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except Interrupted as exc:
            where = f" (answers so far kept in {exc.journal})" if exc.journal else ""
            eval_run.say(f"\ninterrupted{where}; continue with --resume {exc.run_id}")
            raise SystemExit(EXIT_INTERRUPTED) from None
        except KeyboardInterrupt:
            eval_run.say("\ninterrupted")
            raise SystemExit(EXIT_INTERRUPTED) from None
        except Exception as exc:
            log = eval_run.data_dir() / "evals" / f"crash-{datetime.now(UTC):%Y%m%d%H%M%S}.log"
            try:
                log.parent.mkdir(parents=True, exist_ok=True)
                log.write_text(traceback.format_exc())
                where = f"; details in {log}"
            except OSError:
                where = ""
            eval_run.say(f"Error: unexpected {type(exc).__name__}: {exc}{where}")
            raise SystemExit(EXIT_INFRA) from None

    return wrapped


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
    _compare_table(result)


@click.group(name="eval")
def eval_() -> None:
    """Eval-as-code: run suites as CI gates, list and compare runs."""


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
        bar = eval_run.stderr_is_tty()
        printer = ProgressPrinter(
            sys.stderr, bar=bar, every_seconds=progress_every, label=f"{plan.suite.name}: "
        )
        try:
            artifact = eval_run.perform(plan, progress=printer)
        finally:
            printer.finish()
        outputs.setdefault("--output", eval_run.data_dir() / "evals" / f"{artifact['id']}.json")
        failures = eval_run.finish(artifact, outputs, store=not no_store, api=plan.api)
    finally:
        plan.api.close()
    report(artifact)
    for warning in artifact["stats"].get("warnings") or []:
        eval_run.say(f"warning: {warning}")
    click.echo(f"artifact: {outputs['--output']}")
    code, why = eval_run.exit_code(artifact, failures)
    if code == EXIT_INFRA:
        for line in why:
            eval_run.say(f"Error: {line}")
        if artifact["stats"].get("journal"):
            eval_run.say(f"retry what failed with --resume {artifact['id']}")
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
    artifact = eval_run.load_artifact(run_id, None)
    report(artifact)
    print_json(artifact["manifest"])


def _split(ref: str) -> tuple[str, str | None]:
    """RUN or RUN#TARGET."""
    run_ref, _, target = ref.partition("#")
    return run_ref, target or None


@eval_.command("compare")
@click.argument("run_a")
@click.argument("run_b")
@click.option(
    "--fail-on-regression", is_flag=True, help="Exit 1 when a scorer dropped significantly."
)
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.05,
    show_default=True,
    help="Significance level.",
)
@click.option(
    "--min-delta",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Smallest drop that counts as a regression.",
)
@click.option(
    "--test",
    "score_test",
    type=click.Choice(["t", "wilcoxon"]),
    default="t",
    show_default=True,
    help="Paired test for scores that are not pass/fail.",
)
@click.option(
    "--allow-incomparable",
    is_flag=True,
    help="Compare runs with different datasets, cases or scorers (over what they share).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
@no_traceback
def compare(
    run_a: str,
    run_b: str,
    fail_on_regression: bool,
    alpha: float,
    min_delta: float,
    score_test: str,
    allow_incomparable: bool,
    as_json: bool,
) -> None:
    """RUN_B against RUN_A, case by case: per scorer the paired test that fits (exact
    McNemar on pass/fail, paired t or Wilcoxon on scores), per tag, and flipped cases.

    A run is an id or an artifact file; RUN#TARGET picks one target of a matrix run (the
    same run twice compares two of its targets). Exit 2 when the runs are not comparable
    (different dataset, cases or scorers) unless --allow-incomparable; with
    --fail-on-regression, exit 1 on a significant drop.
    """
    from pilothouse.evals import compare as comparing

    (ref_a, target_a), (ref_b, target_b) = _split(run_a), _split(run_b)
    api = None
    artifacts = {}
    for ref in (ref_a, ref_b):
        if ref not in artifacts:
            if not Path(ref).exists() and api is None:
                api = EvalApi()
            artifacts[ref] = eval_run.load_artifact(ref, api)
    try:
        result = comparing.compare(
            artifacts[ref_a],
            artifacts[ref_b],
            target_a=target_a,
            target_b=target_b,
            alpha=alpha,
            min_delta=min_delta,
            test="wilcoxon" if score_test == "wilcoxon" else "t",
            allow_incomparable=allow_incomparable,
        )
    except comparing.Incomparable as exc:
        raise SuiteProblem(
            "the runs are not comparable: "
            + "; ".join(exc.problems)
            + " (--allow-incomparable compares what they share)"
        ) from None
    if as_json:
        print_json(result)
    else:
        if result["problems"]:
            click.echo(f"warning: compared anyway: {'; '.join(result['problems'])}", err=True)
        click.echo(
            f"{result['run_b']} ({result['target_b']}) against {result['run_a']} "
            f"({result['target_a']}), {result['common_cases']} common cases:"
        )
        _compare_table(result)
    if fail_on_regression and result["regressions"]:
        raise SystemExit(EXIT_FAIL)


def _compare_table(result: dict[str, Any]) -> None:
    from pilothouse.evals.report import pct

    rows = []
    for key, s in result["scorers"].items():
        a, b = (
            (s["pass_rate_a"], s["pass_rate_b"])
            if s["metric"] == "pass_rate"
            else (s["mean_a"], s["mean_b"])
        )
        shown = pct if s["metric"] == "pass_rate" else (lambda v: "-" if v is None else f"{v:.3f}")
        rows.append(
            {
                "scorer": key,
                "metric": s["metric"],
                "a": shown(a),
                "b": shown(b),
                "delta": f"{s['delta']:+.3f}",
                "p_value": f"{s['p_value']:.3g}",
                "test": (s["score_test"] or {}).get("test")
                if s["metric"] == "mean"
                else "mcnemar_exact",
                "broken": len(s["broken"]),
                "fixed": len(s["fixed"]),
                "regression": "YES" if s["regression"] else "no",
            }
        )
    print_table(
        rows,
        ["scorer", "metric", "a", "b", "delta", "p_value", "test", "broken", "fixed", "regression"],
    )
    tag_rows = [
        {
            "tag": tag,
            "scorer": key,
            "a": pct(t["pass_rate_a"]),
            "b": pct(t["pass_rate_b"]),
            "delta": f"{t['delta']:+.3f}",
            "p_value": f"{t['p_value']:.3g}",
            "n": t["paired_cases"],
        }
        for tag, per in result["tags"].items()
        for key, t in per.items()
        if t["delta"] != 0  # the JSON output has every tag and scorer
    ]
    if tag_rows:
        click.echo("\nper tag, where the pass rate moved:")
        print_table(tag_rows, ["tag", "scorer", "a", "b", "delta", "p_value", "n"])
    for key, s in result["scorers"].items():
        if s["broken"]:
            click.echo(f"{key}: broken in B: {', '.join(s['broken'][:20])}")
        if s["fixed"]:
            click.echo(f"{key}: fixed in B: {', '.join(s['fixed'][:20])}")
    if result["regressions"]:
        click.echo(
            f"significant regression (p < {result['alpha']}, drop >= {result['min_delta']}): "
            + ", ".join(result["regressions"])
        )
    else:
        click.echo(
            f"no significant regression (p < {result['alpha']}, drop >= {result['min_delta']})"
        )


def requalify(route: str, candidate: str, suites: Path) -> None:
    """`pilothouse models requalify`: every suite of ROUTE on its active release and on
    the same prompt and parameters on CANDIDATE; both runs stored. Checks the model and
    every suite before the first call. Exits like `eval run` (1: the candidate fails a
    gate the current model passes or regresses significantly)."""
    from pilothouse.evals import compare as comparing
    from pilothouse.evals import suite as suite_module
    from pilothouse.yamlfile import FileError

    api = EvalApi()
    try:
        served = {m["id"] for m in api.get("/v1/models").get("data", [])}
        if candidate not in served:
            raise SuiteProblem(
                f"--to {candidate!r}: the gateway serves no such model to this key "
                f"(it serves: {', '.join(sorted(served)) or '(none)'})"
            )
        found = []
        for path in sorted(suites.glob("*.y*ml")):
            try:
                loaded = suite_module.load(path)
            except FileError as exc:
                eval_run.say(f"skipping {path}: {exc.problems[0]}")
                continue
            if [t.route for t in loaded.targets] == [route]:
                found.append(path)
        if not found:
            raise SuiteProblem(f"no suite in {suites} targets route {route!r} (alone)")
        plans = [
            (
                eval_run.prepare(path, Options(), api),
                eval_run.prepare(path, Options(model=candidate), api),
            )
            for path in found
        ]
        regressions = 0
        infra: list[str] = []
        for (base_plan, trial_plan), path in zip(plans, found, strict=True):
            baseline = eval_run.perform(base_plan)
            trial = eval_run.perform(trial_plan)
            for artifact in (baseline, trial):
                out = eval_run.data_dir() / "evals" / f"{artifact['id']}.json"
                failures = eval_run.finish(artifact, {"--output": out}, store=True, api=api)
                code, why = eval_run.exit_code(artifact, failures)
                if code == EXIT_INFRA:
                    infra += why
            click.echo(
                f"\n{path.name}: current {'passes' if baseline['passed'] else 'FAILS'}, "
                f"on {candidate} {'passes' if trial['passed'] else 'FAILS'} "
                f"(runs {baseline['id']}, {trial['id']})"
            )
            diff = comparing.compare(baseline, trial)
            _compare_table(diff)
            regressions += (baseline["passed"] and not trial["passed"]) or bool(diff["regressions"])
    finally:
        api.close()
    if infra:
        for line in infra:
            eval_run.say(f"Error: {line}")
        raise SystemExit(EXIT_INFRA)
    raise SystemExit(EXIT_FAIL if regressions else EXIT_PASS)


__all__ += ["InfraProblem", "requalify"]
