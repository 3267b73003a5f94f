"""Cross-provider comparison: the output signals of each deployment of an alias (refusal
rate, JSON validity when JSON was asked for, answer length), compared with its peers', so a
deployment that answers 200 but unlike the others is flagged.

The test: among the deployments with at least `min_samples` answers in the window, one is
flagged on a signal when it differs from every other one, pair by pair:

- refusal rate and JSON validity: a two-proportion z-test; different when |z| ≥ 3.29
  (two-sided p < 0.001) and the rates differ by at least 10 percentage points. With two
  deployments, only the worse one is flagged (more refusals, less valid JSON).
- length: Welch's z on the mean length in characters; different when |z| ≥ 3.29 and one
  mean is at least 1.5 times the other. With two deployments, both are flagged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pilothouse.clock import Clock
from pilothouse.fleet.window import RollingWindow
from pilothouse.telemetry.signals import Signals

Z_CRITICAL = 3.29
MIN_RATE_GAP = 0.10
MIN_LENGTH_RATIO = 1.5


@dataclass(slots=True)
class _Signals:
    answers: int = 0
    refusals: int = 0
    json_asked: int = 0
    json_valid: int = 0
    chars_sum: float = 0.0
    chars_sq_sum: float = 0.0


class OutputSignals:
    """One deployment's output signals for one alias, over a rolling window."""

    def __init__(self, window_seconds: float, clock: Clock):
        self.window = RollingWindow(window_seconds, clock, _Signals)

    def add(self, signals: Signals) -> None:
        tally = self.window.current()
        tally.answers += 1
        tally.refusals += signals.refusal
        chars = signals.chars
        tally.chars_sum += chars
        tally.chars_sq_sum += chars * chars
        if signals.json_valid is not None:
            tally.json_asked += 1
            tally.json_valid += signals.json_valid

    def totals(self) -> dict[str, Any]:
        t = _Signals()
        for tally in self.window.live():
            t.answers += tally.answers
            t.refusals += tally.refusals
            t.json_asked += tally.json_asked
            t.json_valid += tally.json_valid
            t.chars_sum += tally.chars_sum
            t.chars_sq_sum += tally.chars_sq_sum
        mean = t.chars_sum / t.answers if t.answers else None
        variance = max(0.0, t.chars_sq_sum / t.answers - (mean or 0.0) ** 2) if t.answers else None
        return {
            "answers": t.answers,
            "refusals": t.refusals,
            "refusal_rate": t.refusals / t.answers if t.answers else None,
            "json_asked": t.json_asked,
            "json_valid": t.json_valid,
            "json_valid_rate": t.json_valid / t.json_asked if t.json_asked else None,
            "length_chars_mean": mean,
            "length_chars_variance": variance,
        }


def outliers(signals: dict[str, dict[str, Any]], min_samples: int) -> dict[str, list[str]]:
    """Deployment id → why it is flagged, for each deployment that differs from every one
    of its peers with enough answers (`signals` maps deployment id → `OutputSignals.totals()`).
    """
    usable = {name: s for name, s in signals.items() if s["answers"] >= min_samples}
    flagged: dict[str, list[str]] = {}
    pair = len(usable) == 2
    for name, mine in usable.items():
        peers = [s for other, s in usable.items() if other != name]
        if not peers:
            continue
        reasons = []
        refusal = [_rates(mine, p, "refusals", "answers", min_samples) for p in peers]
        if all(refusal) and (not pair or refusal[0][0] > refusal[0][1]):  # type: ignore[index]
            reasons.append(
                f"refusal rate {_rate(mine, 'refusals', 'answers'):.0%} against "
                f"{_pooled(peers, 'refusals', 'answers'):.0%} for its peers"
            )
        valid = [_rates(mine, p, "json_valid", "json_asked", min_samples) for p in peers]
        if all(valid) and (not pair or valid[0][0] < valid[0][1]):  # type: ignore[index]
            reasons.append(
                f"valid JSON {_rate(mine, 'json_valid', 'json_asked'):.0%} against "
                f"{_pooled(peers, 'json_valid', 'json_asked'):.0%} for its peers"
            )
        if all(_lengths_differ(mine, p) for p in peers):
            peer_mean = sum(p["length_chars_mean"] for p in peers) / len(peers)
            reasons.append(
                f"mean length {mine['length_chars_mean']:.0f} characters against "
                f"{peer_mean:.0f} for its peers"
            )
        if reasons:
            flagged[name] = reasons
    return flagged


def _rate(s: dict[str, Any], hits: str, n: str) -> float:
    return float(s[hits] / s[n]) if s[n] else 0.0


def _pooled(peers: list[dict[str, Any]], hits: str, n: str) -> float:
    total = sum(p[n] for p in peers)
    return sum(p[hits] for p in peers) / total if total else 0.0


def _rates(
    mine: dict[str, Any], peer: dict[str, Any], hits: str, n: str, min_samples: int
) -> tuple[float, float] | None:
    """(mine, the peer's) rates when they differ by the test above, else None."""
    n1, n2 = mine[n], peer[n]
    if n1 < min_samples or n2 < min_samples:
        return None
    p1, p2 = mine[hits] / n1, peer[hits] / n2
    pooled = (mine[hits] + peer[hits]) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0 or abs(p1 - p2) < MIN_RATE_GAP or abs(p1 - p2) / se < Z_CRITICAL:
        return None
    return p1, p2


def _lengths_differ(mine: dict[str, Any], peer: dict[str, Any]) -> bool:
    m1, m2 = mine["length_chars_mean"], peer["length_chars_mean"]
    low, high = sorted((m1, m2))
    if high < MIN_LENGTH_RATIO * max(low, 1.0):
        return False
    se = math.sqrt(
        mine["length_chars_variance"] / mine["answers"]
        + peer["length_chars_variance"] / peer["answers"]
    )
    return se == 0 or abs(m1 - m2) / se >= Z_CRITICAL
