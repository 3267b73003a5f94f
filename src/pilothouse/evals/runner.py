"""Running a suite: call every target for every case with bounded concurrency, score each
case as soon as its repeats are in (so judging overlaps the calls), reduce repeats, and
summarise each target with intervals and its gate.

Everything that can be checked is checked before `run` is called (`preflight.py`); what
goes wrong here is the infrastructure's (recorded on the outputs) or a replay that does
not match its record (`ReplayMiss`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pilothouse.evals import gate, stats
from pilothouse.evals.calls import CallFailed, GatewayCalls
from pilothouse.evals.manifest import run_manifest
from pilothouse.evals.suite import Suite
from pilothouse.evals.targets import Target
from pilothouse.evals.types import Case, Output, Score, ScorerSpec

__all__ = ["EvalConfigError", "ProgressState", "RunOutcome", "Target", "run"]


class EvalConfigError(RuntimeError):
    """The run cannot start or continue as configured (exit status 2)."""


@dataclass
class ProgressState:
    """Where a run is: target calls made (or answered from records) and cases scored."""

    calls_total: int
    scored_total: int
    calls_done: int = 0
    scored_done: int = 0
    started: float = field(default_factory=time.monotonic)


Progress = Callable[[ProgressState], None]


class Context:
    """The ScoringContext scorers get: embeddings and the pinned judge, through the gateway."""

    def __init__(self, calls: GatewayCalls, suite: Suite, models: dict[str, Any]):
        self._calls = calls
        self._suite = suite
        self._models = models
        self.judge_models: set[str] = set()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        alias = self._suite.spec.embedding_model
        return await self._calls.embed(alias, texts, identity=self._models.get(alias))

    async def judge(
        self, messages: list[dict[str, Any]], response_format: dict[str, Any] | None = None
    ) -> str:
        judge = self._suite.spec.judge
        if judge is None:
            raise EvalConfigError("a scorer asked for a judge but the suite declares none")
        text, model = await self._calls.judge(
            judge.model,
            dict(judge.params),
            messages,
            response_format if judge.structured else None,
            identity=self._models.get(judge.model),
        )
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
            "created_at": datetime.now(UTC).isoformat(),
            "manifest": self.manifest,
            "summary": self.summary,
            "results": {"cases": self.cases, "cache": self.cache},
            "stats": self.stats,
        }


async def run(
    suite: Suite,
    cases: list[Case],
    targets: list[Target],
    calls: GatewayCalls,
    *,
    dataset: dict[str, Any],
    run_id: str,
    models: dict[str, Any] | None = None,
    origin: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> RunOutcome:
    """Run every target on every case; `models` maps aliases to what GET /v1/models said.

    `origin` goes into the manifest as is (replay_of, rescore_of, resumed, baseline).
    """
    started = time.perf_counter()
    spec = suite.spec
    repeat = spec.repeat
    models = models or {}
    state = ProgressState(
        calls_total=len(targets) * len(cases) * repeat, scored_total=len(targets) * len(cases)
    )
    outputs: list[list[list[Output | None]]] = [[[None] * repeat for _ in cases] for _ in targets]
    remaining = [[repeat] * len(cases) for _ in targets]
    results: list[list[dict[str, Any]]] = [[{} for _ in cases] for _ in targets]
    served: list[set[str]] = [set() for _ in targets]
    cacheable = [t.cacheable(spec.seed) for t in targets]
    context = Context(calls, suite, models)
    # Case-major, so a case's repeats finish together and its scoring can start early.
    jobs = deque(
        (ti, ci, r) for ci in range(len(cases)) for ti in range(len(targets)) for r in range(repeat)
    )
    scoring: list[asyncio.Future[None]] = []

    def tick() -> None:
        if progress is not None:
            progress(state)

    async def score(ti: int, ci: int) -> None:
        results[ti][ci] = await _score_case(
            suite, cases[ci], [o for o in outputs[ti][ci] if o is not None], context
        )
        state.scored_done += 1
        tick()

    async def worker() -> None:
        while jobs:
            ti, ci, r = jobs.popleft()
            target, case = targets[ti], cases[ci]
            body, headers = target.request(case, spec.seed, r)
            output, answered_headers = await calls.chat(
                body, headers, r, identity=target.identity, cacheable=cacheable[ti]
            )
            outputs[ti][ci][r] = output
            if answered_headers.get("x-pilothouse-release"):
                served[ti].add(answered_headers["x-pilothouse-release"])
            state.calls_done += 1
            tick()
            remaining[ti][ci] -= 1
            if remaining[ti][ci] == 0:
                scoring.append(asyncio.ensure_future(score(ti, ci)))

    try:
        await _gather(worker() for _ in range(min(spec.concurrency, len(jobs)) or 1))
        await _gather_futures(scoring)
    except BaseException:
        for task in scoring:
            task.cancel()
        raise
    answered = [sorted({o.model for row in per for o in row if o and o.model}) for per in outputs]
    if spec.judge and not spec.allow_self_judge:
        for target, models_answered in zip(targets, answered, strict=True):
            if set(models_answered) & context.judge_models:
                raise EvalConfigError(
                    f"the judge answered as {', '.join(sorted(context.judge_models))}, the model "
                    f"under test in target {target.name}: pick another judge model or set "
                    "`allow_self_judge: true`"
                )
    gated = {t.name for t in _gated(targets)}
    summaries = {}
    for ti, target in enumerate(targets):
        flat = [o for row in outputs[ti] for o in row if o is not None]
        case_results = [
            {"id": case.id, "tags": list(case.tags), "scores": results[ti][ci]["scores"]}
            for ci, case in enumerate(cases)
        ]
        summaries[target.name] = gate.target_summary(
            [s for s, _ in suite.scorers],
            case_results,
            flat,
            spec.gate,
            gated=target.name in gated,
        )
    passed = all(s["passed"] for name, s in summaries.items() if name in gated)
    case_rows = [
        {
            "id": case.id,
            "tags": list(case.tags),
            "inputs": case.inputs,
            "expected": case.expected,
            "targets": {t.name: results[ti][ci] for ti, t in enumerate(targets)},
        }
        for ci, case in enumerate(cases)
    ]
    costs = _costs(calls, summaries)
    manifest = run_manifest(
        suite, targets, dataset, answered, served, context.judge_models, models, calls
    )
    return RunOutcome(
        id=run_id,
        suite=suite,
        passed=passed,
        manifest={**manifest, **(origin or {})},
        summary={
            "passed": passed,
            "targets": summaries,
            "gated_targets": [t.name for t in targets if t.name in gated],
            "cases": len(cases),
            "calls": state.calls_total,
            "cost_usd": costs,
            "cache": {
                "enabled": calls.cache is not None,
                "hits": calls.counts["hits"],
                "misses": calls.counts["misses"],
                "uncached": calls.counts["uncached"],
                "replayed": calls.counts["replayed"],
                "resumed": calls.counts["resumed"],
                "by_kind": {k: v for k, v in sorted(calls.counts.items()) if ":" in k},
            },
        },
        cases=case_rows,
        cache=calls.used,
        stats={
            "wall_seconds": round(time.perf_counter() - started, 3),
            "calls": calls.counts["calls"],
            "retries": calls.counts["retries"],
            "infra_failures": calls.counts["infra_failures"],
            "aborted": calls.broken,
            "replayed": calls.offline,
        },
    )


def _gated(targets: Sequence[Target]) -> list[Target]:
    marked = [t for t in targets if t.candidate]
    return marked or list(targets)


async def _gather(coroutines: Iterable[Coroutine[Any, Any, None]]) -> None:
    await _gather_futures([asyncio.ensure_future(c) for c in coroutines])


async def _gather_futures(tasks: list[asyncio.Future[None]]) -> None:
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise


async def _score_case(
    suite: Suite, case: Case, repeats: list[Output], context: Context
) -> dict[str, Any]:
    scores: dict[str, Any] = {}
    for scorer_spec, scorer in suite.scorers:
        scores[scorer_spec.key] = await _apply(
            scorer_spec, scorer, case, repeats, context, suite.spec.reducer, suite.spec.ties
        )
    return {"outputs": [_output_json(o) for o in repeats], "scores": scores}


async def _apply(
    spec: ScorerSpec,
    scorer: Any,
    case: Case,
    repeats: list[Output],
    context: Context,
    reducer: str,
    ties: str,
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
        [s.value for s in per_repeat], [s.passed for s in per_repeat], reducer, ties
    )
    invalid = value is None and passed is None
    reasons = [s.reason for s in per_repeat if s.reason]
    return {
        "value": value,
        "passed": passed,
        "invalid": invalid,
        "reason": reasons[0] if reasons else None,
        "repeats": [
            {"value": s.value, "passed": s.passed, "invalid": s.invalid, "reason": s.reason}
            for s in per_repeat
        ]
        if len(per_repeat) > 1
        else None,
    }


def _output_json(output: Output) -> dict[str, Any]:
    return {k: v for k, v in output.__dict__.items() if v is not None}


def _costs(calls: GatewayCalls, summaries: dict[str, Any]) -> dict[str, Any]:
    """What the answers this run used cost when they were made, by kind; `spent` is what
    this run's own calls to the gateway cost (cache hits and replays are free)."""
    judge = embeddings = 0.0
    unpriced = 0
    for key, record in calls.used.items():
        kind = calls.kind_of.get(key)
        if kind == "judge":
            judge += (record.get("output") or {}).get("cost_usd") or 0.0
        elif kind == "embed":
            if record.get("cost_usd") is None and not record.get("error"):
                unpriced += 1
            embeddings += record.get("cost_usd") or 0.0
    target = sum(s["cost_usd"] for s in summaries.values())
    return {
        "target": target,
        "judge": judge,
        "embeddings": embeddings,
        "total": target + judge + embeddings,
        "unpriced_embedding_calls": unpriced,
        "spent": sum(calls.spent_usd.values()),
    }
