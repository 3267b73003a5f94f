"""The gate: per scorer, an estimate with its interval and the evidence behind it.

A scorer is gated when it has a `threshold` (minimum pass rate) or a `min_mean`. A gated
scorer passes only with enough evidence: at least `min_verdicts` valid verdicts and at
most `max_invalid_rate` of its verdicts invalid (both per scorer, defaults from the
suite's `gate:`), so a judge that could not reach verdicts fails the gate and says why.
A target passes when every gated scorer passes and its calls' error rate stays within
`max_error_rate`; zero verdicts is "no verdicts", never 0 %.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from pilothouse.evals import stats
from pilothouse.evals.suite import GateSpec
from pilothouse.evals.types import Output, ScorerSpec


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def scorer_summary(
    spec: ScorerSpec, verdicts: Sequence[dict[str, Any]], gate: GateSpec
) -> dict[str, Any]:
    """Pass rate and mean with 95% intervals, invalid share, and this scorer's gate."""
    valid = [v for v in verdicts if not v["invalid"]]
    n = len(valid)
    passes = sum(1 for v in valid if v["passed"])
    values = [float(v["value"]) for v in valid if v["value"] is not None]
    invalid = len(verdicts) - n
    invalid_rate = invalid / len(verdicts) if verdicts else 0.0
    mean = mean_low = mean_high = None
    if values:
        mean, mean_low, mean_high = stats.mean_interval(values, bounds=(0.0, 1.0))
    min_verdicts = spec.min_verdicts if spec.min_verdicts is not None else gate.min_verdicts
    max_invalid = (
        spec.max_invalid_rate if spec.max_invalid_rate is not None else gate.max_invalid_rate
    )
    reasons: list[str] = []
    if spec.gated:
        if n < min_verdicts:
            reasons.append(
                f"{n} valid verdict{'s' if n != 1 else ''} of {len(verdicts)}; "
                f"the gate needs at least {min_verdicts}"
            )
        if invalid_rate > max_invalid:
            common = Counter(_short(v.get("reason")) for v in verdicts if v["invalid"])
            top, count = common.most_common(1)[0]
            reasons.append(
                f"{invalid} of {len(verdicts)} verdicts invalid ({_pct(invalid_rate)}, limit "
                f"{_pct(max_invalid)}); most often: {top} ({count})"
            )
        if spec.threshold is not None:
            if not n:
                reasons.append("no verdicts to hold against the threshold")
            elif passes / n < spec.threshold:
                reasons.append(f"pass rate {_pct(passes / n)} is below {_pct(spec.threshold)}")
        if spec.min_mean is not None:
            if mean is None:
                reasons.append("no scores to hold against min_mean")
            elif mean < spec.min_mean:
                reasons.append(f"mean {mean:.3f} is below {spec.min_mean:.3f}")
    return {
        "type": spec.type,
        "cases": len(verdicts),
        "scored": n,
        "passed": passes,
        "pass_rate": passes / n if n else None,
        "pass_rate_ci95": list(stats.wilson_interval(passes, n)) if n else None,
        "mean": mean,
        "mean_ci95": [mean_low, mean_high] if mean is not None else None,
        "invalid": invalid,
        "invalid_rate": invalid_rate,
        "threshold": spec.threshold,
        "min_mean": spec.min_mean,
        "min_verdicts": min_verdicts,
        "max_invalid_rate": max_invalid,
        "gated": spec.gated,
        "ok": not reasons,
        "reasons": reasons,
    }


def _short(reason: Any) -> str:
    text = str(reason or "no reason given")
    return text if len(text) <= 80 else text[:77] + "..."


def target_summary(
    scorers: Sequence[ScorerSpec],
    cases: Sequence[dict[str, Any]],
    outputs: Sequence[Output],
    gate: GateSpec,
    *,
    gated: bool,
) -> dict[str, Any]:
    """One target's summary: per-scorer and per-tag results, errors, cost, and its gate.

    `cases` are this target's case results (`id`, `tags`, `scores`); `gated` is whether
    the run's gate applies to this target (a matrix with a candidate gates only that one).
    """
    per_scorer = {
        spec.key: scorer_summary(spec, [c["scores"][spec.key] for c in cases], gate)
        for spec in scorers
    }
    errors = [o for o in outputs if o.error]
    infra = sum(1 for o in errors if o.error_kind == "infra")
    error_rate = len(errors) / len(outputs) if outputs else 0.0
    reasons = [f"{key}: {why}" for key, s in per_scorer.items() for why in s["reasons"]]
    if error_rate > gate.max_error_rate:
        example = errors[0].error or ""
        reasons.append(
            f"{len(errors)} of {len(outputs)} calls failed ({_pct(error_rate)}, limit "
            f"{_pct(gate.max_error_rate)}); e.g. {_short(example)}"
        )
    return {
        "scorers": per_scorer,
        "tags": tag_breakdown(scorers, cases),
        "cases": len(cases),
        "calls": len(outputs),
        "errors": len(errors),
        "infra_errors": infra,
        "error_rate": error_rate,
        "cost_usd": sum(o.cost_usd or 0.0 for o in outputs),
        "gated": gated,
        "passed": not reasons,
        "reasons": reasons,
    }


def tag_breakdown(
    scorers: Sequence[ScorerSpec], cases: Sequence[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Per tag, per scorer: cases, valid verdicts, passes, pass rate (None without verdicts)."""
    tags = sorted({t for c in cases for t in c["tags"]})
    out: dict[str, dict[str, Any]] = {}
    for tag in tags:
        tagged = [c for c in cases if tag in c["tags"]]
        row: dict[str, Any] = {}
        for spec in scorers:
            verdicts = [c["scores"][spec.key] for c in tagged]
            valid = [v for v in verdicts if not v["invalid"]]
            passes = sum(1 for v in valid if v["passed"])
            values = [float(v["value"]) for v in valid if v["value"] is not None]
            row[spec.key] = {
                "cases": len(verdicts),
                "scored": len(valid),
                "passed": passes,
                "pass_rate": passes / len(valid) if valid else None,
                "mean": sum(values) / len(values) if values else None,
            }
        out[tag] = {"cases": len(tagged), "scorers": row}
    return out
