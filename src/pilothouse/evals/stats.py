"""The statistics an eval report needs: intervals, repeat reducers, paired comparisons."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
from scipy import special

# scipy.special has the t distribution at a third of scipy.stats's import time (0.3 s
# against 0.85 s of every `eval run`); scipy.stats is imported only for Wilcoxon.

Reducer = Literal["mean", "pass@k", "pass^k"]
REDUCERS: tuple[Reducer, ...] = ("mean", "pass@k", "pass^k")
Ties = Literal["fail", "pass"]
ScoreTest = Literal["t", "wilcoxon"]


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence}")


def binomial_half_p(k: int, n: int) -> float:
    """Two-sided exact binomial test of k successes in n trials against p = 1/2.

    As scipy.stats.binomtest(k, n): p = 2 * P(X <= min(k, n - k)), at most 1; n = 0 gives 1.
    Computed with exact integers, so it holds for any n.
    """
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    low = min(k, n - k)
    if 2 * low == n:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(low + 1))
    return min(1.0, 2 * tail / 2**n)


def paired_t_p(diffs: Any) -> float:
    """Two-sided p of the paired t-test on differences (as scipy.stats.ttest_rel)."""
    d = np.asarray(diffs, dtype=float)
    n = int(d.size)
    t = float(d.mean()) / (float(d.std(ddof=1)) / math.sqrt(n))
    return float(2 * special.stdtr(n - 1, -abs(t)))


def wilson_interval(passes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval for a pass rate of `passes` out of `n`.

    Unlike the normal approximation it stays inside [0, 1] and is sensible at 0/n and
    n/n (0/10 gives (0, 0.278)). With n = 0 nothing is known: (0.0, 1.0).
    """
    _check_confidence(confidence)
    if n < 0 or not 0 <= passes <= n:
        raise ValueError(f"need 0 <= passes <= n, got passes={passes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = passes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if passes == 0 else max(0.0, center - half)
    high = 1.0 if passes == n else min(1.0, center + half)
    return low, high


def mean_interval(
    values: Sequence[float],
    confidence: float = 0.95,
    bounds: tuple[float, float] | None = None,
) -> tuple[float, float, float]:
    """(mean, low, high): Student's t interval for the mean of `values`.

    One value gives (v, v, v); identical values give a zero-width interval. With `bounds`
    (e.g. (0, 1) for scores that cannot leave [0, 1]) the interval is clipped to them.
    Raises ValueError on no values.
    """
    _check_confidence(confidence)
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("mean_interval needs at least one value")
    mean = float(x.mean())
    if x.size == 1:
        return mean, mean, mean
    sem = float(x.std(ddof=1)) / math.sqrt(x.size)
    if sem == 0.0:
        return mean, mean, mean
    t = float(special.stdtrit(x.size - 1, 0.5 + confidence / 2))
    low, high = mean - t * sem, mean + t * sem
    if bounds is not None:
        low, high = max(bounds[0], low), min(bounds[1], high)
    return mean, low, high


def reduce_repeats(
    values: Sequence[float | None],
    passed: Sequence[bool | None],
    reducer: Reducer | str,
    ties: Ties | str = "fail",
) -> tuple[float | None, bool | None]:
    """One case's verdict from its repeats' (value, passed) pairs.

    `reducer` is one of REDUCERS; any other string is a ValueError (so a suite's
    configured string can be passed as is). A repeat with value or passed None (an
    invalid verdict) is skipped; when every repeat is invalid, or there are none, the
    result is (None, None).
    - `mean`: value = mean of the values; passed = more than half the repeats passed. A
      tie (exactly half) fails, unless `ties` is "pass".
    - `pass@k`: passed when any repeat passed; value 1.0 or 0.0.
    - `pass^k`: passed only when every repeat passed; value 1.0 or 0.0.
    k is the number of valid repeats; pass@k here is "did one of the k tries pass" for
    this case, not the unbiased estimator from n > k samples.
    """
    if len(values) != len(passed):
        raise ValueError(f"{len(values)} values but {len(passed)} passed flags")
    if reducer not in REDUCERS:
        raise ValueError(f"unknown reducer {reducer!r}; known: {', '.join(REDUCERS)}")
    if ties not in ("fail", "pass"):
        raise ValueError(f"ties must be 'fail' or 'pass', got {ties!r}")
    valid = [(v, p) for v, p in zip(values, passed, strict=True) if v is not None and p is not None]
    if not valid:
        return None, None
    flags = [bool(p) for _, p in valid]
    if reducer == "mean":
        passes, total = sum(flags), len(flags)
        ok = 2 * passes > total or (2 * passes == total and ties == "pass")
        return float(np.mean([v for v, _ in valid])), ok
    ok = any(flags) if reducer == "pass@k" else all(flags)
    return (1.0 if ok else 0.0), ok


def paired_comparison(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """How b differs from a over the same cases, paired by position.

    Returns delta_mean = mean(b - a) (positive: b scored higher), a two-sided p_value,
    the `test` used and `n`:
    - all values 0 or 1: `mcnemar_exact`, the exact binomial test on the discordant
      pairs (p = 1.0 when there are none);
    - otherwise `paired_t` (scipy ttest_rel); when every difference is the same (to
      float precision) the t statistic is undefined: p = 1.0 if they are all zero, else
      the exact two-sided `sign` test, 2 * 0.5**n (capped at 1);
    - fewer than 2 pairs: `none`, p = 1.0.
    """
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = int(x.size)
    delta = float((y - x).mean()) if n else 0.0
    binary = n > 0 and bool(np.isin(x, (0.0, 1.0)).all() and np.isin(y, (0.0, 1.0)).all())
    if binary:
        gained = int(((x == 0) & (y == 1)).sum())
        lost = int(((x == 1) & (y == 0)).sum())
        p = binomial_half_p(gained, gained + lost)
        return {"delta_mean": delta, "p_value": p, "test": "mcnemar_exact", "n": n}
    if n < 2:
        return {"delta_mean": delta, "p_value": 1.0, "test": "none", "n": n}
    diffs = y - x
    if np.allclose(diffs, diffs[0], rtol=1e-9, atol=1e-12):  # equal up to float error
        if np.allclose(diffs, 0.0, rtol=0.0, atol=1e-12):
            return {"delta_mean": delta, "p_value": 1.0, "test": "paired_t", "n": n}
        return {"delta_mean": delta, "p_value": min(1.0, 2 * 0.5**n), "test": "sign", "n": n}
    p = paired_t_p(y - x)
    return {"delta_mean": delta, "p_value": p, "test": "paired_t", "n": n}


def flipped(a: Mapping[str, bool | None], b: Mapping[str, bool | None]) -> dict[str, list[str]]:
    """Cases whose verdict changed from a to b: `fixed` (failed, now passes), `broken`.

    Only case ids in both with a verdict (not None) in both count; ids are sorted.
    """
    common = sorted(k for k in a.keys() & b.keys() if a[k] is not None and b[k] is not None)
    return {
        "fixed": [k for k in common if not a[k] and b[k]],
        "broken": [k for k in common if a[k] and not b[k]],
    }


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> dict[str, Any]:
    """Exact McNemar test for paired pass/fail verdicts (a[i] and b[i] on the same case).

    Returns `gained` (failed in a, passed in b), `lost` (the reverse), `n` pairs,
    `delta` = (gained - lost) / n (the change in pass rate) and the two-sided exact
    binomial p-value on the discordant pairs (1.0 when there are none).
    """
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    gained = sum(1 for x, y in zip(a, b, strict=True) if not x and y)
    lost = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    n = len(a)
    p = binomial_half_p(gained, gained + lost)
    return {
        "test": "mcnemar_exact",
        "n": n,
        "gained": gained,
        "lost": lost,
        "delta": (gained - lost) / n if n else 0.0,
        "p_value": p,
    }


def paired_scores(a: Sequence[float], b: Sequence[float], test: ScoreTest = "t") -> dict[str, Any]:
    """A paired test on scores (a[i], b[i] on the same case): `t` (paired t) or `wilcoxon`.

    Returns `delta` = mean(b - a), the two-sided `p_value`, the `test` run and `n`. When
    every difference is zero p is 1.0; when every difference is the same non-zero value
    the t statistic is undefined and the exact sign test is used (2 * 0.5**n). Fewer than
    2 pairs: test `none`, p 1.0.
    """
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    if test not in ("t", "wilcoxon"):
        raise ValueError(f"test must be 't' or 'wilcoxon', got {test!r}")
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = int(x.size)
    delta = float((y - x).mean()) if n else 0.0
    name = "paired_t" if test == "t" else "wilcoxon"
    if n < 2:
        return {"test": "none", "n": n, "delta": delta, "p_value": 1.0}
    diffs = y - x
    if np.allclose(diffs, 0.0, rtol=0.0, atol=1e-12):
        return {"test": name, "n": n, "delta": delta, "p_value": 1.0}
    if test == "t" and np.allclose(diffs, diffs[0], rtol=1e-9, atol=1e-12):
        return {"test": "sign", "n": n, "delta": delta, "p_value": min(1.0, 2 * 0.5**n)}
    if test == "t":
        p = paired_t_p(y - x)
    else:  # zero differences are dropped ("wilcox"), as the classic test does
        from scipy import stats as sps

        p = float(sps.wilcoxon(y, x, zero_method="wilcox").pvalue)
    return {"test": name, "n": n, "delta": delta, "p_value": p}
