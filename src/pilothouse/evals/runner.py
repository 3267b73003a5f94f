"""Running a suite: build each case's request, call the target with bounded concurrency,
score every output, reduce repeats, and summarise with confidence intervals and a gate."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pilothouse import __version__
from pilothouse.evals import stats
from pilothouse.evals.calls import CallFailed, GatewayCalls
from pilothouse.evals.scorers import SCORER_CODE_VERSION
from pilothouse.evals.suite import Suite
from pilothouse.evals.types import Case, Output, Score, ScorerSpec
from pilothouse.registry import templates


class EvalConfigError(RuntimeError):
    """The run cannot start or continue as configured (exit status 2)."""


@dataclass
class Target:
    """What is under test, resolved: either a route arm or a rendered prompt on a model."""

    kind: str  # "route" or "prompt"
    route: str | None = None
    release: str = "active"
    prompt: dict[str, Any] | None = None  # the registry's JSON for the prompt version
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def request(
        self, case: Case, seed: int | None, repeat: int
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The body and headers for one case and repeat (repeats get distinct seeds)."""
        messages = list(case.inputs.get("messages", []))
        variables = dict(case.inputs.get("variables", {}))
        body: dict[str, Any]
        if self.kind == "route":
            body = {
                "model": f"route:{self.route}",
                "messages": messages,
                "pilothouse": {"variables": variables},
            }
            headers = {"x-pilothouse-release": self.release}
        else:
            assert self.prompt is not None
            fragments = {
                ref: templates.Fragment(**f) for ref, f in self.prompt["fragments"].items()
            }
            rendered = templates.render(
                self.prompt["name"],
                self.prompt["messages"],
                templates.parse_variables(self.prompt["variables"]),
                variables,
                fragments,
            )
            body = {"model": self.model, "messages": rendered.messages + messages, **self.params}
            for key in ("tools", "response_format"):
                if self.prompt.get(key) is not None:
                    body.setdefault(key, self.prompt[key])
            headers = {}
        if seed is not None:
            body.setdefault("seed", seed + repeat)
        return body, headers


class Context:
    """The ScoringContext scorers get: embeddings and the pinned judge, through the gateway."""

    def __init__(self, calls: GatewayCalls, suite: Suite):
        self._calls = calls
        self._suite = suite
        self.judge_models: set[str] = set()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return await self._calls.embed(self._suite.spec.embedding_model, texts)

    async def judge(self, messages: list[dict[str, Any]]) -> str:
        judge = self._suite.spec.judge
        if judge is None:
            raise EvalConfigError("a scorer asked for a judge but the suite declares none")
        text, model = await self._calls.judge(judge.model, dict(judge.params), messages)
        if model:
            self.judge_models.add(model)
        return text


@dataclass
class RunOutcome:
    id: str
    suite: Suite
    passed: bool
    manifest: dict[str, Any]
    summary: dict[str, Any]
    cases: list[dict[str, Any]]
    cache: dict[str, Any]
    stats: dict[str, Any]

    def artifact(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "suite": self.suite.name,
            "owner": self.suite.spec.owner,
            "passed": self.passed,
            "manifest": self.manifest,
            "summary": self.summary,
            "results": {"cases": self.cases, "cache": self.cache},
            "stats": self.stats,
        }


Progress = Callable[[int, int], None]


async def run(
    suite: Suite,
    cases: list[Case],
    target: Target,
    calls: GatewayCalls,
    *,
    dataset: dict[str, Any],
    replay_of: str | None = None,
    progress: Progress | None = None,
) -> RunOutcome:
    started = time.perf_counter()
    spec = suite.spec
    jobs = [(case, repeat) for case in cases for repeat in range(spec.repeat)]
    outputs: dict[tuple[str, int], Output] = {}
    route_headers: dict[str, str] = {}
    done = 0
    queue: asyncio.Queue[tuple[Case, int]] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def worker() -> None:
        nonlocal done
        while not queue.empty():
            case, repeat = queue.get_nowait()
            try:
                body, headers = target.request(case, spec.seed, repeat)
            except (templates.RenderError, templates.TemplateError) as exc:
                raise EvalConfigError(f"case {case.id}: {exc}") from None
            output = await calls.chat(body, headers, repeat)
            if output.error and _is_config_error(output.error):
                raise EvalConfigError(f"case {case.id}: {output.error}")
            outputs[(case.id, repeat)] = output
            if target.kind == "route" and not route_headers:
                route_headers.update(await calls.chat_headers(body, headers, repeat))
            done += 1
            if progress:
                progress(done, len(jobs))

    await _gather(worker() for _ in range(min(spec.concurrency, len(jobs))))
    context = Context(calls, suite)
    cases_out = await _score(suite, cases, outputs, context)
    answered = sorted({o.model for o in outputs.values() if o.model})
    if spec.judge and not spec.allow_self_judge and set(answered) & context.judge_models:
        raise EvalConfigError(
            f"the judge answered as {', '.join(sorted(context.judge_models))}, the model under test: "
            "pick another judge model or set `allow_self_judge: true`"
        )
    summary, passed = summarise(suite, cases_out, [o for o in outputs.values()])
    manifest = _manifest(suite, target, dataset, answered, context, route_headers)
    return RunOutcome(
        id="run_" + datetime.now(UTC).strftime("%Y%m%d%H%M%S") + "_" + secrets.token_hex(3),
        suite=suite,
        passed=passed,
        manifest={**manifest, "replay_of": replay_of},
        summary=summary,
        cases=cases_out,
        cache=calls.cache,
        stats={
            "wall_seconds": round(time.perf_counter() - started, 3),
            "calls": calls.calls_made,
            "retries": calls.retries_made,
            "replayed": calls.offline,
        },
    )


def _is_config_error(error: str) -> bool:
    # The gateway refusing the request itself (not the provider failing) will not get better.
    return error.startswith(("HTTP 400", "HTTP 401", "HTTP 403", "HTTP 404", "HTTP 410"))


async def _gather(coroutines: Any) -> None:
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise


async def _score(
    suite: Suite, cases: list[Case], outputs: dict[tuple[str, int], Output], context: Context
) -> list[dict[str, Any]]:
    semaphore = asyncio.Semaphore(suite.spec.concurrency)

    async def one(case: Case) -> dict[str, Any]:
        repeats = [outputs[(case.id, r)] for r in range(suite.spec.repeat)]
        scores: dict[str, Any] = {}
        for scorer_spec, scorer in suite.scorers:
            async with semaphore:
                scores[scorer_spec.key] = await _apply(
                    scorer_spec, scorer, case, repeats, context, suite.spec.reducer
                )
        return {
            "id": case.id,
            "tags": list(case.tags),
            "outputs": [_output_json(o) for o in repeats],
            "scores": scores,
        }

    results: list[dict[str, Any]] = [{}] * len(cases)

    async def place(index: int, case: Case) -> None:
        results[index] = await one(case)

    await _gather(place(i, c) for i, c in enumerate(cases))
    return results


async def _apply(
    spec: ScorerSpec, scorer: Any, case: Case, repeats: list[Output], context: Context, reducer: str
) -> dict[str, Any]:
    try:
        if getattr(scorer, "group", False):
            score = await scorer(case, repeats, context)
            return {
                "value": score.value,
                "passed": score.passed,
                "invalid": score.invalid,
                "reason": score.reason,
            }
        per_repeat: list[Score] = [await scorer(case, output, context) for output in repeats]
    except CallFailed as exc:
        return {"value": None, "passed": None, "invalid": True, "reason": str(exc)}
    value, passed = stats.reduce_repeats(
        [s.value for s in per_repeat],
        [s.passed for s in per_repeat],
        reducer,
    )
    invalid = value is None and passed is None
    reasons = [s.reason for s in per_repeat if s.reason]
    return {
        "value": value,
        "passed": passed,
        "invalid": invalid,
        "reason": reasons[0] if reasons else None,
        "repeats": [
            {"value": s.value, "passed": s.passed, "invalid": s.invalid} for s in per_repeat
        ]
        if len(per_repeat) > 1
        else None,
    }


def _output_json(output: Output) -> dict[str, Any]:
    return {k: v for k, v in output.__dict__.items() if v is not None}


def summarise(
    suite: Suite, cases: list[dict[str, Any]], outputs: list[Output]
) -> tuple[dict[str, Any], bool]:
    """Per-scorer pass rates and means with 95% intervals, invalid counts, and the gate."""
    per_scorer: dict[str, dict[str, Any]] = {}
    gate_ok = True
    for spec, _ in suite.scorers:
        verdicts = [c["scores"][spec.key] for c in cases]
        valid = [v for v in verdicts if not v["invalid"]]
        passes = sum(1 for v in valid if v["passed"])
        n = len(valid)
        values = [float(v["value"]) for v in valid if v["value"] is not None]
        low, high = stats.wilson_interval(passes, n) if n else (0.0, 0.0)
        mean, mean_low, mean_high = stats.mean_interval(values) if values else (None, None, None)
        pass_rate = passes / n if n else 0.0
        ok = spec.threshold is None or (n > 0 and pass_rate >= spec.threshold)
        gate_ok &= ok
        per_scorer[spec.key] = {
            "type": spec.type,
            "cases": len(verdicts),
            "scored": n,
            "passed": passes,
            "pass_rate": pass_rate,
            "pass_rate_ci95": [low, high],
            "mean": mean,
            "mean_ci95": [mean_low, mean_high] if mean is not None else None,
            "invalid": len(verdicts) - n,
            "threshold": spec.threshold,
            "ok": ok,
        }
    errors = sum(1 for o in outputs if o.error)
    error_rate = errors / len(outputs) if outputs else 0.0
    invalid_total = sum(s["invalid"] for s in per_scorer.values())
    scored_total = sum(s["cases"] for s in per_scorer.values())
    invalid_rate = invalid_total / scored_total if scored_total else 0.0
    gate = suite.spec.gate
    checks = {
        "thresholds": gate_ok,
        "invalid_rate": invalid_rate <= gate.max_invalid_rate,
        "error_rate": error_rate <= gate.max_error_rate,
    }
    summary = {
        "scorers": per_scorer,
        "cases": len(cases),
        "calls": len(outputs),
        "errors": errors,
        "error_rate": error_rate,
        "invalid_rate": invalid_rate,
        "gate": {
            **checks,
            "max_invalid_rate": gate.max_invalid_rate,
            "max_error_rate": gate.max_error_rate,
        },
        "cost_usd": sum(o.cost_usd or 0.0 for o in outputs),
    }
    return summary, all(checks.values())


def _manifest(
    suite: Suite,
    target: Target,
    dataset: dict[str, Any],
    answered: list[str],
    context: Context,
    route_headers: dict[str, str],
) -> dict[str, Any]:
    spec = suite.spec
    judge = spec.judge
    rubrics = sorted(
        {s.options.get("rubric", "") for s, _ in suite.scorers if s.type == "llm_judge"}
    )

    target_part: dict[str, Any] = {"kind": target.kind, "params": target.params}
    if target.kind == "route":
        target_part.update(
            route=target.route,
            release=target.release,
            release_id=route_headers.get("x-pilothouse-release"),
            prompt=route_headers.get("x-pilothouse-prompt"),
            prompt_hash=route_headers.get("x-pilothouse-prompt-hash"),
        )
    else:
        assert target.prompt is not None
        target_part.update(
            prompt=f"{target.prompt['name']}@{target.prompt['version']}",
            prompt_hash=target.prompt["hash"],
            model_alias=target.model,
        )
    target_part["provider_models"] = answered
    return {
        "suite": {"name": spec.name, "path": str(suite.path), "file_hash": suite.file_hash},
        "dataset": dataset,
        "target": target_part,
        "judge": {
            "model_alias": judge.model,
            "params": judge.params,
            "provider_models": sorted(context.judge_models),
            "rubric_hash": hashlib.sha256("\n---\n".join(rubrics).encode()).hexdigest(),
        }
        if judge
        else None,
        "scorers": [
            {"key": s.key, "type": s.type, "options": s.options, "threshold": s.threshold}
            for s, _ in suite.scorers
        ],
        "scorer_code_version": SCORER_CODE_VERSION,
        "repeat": spec.repeat,
        "reducer": spec.reducer,
        "seed": spec.seed,
        "pilothouse_version": __version__,
        "python": sys.version.split()[0],
    }
