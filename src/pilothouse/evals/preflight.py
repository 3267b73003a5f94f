"""Everything checked before the first call: each case against each target and scorer,
every model the suite names, output paths, and whether a recorded run still matches.

Each check returns problems as lines (`where: what is wrong`); an empty list means go.
Nothing here calls anyone: the caller fetches what the gateway serves and passes it in.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pilothouse.evals.scorers_options import case_problems
from pilothouse.evals.suite import Suite
from pilothouse.evals.targets import Target
from pilothouse.evals.types import Case

MAX_SHOWN = 40


def check_cases(
    suite: Suite, cases: list[Case], targets: list[Target], where: list[str] | None
) -> list[str]:
    """Every case rendered against every target and checked by every scorer."""
    problems = []
    for index, case in enumerate(cases):
        at = f"{where[index]}: case {case.id}" if where else f"case {case.id}"
        seen: set[str] = set()
        for target in targets:
            problem = target.check(case, suite.spec.seed)
            if problem and problem not in seen:
                seen.add(problem)
                label = f" (target {target.name})" if len(targets) > 1 else ""
                problems.append(f"{at}{label}: {problem}")
        for spec, scorer in suite.scorers:
            problem = case_problems(scorer, case)
            if problem:
                problems.append(f"{at}: scorer {spec.key}: {problem}")
    return problems


def check_models(suite: Suite, targets: list[Target], served: dict[str, Any]) -> list[str]:
    """Every model alias the run will call must be one the gateway serves to this key."""
    available = ", ".join(sorted(served)) or "(none)"
    problems = []

    def unknown(alias: str, what: str) -> None:
        problems.append(
            f"{suite.path}: {what}: the gateway serves no model {alias!r} to this key "
            f"(it serves: {available})"
        )

    judge = suite.spec.judge
    for target in targets:
        if target.kind == "prompt" and target.model not in served:
            unknown(str(target.model), f"target {target.name}")
        alias = (
            target.model if target.kind == "prompt" else (target.release_info or {}).get("model")
        )
        self_judged = judge is not None and alias == judge.model and suite.uses_judge
        if self_judged and not suite.spec.allow_self_judge:
            problems.append(
                f"{suite.path}: judge.model: the judge is the model under test ({alias}, "
                f"target {target.name}); pick another model or set `allow_self_judge: true`"
            )
    if judge is not None and suite.uses_judge and judge.model not in served:
        unknown(judge.model, "judge.model")
    if suite.uses_embeddings and suite.spec.embedding_model not in served:
        unknown(suite.spec.embedding_model, "embedding_model")
    return problems


def output_problem(path: Path, option: str) -> str | None:
    """Why `path` cannot be written (after creating its folder), or None."""
    if path.is_dir():
        return f"{option} {path}: is a directory; give a file name"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"{option} {path}: cannot create the folder {path.parent}: {exc.strerror}"
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return f"{option} {path}: not writable"
    return None


def shown(problems: list[str]) -> list[str]:
    """At most MAX_SHOWN problems, and how many more there are."""
    if len(problems) <= MAX_SHOWN:
        return problems
    return [*problems[:MAX_SHOWN], f"... and {len(problems) - MAX_SHOWN} more"]


# What a recorded run must share with this one for its answers to stand in.
_TARGET_FIELDS = (
    "name",
    "kind",
    "route",
    "release",
    "release_id",
    "prompt",
    "prompt_hash",
    "model_alias",
    "params",
    "identity",
)
ANSWERS = ("dataset", "targets", "repeat", "seed")  # the target calls
EVERYTHING = (*ANSWERS, "judge", "embedding_model", "scorers", "reducer", "ties", "gate")


def material(manifest: dict[str, Any]) -> dict[str, Any]:
    """The parts of a manifest that decide a run's calls and scores."""
    judge = manifest.get("judge")
    embedding = manifest.get("embedding_model")
    return {
        "dataset": (manifest.get("dataset") or {}).get("hash"),
        "targets": [{k: t.get(k) for k in _TARGET_FIELDS} for t in manifest.get("targets") or []],
        "judge": {
            k: judge.get(k)
            for k in ("model_alias", "params", "structured", "rubric_hash", "identity")
        }
        if judge
        else None,
        "embedding_model": {k: embedding.get(k) for k in ("model_alias", "identity")}
        if embedding
        else None,
        "scorers": manifest.get("scorers"),
        "repeat": manifest.get("repeat"),
        "reducer": manifest.get("reducer"),
        "ties": manifest.get("ties"),
        "seed": manifest.get("seed"),
        "gate": manifest.get("gate"),
    }


def changes(
    recorded: dict[str, Any], current: dict[str, Any], fields: tuple[str, ...]
) -> list[str]:
    """What differs between two `material` dicts in `fields`, named for a person."""
    out = []
    for name in fields:
        a, b = recorded.get(name), current.get(name)
        if a == b:
            continue
        if name == "targets" and isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for ta, tb in zip(a, b, strict=True):
                diff = [k for k in _TARGET_FIELDS if ta.get(k) != tb.get(k)]
                if diff:
                    out.append(f"target {tb.get('name')}: {', '.join(diff)}")
        elif name == "dataset":
            out.append(f"dataset (hash {str(a)[:12]} -> {str(b)[:12]})")
        elif name == "scorers" and isinstance(a, list) and isinstance(b, list):
            keys_a = {s["key"]: s for s in a}
            keys_b = {s["key"]: s for s in b}
            diff = sorted(
                k for k in keys_a.keys() | keys_b.keys() if keys_a.get(k) != keys_b.get(k)
            )
            out.append(f"scorers ({', '.join(diff)})")
        else:
            out.append(f"{name} ({_brief(a)} -> {_brief(b)})")
    return out


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
