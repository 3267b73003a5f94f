"""The plain data an eval passes around: cases, model outputs, scores."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Case:
    """One dataset row: template variables or messages, an optional expected answer, tags."""

    id: str
    inputs: dict[str, Any]  # {"variables": {...}} or {"messages": [...]}
    expected: Any = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Output:
    """What the model under test answered for one case and one repeat."""

    text: str | None
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str | None = None
    latency_ms: float = 0.0
    cost_usd: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str | None = None  # the provider model that answered
    error: str | None = None  # set when the call failed after retries
    error_kind: str | None = None  # "infra" (gateway, provider) or "refused" (this request)
    refusal: str | None = None  # a structured-output refusal (OpenAI's `message.refusal`)


@dataclass(frozen=True)
class Score:
    """A scorer's verdict on one output (or, for group scorers, one case).

    `value` is in [0, 1]; `passed` is the pass/fail reading of it. `invalid` marks a
    verdict that could not be reached (e.g. a judge reply that did not parse): it is
    counted and shown on its own and never turned into a number.
    """

    value: float | None
    passed: bool | None
    reason: str | None = None
    invalid: bool = False

    @classmethod
    def of(cls, passed: bool, reason: str | None = None) -> Score:
        return cls(1.0 if passed else 0.0, passed, reason)

    @classmethod
    def invalid_because(cls, reason: str) -> Score:
        return cls(None, None, reason, invalid=True)


class ScoringContext(Protocol):
    """What the runner lends scorers that need a model: both calls go through the gateway."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...

    async def judge(
        self, messages: list[dict[str, Any]], response_format: dict[str, Any] | None = None
    ) -> str:
        """The pinned judge model's reply text (temperature 0, the suite's judge params).

        `response_format` is sent along when the suite's judge is `structured` (default).
        """
        ...


# A scorer scores one output. A *group* scorer (attribute `group = True`) scores all the
# repeats of one case at once (e.g. self-consistency) and is called with a list of outputs.
ScoreFn = Callable[[Case, Output, ScoringContext], Awaitable[Score]]
GroupScoreFn = Callable[[Case, Sequence[Output], ScoringContext], Awaitable[Score]]


@dataclass(frozen=True)
class ScorerSpec:
    """A scorer as a suite file declares it: `type`, its options, and what the gate asks of it.

    A scorer is *gated* when it has a `threshold` (minimum pass rate) or a `min_mean`; a
    gated scorer also needs evidence: at least `min_verdicts` valid verdicts and at most
    `max_invalid_rate` of its verdicts invalid (None: the suite's gate defaults).
    """

    type: str
    options: dict[str, Any] = field(default_factory=dict)
    threshold: float | None = None  # minimum pass rate for the gate
    name: str | None = None  # how results name it; defaults to `type`
    min_mean: float | None = None  # minimum mean value for the gate
    min_verdicts: int | None = None
    max_invalid_rate: float | None = None

    @property
    def key(self) -> str:
        return self.name or self.type

    @property
    def gated(self) -> bool:
        return self.threshold is not None or self.min_mean is not None
