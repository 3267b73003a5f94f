"""Drift without labels: a subject's (a route's or a provider's) output signals now, against
its own baseline, from the rollups.

The current window (`current_minutes`, default 60) is compared with the `baseline_days`
before it (default 7), or, once there are eight days of history and `seasonal` is on,
with the same hours a week earlier. Each comparison must pass three gates before it fires:

- enough evidence: at least `min_samples` events in each window;
- significance: rates (refusal, hedging, empty, invalid JSON, tool calls, truncation) by
  Fisher's exact test when a 2x2 cell is small, else a two-proportion z-test; lengths and
  TTFT by a Mann-Whitney rank test on the histogram values when a window is small (it
  handles the ties of bucketed values, where a median permutation test cannot tell even
  two windows with no value in common apart), else a chi-square test of the two
  histograms (plus their Jensen-Shannon distance, reported);
  p below `alpha` (default 0.001: a monitor that cries wolf is muted);
- size: a rate moved by at least `min_rate_change` (2 percentage points), a median by at
  least `min_median_change` (20 %).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pilothouse.store.tables import LENGTH_EDGES_TOKENS, TTFT_EDGES_MS
from pilothouse.telemetry.rollups import (
    LENGTH_BUCKETS,
    TTFT_BUCKETS,
    length_quantile,
    ttft_quantile,
)

Totals = Mapping[str, float]
TotalsFor = Callable[[datetime, datetime], Totals]
# signal → (bad rollup column, or a (checked, valid) pair for an invalid share; events)
RATES: dict[str, tuple[str | tuple[str, str], str]] = {
    "refusal": ("refusal", "answers"),
    "hedging": ("hedging", "answers"),
    "empty": ("empty", "answers"),
    "truncated": ("truncated", "answers"),
    "tool_call": ("tool_call", "answers"),
    "json_invalid": (("json_checked", "json_valid"), "json_checked"),
}
SMALL_SAMPLE = 400  # below this many events in a window, the exact / rank tests


@dataclass(frozen=True, slots=True)
class DriftSettings:
    current_minutes: int = 60
    baseline_days: float = 7.0
    seasonal: bool = True
    min_samples: int = 50
    alpha: float = 0.001
    min_rate_change: float = 0.02
    min_median_change: float = 0.2


@dataclass(frozen=True, slots=True)
class Finding:
    signal: str
    direction: str  # up | down
    current: float
    baseline: float
    p_value: float
    samples: tuple[float, float]  # (current, baseline) events
    test: str
    distance: float | None = None  # Jensen-Shannon, for distributions

    def summary(self, subject: str) -> str:
        if self.signal in ("length", "ttft"):
            unit = " tokens" if self.signal == "length" else " ms"
            shown = f"median {self.baseline:.0f}{unit} -> {self.current:.0f}{unit}"
        else:
            shown = f"{self.baseline:.1%} -> {self.current:.1%}"
        return f"{subject}: {self.signal} drifted {self.direction}: {shown} (p={self.p_value:.1e}, {self.test})"

    def public(self) -> dict[str, Any]:
        return {
            "signal": self.signal,
            "direction": self.direction,
            "current": self.current,
            "baseline": self.baseline,
            "p_value": self.p_value,
            "current_events": self.samples[0],
            "baseline_events": self.samples[1],
            "test": self.test,
            "distance": self.distance,
        }


def windows(
    now: datetime, settings: DriftSettings, history_start: datetime | None
) -> tuple[tuple[datetime, datetime], tuple[datetime, datetime]]:
    """(current, baseline) as (since, until) pairs."""
    current = (now - timedelta(minutes=settings.current_minutes), now)
    week = timedelta(days=7)
    if (
        settings.seasonal
        and history_start is not None
        and history_start <= now - week - timedelta(days=1)
    ):
        return current, (current[0] - week, current[1] - week)
    return current, (current[0] - timedelta(days=settings.baseline_days), current[0])


def detect(current: Totals, baseline: Totals, settings: DriftSettings) -> list[Finding]:
    """Every signal that drifted, by the three gates in the module docstring."""
    found: list[Finding] = []
    for signal, (bad, events) in RATES.items():
        finding = _rate(signal, bad, events, current, baseline, settings)
        if finding is not None:
            found.append(finding)
    for signal, buckets, edges, quantile in (
        ("length", LENGTH_BUCKETS, LENGTH_EDGES_TOKENS, length_quantile),
        ("ttft", TTFT_BUCKETS, TTFT_EDGES_MS, ttft_quantile),
    ):
        finding = _distribution(signal, buckets, edges, quantile, current, baseline, settings)
        if finding is not None:
            found.append(finding)
    return found


def _counts(bad: str | tuple[str, str], events: str, totals: Totals) -> tuple[float, float]:
    n = totals[events]
    if isinstance(bad, tuple):
        checked, valid = bad
        return totals[checked] - totals[valid], n
    return totals[bad], n


def _rate(
    signal: str,
    bad: str | tuple[str, str],
    events: str,
    current: Totals,
    baseline: Totals,
    settings: DriftSettings,
) -> Finding | None:
    a, n1 = _counts(bad, events, current)
    b, n2 = _counts(bad, events, baseline)
    if n1 < settings.min_samples or n2 < settings.min_samples:
        return None
    p1, p2 = a / n1, b / n2
    if abs(p1 - p2) < settings.min_rate_change:
        return None
    table = [[a, n1 - a], [b, n2 - b]]
    expected = min(
        (row_total * col_total) / (n1 + n2)
        for row_total in (n1, n2)
        for col_total in (a + b, n1 + n2 - a - b)
    )
    if expected < 5 or n1 < SMALL_SAMPLE or n2 < SMALL_SAMPLE:
        from scipy.stats import fisher_exact

        p_value = float(fisher_exact([[int(x) for x in row] for row in table])[1])
        test = "fisher_exact"
    else:
        pooled = (a + b) / (n1 + n2)
        se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        z = (p1 - p2) / se if se else 0.0
        p_value = math.erfc(abs(z) / math.sqrt(2))
        test = "two_proportion_z"
    if p_value >= settings.alpha:
        return None
    return Finding(signal, "up" if p1 > p2 else "down", p1, p2, p_value, (n1, n2), test)


def _distribution(
    signal: str,
    buckets: Sequence[str],
    edges: Sequence[int],
    quantile: Callable[[Totals, float], float | None],
    current: Totals,
    baseline: Totals,
    settings: DriftSettings,
) -> Finding | None:
    c = [current[name] for name in buckets]
    b = [baseline[name] for name in buckets]
    n1, n2 = sum(c), sum(b)
    if n1 < settings.min_samples or n2 < settings.min_samples:
        return None
    m1, m2 = quantile(current, 0.5), quantile(baseline, 0.5)
    if m1 is None or m2 is None:
        return None
    if abs(m1 - m2) < settings.min_median_change * max(m2, 1e-9):
        return None
    distance = _jensen_shannon(c, b)
    if n1 < SMALL_SAMPLE or n2 < SMALL_SAMPLE:
        p_value = _rank_p(c, b, _midpoints(edges))
        test = "mann_whitney"
    else:
        p_value = _chi_square_p(c, b)
        test = "chi_square"
    if p_value >= settings.alpha:
        return None
    return Finding(signal, "up" if m1 > m2 else "down", m1, m2, p_value, (n1, n2), test, distance)


def _midpoints(edges: Sequence[int]) -> list[float]:
    out, low = [], 0.0
    for edge in edges:
        out.append((low + edge) / 2)
        low = float(edge)
    out.append(low * 1.5)  # the overflow bucket
    return out


def _rank_p(c: Sequence[float], b: Sequence[float], values: Sequence[float]) -> float:
    """Two-sided Mann-Whitney U on bucketed values (tie-corrected normal approximation)."""
    from scipy.stats import mannwhitneyu

    first = [v for v, n in zip(values, c, strict=True) for _ in range(int(n))]
    second = [v for v, n in zip(values, b, strict=True) for _ in range(int(n))]
    if len(set(first) | set(second)) < 2:
        return 1.0
    return float(mannwhitneyu(first, second, method="asymptotic").pvalue)


def _chi_square_p(c: Sequence[float], b: Sequence[float]) -> float:
    from scipy.stats import chi2_contingency

    kept = [(x, y) for x, y in zip(c, b, strict=True) if x + y > 0]
    if len(kept) < 2:
        return 1.0
    return float(chi2_contingency([[x for x, _ in kept], [y for _, y in kept]])[1])


def _jensen_shannon(c: Sequence[float], b: Sequence[float]) -> float:
    n1, n2 = sum(c), sum(b)
    p = [x / n1 for x in c]
    q = [y / n2 for y in b]
    m = [(x + y) / 2 for x, y in zip(p, q, strict=True)]

    def kl(a: Sequence[float], mid: Sequence[float]) -> float:
        return sum(x * math.log2(x / y) for x, y in zip(a, mid, strict=True) if x > 0)

    return math.sqrt(max(0.0, (kl(p, m) + kl(q, m)) / 2))
