"""Suite files (`evals/<name>.yaml`): what to test, on which data, scored how, gated how.

```yaml
name: triage-quality
owner: support
target: {route: support-triage, release: active}     # or {prompt: triage@7, model: fast, params: {...}}
# targets: [...]                                     # several: a matrix (see docs/evals.md)
dataset: datasets/triage.jsonl                       # a file next to the suite, or {name: triage, version: 3}
repeat: 3
reducer: mean                                        # mean | pass@k | pass^k
ties: fail                                           # mean reducer: half the repeats passing fails
concurrency: 8
seed: 7
judge: {model: smart, params: {temperature: 0}}
scorers:
  - {type: label_in, path: label, labels: [billing, bug, question], threshold: 0.9}
  - {type: llm_judge, rubric: "Is the queue right for the ticket?", min_mean: 0.7}
gate: {min_verdicts: 10, max_invalid_rate: 0.1, max_error_rate: 0.0}
```

A malformed suite is refused with file, line and field before anything is called.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pilothouse import errors, yamlfile
from pilothouse.evals import scorers as scorer_registry
from pilothouse.evals.types import ScorerSpec
from pilothouse.releases.params import check_params

Release = Literal["active", "canary"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TargetSpec(_Strict):
    """One entry of `target:`/`targets:`; list values expand into one target per combination."""

    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@:/=,-]*$")
    route: str | None = None
    release: Release | list[Release] = "active"
    prompt: str | list[str] | None = None  # NAME@VERSION or NAME:LABEL
    model: str | list[str] | None = None
    params: dict[str, Any] | list[dict[str, Any]] = {}
    candidate: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> TargetSpec:
        if self.route is not None and (self.prompt is not None or self.model is not None):
            raise ValueError("a target is a `route`, or a `prompt` with a `model`, not both")
        if self.route is None and (self.prompt is None or self.model is None):
            raise ValueError("a target needs `route`, or both `prompt` (NAME@VERSION) and `model`")
        if self.route is not None and self.params:
            raise ValueError(
                "a route's release fixes its parameters: `params` is for prompt targets"
            )
        for field in ("release", "prompt", "model", "params"):
            value = getattr(self, field)
            if isinstance(value, list) and not value:
                raise ValueError(f"`{field}` is an empty list")
        return self


@dataclasses.dataclass(frozen=True)
class SuiteTarget:
    """One expanded target of a suite: a route arm, or a prompt on a model with parameters."""

    name: str
    route: str | None = None
    release: str = "active"
    prompt: str | None = None
    model: str | None = None
    params: tuple[tuple[str, Any], ...] = ()
    candidate: bool = False

    @property
    def kind(self) -> str:
        return "route" if self.route else "prompt"

    def params_dict(self) -> dict[str, Any]:
        return dict(self.params)


class StoredDataset(_Strict):
    name: str
    version: int | None = None


class JudgeSpec(_Strict):
    model: str
    params: dict[str, Any] = {"temperature": 0}
    rubric: str | None = None  # the default rubric for llm_judge scorers that give none
    structured: bool = True  # ask for the verdict object with a JSON-schema response_format


class ScorerEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    name: str | None = None
    threshold: float | None = Field(default=None, ge=0, le=1)
    min_mean: float | None = Field(default=None, ge=0, le=1)
    min_verdicts: int | None = Field(default=None, ge=0)
    max_invalid_rate: float | None = Field(default=None, ge=0, le=1)


class GateSpec(_Strict):
    min_verdicts: int = Field(default=10, ge=0)  # per gated scorer, valid verdicts needed
    max_invalid_rate: float = Field(default=0.1, ge=0, le=1)  # per gated scorer
    max_error_rate: float = Field(default=0.0, ge=0, le=1)  # share of calls failed after retries


class SuiteFile(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    owner: str | None = None
    description: str | None = None
    target: TargetSpec | None = None
    targets: list[TargetSpec] | None = Field(default=None, min_length=1)
    dataset: str | StoredDataset
    repeat: int = Field(default=1, ge=1, le=100)
    reducer: Literal["mean", "pass@k", "pass^k"] = "mean"
    ties: Literal["fail", "pass"] = "fail"
    concurrency: int = Field(default=8, ge=1, le=512)
    seed: int | None = 0
    judge: JudgeSpec | None = None
    allow_self_judge: bool = False
    embedding_model: str = "embed"
    scorers: list[ScorerEntry] = Field(min_length=1)
    gate: GateSpec = GateSpec()

    @model_validator(mode="after")
    def _targets(self) -> SuiteFile:
        if (self.target is None) == (self.targets is None):
            raise ValueError("give `target` (one) or `targets` (a list), exactly one of them")
        return self

    def target_entries(self) -> list[TargetSpec]:
        return [self.target] if self.target is not None else list(self.targets or [])


@dataclasses.dataclass(frozen=True)
class Suite:
    path: Path
    file_hash: str
    spec: SuiteFile
    scorers: list[tuple[ScorerSpec, Any]]  # (spec, built scorer function)
    targets: list[SuiteTarget]

    @property
    def name(self) -> str:
        return self.spec.name

    def dataset_path(self) -> Path | None:
        if isinstance(self.spec.dataset, str):
            return (self.path.parent / self.spec.dataset).resolve()
        return None

    @property
    def uses_judge(self) -> bool:
        return any(getattr(fn, "uses_judge", False) for _, fn in self.scorers)

    @property
    def uses_embeddings(self) -> bool:
        return any(getattr(fn, "uses_embeddings", False) for _, fn in self.scorers)

    def gated_targets(self) -> list[SuiteTarget]:
        """The candidate when one is marked, else every target."""
        marked = [t for t in self.targets if t.candidate]
        return marked or list(self.targets)


def load(path: Path) -> Suite:
    """Read and check a suite file; raises yamlfile.FileError naming file, line and field."""
    raw = _read(path)
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
    problems: list[str] = []
    built = _scorers(spec, located, problems)
    targets = _expand_targets(spec, located, problems)
    if spec.judge and not spec.allow_self_judge:
        for target in targets:
            if target.model == spec.judge.model:
                problems.append(
                    located.problem(
                        ("judge", "model"),
                        f"the judge is the model under test ({spec.judge.model}, target "
                        f"{target.name}); pick another model or set `allow_self_judge: true`",
                    )
                )
                break
    if isinstance(spec.dataset, str):
        dataset_path = (path.parent / spec.dataset).resolve()
        if not dataset_path.exists():
            problems.append(located.problem(("dataset",), f"no such file {dataset_path}"))
    if problems:
        raise yamlfile.FileError(problems)
    return Suite(
        path=path,
        file_hash=hashlib.sha256(raw).hexdigest(),
        spec=spec,
        scorers=built,
        targets=targets,
    )


def _read(path: Path) -> bytes:
    """The file's bytes, refused (FileError) unless they are UTF-8 YAML without repeated keys."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise yamlfile.FileError([f"{path}: cannot read file: {exc.strerror}"]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise yamlfile.FileError(
            [
                f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); "
                "save the suite as UTF-8"
            ]
        ) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return raw  # yamlfile.load reports syntax errors with their line
    duplicates: list[str] = []
    _find_duplicates(node, path, duplicates)
    if duplicates:
        raise yamlfile.FileError(duplicates)
    return raw


def _find_duplicates(node: yaml.Node | None, path: Path, out: list[str]) -> None:
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in first:
                out.append(
                    f"{path}:{line}: {key}: the key appears twice in this mapping (first on "
                    f"line {first[key]}); YAML keeps only the last, so merge them"
                )
            else:
                first[key] = line
            _find_duplicates(value_node, path, out)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _find_duplicates(item, path, out)


def _scorers(
    spec: SuiteFile, located: yamlfile.LocatedYaml, problems: list[str]
) -> list[tuple[ScorerSpec, Any]]:
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
            type=entry.type,
            options=options,
            threshold=entry.threshold,
            name=entry.name,
            min_mean=entry.min_mean,
            min_verdicts=entry.min_verdicts,
            max_invalid_rate=entry.max_invalid_rate,
        )
        try:
            fn = scorer_registry.build(scorer)
        except scorer_registry.ScorerConfigError as exc:
            problems.append(located.problem(("scorers", index, "type"), str(exc)))
            continue
        built.append((scorer, fn))
        needs = int(getattr(fn, "min_repeats", 1))
        if spec.repeat < needs:
            problems.append(
                located.problem(
                    ("scorers", index, "type"),
                    f"{entry.type} compares the repeats of a case: it needs `repeat: {needs}` "
                    f"or more, the suite has {spec.repeat}",
                )
            )
        if getattr(fn, "uses_judge", False) and spec.judge is None:
            problems.append(
                located.problem(
                    ("scorers", index, "type"),
                    f"{entry.type} needs a `judge:` section naming a pinned model",
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
    return built


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _expand_targets(
    spec: SuiteFile, located: yamlfile.LocatedYaml, problems: list[str]
) -> list[SuiteTarget]:
    single = spec.target is not None
    out: list[SuiteTarget] = []
    for index, entry in enumerate(spec.target_entries()):
        where: tuple[str | int, ...] = ("target",) if single else ("targets", index)
        param_sets = _as_list(entry.params)
        for p_index, params in enumerate(param_sets):
            try:
                check_params(params)
            except errors.InvalidRequest as exc:
                at = (*where, "params") if len(param_sets) == 1 else (*where, "params", p_index)
                problems.append(located.problem(at, exc.message))
        if entry.route is not None:
            combos = [
                SuiteTarget(name=f"{entry.route}/{release}", route=entry.route, release=release)
                for release in _as_list(entry.release)
            ]
        else:
            several_params = len(param_sets) > 1
            combos = []
            for prompt, model, params in itertools.product(
                _as_list(entry.prompt), _as_list(entry.model), param_sets
            ):
                name = f"{prompt}/{model}"
                if several_params:
                    name += "/" + (",".join(f"{k}={v}" for k, v in sorted(params.items())) or "-")
                combos.append(
                    SuiteTarget(name=name, prompt=prompt, model=model, params=tuple(params.items()))
                )
        if entry.candidate and len(combos) > 1:
            problems.append(
                located.problem(
                    (*where, "candidate"),
                    f"this entry expands into {len(combos)} targets; mark a single one as the candidate",
                )
            )
        for combo in combos:
            name = combo.name
            if entry.name:
                name = entry.name if len(combos) == 1 else f"{entry.name}:{combo.name}"
            out.append(dataclasses.replace(combo, name=name, candidate=entry.candidate))
    names = [t.name for t in out]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        problems.append(
            located.problem(
                ("targets",) if not single else ("target",),
                f"two targets are both named {', '.join(repeated)}: give each a distinct `name`",
            )
        )
    if sum(t.candidate for t in out) > 1:
        problems.append(
            located.problem(("targets",), "more than one target is marked `candidate: true`")
        )
    return out
