"""Drift detection on rollup counters: what fires, what does not (no store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pilothouse.monitor.drift import DriftSettings, detect, windows
from pilothouse.store.tables import ROLLUP_COUNTS, ROLLUP_SUMS

SETTINGS = DriftSettings(min_samples=50)


def answers(
    n: int, *, refusal: float = 0.01, hedging: float = 0.02, length_bucket: str = "len_le_48"
) -> dict[str, float]:
    out = dict.fromkeys((*ROLLUP_COUNTS, *ROLLUP_SUMS), 0.0)
    out.update(requests=n, ok=n, answers=n, refusal=round(n * refusal), hedging=round(n * hedging))
    out[length_bucket] = n
    out["ttft_count"] = n
    out["ttft_le_300"] = n
    return out


def test_more_refusals_hedging_and_longer_answers_are_each_found() -> None:
    found = {f.signal: f for f in detect(
        answers(300, refusal=0.12, hedging=0.3, length_bucket="len_le_128"),
        answers(3000),
        SETTINGS,
    )}  # fmt: skip
    assert set(found) == {"refusal", "hedging", "length"}
    assert all(f.direction == "up" and f.p_value < SETTINGS.alpha for f in found.values())
    assert found["length"].current > found["length"].baseline * 1.2


def test_noise_and_tiny_changes_do_not_fire() -> None:
    assert detect(answers(300, refusal=0.012), answers(3000), SETTINGS) == []
    # Significant with a huge sample, but under the 2-point floor: not worth a page.
    assert detect(answers(100_000, refusal=0.025), answers(1_000_000), SETTINGS) == []


def test_too_few_samples_never_fire() -> None:
    assert detect(answers(20, refusal=0.9), answers(3000), SETTINGS) == []


def test_small_windows_use_exact_tests() -> None:
    found = {f.signal: f for f in detect(answers(80, refusal=0.3), answers(120), SETTINGS)}
    assert found["refusal"].test == "fisher_exact"


def test_the_baseline_is_the_same_hours_a_week_earlier_once_there_is_history() -> None:
    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    current, baseline = windows(now, SETTINGS, now - timedelta(days=30))
    assert current == (now - timedelta(hours=1), now)
    assert baseline == (now - timedelta(days=7, hours=1), now - timedelta(days=7))
    _, trailing = windows(now, SETTINGS, now - timedelta(days=2))
    assert trailing == (now - timedelta(days=7, hours=1), now - timedelta(hours=1))


def test_two_small_windows_with_no_length_in_common_are_told_apart() -> None:
    # 40 answers all in one length bucket against 40 in another: a median permutation test
    # on bucketed values gives p ~ 0.9 here (ties); a rank test does not.
    small = DriftSettings(min_samples=30)
    found = {
        f.signal: f for f in detect(answers(40, length_bucket="len_le_64"), answers(40), small)
    }
    assert found["length"].test == "mann_whitney" and found["length"].direction == "up"
    assert detect(answers(40), answers(40), small) == []
