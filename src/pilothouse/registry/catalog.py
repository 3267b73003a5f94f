"""The model catalog: what each alias costs and where it is in its life.

The one place that computes cost, and the one place that decides whether a model is
retired or retiring soon.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from pilothouse.config import ModelSpec, Pricing

DEFAULT_WARNING_DAYS = 90


def cost_usd(
    pricing: Pricing, *, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0
) -> float:
    """Cost of one call in USD. Cached prompt tokens use the cached price when one is set."""
    cached = min(cached_tokens, prompt_tokens)
    cached_price = (
        pricing.cached_input_per_mtok
        if pricing.cached_input_per_mtok is not None
        else pricing.input_per_mtok
    )
    return (
        (prompt_tokens - cached) * pricing.input_per_mtok
        + cached * cached_price
        + completion_tokens * pricing.output_per_mtok
    ) / 1_000_000


def is_retired(spec: ModelSpec, today: date) -> bool:
    """Retired by its lifecycle, or because its retirement date has come."""
    return spec.lifecycle == "retired" or (
        spec.retirement_date is not None and spec.retirement_date <= today
    )


@dataclass(frozen=True)
class ModelWarning:
    alias: str
    problem: str  # "retired", "retiring", "deprecated", "preview"
    message: str

    def public(self) -> dict[str, Any]:
        return {"alias": self.alias, "problem": self.problem, "message": self.message}


def warning_for(alias: str, spec: ModelSpec, today: date, within_days: int) -> ModelWarning | None:
    """Why a route should not stay pinned to this model, or None when it is fine."""
    successor = f"; its successor is {spec.successor!r}" if spec.successor else ""
    if is_retired(spec, today):
        when = f" on {spec.retirement_date}" if spec.retirement_date else ""
        return ModelWarning(
            alias, "retired", f"{alias} ({spec.model}) was retired{when}{successor}"
        )
    if spec.retirement_date is not None and spec.retirement_date <= today + timedelta(
        days=within_days
    ):
        days = (spec.retirement_date - today).days
        return ModelWarning(
            alias,
            "retiring",
            f"{alias} ({spec.model}) retires on {spec.retirement_date}, in {days} days{successor}",
        )
    if spec.lifecycle == "deprecated":
        return ModelWarning(alias, "deprecated", f"{alias} ({spec.model}) is deprecated{successor}")
    if spec.lifecycle == "preview":
        return ModelWarning(alias, "preview", f"{alias} ({spec.model}) is a preview model, not GA")
    return None


def describe(alias: str, spec: ModelSpec) -> dict[str, Any]:
    """One catalog entry as the API shows it."""
    return {
        "alias": alias,
        "provider": spec.provider,
        "model": spec.model,
        "lifecycle": spec.lifecycle,
        "deprecation_date": spec.deprecation_date.isoformat() if spec.deprecation_date else None,
        "retirement_date": spec.retirement_date.isoformat() if spec.retirement_date else None,
        "successor": spec.successor,
        "context_window": spec.context_window,
        "pricing": spec.pricing.model_dump(),
    }
