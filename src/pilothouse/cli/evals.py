"""`pilothouse eval`: run a suite as a gate, list and compare runs."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click
import orjson

from pilothouse.cli.client import ApiClient
from pilothouse.cli.output import print_json, print_table
from pilothouse.cli.releases import _params
from pilothouse.yamlfile import FileError

EXIT_PASS, EXIT_FAIL, EXIT_CONFIG = 0, 1, 2


class ConfigProblem(click.ClickException):
    exit_code = EXIT_CONFIG


def app_client() -> ApiClient:
    """The API as an application: PILOTHOUSE_API_KEY (the admin token also reads)."""
    token = os.environ.get("PILOTHOUSE_API_KEY") or os.environ.get("PILOTHOUSE_ADMIN_TOKEN")
    if not token:
        raise ConfigProblem(
            "PILOTHOUSE_API_KEY is not set: an eval calls the gateway as an application. "
            "Create a key with `pilothouse keys create --name ci-evals`"
        )
    return ApiClient(token=token)


def resolve_target(
    suite: Any,
    api: ApiClient,
    *,
    prompt: str | None,
    model: str | None,
    params: dict[str, Any],
    release: str | None,
) -> Any:
    """The suite's target, or a candidate built from the command-line overrides."""
    from pilothouse.evals.runner import Target

    spec = suite.spec.target
    arm = release or spec.release
    if spec.route and not (prompt or model or params):
        return Target(kind="route", route=spec.route, release=arm)
    base_prompt, base_model, base_params = spec.prompt, spec.model, dict(spec.params)
    if spec.route:  # a candidate for a route starts from what the route serves now
        routes = {r["name"]: r for r in api.get("/api/routes")["data"]}
        current = (routes.get(spec.route) or {}).get(arm)
        if current is None:
            raise ConfigProblem(
                f"route {spec.route!r} has no {arm} release to build a candidate from"
            )
        base_prompt, base_model, base_params = (
            current["prompt"],
            current["model"],
            dict(current["params"]),
        )
    ref = prompt or base_prompt
    assert ref is not None
    name, version, label = _split_ref(ref)
    fetched = api.get(f"/api/prompts/{quote(name)}", version=version, label=label)
    if fetched.get("messages") is None:
        raise ConfigProblem(f"prompt {name!r} is a fragment: a target needs a chat prompt")
    return Target(
        kind="prompt", prompt=fetched, model=model or base_model, params={**base_params, **params}
    )


def _split_ref(ref: str) -> tuple[str, str | None, str | None]:
    if "@" in ref:
        name, version = ref.split("@", 1)
        return name, version, None
    if ":" in ref:
        name, label = ref.split(":", 1)
        return name, None, label
    return ref, None, None


def load_rows(suite: Any, api: ApiClient) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from pilothouse.evals import datasets

    path = suite.dataset_path()
    if path is not None:
        data = datasets.load_file(path)
        return data, {"source": str(path), "hash": datasets.dataset_hash(data), "rows": len(data)}
    stored = api.get(
        f"/api/datasets/{quote(suite.spec.dataset.name)}", version=suite.spec.dataset.version
    )
    return stored["rows"], {
        "source": f"{stored['name']}@{stored['version']}",
        "hash": stored["hash"],
        "rows": len(stored["rows"]),
    }


def load_recorded(replay: str, api: ApiClient) -> tuple[str, dict[str, Any]]:
    path = Path(replay)
    artifact = (
        orjson.loads(path.read_bytes())
        if path.exists()
        else api.get(f"/api/evals/runs/{quote(replay)}")
    )
    return artifact["id"], artifact["results"]["cache"]


def execute(
    suite_path: Path,
    *,
    prompt: str | None = None,
    model: str | None = None,
    params: dict[str, Any] | None = None,
    release: str | None = None,
    replay: str | None = None,
) -> dict[str, Any]:
    """Run a suite; return the artifact. Raises ConfigProblem for anything exit-2 worthy."""
    from pilothouse.evals import datasets, runner
    from pilothouse.evals import suite as suite_module
    from pilothouse.evals.calls import GatewayCalls, ReplayMiss

    try:
        suite = suite_module.load(suite_path)
    except FileError as exc:
        raise ConfigProblem("the suite is not valid:\n  " + "\n  ".join(exc.problems)) from None
    api = app_client()
    try:
        target = resolve_target(
            suite, api, prompt=prompt, model=model, params=params or {}, release=release
        )
        data, dataset = load_rows(suite, api)
        cases = datasets.cases(data)
        replay_of, recorded = load_recorded(replay, api) if replay else (None, None)
    except FileError as exc:
        raise ConfigProblem("\n".join(exc.problems)) from None
    except click.ClickException as exc:
        raise ConfigProblem(exc.message) from None
    except Exception as exc:
        raise ConfigProblem(str(exc)) from None
    calls = GatewayCalls(
        api.url, api.token or "", concurrency=suite.spec.concurrency, recorded=recorded
    )

    async def go() -> Any:
        try:
            return await runner.run(
                suite,
                cases,
                target,
                calls,
                dataset=dataset,
                replay_of=replay_of,
                progress=_progress if sys.stderr.isatty() else None,
            )
        finally:
            await calls.close()

    try:
        outcome = asyncio.run(go())
    except (runner.EvalConfigError, ReplayMiss) as exc:
        raise ConfigProblem(str(exc)) from None
    if sys.stderr.isatty():
        click.echo("", err=True)
    return outcome.artifact()


def _progress(done: int, total: int) -> None:
    width = 30
    filled = int(width * done / total) if total else width
    click.echo(
        f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total} calls", nl=False, err=True
    )


def report(artifact: dict[str, Any]) -> None:
    from pilothouse.evals import report as reports

    print_table(
        reports.summary_rows(artifact["summary"]),
        ["scorer", "pass_rate", "ci95", "mean", "scored", "invalid", "threshold", "gate"],
    )
    click.echo(reports.headline(artifact))


@click.group(name="eval")
def eval_() -> None:
    """Eval-as-code: run suites as CI gates, list and compare runs."""


@eval_.command("run")
@click.argument("suite_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
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
    "--replay",
    default=None,
    help="A run id or artifact file: re-score its recorded answers, call nobody.",
)
@click.option(
    "--junit",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write JUnit XML here.",
)
@click.option(
    "--markdown",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a Markdown summary here.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the run artifact (manifest, results, recorded answers) here.",
)
@click.option("--no-store", is_flag=True, help="Do not record the run on the server.")
def run(
    suite_path: Path,
    prompt: str | None,
    model: str | None,
    params: tuple[str, ...],
    release: str | None,
    replay: str | None,
    junit: Path | None,
    markdown: Path | None,
    output: Path | None,
    no_store: bool,
) -> None:
    """Run SUITE_PATH. Exit 0 when the gate passes, 1 when it fails, 2 on a configuration error."""
    from pilothouse.evals import report as reports

    artifact = execute(
        suite_path,
        prompt=prompt,
        model=model,
        params=_params(params),
        release=release,
        replay=replay,
    )
    report(artifact)
    out = (
        output
        or Path(os.environ.get("PILOTHOUSE_DATA_DIR", ".pilothouse"))
        / "evals"
        / f"{artifact['id']}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(artifact, option=orjson.OPT_INDENT_2))
    click.echo(f"artifact: {out}")
    if junit:
        junit.write_text(reports.junit(artifact))
    if markdown:
        markdown.write_text(reports.markdown(artifact))
    if not no_store:
        app_client().post("/api/evals/runs", artifact)
    raise SystemExit(EXIT_PASS if artifact["passed"] else EXIT_FAIL)


@eval_.command("runs")
@click.option("--suite", default=None, help="Only runs of this suite.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
def runs(suite: str | None, as_json: bool) -> None:
    """Recorded runs, newest first."""
    data = app_client().get("/api/evals/runs", suite=suite)["data"]
    if as_json:
        print_json(data)
        return
    for row in data:
        row["gate"] = "passed" if row["passed"] else "FAILED"
        row["replay"] = row["replay_of"] or "-"
    print_table(data, ["created_at", "id", "suite", "gate", "replay"])


@eval_.command("show")
@click.argument("run_id")
def show(run_id: str) -> None:
    """A recorded run's summary and manifest."""
    artifact = _artifact(run_id)
    report(artifact)
    print_json(artifact["manifest"])


def _artifact(ref: str) -> dict[str, Any]:
    path = Path(ref)
    if path.exists():
        return orjson.loads(path.read_bytes())
    return app_client().get(f"/api/evals/runs/{quote(ref)}")


@eval_.command("compare")
@click.argument("run_a")
@click.argument("run_b")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
def compare(run_a: str, run_b: str, as_json: bool) -> None:
    """Per-scorer deltas from RUN_A to RUN_B, a paired significance test, and flipped cases."""
    from pilothouse.evals import report as reports

    result = reports.compare(_artifact(run_a), _artifact(run_b))
    if as_json:
        print_json(result)
        return
    rows = [
        {
            "scorer": key,
            "a": f"{s['pass_rate_a'] * 100:.1f}%",
            "b": f"{s['pass_rate_b'] * 100:.1f}%",
            "delta_mean": f"{s['delta_mean']:+.3f}",
            "p_value": f"{s['p_value']:.3g}",
            "test": s["test"],
            "fixed": len(s["fixed"]),
            "broken": len(s["broken"]),
        }
        for key, s in result["scorers"].items()
    ]
    print_table(rows, ["scorer", "a", "b", "delta_mean", "p_value", "test", "fixed", "broken"])
    for key, s in result["scorers"].items():
        if s["broken"]:
            click.echo(f"{key}: broken in B: {', '.join(s['broken'][:20])}")
        if s["fixed"]:
            click.echo(f"{key}: fixed in B: {', '.join(s['fixed'][:20])}")
