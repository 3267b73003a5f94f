"""`pilothouse diff`: what a prompt change (or a route's canary) does to behaviour.

    pilothouse diff triage@6 triage@7 --dataset tickets.jsonl --model fast --label-path label
    pilothouse diff --route support-triage --dataset triage-live     # active -> canary

Both sides answer every case through the gateway as an application (PILOTHOUSE_API_KEY),
like `eval run`, through the same response cache: a side that did not change costs
nothing. Exit status, one meaning each: 0 no behaviour change (identical or rephrased
answers only), 1 behaviour changed, 2 the command, a prompt, version, route, model or
the dataset is wrong (found before any call), 3 the infrastructure failed (the gateway,
a provider, an output file; some cases could not be compared), 130 interrupted.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson

from pilothouse.cli.eval_api import (
    EXIT_FAIL,
    EXIT_INFRA,
    EXIT_PASS,
    EvalApi,
    InfraProblem,
    SuiteProblem,
    cache_dir,
    no_traceback,
    say,
)
from pilothouse.yamlfile import FileError

FORMATS = ("table", "markdown", "json")


@dataclass
class Request:
    """What the command line asked for."""

    old: str | None
    new: str | None
    route: str | None
    dataset: str
    model: str | None = None
    label_path: str | None = None
    noise_floor: bool = False
    embedding_model: str | None = None
    threshold: float | None = None
    seed: int | None = 0
    concurrency: int = 8
    cache: bool = True
    cache_dir: Path | None = None
    out: Path | None = None


def prepare(request: Request, api: EvalApi) -> tuple[Any, dict[str, Any]]:
    """Everything checked before the first call: (DiffSpec, report header); raises
    SuiteProblem (exit 2) listing what is wrong, InfraProblem (3) when the server is away."""
    from pilothouse.behaviour.observe import LabelPathError, parse_label_path
    from pilothouse.behaviour.run import DiffSpec
    from pilothouse.evals import datasets, preflight

    problems = []
    if request.label_path is not None:
        try:
            parse_label_path(request.label_path)
        except LabelPathError as exc:
            problems.append(f"--label-path: {exc}")
    if request.out is not None:
        problem = preflight.output_problem(request.out, "--out")
        if problem:
            problems.append(problem)
    if problems:
        raise SuiteProblem("nothing was called; fix these first:\n  " + "\n  ".join(problems))
    models = {m["id"]: m for m in api.get("/v1/models").get("data", [])}
    old, new = _targets(request, api, models)
    rows, where, dataset = _dataset(request.dataset, api)
    try:
        cases = datasets.cases(rows, where)
    except FileError as exc:
        raise SuiteProblem("the dataset is not valid:\n  " + "\n  ".join(exc.problems)) from None
    available = ", ".join(sorted(models)) or "(none)"
    for alias, what in ((old.model, "--model"), (request.embedding_model, "--embedding-model")):
        if alias is not None and alias not in models:
            problems.append(
                f"{what}: the gateway serves no model {alias!r} to this key ({available})"
            )
    for index, case in enumerate(cases):
        for target in (old, new):
            problem = target.check(case, request.seed)
            if problem:
                problems.append(f"{where[index]}: case {case.id} ({target.name}): {problem}")
    if problems:
        raise SuiteProblem(
            "nothing was called; fix these first:\n  " + "\n  ".join(preflight.shown(problems))
        )
    spec = DiffSpec(
        old=old,
        new=new,
        cases=cases,
        seed=request.seed,
        label_path=request.label_path,
        noise_floor=request.noise_floor,
        embedding_model=request.embedding_model,
        embedding_identity=models.get(request.embedding_model or ""),
        threshold=request.threshold,
        concurrency=request.concurrency,
    )
    header = {
        "kind": "pilothouse.diff",
        "id": "diff_" + datetime.now(UTC).strftime("%Y%m%d%H%M%S") + "_" + secrets.token_hex(3),
        "created_at": datetime.now(UTC).isoformat(),
        "old": old.manifest(),
        "new": new.manifest(),
        "dataset": dataset,
        "seed": request.seed,
    }
    return spec, header


def _targets(request: Request, api: EvalApi, models: dict[str, Any]) -> tuple[Any, Any]:
    from pilothouse.cli import eval_resolve
    from pilothouse.evals.targets import Target

    if request.route is not None:
        if request.old or request.new or request.model:
            raise SuiteProblem(
                "--route compares the route's active release with its canary: give no "
                "PROMPT@VERSION and no --model with it"
            )
        route = eval_resolve.fetch_route(api, request.route)
        if route.get("canary") is None:
            raise SuiteProblem(
                f"route {request.route!r} has no canary release to compare with its active "
                f"one; start one with `pilothouse releases canary {request.route} ...`"
            )
        active, canary = (
            eval_resolve.route_target(api, route, arm, models, name=f"{request.route}/{arm}")
            for arm in ("active", "canary")
        )
        return active, canary
    if not request.old or not request.new:
        raise SuiteProblem(
            "give two prompt versions (pilothouse diff NAME@OLD NAME@NEW --model ALIAS ...) "
            "or a route (--route NAME, its active release against its canary)"
        )
    if not request.model:
        raise SuiteProblem(
            "--model: name the model alias both versions run on (a prompt has no model of "
            "its own); `pilothouse models ls` lists them"
        )
    out = []
    for ref in (request.old, request.new):
        prompt = eval_resolve.fetch_prompt(api, ref)
        out.append(
            Target(
                kind="prompt",
                prompt=prompt,
                model=request.model,
                name=f"{prompt['name']}@{prompt['version']}/{request.model}",
                identity={"model": models.get(request.model, request.model)},
            )
        )
    return out[0], out[1]


def _dataset(ref: str, api: EvalApi) -> tuple[list[dict[str, Any]], list[str], dict[str, Any]]:
    """A JSONL or CSV file, else a dataset the server keeps (NAME or NAME@VERSION)."""
    from pilothouse.cli import eval_resolve
    from pilothouse.evals import datasets

    path = Path(ref)
    if path.is_file():
        try:
            rows, where = datasets.load_located(path)
        except FileError as exc:
            raise SuiteProblem(
                "the dataset is not valid:\n  " + "\n  ".join(exc.problems)
            ) from None
        return (
            rows,
            where,
            {"source": str(path), "hash": datasets.dataset_hash(rows), "rows": len(rows)},
        )
    name, _, version = ref.partition("@")
    if path.suffix.lower() in (".jsonl", ".csv", ".json") or os.sep in ref or not name:
        raise SuiteProblem(f"--dataset {ref}: no such file")
    if version and not version.isdigit():
        raise SuiteProblem(f"--dataset {ref}: a stored dataset is NAME or NAME@VERSION (a number)")
    try:
        return eval_resolve.stored_dataset(api, name, int(version) if version else None)
    except SuiteProblem as exc:
        raise SuiteProblem(f"--dataset {ref}: no such file, and {exc.message}") from None


def perform(spec: Any, header: dict[str, Any], request: Request, api: EvalApi) -> dict[str, Any]:
    """Run the diff in this process; returns the report (KeyboardInterrupt propagates)."""
    from pilothouse.behaviour.run import run_diff
    from pilothouse.evals.cache import ResponseCache
    from pilothouse.evals.calls import GatewayCalls
    from pilothouse.evals.progress import ProgressPrinter

    cache = None
    if request.cache:
        cache = ResponseCache(cache_dir(request.cache_dir))
    calls = GatewayCalls(
        api.url, api.token, concurrency=request.concurrency, run_id=header["id"], cache=cache
    )
    printer = ProgressPrinter(sys.stderr, bar=sys.stderr.isatty(), label="diff: ")

    async def go() -> dict[str, Any]:
        try:
            return await run_diff(spec, calls, header, progress=printer)
        finally:
            await calls.close()

    try:
        report = asyncio.run(go())
    finally:
        printer.finish()
    if cache is not None and cache.write_error:
        report["warnings"] = [f"answers not cached: {cache.write_error}"]
    return report


def rendered(report: dict[str, Any], fmt: str) -> str:
    from pilothouse.behaviour import render

    if fmt == "json":
        return orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n"
    return render.markdown(report) if fmt == "markdown" else render.table(report)


def account(calls: dict[str, Any]) -> str:
    """Where the answers came from, one line: `old 8 cached, 0 called; new ...`."""
    parts = [
        f"{name} {c.get('cached', 0)} cached, {c.get('called', 0)} called"
        for name, c in calls["sides"].items()
    ]
    embeddings = calls.get("embeddings") or {}
    if embeddings:
        cached = sum(n for source, n in embeddings.items() if source != "live")
        parts.append(f"embeddings {cached} cached, {embeddings.get('live', 0)} called")
    return f"diff: {'; '.join(parts)}; {calls['gateway_calls']} requests to the gateway"


def exit_status(report: dict[str, Any]) -> int:
    """3 when a case could not be compared (the evidence is incomplete), else 1 when a
    behaviour changed, else 0."""
    if report["incomplete"]:
        return EXIT_INFRA
    return EXIT_FAIL if report["changed"] else EXIT_PASS


@click.command("diff")
@click.argument("old", required=False)
@click.argument("new", required=False)
@click.option("--route", default=None, help="Compare ROUTE's active release with its canary.")
@click.option("--dataset", required=True, help="A JSONL/CSV file, or a stored dataset NAME[@V].")
@click.option("--model", default=None, help="The model alias both prompt versions run on.")
@click.option(
    "--label-path", default=None, help="Where the label is in JSON answers: label, $.result.label."
)
@click.option(
    "--noise-floor",
    is_flag=True,
    help="Answer the old side twice; report only changes beyond its own flips.",
)
@click.option(
    "--embedding-model",
    default=None,
    help="Judge meaning with this embedding alias (default: a lexical measure).",
)
@click.option(
    "--rephrase-threshold",
    type=click.FloatRange(0, 1),
    default=None,
    help="Similarity from which an answer is rephrased (embeddings 0.75, lexical 0.50).",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Sent with every call (the noise floor's second answers: seed + 1).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 512),
    default=8,
    show_default=True,
    help="Calls in flight to the gateway (a cached answer takes no slot).",
)
@click.option("--no-cache", is_flag=True, help="Call the gateway for every answer.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Response cache folder [PILOTHOUSE_EVAL_CACHE_DIR; default .pilothouse/eval-cache].",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the report here instead of stdout.",
)
@no_traceback
def diff(
    old: str | None,
    new: str | None,
    route: str | None,
    dataset: str,
    model: str | None,
    label_path: str | None,
    noise_floor: bool,
    embedding_model: str | None,
    rephrase_threshold: float | None,
    seed: int,
    concurrency: int,
    no_cache: bool,
    cache_dir: Path | None,
    fmt: str,
    out: Path | None,
) -> None:  # fmt: skip
    """Behaviour diff of two prompt versions, or a route's canary, over a dataset.

    OLD NEW are prompt versions (triage@6 triage@7) run on --model; --route ROUTE compares
    the route's active release with its canary.

    Exit status: 0 no behaviour change, 1 behaviour changed, 2 the command, a prompt,
    route, model or the dataset is wrong (nothing was called), 3 the gateway, a provider
    or an output file failed, 130 interrupted.
    """
    try:
        import aiohttp  # noqa: F401  (the calls' client: the `evals` extra)
    except ModuleNotFoundError:
        raise SuiteProblem(
            "pilothouse diff calls the gateway with aiohttp, which the light install leaves "
            "out: pip install 'pilothouse[evals]'"
        ) from None
    request = Request(
        old=old,
        new=new,
        route=route,
        dataset=dataset,
        model=model,
        label_path=label_path,
        noise_floor=noise_floor,
        embedding_model=embedding_model,
        threshold=rephrase_threshold,
        seed=seed,
        concurrency=concurrency,
        cache=not no_cache,
        cache_dir=cache_dir,
        out=out,
    )
    api = EvalApi()
    try:
        spec, header = prepare(request, api)
        report = perform(spec, header, request, api)
    finally:
        api.close()
    text = rendered(report, fmt)
    if out is None:
        click.echo(text, nl=False)
    else:
        try:
            out.write_text(text)
        except OSError as exc:
            raise InfraProblem(f"--out {out}: could not write: {exc.strerror or exc}") from None
    say(account(report["calls"]))
    from pilothouse.behaviour.render import verdict

    say(verdict(report))
    raise SystemExit(exit_status(report))
