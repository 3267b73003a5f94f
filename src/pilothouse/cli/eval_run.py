"""One `pilothouse eval run` from the command line: prepare, perform, finish.

`prepare` does everything that can fail before the first model call (the suite, the
dataset, every case against every target and scorer, every model through GET /v1/models,
options, output paths, recorded runs) and raises `SuiteProblem` (exit 2) listing every
fault. `perform` runs it; `finish` writes every output file and stores the run, and
returns what went wrong with the infrastructure (exit 3), never raising for it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click
import httpx
import orjson

from pilothouse import errors
from pilothouse.evals import compare as comparing
from pilothouse.evals import datasets, preflight
from pilothouse.evals import suite as suite_module
from pilothouse.evals.cache import Journal, JournalError, ResponseCache
from pilothouse.evals.calls import GatewayCalls, ReplayMiss
from pilothouse.evals.runner import EvalConfigError, Progress, plan_manifest, run
from pilothouse.evals.suite import Suite, SuiteTarget
from pilothouse.evals.targets import Target
from pilothouse.evals.types import Case
from pilothouse.releases.promotion import check_params
from pilothouse.yamlfile import FileError

EXIT_PASS, EXIT_FAIL, EXIT_CONFIG, EXIT_INFRA, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class SuiteProblem(click.ClickException):
    """The suite, dataset or command is wrong; found before any call (exit 2)."""

    exit_code = EXIT_CONFIG


class InfraProblem(click.ClickException):
    """The gateway, a provider, storage or an output file failed (exit 3)."""

    exit_code = EXIT_INFRA


class Interrupted(Exception):
    """Ctrl-C during the calls; the journal keeps what was done."""

    def __init__(self, run_id: str, journal: Path | None):
        super().__init__(run_id)
        self.run_id = run_id
        self.journal = journal


def data_dir() -> Path:
    return Path(os.environ.get("PILOTHOUSE_DATA_DIR", ".pilothouse"))


def journal_path(run_id: str) -> Path:
    return data_dir() / "evals" / f"{run_id}.journal.jsonl"


class EvalApi:
    """The REST API and the gateway as an application (PILOTHOUSE_API_KEY), with failures
    sorted: unreachable or 5xx is the infrastructure's, other refusals are the command's."""

    def __init__(self) -> None:
        self.url = (os.environ.get("PILOTHOUSE_URL") or "http://127.0.0.1:8080").rstrip("/")
        token = os.environ.get("PILOTHOUSE_API_KEY") or os.environ.get("PILOTHOUSE_ADMIN_TOKEN")
        if not token:
            raise SuiteProblem(
                "PILOTHOUSE_API_KEY is not set: an eval calls the gateway as an application. "
                "Create a key with `pilothouse keys create --name ci-evals`"
            )
        self.token = token
        self._client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=60.0
        )

    def close(self) -> None:
        self._client.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise InfraProblem(
                f"cannot reach Pilothouse at {self.url} ({type(exc).__name__}: {exc}); is "
                "`pilothouse serve` running? (set PILOTHOUSE_URL to point elsewhere)"
            ) from None
        if response.status_code < 400:
            return response.json()
        message = _message(response)
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise InfraProblem(f"{method} {path}: HTTP {response.status_code}: {message}")
        raise SuiteProblem(f"{method} {path}: HTTP {response.status_code}: {message}")

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.request(
            "POST", path, content=orjson.dumps(body), headers={"content-type": "application/json"}
        )


def _message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return response.text[:300]
    if isinstance(error, dict):
        text = str(error.get("message", ""))
        return text + (f" ({error['hint']})" if error.get("hint") else "")
    return str(error)


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


def load_artifact(ref: str, api: EvalApi | None) -> dict[str, Any]:
    """A run artifact from a file, else from the API by run id."""
    path = Path(ref)
    if path.exists():
        try:
            artifact = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise SuiteProblem(f"{path}: not a run artifact ({exc})") from None
    else:
        if api is None:
            api = EvalApi()
        artifact = api.get(f"/api/evals/runs/{quote(ref)}")
    if not isinstance(artifact, dict) or "manifest" not in artifact:
        raise SuiteProblem(f"{ref}: not a run artifact")
    return artifact


def prepare(suite_path: Path, options: Options, api: EvalApi | None = None) -> Plan:
    """Check everything, call no model; raises SuiteProblem (2) or InfraProblem (3)."""
    try:
        suite = suite_module.load(suite_path)
    except FileError as exc:
        raise SuiteProblem("the suite is not valid:\n  " + "\n  ".join(exc.problems)) from None
    chosen = [o for o in ("replay", "rescore", "resume") if getattr(options, o)]
    if len(chosen) > 1:
        raise SuiteProblem(f"--{chosen[0]} and --{chosen[1]} cannot be combined")
    selected = _select_targets(suite, options)
    try:
        check_params(options.params)
    except errors.InvalidRequest as exc:
        raise SuiteProblem(f"--param: {exc.message}") from None
    api = api or EvalApi()
    replayed = load_artifact(options.replay, api) if options.replay else None
    if replayed is not None:  # a replay calls nothing under /v1: the record says what was served
        models = _models_in(replayed["manifest"])
    else:
        models = {m["id"]: m for m in api.get("/v1/models").get("data", [])}
    targets = [_resolve(suite, t, options, api, models) for t in selected]
    rows, where, dataset = _dataset(suite, api)
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


def _select_targets(suite: Suite, options: Options) -> list[SuiteTarget]:
    targets = suite.targets
    if options.targets:
        names = [t.name for t in targets]
        unknown = [n for n in options.targets if n not in names]
        if unknown:
            raise SuiteProblem(
                f"--target {', '.join(unknown)}: the suite has no such target; it has "
                + ", ".join(names)
            )
        targets = [t for t in targets if t.name in options.targets]
    overrides = options.prompt or options.model or options.params or options.release
    if overrides and len(targets) > 1:
        raise SuiteProblem(
            f"the suite has {len(targets)} targets; --prompt, --model, --param and --release "
            "change one: pick it with --target NAME"
        )
    return targets


def _resolve(
    suite: Suite, spec: SuiteTarget, options: Options, api: EvalApi, models: dict[str, Any]
) -> Target:
    """The suite target (or the candidate the command line builds from it), resolved."""
    arm = options.release or spec.release
    overrides = options.prompt or options.model or options.params
    if spec.route and not overrides:
        route = _route(api, spec.route)
        release = route.get(arm)
        if release is None:
            raise SuiteProblem(f"route {spec.route!r} has no {arm} release")
        name = spec.name if options.release is None else f"{spec.route}/{arm}"
        return Target(
            kind="route",
            route=spec.route,
            release=arm,
            name=name,
            candidate=spec.candidate,
            release_info=release,
            release_prompt=_prompt(api, release["prompt"]),
            identity={
                "release": release["id"],
                "prompt_hash": release["prompt_hash"],
                "params": release["params"],
                "model": models.get(release["model"], release["model"]),
            },
        )
    base_prompt, base_model, base_params = spec.prompt, spec.model, spec.params_dict()
    if spec.route:  # a candidate for a route starts from what the route serves now
        current = _route(api, spec.route).get(arm)
        if current is None:
            raise SuiteProblem(
                f"route {spec.route!r} has no {arm} release to build a candidate from"
            )
        base_prompt, base_model, base_params = (
            current["prompt"],
            current["model"],
            current["params"],
        )
    prompt = _prompt(api, options.prompt or str(base_prompt))
    model = options.model or str(base_model)
    name = spec.name if not overrides else f"{prompt['name']}@{prompt['version']}/{model}"
    return Target(
        kind="prompt",
        prompt=prompt,
        model=model,
        params={**base_params, **options.params},
        name=name,
        candidate=spec.candidate,
        identity={"model": models.get(model, model)},
    )


def _route(api: EvalApi, name: str) -> dict[str, Any]:
    routes = {r["name"]: r for r in api.get("/api/routes")["data"]}
    if name not in routes:
        raise SuiteProblem(f"no route {name!r}; routes: {', '.join(sorted(routes)) or '(none)'}")
    return dict(routes[name])


def _prompt(api: EvalApi, ref: str) -> dict[str, Any]:
    name, version, label = _split_ref(ref)
    fetched = api.get(f"/api/prompts/{quote(name)}", version=version, label=label)
    if fetched.get("messages") is None:
        raise SuiteProblem(f"prompt {name!r} is a fragment: a target needs a chat prompt")
    return dict(fetched)


def _split_ref(ref: str) -> tuple[str, str | None, str | None]:
    if "@" in ref:
        name, version = ref.split("@", 1)
        return name, version, None
    if ":" in ref:
        name, label = ref.split(":", 1)
        return name, None, label
    return ref, None, None


def _dataset(suite: Suite, api: EvalApi) -> tuple[list[dict[str, Any]], list[str], dict[str, Any]]:
    path = suite.dataset_path()
    if path is not None:
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
    ref = suite.spec.dataset
    assert not isinstance(ref, str)
    stored = api.get(f"/api/datasets/{quote(ref.name)}", version=ref.version)
    source = f"{stored['name']}@{stored['version']}"
    where = [f"{source} row {i + 1}" for i in range(len(stored["rows"]))]
    return (
        stored["rows"],
        where,
        {"source": source, "hash": stored["hash"], "rows": len(stored["rows"])},
    )


def _models_in(manifest: dict[str, Any]) -> dict[str, Any]:
    """The GET /v1/models entries a recorded run resolved its aliases to."""
    found: dict[str, Any] = {}
    identities = [t.get("identity") for t in manifest.get("targets") or []]
    identities += [(manifest.get(k) or {}).get("identity") for k in ("judge", "embedding_model")]
    for identity in identities:
        for entry in (identity, identity.get("model") if isinstance(identity, dict) else None):
            if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                found[entry["id"]] = entry
    return found


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
        cache = ResponseCache(
            options.cache_dir
            or Path(os.environ.get("PILOTHOUSE_EVAL_CACHE_DIR") or data_dir() / "eval-cache")
        )
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


def say(message: str) -> None:
    click.echo(message, err=True)


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()
