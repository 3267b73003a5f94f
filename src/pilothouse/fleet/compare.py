"""Cross-provider comparison: the output signals of each deployment of an alias (refusal
rate, JSON validity when JSON was asked for, answer length), compared with its peers', so a
deployment that answers 200 but unlike the others is flagged.

The test, per signal, for a deployment with at least `min_samples` answers in the window
against the pooled answers of its peers (also at least `min_samples`):

- refusal rate and JSON validity: a two-proportion z-test; flagged when |z| ≥ 3.29
  (two-sided p < 0.001) and the rates differ by at least 10 percentage points. With two
  deployments, only the worse one is flagged (more refusals, less valid JSON).
- length: Welch's z on the mean length in characters; flagged when |z| ≥ 3.29 and one
  mean is at least 1.5 times the other. With two deployments, both are flagged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pilothouse.fleet import semantics
from pilothouse.fleet.clock import Clock
from pilothouse.fleet.window import RollingWindow
from pilothouse.providers.types import OutputSample

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

    def add(self, body: dict[str, Any], sample: OutputSample) -> None:
        tally = self.window.current()
        tally.answers += 1
        tally.refusals += semantics.is_refusal(sample)
        chars = sample.chars
        tally.chars_sum += chars
        tally.chars_sq_sum += chars * chars
        if semantics.wants_json(body) and not sample.refusal:
            valid = semantics.is_valid_json(sample)
            if valid is not None:
                tally.json_asked += 1
                tally.json_valid += valid

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
    """Deployment id → why it is flagged, for each deployment that differs from its peers
    (`signals` maps deployment id → `OutputSignals.totals()`)."""
    flagged: dict[str, list[str]] = {}
    pair = len(signals) == 2
    for name, mine in signals.items():
        peers = [s for other, s in signals.items() if other != name]
        if not peers:
            continue
        reasons = []
        refusal = _proportions(
            mine["refusals"], mine["answers"], peers, "refusals", "answers", min_samples
        )
        if refusal is not None and (not pair or refusal[0] > refusal[1]):
            reasons.append(f"refusal rate {refusal[0]:.0%} against {refusal[1]:.0%} for its peers")
        valid = _proportions(
            mine["json_valid"], mine["json_asked"], peers, "json_valid", "json_asked", min_samples
        )
        if valid is not None and (not pair or valid[0] < valid[1]):
            reasons.append(f"valid JSON {valid[0]:.0%} against {valid[1]:.0%} for its peers")
        length = _lengths(mine, peers, min_samples)
        if length is not None:
            reasons.append(
                f"mean length {length[0]:.0f} characters against {length[1]:.0f} for its peers"
            )
        if reasons:
            flagged[name] = reasons
    return flagged


def _proportions(
    hits: int,
    n: int,
    peers: list[dict[str, Any]],
    hits_key: str,
    n_key: str,
    min_samples: int,
) -> tuple[float, float] | None:
    """(mine, peers') rates when they differ by the test above, else None."""
    peer_hits = sum(p[hits_key] for p in peers if p[n_key] >= min_samples)
    peer_n = sum(p[n_key] for p in peers if p[n_key] >= min_samples)
    if n < min_samples or peer_n < min_samples:
        return None
    p1, p2 = hits / n, peer_hits / peer_n
    pooled = (hits + peer_hits) / (n + peer_n)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / peer_n))
    if se == 0 or abs(p1 - p2) < MIN_RATE_GAP or abs(p1 - p2) / se < Z_CRITICAL:
        return None
    return p1, p2


def _lengths(
    mine: dict[str, Any], peers: list[dict[str, Any]], min_samples: int
) -> tuple[float, float] | None:
    usable = [p for p in peers if p["answers"] >= min_samples]
    n1 = mine["answers"]
    n2 = sum(p["answers"] for p in usable)
    if n1 < min_samples or n2 < min_samples:
        return None
    m1 = mine["length_chars_mean"]
    m2 = sum(p["length_chars_mean"] * p["answers"] for p in usable) / n2
    # The peers' pooled variance: within each peer plus between their means.
    v2 = (
        sum(
            p["answers"] * (p["length_chars_variance"] + (p["length_chars_mean"] - m2) ** 2)
            for p in usable
        )
        / n2
    )
    se = math.sqrt(mine["length_chars_variance"] / n1 + v2 / n2)
    low, high = sorted((m1, m2))
    if high < MIN_LENGTH_RATIO * max(low, 1.0):
        return None
    if se > 0 and abs(m1 - m2) / se < Z_CRITICAL:
        return None
    return m1, m2
