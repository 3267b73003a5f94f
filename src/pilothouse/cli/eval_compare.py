"""`pilothouse eval compare` and `pilothouse models requalify`: two runs side by side,
case by case, and a route's suites on another model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pilothouse.cli import eval_run
from pilothouse.cli.eval_api import (
    EXIT_FAIL,
    EXIT_INFRA,
    EXIT_PASS,
    EvalApi,
    SuiteProblem,
    data_dir,
    load_artifact,
    no_traceback,
    say,
)
from pilothouse.cli.eval_run import Options
from pilothouse.cli.output import print_json, print_table


def _split(ref: str) -> tuple[str, str | None]:
    """RUN or RUN#TARGET."""
    run_ref, _, target = ref.partition("#")
    return run_ref, target or None


@click.command("compare")
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
            artifacts[ref] = load_artifact(ref, api)
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
        compare_table(result)
    if fail_on_regression and result["regressions"]:
        raise SystemExit(EXIT_FAIL)


def compare_table(result: dict[str, Any]) -> None:
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
                say(f"skipping {path}: {exc.problems[0]}")
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
                out = data_dir() / "evals" / f"{artifact['id']}.json"
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
            compare_table(diff)
            regressions += (baseline["passed"] and not trial["passed"]) or bool(diff["regressions"])
    finally:
        api.close()
    if infra:
        for line in infra:
            say(f"Error: {line}")
        raise SystemExit(EXIT_INFRA)
    raise SystemExit(EXIT_FAIL if regressions else EXIT_PASS)
