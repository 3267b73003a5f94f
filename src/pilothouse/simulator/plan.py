"""The per-request plan: which fault (if any), how long to wait, how long to answer.

Every random choice for a request is drawn from a generator seeded by
(scenario seed, model, how many requests that model has had), so a run replays
identically even when requests to different models interleave differently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pilothouse.simulator.drift import NO_DRIFT, active_effects, effective_fault_rates
from pilothouse.simulator.latency import Pacer, sample_ms
from pilothouse.simulator.scenario import FAULT_NAMES
from pilothouse.simulator.state import SimulatorState
from pilothouse.simulator.text import rng_for

FAULT_HEADER = "x-simulator-fault"
TTFT_HEADER = "x-simulator-ttft-ms"

# Faults every endpoint understands; generation endpoints add the content faults.
TRANSPORT_FAULTS = frozenset({"429", "500", "503", "timeout", "malformed", "truncate", "slow"})
GENERATION_FAULTS = frozenset(FAULT_NAMES)


class PlanError(ValueError):
    """A simulator control header with a value the simulator does not understand."""


@dataclass(frozen=True)
class Plan:
    """Everything decided about one request before its reply is generated."""

    model: str
    fault: str | None
    ttft_s: float
    token_interval_s: float
    tokens_per_chunk: int
    reply_tokens: int
    length_multiplier: float
    hedging: float
    embedding_dimensions: int
    retry_after_s: int
    truncate_after_chunks: int
    drip_ms: tuple[float, float]
    draw_seed: int
    phases: tuple[str, ...]

    def pacer(self) -> Pacer:
        """A pacer for this request; it drips only under the `slow` fault."""
        drip = self.drip_ms if self.fault == "slow" else None
        return Pacer(self.ttft_s, self.token_interval_s, drip, rng_for("drip", self.draw_seed))


def make_plan(
    state: SimulatorState,
    api: str,
    model: str,
    headers: Mapping[str, str],
    *,
    generation: bool = True,
) -> Plan:
    """Admit a request and decide its fault, latency and drift effects.

    `headers` may carry `X-Simulator-Fault` (a fault name or `none`; wins over scenario
    rates) and `X-Simulator-TTFT-Ms` (overrides the sampled TTFT). `generation` is False
    for embeddings: they skip drift and the content faults (`empty`, `refusal`), which
    are dropped. Raises `PlanError` for an unknown fault name
    or a TTFT header that is not a non-negative number.
    """
    requested = _requested_fault(headers)
    ttft_override = _ttft_override(headers)
    scenario = state.scenario
    profile = scenario.profile_for(model)
    supported_faults = GENERATION_FAULTS if generation else TRANSPORT_FAULTS
    admission = state.admit(api, model, generation)
    effects = (
        active_effects(
            scenario.drift,
            model,
            admission.total_before,
            admission.model_before,
            admission.elapsed_s,
        )
        if generation
        else NO_DRIFT
    )
    draw_seed = rng_for("request", scenario.seed, model, admission.model_before).getrandbits(63)
    draw = rng_for(draw_seed)

    roll = draw.random()
    if requested is not None:
        fault = None if requested == "none" else requested
    else:
        fault = _fault_from_rates(effective_fault_rates(profile.faults, effects), roll)
    if fault not in supported_faults:
        fault = None

    if ttft_override is not None:
        ttft_ms = ttft_override
    else:
        ttft_ms = sample_ms(profile.ttft, draw) * effects.ttft_multiplier + effects.ttft_add_ms
    tps = profile.tokens_per_second
    interval = 0.0 if tps is None else 1.0 / (tps * effects.tps_multiplier)
    settings = scenario.fault_settings
    state.record(fault, effects.phases)
    return Plan(
        model=model,
        fault=fault,
        ttft_s=max(ttft_ms, 0.0) / 1000.0,
        token_interval_s=interval,
        tokens_per_chunk=profile.tokens_per_chunk,
        reply_tokens=profile.reply_tokens,
        length_multiplier=effects.length_multiplier,
        hedging=effects.hedging,
        embedding_dimensions=profile.embedding_dimensions,
        retry_after_s=settings.retry_after_s,
        truncate_after_chunks=settings.truncate_after_chunks,
        drip_ms=(settings.slow_drip_ms.min_ms, settings.slow_drip_ms.max_ms),
        draw_seed=draw_seed,
        phases=effects.phases,
    )


def _requested_fault(headers: Mapping[str, str]) -> str | None:
    raw = headers.get(FAULT_HEADER)
    if raw is None:
        return None
    name = raw.strip().lower()
    if name in ("", "none"):
        return "none"
    if name not in FAULT_NAMES:
        raise PlanError(
            f"unknown fault {raw!r} in X-Simulator-Fault; expected one of: none, {', '.join(FAULT_NAMES)}"
        )
    return name


def _ttft_override(headers: Mapping[str, str]) -> float | None:
    raw = headers.get(TTFT_HEADER)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also refuses NaN
        raise PlanError(
            f"X-Simulator-TTFT-Ms must be a non-negative number of milliseconds, got {raw!r}"
        )
    return value


def _fault_from_rates(rates: dict[str, float], roll: float) -> str | None:
    if not rates:
        return None
    cumulative = 0.0
    for name in FAULT_NAMES:
        cumulative += rates.get(name, 0.0)
        if roll < cumulative:
            return name
    return None
