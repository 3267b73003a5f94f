"""Suite files (`evals/<name>.yaml`): what to test, on which data, scored how, gated how.

```yaml
name: triage-quality
owner: support
target: {route: support-triage, release: active}     # or {prompt: triage@7, model: fast, params: {...}}
dataset: datasets/triage.jsonl                       # a file next to the suite, or {name: triage, version: 3}
repeat: 3
reducer: mean                                        # mean | pass@k | pass^k
concurrency: 8
seed: 7
judge: {model: smart, params: {temperature: 0}}
scorers:
  - {type: label_in, path: label, labels: [billing, bug, question], threshold: 0.9}
  - {type: llm_judge, rubric: "Is the queue right for the ticket?", threshold: 0.8}
gate: {max_invalid_rate: 0.1, max_error_rate: 0.0}
```

A malformed suite is refused with file, line and field before anything is called.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pilothouse import yamlfile
from pilothouse.evals import scorers as scorer_registry
from pilothouse.evals.types import ScorerSpec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TargetSpec(_Strict):
    route: str | None = None
    release: Literal["active", "canary"] = "active"
    prompt: str | None = None  # NAME@VERSION or NAME:LABEL
    model: str | None = None
    params: dict[str, Any] = {}

    @model_validator(mode="after")
    def _one_kind(self) -> TargetSpec:
        if self.route is not None and (self.prompt is not None or self.model is not None):
            raise ValueError("a target is a `route`, or a `prompt` with a `model`, not both")
        if self.route is None and (self.prompt is None or self.model is None):
            raise ValueError("a target needs `route`, or both `prompt` (NAME@VERSION) and `model`")
        return self


class StoredDataset(_Strict):
    name: str
    version: int | None = None


class JudgeSpec(_Strict):
    model: str
    params: dict[str, Any] = {"temperature": 0}
    rubric: str | None = None  # the default rubric for llm_judge scorers that give none


class ScorerEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    name: str | None = None
    threshold: float | None = Field(default=None, ge=0, le=1)


class GateSpec(_Strict):
    max_invalid_rate: float = Field(default=0.2, ge=0, le=1)
    max_error_rate: float = Field(default=0.0, ge=0, le=1)


class SuiteFile(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    owner: str | None = None
    description: str | None = None
    target: TargetSpec
    dataset: str | StoredDataset
    repeat: int = Field(default=1, ge=1, le=100)
    reducer: Literal["mean", "pass@k", "pass^k"] = "mean"
    concurrency: int = Field(default=8, ge=1, le=512)
    seed: int | None = 0
    judge: JudgeSpec | None = None
    allow_self_judge: bool = False
    embedding_model: str = "embed"
    scorers: list[ScorerEntry] = Field(min_length=1)
    gate: GateSpec = GateSpec()


@dataclass(frozen=True)
class Suite:
    path: Path
    file_hash: str
    spec: SuiteFile
    scorers: list[tuple[ScorerSpec, Any]]  # (spec, built scorer function)

    @property
    def name(self) -> str:
        return self.spec.name

    def dataset_path(self) -> Path | None:
        if isinstance(self.spec.dataset, str):
            return (self.path.parent / self.spec.dataset).resolve()
        return None


def load(path: Path) -> Suite:
    """Read and check a suite file; raises yamlfile.FileError naming file, line and field."""
    located = yamlfile.load(path)
    if not isinstance(located.data, dict):
        raise yamlfile.FileError(
            [located.problem((), "expected a mapping: name, target, dataset, scorers")]
        )
    spec = located.validate(SuiteFile)
    if any(":" in entry.type for entry in spec.scorers):
        # Custom scorers (`module:function`) live next to the suite or in the project.
        for directory in (str(path.parent.resolve()), str(Path.cwd())):
            if directory not in sys.path:
                sys.path.insert(0, directory)
    problems = []
    built = []
    for index, entry in enumerate(spec.scorers):
        options = dict(entry.model_extra or {})
        if (
            entry.type == "llm_judge"
            and "rubric" not in options
            and spec.judge
            and spec.judge.rubric
        ):
            options["rubric"] = spec.judge.rubric
        scorer = ScorerSpec(
            type=entry.type, options=options, threshold=entry.threshold, name=entry.name
        )
        try:
            built.append((scorer, scorer_registry.build(scorer)))
        except scorer_registry.ScorerConfigError as exc:
            problems.append(located.problem(("scorers", index, "type"), str(exc)))
        if entry.type == "llm_judge" and spec.judge is None:
            problems.append(
                located.problem(
                    ("scorers", index, "type"),
                    "llm_judge needs a `judge:` section naming a pinned model",
                )
            )
    keys = [s.key for s, _ in built]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        problems.append(
            located.problem(
                ("scorers",),
                f"two scorers are named {', '.join(duplicates)}: give each a distinct `name`",
            )
        )
    if (
        spec.judge
        and not spec.allow_self_judge
        and spec.target.model is not None
        and spec.judge.model == spec.target.model
    ):
        problems.append(
            located.problem(
                ("judge", "model"),
                f"the judge is the model under test ({spec.judge.model}); "
                "pick another model or set `allow_self_judge: true`",
            )
        )
    dataset_path = (path.parent / spec.dataset).resolve() if isinstance(spec.dataset, str) else None
    if dataset_path is not None and not dataset_path.exists():
        problems.append(located.problem(("dataset",), f"no such file {dataset_path}"))
    if problems:
        raise yamlfile.FileError(problems)
    return Suite(
        path=path, file_hash=hashlib.sha256(path.read_bytes()).hexdigest(), spec=spec, scorers=built
    )
