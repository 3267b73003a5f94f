"""Scenario files: the YAML model of how the simulator behaves, and its loader.

A scenario scripts replies, gives models latency profiles, sets fault rates and
describes drift phases. `load_scenario` turns a file into a validated `Scenario`;
any mistake becomes a `ScenarioError` naming the file, the line and the field.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from pilothouse.simulator.yaml_location import describe_error

# Every fault the simulator can inject, in the order rates are drawn.
FAULT_NAMES: tuple[str, ...] = (
    "429",
    "500",
    "503",
    "timeout",
    "malformed",
    "truncate",
    "empty",
    "refusal",
    "slow",
)

FaultName = Literal[
    "429", "500", "503", "timeout", "malformed", "truncate", "empty", "refusal", "slow"
]

DEMO_SCENARIO_PATH = Path(__file__).with_name("demo_scenario.yaml")

# Listed by GET /v1/models when the scenario names no models of its own.
BUILTIN_MODELS: tuple[tuple[str, str], ...] = (
    ("gpt-4o", "openai"),
    ("gpt-4o-mini", "openai"),
    ("gpt-4.1-mini", "openai"),
    ("text-embedding-3-small", "openai"),
    ("claude-sonnet-4-5", "anthropic"),
    ("claude-haiku-4-5", "anthropic"),
)


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message says where and why."""


class _Strict(BaseModel):
    # extra="forbid" turns a misspelt key into an error pointing at its line.
    model_config = ConfigDict(extra="forbid")


def _stringify_keys(value: Any) -> Any:
    # YAML reads `429: 0.05` with an integer key; fault names are strings.
    if isinstance(value, dict):
        return {str(key): rate for key, rate in value.items()}
    return value


def _rates_sum_to_at_most_one(rates: dict[str, float]) -> dict[str, float]:
    total = sum(rates.values())
    if total > 1.0 + 1e-9:
        raise ValueError(f"fault rates add up to {total:g}; expected a total of at most 1")
    return rates


FaultRates = Annotated[
    dict[FaultName, Annotated[float, Field(ge=0.0, le=1.0)]],
    BeforeValidator(_stringify_keys),
    AfterValidator(_rates_sum_to_at_most_one),
]


class FixedLatency(_Strict):
    """Always the same delay."""

    dist: Literal["fixed"] = "fixed"
    ms: float = Field(ge=0)


class UniformLatency(_Strict):
    """A delay drawn uniformly between two bounds."""

    dist: Literal["uniform"]
    min_ms: float = Field(ge=0)
    max_ms: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> UniformLatency:
        if self.max_ms < self.min_ms:
            raise ValueError("max_ms must be at least min_ms")
        return self


class LognormalLatency(_Strict):
    """A long-tailed delay described by its median and 99th percentile."""

    dist: Literal["lognormal"]
    median_ms: float = Field(gt=0)
    p99_ms: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> LognormalLatency:
        if self.p99_ms < self.median_ms:
            raise ValueError("p99_ms must be at least median_ms")
        return self


def _number_means_fixed(value: Any) -> Any:
    # `ttft_ms: 300` is shorthand for `{dist: fixed, ms: 300}`.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"dist": "fixed", "ms": value}
    return value


Latency = Annotated[
    FixedLatency | UniformLatency | LognormalLatency,
    Field(discriminator="dist"),
    BeforeValidator(_number_means_fixed),
]


class DripRange(_Strict):
    """The gap between chunks under the `slow` fault."""

    min_ms: float = Field(default=200, ge=0)
    max_ms: float = Field(default=500, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> DripRange:
        if self.max_ms < self.min_ms:
            raise ValueError("max_ms must be at least min_ms")
        return self


class ModelSettings(_Strict):
    """Latency and length settings; unset fields fall back to `defaults`, then built-ins."""

    ttft_ms: Latency | None = None
    tokens_per_second: float | None = Field(default=None, gt=0)
    tokens_per_chunk: int | None = Field(default=None, ge=1, le=256)
    reply_tokens: int | None = Field(default=None, ge=1, le=32768)
    embedding_dimensions: int | None = Field(default=None, ge=1, le=8192)


class ModelProfile(ModelSettings):
    """One model of the scenario: its settings plus its own fault rates."""

    owned_by: str = "simulator"
    faults: FaultRates = Field(default_factory=dict)


class ToolCallReply(_Strict):
    """A scripted tool call: which tool, with which arguments."""

    name: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)


class ReplyRule(_Strict):
    """Reply with `reply`, `tool_call` or `json` when `match` is found in the last user
    message (and `system`, when given, in the system prompt)."""

    match: str = ".*"
    system: str | None = None
    model: str | None = None
    reply: str | None = None
    tool_call: ToolCallReply | None = None
    json_value: Any = Field(default=None, alias="json")

    _pattern: re.Pattern[str] = PrivateAttr()
    _system_pattern: re.Pattern[str] | None = PrivateAttr(default=None)

    @field_validator("match", "system")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _exactly_one_reply(self) -> ReplyRule:
        given = [
            name for name in ("reply", "tool_call", "json_value") if name in self.model_fields_set
        ]
        if len(given) != 1:
            raise ValueError("a reply rule needs exactly one of `reply`, `tool_call` or `json`")
        return self

    def model_post_init(self, context: Any, /) -> None:
        self._pattern = re.compile(self.match)
        self._system_pattern = re.compile(self.system) if self.system is not None else None

    @property
    def kind(self) -> Literal["text", "tool_call", "json"]:
        """Which of the three reply forms this rule scripts."""
        if "tool_call" in self.model_fields_set:
            return "tool_call"
        if "json_value" in self.model_fields_set:
            return "json"
        return "text"

    def applies(self, model: str, last_user_text: str, system_text: str = "") -> bool:
        """True when the model filter (exact name or glob), `match` (searched in the last
        user message) and `system` (searched in the system prompt, when set) all match."""
        if self.model is not None and not fnmatch.fnmatchcase(model, self.model):
            return False
        if self._system_pattern is not None and self._system_pattern.search(system_text) is None:
            return False
        return self._pattern.search(last_user_text) is not None


class DriftPhase(_Strict):
    """A change of behaviour that starts after N requests or T seconds, whichever comes
    first, and (with `until_requests` or `until_seconds`) ends at the first of those."""

    name: str | None = None
    model: str | None = None
    after_requests: int | None = Field(default=None, ge=0)
    after_seconds: float | None = Field(default=None, ge=0)
    until_requests: int | None = Field(default=None, ge=1)
    until_seconds: float | None = Field(default=None, gt=0)
    length_multiplier: float | None = Field(default=None, gt=0, le=100)
    hedging: float | None = Field(default=None, ge=0, le=1)
    refusal_rate: float | None = Field(default=None, ge=0, le=1)
    ttft_multiplier: float | None = Field(default=None, ge=0)
    ttft_add_ms: float | None = Field(default=None, ge=0)
    tps_multiplier: float | None = Field(default=None, gt=0)
    faults: FaultRates | None = None

    @model_validator(mode="after")
    def _has_trigger(self) -> DriftPhase:
        if self.after_requests is None and self.after_seconds is None:
            raise ValueError("a drift phase needs `after_requests` or `after_seconds`")
        for unit in ("requests", "seconds"):
            start, end = getattr(self, f"after_{unit}"), getattr(self, f"until_{unit}")
            if start is not None and end is not None and end <= start:
                raise ValueError(f"until_{unit} ({end:g}) must be after after_{unit} ({start:g})")
        return self


class FaultSettings(_Strict):
    """How each fault behaves once chosen."""

    retry_after_s: int = Field(default=1, ge=0)
    slow_drip_ms: DripRange = Field(default_factory=DripRange)
    truncate_after_chunks: int = Field(default=3, ge=0)


@dataclass(frozen=True)
class ResolvedProfile:
    """A model's effective settings after applying defaults."""

    ttft: FixedLatency | UniformLatency | LognormalLatency
    tokens_per_second: float | None
    tokens_per_chunk: int
    reply_tokens: int
    embedding_dimensions: int
    faults: dict[str, float]


_BUILTIN_SETTINGS: dict[str, Any] = {
    "ttft_ms": FixedLatency(ms=0),
    "tokens_per_second": None,
    "tokens_per_chunk": 3,
    "reply_tokens": 40,
    "embedding_dimensions": 256,
}


class Scenario(_Strict):
    """A whole scenario file. `Scenario()` is the built-in instant, fault-free behaviour."""

    seed: int = 0
    defaults: ModelSettings = Field(default_factory=ModelSettings)
    models: dict[str, ModelProfile] = Field(default_factory=dict)
    faults: FaultRates = Field(default_factory=dict)
    fault_settings: FaultSettings = Field(default_factory=FaultSettings)
    replies: list[ReplyRule] = Field(default_factory=list)
    drift: list[DriftPhase] = Field(default_factory=list)

    _profiles: dict[str, ResolvedProfile] = PrivateAttr(default_factory=dict)

    def profile_for(self, model: str) -> ResolvedProfile:
        """Settings for `model`: its exact entry, else the first glob entry matching, else defaults."""
        cached = self._profiles.get(model)
        if cached is not None:
            return cached
        entry = self.models.get(model)
        if entry is None:
            entry = next(
                (p for name, p in self.models.items() if fnmatch.fnmatchcase(model, name)), None
            )
        layers: list[ModelSettings] = [self.defaults] if entry is None else [entry, self.defaults]
        values = {}
        for field, builtin in _BUILTIN_SETTINGS.items():
            chosen = next(
                (getattr(layer, field) for layer in layers if getattr(layer, field) is not None),
                None,
            )
            values[field] = builtin if chosen is None else chosen
        # A model's own rate for a fault replaces the global rate for that fault.
        faults: dict[str, float] = {name: rate for name, rate in self.faults.items()}
        if entry is not None:
            faults.update((name, rate) for name, rate in entry.faults.items())
        profile = ResolvedProfile(
            ttft=values["ttft_ms"],
            tokens_per_second=values["tokens_per_second"],
            tokens_per_chunk=values["tokens_per_chunk"],
            reply_tokens=values["reply_tokens"],
            embedding_dimensions=values["embedding_dimensions"],
            faults=faults,
        )
        # Request model names come from clients; cap the cache so it cannot grow unbounded.
        if len(self._profiles) < 4096:
            self._profiles[model] = profile
        return profile

    def listed_models(self) -> list[tuple[str, str]]:
        """(id, owned_by) pairs for GET /v1/models: the scenario's non-glob models, else built-ins."""
        named = [(name, p.owned_by) for name, p in self.models.items() if not _is_glob(name)]
        return named or list(BUILTIN_MODELS)


def _is_glob(name: str) -> bool:
    return any(ch in name for ch in "*?[")


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML file.

    Accepts a path to a UTF-8 YAML mapping (an empty file means all defaults).
    Returns the validated `Scenario`. Raises `ScenarioError` for an unreadable file,
    invalid YAML or any invalid field, with one `file:line: field: problem` line per error.
    """
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{source}: cannot read scenario file: {exc}") from exc
    return parse_scenario(text, source=str(source))


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    """Validate scenario YAML given as text; `source` names it in error messages."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else 1
        raise ScenarioError(f"{source}:{line}: invalid YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{source}: invalid YAML: {exc}") from exc
    if data is None:
        return Scenario()
    if not isinstance(data, dict) or root is None:
        raise ScenarioError(
            f"{source}:1: top level: expected a mapping of scenario sections, got {type(data).__name__}"
        )
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        lines = [describe_error(source, root, error) for error in exc.errors()]
        raise ScenarioError("\n".join(lines)) from None
