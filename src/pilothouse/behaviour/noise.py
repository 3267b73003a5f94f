"""The noise floor: which changes a model's own variability cannot explain.

The old side answers every case twice (the second time with the next seed). Per
behaviour (a label, the JSON keys, ...):

- a case whose two old answers already differ in it is *noisy*: its change old -> new
  says nothing, and is never reported;
- the old side's flip rate is `noise / compared`. Among the *steady* cases (their two old
  answers agree), a new version no different from the old would still differ in about
  that share of them. The behaviour changed beyond the noise floor when the steady cases
  that changed are more than that rate explains: a one-sided binomial test,
  P(X >= changed | steady cases, flip rate) < 0.05. With an old side that never flips,
  every change counts; with one that flips half the time, a change must stand out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ALPHA = 0.05


@dataclass(frozen=True)
class Verdict:
    """One behaviour against the noise floor."""

    changed: int  # cases that changed old -> new
    noise: int  # cases whose two old answers differ
    steady_changed: int  # changed cases among those whose old answers agree
    p_value: float
    beyond: bool

    @property
    def reported(self) -> int:
        return self.steady_changed if self.beyond else 0


def verdict(changed: int, noise: int, steady: int, steady_changed: int, compared: int) -> Verdict:
    """Whether `steady_changed` changes among `steady` cases stand out from the old side's
    flip rate (`noise` of `compared` cases)."""
    rate = noise / compared if compared else 0.0
    p_value = upper_tail(steady_changed, steady, rate)
    return Verdict(changed, noise, steady_changed, p_value, steady_changed > 0 and p_value < ALPHA)


def upper_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exact (in log space, so n may be large)."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    total = 0.0
    for i in range(k, n + 1):
        log_term = (
            math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
            + i * log_p + (n - i) * log_q
        )  # fmt: skip
        total += math.exp(log_term)
    return min(1.0, total)
