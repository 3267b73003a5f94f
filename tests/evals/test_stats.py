"""Intervals, repeat reducers and paired comparisons against known values and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from pilothouse.evals.stats import (
    flipped,
    mean_interval,
    paired_comparison,
    reduce_repeats,
    wilson_interval,
)

# --- wilson_interval ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("passes", "n", "low", "high"),
    [
        (8, 10, 0.4902, 0.9433),  # textbook values for 8/10 at 95%
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (50, 100, 0.4038, 0.5962),
        (1, 1, 0.2065, 1.0),
    ],
)
def test_wilson_known_values(passes: int, n: int, low: float, high: float) -> None:
    lo, hi = wilson_interval(passes, n)
    assert lo == pytest.approx(low, abs=5e-4)
    assert hi == pytest.approx(high, abs=5e-4)


def test_wilson_matches_the_closed_form_and_widens_with_confidence() -> None:
    z = sps.norm.ppf(0.995)
    p, n = 0.3, 20
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert wilson_interval(6, 20, 0.99) == pytest.approx((center - half, center + half))
    lo95, hi95 = wilson_interval(6, 20)
    lo99, hi99 = wilson_interval(6, 20, 0.99)
    assert lo99 < lo95 < 0.3 < hi95 < hi99


def test_wilson_with_no_trials_knows_nothing() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize(("passes", "n", "conf"), [(3, 2, 0.95), (-1, 5, 0.95), (1, 2, 1.0)])
def test_wilson_rejects_impossible_arguments(passes: int, n: int, conf: float) -> None:
    with pytest.raises(ValueError):
        wilson_interval(passes, n, conf)


# --- mean_interval -----------------------------------------------------------------


def test_mean_interval_matches_scipy_t_interval() -> None:
    values = [0.2, 0.5, 0.9, 0.4, 0.75, 0.6]
    mean, low, high = mean_interval(values)
    ref_low, ref_high = sps.t.interval(
        0.95, len(values) - 1, loc=np.mean(values), scale=sps.sem(values)
    )
    assert mean == pytest.approx(np.mean(values))
    assert (low, high) == pytest.approx((ref_low, ref_high))
    _, low90, high90 = mean_interval(values, 0.90)
    assert low < low90 < mean < high90 < high


def test_mean_interval_degenerate_inputs() -> None:
    assert mean_interval([0.7]) == (0.7, 0.7, 0.7)
    assert mean_interval([1.0, 1.0, 1.0]) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError):
        mean_interval([])


# --- reduce_repeats ----------------------------------------------------------------


def test_reduce_mean() -> None:
    assert reduce_repeats([1.0, 0.0, 0.5], [True, False, True], "mean") == (
        pytest.approx(0.5),
        True,
    )
    assert reduce_repeats([1.0, 0.0, 0.0], [True, False, False], "mean") == (
        pytest.approx(1 / 3),
        False,
    )
    assert reduce_repeats([1.0, 0.0], [True, False], "mean") == (0.5, False)  # a tie fails
    assert reduce_repeats([1.0, 0.0], [True, False], "mean", ties="pass") == (0.5, True)


def test_reduce_pass_at_k_and_pass_hat_k() -> None:
    assert reduce_repeats([0.0, 1.0, 0.0], [False, True, False], "pass@k") == (1.0, True)
    assert reduce_repeats([0.0, 0.0], [False, False], "pass@k") == (0.0, False)
    assert reduce_repeats([1.0, 1.0, 0.0], [True, True, False], "pass^k") == (0.0, False)
    assert reduce_repeats([1.0, 1.0], [True, True], "pass^k") == (1.0, True)


def test_reduce_skips_invalid_repeats() -> None:
    assert reduce_repeats([None, 1.0, None], [None, True, None], "pass^k") == (1.0, True)
    assert reduce_repeats([None, 0.0], [None, False], "mean") == (0.0, False)
    assert reduce_repeats([None, None], [None, None], "pass@k") == (None, None)
    assert reduce_repeats([], [], "mean") == (None, None)


def test_reduce_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown reducer"):
        reduce_repeats([1.0], [True], "median")
    with pytest.raises(ValueError, match="2 values but 1"):
        reduce_repeats([1.0, 0.0], [True], "mean")


# --- paired_comparison -------------------------------------------------------------


def test_mcnemar_exact_on_a_known_table() -> None:
    # 9 cases fixed (0 -> 1), 1 broken (1 -> 0), 5 passing in both, 5 failing in both.
    a = [0.0] * 9 + [1.0] + [1.0] * 5 + [0.0] * 5
    b = [1.0] * 9 + [0.0] + [1.0] * 5 + [0.0] * 5
    result = paired_comparison(a, b)
    assert result["test"] == "mcnemar_exact"
    assert result["n"] == 20
    assert result["p_value"] == pytest.approx(22 / 1024)  # 2 * P(X <= 1), X ~ Bin(10, 1/2)
    assert result["delta_mean"] == pytest.approx(8 / 20)


def test_mcnemar_without_discordant_pairs_is_p_one() -> None:
    result = paired_comparison([1, 0, 1], [1, 0, 1])
    assert result == {"delta_mean": 0.0, "p_value": 1.0, "test": "mcnemar_exact", "n": 3}


def test_paired_t_matches_scipy_and_delta_is_b_minus_a() -> None:
    a = [0.50, 0.60, 0.55, 0.70, 0.40, 0.65]
    b = [0.60, 0.65, 0.70, 0.72, 0.50, 0.66]
    result = paired_comparison(a, b)
    assert result["test"] == "paired_t"
    assert result["p_value"] == pytest.approx(sps.ttest_rel(b, a).pvalue)
    assert result["delta_mean"] == pytest.approx(np.mean(b) - np.mean(a))
    assert result["delta_mean"] > 0
    assert paired_comparison(b, a)["delta_mean"] == pytest.approx(-result["delta_mean"])


def test_paired_identical_samples_are_p_one() -> None:
    result = paired_comparison([0.2, 0.4, 0.9], [0.2, 0.4, 0.9])
    assert result["p_value"] == 1.0 and result["delta_mean"] == 0.0


def test_paired_constant_nonzero_shift_uses_the_sign_test() -> None:
    result = paired_comparison([0.1, 0.2, 0.3], [0.35, 0.45, 0.55])
    assert result["test"] == "sign"
    assert result["p_value"] == pytest.approx(0.25)
    assert result["delta_mean"] == pytest.approx(0.25)


def test_paired_too_few_pairs() -> None:
    assert paired_comparison([0.3], [0.8]) == {
        "delta_mean": pytest.approx(0.5),
        "p_value": 1.0,
        "test": "none",
        "n": 1,
    }
    assert paired_comparison([], [])["p_value"] == 1.0
    with pytest.raises(ValueError, match="differ in length"):
        paired_comparison([0.1, 0.2], [0.1])


# --- flipped -----------------------------------------------------------------------


def test_flipped_lists_fixed_and_broken_cases_sorted() -> None:
    a = {"c3": False, "c1": False, "c2": True, "c4": True, "only_a": False}
    b = {"c3": True, "c1": True, "c2": False, "c4": True, "only_b": True}
    assert flipped(a, b) == {"fixed": ["c1", "c3"], "broken": ["c2"]}
    assert flipped(b, a) == {"fixed": ["c2"], "broken": ["c1", "c3"]}


def test_flipped_ignores_cases_without_a_verdict() -> None:
    assert flipped({"c1": None, "c2": False}, {"c1": True, "c2": None}) == {
        "fixed": [],
        "broken": [],
    }
