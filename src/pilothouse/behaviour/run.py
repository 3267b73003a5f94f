"""Running a diff: both sides over every case through the eval runner's calls (so every
answer is looked up in the response cache first, and an unchanged side costs nothing),
then each case's answers compared and the report built.

Calls go out case by case (old, new, and the old side again for the noise floor), at most
`concurrency` at a time; a cached answer takes no slot. The similarity of two answers that
are not identical comes from embeddings through the gateway when an embedding model is
given (each pair one cached call), else from the lexical measure (similarity.py).
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pilothouse.behaviour.compare import meaning_text
from pilothouse.behaviour.observe import Observation, observe, parse_label_path
from pilothouse.behaviour.report import (
    CaseResult,
    Comparison,
    build,
    compare_pair,
    needs_similarity,
)
from pilothouse.behaviour.similarity import DEFAULT_THRESHOLDS, cosine, lexical
from pilothouse.evals.calls import CallFailed, GatewayCalls, request_key
from pilothouse.evals.runner import ProgressState
from pilothouse.evals.targets import CaseProblem, Target
from pilothouse.evals.types import Case, Output

OLD, NEW, AGAIN = "old", "new", "old_again"


@dataclass(frozen=True)
class DiffSpec:
    """What to compare: two resolved targets over the same cases.

    `seed`: repeat 0 is sent with it, the noise floor's second old answer with seed + 1
    (None sends none, and the second answer is only a fresh call when the cache is off).
    `embedding_model`: an alias the gateway serves for /v1/embeddings, and
    `embedding_identity` what GET /v1/models said of it (part of its cache key); None:
    the lexical measure. `threshold`: the similarity from which an answer counts as
    rephrased (None: the measure's default).
    """

    old: Target
    new: Target
    cases: list[Case]
    seed: int | None = 0
    label_path: str | None = None
    noise_floor: bool = False
    embedding_model: str | None = None
    embedding_identity: Any = None
    threshold: float | None = None
    concurrency: int = 8

    @property
    def method(self) -> str:
        return "embeddings" if self.embedding_model else "lexical"

    @property
    def rephrase_threshold(self) -> float:
        return self.threshold if self.threshold is not None else DEFAULT_THRESHOLDS[self.method]


Progress = Callable[[ProgressState], None]


async def run_diff(
    spec: DiffSpec,
    calls: GatewayCalls,
    header: dict[str, Any],
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Answer both sides for every case, compare, and return the report (report.build)
    with `header` first and what the calls cost and where their answers came from.
    Infrastructure failures are recorded per case (`incomplete`), never raised."""
    sides: list[tuple[str, Target, int]] = [(OLD, spec.old, 0), (NEW, spec.new, 0)]
    if spec.noise_floor:
        sides.append((AGAIN, spec.old, 1))
    state = ProgressState(calls_total=len(sides) * len(spec.cases), scored_total=len(spec.cases))
    outputs: dict[tuple[str, int], Output] = {}
    sources: dict[str, Counter[str]] = {name: Counter() for name, _, _ in sides}
    served: dict[str, set[str]] = {name: set() for name, _, _ in sides}
    jobs = deque((si, ci) for ci in range(len(spec.cases)) for si in range(len(sides)))

    async def worker() -> None:
        while jobs:
            si, ci = jobs.popleft()
            name, target, repeat = sides[si]
            outputs[(name, ci)] = await _answer(
                calls, target, spec.cases[ci], spec.seed, repeat, sources[name], served[name]
            )
            state.calls_done += 1
            if progress is not None:
                progress(state)

    await asyncio.gather(*(worker() for _ in range(max(1, min(spec.concurrency, len(jobs))))))
    threshold = spec.rephrase_threshold

    def scored(_: CaseResult) -> None:
        state.scored_done += 1
        if progress is not None:
            progress(state)

    results = await compare_all(
        spec.cases,
        [outputs[(OLD, ci)] for ci in range(len(spec.cases))],
        [outputs[(NEW, ci)] for ci in range(len(spec.cases))],
        [outputs[(AGAIN, ci)] for ci in range(len(spec.cases))] if spec.noise_floor else None,
        label_path=spec.label_path,
        similar=_similarity(spec, calls),
        threshold=threshold,
        on_case=scored,
    )
    report = build(
        results,
        {
            **header,
            "similarity": {
                "method": spec.method,
                "model": spec.embedding_model,
                "threshold": threshold,
            },
        },
        label_path=spec.label_path,
    )
    report["calls"] = {
        "sides": {name: dict(counts) for name, counts in sources.items()},
        "gateway_calls": calls.counts["calls"],
        "retries": calls.counts["retries"],
        "embeddings": {
            k.split(":", 1)[1]: v for k, v in calls.counts.items() if k.startswith("embed:")
        },
        "cost_usd": {
            name: round(sum(o.cost_usd or 0.0 for (n, _), o in outputs.items() if n == name), 6)
            for name, _, _ in sides
        },
        "served_release_ids": {n: sorted(ids) for n, ids in served.items() if ids},
    }
    return report


async def _answer(
    calls: GatewayCalls,
    target: Target,
    case: Case,
    seed: int | None,
    repeat: int,
    sources: Counter[str],
    served: set[str],
) -> Output:
    try:
        body, headers = target.request(case, seed, repeat)
    except CaseProblem as exc:
        return Output(text=None, error=str(exc), error_kind="case")
    output, answered = await calls.chat(
        body, headers, repeat, identity=target.identity, cacheable=target.cacheable(seed)
    )
    key = request_key("chat", body, headers, repeat, target.identity)
    source = calls.source_of.get(key, "misses")
    sources["cached" if source in ("hits", "replayed", "resumed") else "called"] += 1
    if answered.get("x-pilothouse-release"):
        served.add(answered["x-pilothouse-release"])
    return output


Similar = Callable[[str, str], Awaitable[float]]


async def by_words(a: str, b: str) -> float:
    """The lexical similarity, as a `Similar`."""
    return lexical(a, b)


async def compare_all(
    cases: list[Case],
    old: list[Output],
    new: list[Output],
    again: list[Output] | None,
    *,
    label_path: str | None,
    similar: Similar = by_words,
    threshold: float = DEFAULT_THRESHOLDS["lexical"],
    on_case: Callable[[CaseResult], None] | None = None,
) -> list[CaseResult]:
    """Each case's answers (`again`: the old side's second answers, for the noise floor)
    observed and compared; a case where a call failed is kept with its `error`.
    `label_path` must parse (observe.parse_label_path)."""
    path = parse_label_path(label_path) if label_path else None

    async def one(ci: int) -> CaseResult:
        o, n = observe(old[ci], path), observe(new[ci], path)
        a = observe(again[ci], path) if again is not None else None
        result = CaseResult(cases[ci], o, n, a)
        failed = [x.failed for x in (o, n, a) if x is not None and x.failed]
        if failed:
            result.error = failed[0]
        else:
            try:
                result.versus = await _compared(o, n, path is not None, similar, threshold)
                if a is not None:
                    result.noise = await _compared(o, a, path is not None, similar, threshold)
            except CallFailed as exc:
                result.error = str(exc)
        if on_case is not None:
            on_case(result)
        return result

    return list(await asyncio.gather(*(one(ci) for ci in range(len(cases)))))


def _similarity(spec: DiffSpec, calls: GatewayCalls) -> Similar:
    if spec.embedding_model is None:
        return by_words
    model = spec.embedding_model

    async def by_embeddings(a: str, b: str) -> float:
        if not a.strip() or not b.strip():
            return 0.0  # nothing to embed on one side: as far apart as answers get
        vectors = await calls.embed(model, [a, b], identity=spec.embedding_identity)
        value = cosine(vectors[0], vectors[1]) if len(vectors) == 2 else None
        if value is None:
            raise CallFailed(
                f"the embedding model {model!r} answered vectors that cannot be compared",
                infra=True,
            )
        return value

    return by_embeddings


async def _compared(
    old: Observation, new: Observation, labels: bool, similar: Similar, threshold: float
) -> Comparison:
    score = None
    if needs_similarity(old, new):
        score = await similar(meaning_text(old), meaning_text(new))
    return compare_pair(old, new, labels=labels, similarity=score, threshold=threshold)
