"""Quota windows and the in-process counters, as values: calendar windows reset on their
UTC edges (a month on the 1st), rolling windows give back slice by slice."""

from __future__ import annotations

import calendar

import pytest

from pilothouse.policy.quota_backends import Charge, InProcessBackend
from pilothouse.policy.quotas import QuotaPolicy

pytestmark = pytest.mark.anyio


def policy(window: str, rolling: bool = False, hard: float = 10) -> QuotaPolicy:
    return QuotaPolicy.from_row(
        {
            "name": f"{window}-{rolling}",
            "subject_kind": "key",
            "subject": "k",
            "dimension": "requests",
            "window": window,
            "rolling": rolling,
            "hard_limit": hard,
        }
    )


def test_a_calendar_month_resets_on_the_first_at_midnight_utc() -> None:
    mid_february = calendar.timegm((2027, 2, 14, 12, 0, 0))
    ids, resets_at = policy("month").bucket_ids(mid_february)
    assert ids == (2027 * 12 + 1,)
    assert resets_at == calendar.timegm((2027, 3, 1, 0, 0, 0))
    december = calendar.timegm((2027, 12, 31, 23, 0, 0))
    assert policy("month").bucket_ids(december)[1] == calendar.timegm((2028, 1, 1, 0, 0, 0))


async def test_a_rolling_hour_gives_back_what_was_used_an_hour_ago_slice_by_slice() -> None:
    hourly = policy("hour", rolling=True, hard=10)
    backend = InProcessBackend()

    def charge(now: float) -> Charge:
        ids, resets_at = hourly.bucket_ids(now)
        return Charge(hourly, "key:k", tuple(f"s:{i}" for i in ids), 1, resets_at)

    start = 1_800_000_000.0
    for minute in range(10):  # one a minute for ten minutes
        assert backend.reserve_now([charge(start + minute * 60)]) is None
    assert backend.reserve_now([charge(start + 30 * 60)]) == 0  # ten within the last hour
    later = start + 60 * 60 + 1  # the first minute's slice has left the window
    assert backend.reserve_now([charge(later)]) is None
    refused = charge(later)
    assert backend.reserve_now([refused]) == 0 and refused.used == 10


def test_a_policy_says_what_is_wrong_with_it() -> None:
    with pytest.raises(ValueError, match="soft limit"):
        QuotaPolicy.from_row({**policy("day").public(), "soft_limit": None, "degrade_to": "cheap"})
    with pytest.raises(ValueError, match="window must be one of"):
        QuotaPolicy.from_row({**policy("day").public(), "window": "week"})
