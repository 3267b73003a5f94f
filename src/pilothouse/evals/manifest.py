"""A run's manifest: what it ran and with what (the suite file, the dataset version, each
target, the judge and embedding model, the scorers, the gate, the versions of the code),
stored with the run so a result can be reproduced and two runs compared only when they
measured the same thing. `plan_manifest` is what is known before any call (preflight
compares it); `run_manifest` adds who answered.
"""

from __future__ import annotations

import hashlib
import sys
from typing import Any

from pilothouse import __version__
from pilothouse.evals.calls import GatewayCalls
from pilothouse.evals.scorers import SCORER_CODE_VERSION
from pilothouse.evals.suite import Suite
from pilothouse.evals.targets import Target


def plan_manifest(
    suite: Suite, targets: list[Target], dataset: dict[str, Any], models: dict[str, Any]
) -> dict[str, Any]:
    """The manifest as known before any call (what `preflight.material` compares)."""
    spec = suite.spec
    judge = spec.judge
    rubrics = sorted(
        {s.options.get("rubric", "") for s, _ in suite.scorers if s.type == "llm_judge"}
    )
    return {
        "suite": {"name": spec.name, "path": str(suite.path), "file_hash": suite.file_hash},
        "dataset": dataset,
        "targets": [t.manifest() for t in targets],
        "judge": {
            "model_alias": judge.model,
            "params": judge.params,
            "structured": judge.structured,
            "identity": models.get(judge.model),
            "provider_models": [],
            "rubric_hash": hashlib.sha256("\n---\n".join(rubrics).encode()).hexdigest(),
        }
        if judge
        else None,
        "embedding_model": {
            "model_alias": spec.embedding_model,
            "identity": models.get(spec.embedding_model),
            "provider_models": [],
        }
        if suite.uses_embeddings
        else None,
        "scorers": scorer_manifest(suite),
        "scorer_code_version": SCORER_CODE_VERSION,
        "repeat": spec.repeat,
        "reducer": spec.reducer,
        "ties": spec.ties,
        "seed": spec.seed,
        "gate": spec.gate.model_dump(),
        "pilothouse_version": __version__,
        "python": sys.version.split()[0],
    }


def run_manifest(
    suite: Suite,
    targets: list[Target],
    dataset: dict[str, Any],
    answered: list[list[str]],
    served: list[set[str]],
    judge_models: set[str],
    models: dict[str, Any],
    calls: GatewayCalls,
) -> dict[str, Any]:
    """The manifest of a finished run: the plan, and who answered (each target's provider
    models and, for a route, the releases that served it; the judge's and the embedding
    model's provider models)."""
    manifest = plan_manifest(suite, targets, dataset, models)
    for part, target, provider_models, releases in zip(
        manifest["targets"], targets, answered, served, strict=True
    ):
        part["provider_models"] = provider_models
        if target.kind == "route":
            part["served_release_ids"] = sorted(releases)
    if manifest["judge"] is not None:
        manifest["judge"]["provider_models"] = sorted(judge_models)
    if manifest["embedding_model"] is not None:
        manifest["embedding_model"]["provider_models"] = sorted(
            {
                str(r["model"])
                for k, r in calls.used.items()
                if calls.kind_of.get(k) == "embed" and r.get("model")
            }
        )
    return manifest


def scorer_manifest(suite: Suite) -> list[dict[str, Any]]:
    """Each scorer as configured: what changes a verdict, so two runs compare only when
    these are equal."""
    return [
        {
            "key": s.key,
            "type": s.type,
            "options": s.options,
            "threshold": s.threshold,
            "min_mean": s.min_mean,
            "min_verdicts": s.min_verdicts,
            "max_invalid_rate": s.max_invalid_rate,
        }
        for s, _ in suite.scorers
    ]
