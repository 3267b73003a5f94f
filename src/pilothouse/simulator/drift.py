"""Drift phases: behaviour that changes after N requests or T seconds (and, for a phase
with `until_requests` or `until_seconds`, changes back).

Phases are read in file order; every phase whose trigger has fired (and whose end has
not) applies, and a later phase overrides the fields it sets. A phase with a `model` glob
counts only that model's requests; a phase without one counts all generation requests.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field

from pilothouse.simulator.scenario import DriftPhase


@dataclass(frozen=True)
class DriftEffects:
    """The combined effect of the active phases on one request (neutral when none are active)."""

    length_multiplier: float = 1.0
    hedging: float = 0.0
    refusal_rate: float | None = None
    ttft_multiplier: float = 1.0
    ttft_add_ms: float = 0.0
    tps_multiplier: float = 1.0
    faults: dict[str, float] | None = None
    phases: tuple[str, ...] = field(default_factory=tuple)


NO_DRIFT = DriftEffects()


def phase_is_active(
    phase: DriftPhase, model: str, total_before: int, model_before: int, elapsed_s: float
) -> bool:
    """True when `phase` covers `model`, its request count or time trigger has fired, and
    neither of its ends (`until_requests`, `until_seconds`) has been reached.

    `total_before`/`model_before` are how many generation requests came before this
    one (all models / this model); `elapsed_s` is time since start or last reset.
    """
    if phase.model is not None and not fnmatch.fnmatchcase(model, phase.model):
        return False
    count = total_before if phase.model is None else model_before
    by_count = phase.after_requests is not None and count >= phase.after_requests
    by_time = phase.after_seconds is not None and elapsed_s >= phase.after_seconds
    ended = (phase.until_requests is not None and count >= phase.until_requests) or (
        phase.until_seconds is not None and elapsed_s >= phase.until_seconds
    )
    return (by_count or by_time) and not ended


def active_effects(
    phases: Sequence[DriftPhase], model: str, total_before: int, model_before: int, elapsed_s: float
) -> DriftEffects:
    """Merge every active phase, in order, into one `DriftEffects` (later phases win per field)."""
    if not phases:
        return NO_DRIFT
    values: dict[str, object] = {}
    names: list[str] = []
    for index, phase in enumerate(phases):
        if not phase_is_active(phase, model, total_before, model_before, elapsed_s):
            continue
        names.append(phase.name or f"phase-{index}")
        for name in (
            "length_multiplier",
            "hedging",
            "refusal_rate",
            "ttft_multiplier",
            "ttft_add_ms",
            "tps_multiplier",
            "faults",
        ):
            value = getattr(phase, name)
            if value is not None:
                values[name] = value
    if not names:
        return NO_DRIFT
    return DriftEffects(phases=tuple(names), **values)  # type: ignore[arg-type]


def effective_fault_rates(base: dict[str, float], effects: DriftEffects) -> dict[str, float]:
    """Fault rates for one request: the model's rates, overridden by drift faults and refusal rate."""
    if effects.faults is None and effects.refusal_rate is None:
        return base
    rates = {**base, **(effects.faults or {})}
    if effects.refusal_rate is not None:
        rates["refusal"] = effects.refusal_rate
    return rates
