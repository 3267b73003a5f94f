"""Per-minute rollups of the request log: what every chart, SLO and drift test reads.

The loader adds each batch's increments in the same transaction that inserts its rows,
and only for the rows the insert really added, so a batch loaded twice (after a restart)
counts once. Buckets have fixed edges (store/tables/traffic.py): the TTFT edges include every
threshold an SLO may use, so "good events" are exact sums of buckets.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pilothouse.store.tables import (
    LENGTH_EDGES_TOKENS,
    OUTCOME_COLUMNS,
    ROLLUP_COUNTS,
    ROLLUP_SUBJECT,
    ROLLUP_SUMS,
    TTFT_EDGES_MS,
)

Key = tuple[datetime, str, str, str, str, str]  # minute + the subject columns
TTFT_BUCKETS = (*(f"ttft_le_{e}" for e in TTFT_EDGES_MS), "ttft_over")
LENGTH_BUCKETS = (*(f"len_le_{e}" for e in LENGTH_EDGES_TOKENS), "len_over")
_SIGNALS = {  # request-log column → (rollup column checked, rollup column true)
    "sig_empty": (None, "empty"),
    "sig_refusal": (None, "refusal"),
    "sig_hedging": (None, "hedging"),
    "sig_truncated": (None, "truncated"),
    "sig_tool_call": (None, "tool_call"),
    "sig_json_valid": ("json_checked", "json_valid"),
    "sig_schema_valid": ("schema_checked", "schema_valid"),
    "sig_tool_args_valid": ("tool_args_checked", "tool_args_valid"),
}


def minute_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


ADDED = (*ROLLUP_COUNTS, *ROLLUP_SUMS)
_AT = {name: i for i, name in enumerate(ADDED)}
_TTFT_AT = tuple(_AT[name] for name in TTFT_BUCKETS)
_LENGTH_AT = tuple(_AT[name] for name in LENGTH_BUCKETS)


def aggregate(
    lines: Iterable[Sequence[Any]], columns: Sequence[str]
) -> dict[Key, dict[str, float]]:
    """Increments per (minute, subject) for request-log rows given as value lists in
    `columns` order (journal lines). Counters are kept positionally while adding: a batch
    of thousands of rows touches a handful of keys."""
    at = {name: i for i, name in enumerate(columns)}
    started_at = at["started_at"]
    subject_at = tuple(at[c] for c in ROLLUP_SUBJECT)
    outcome_at, ttft_at = at["outcome"], at["ttft_delivered_ms"]
    latency_at, cost_at = at["latency_ms"], at["cost_usd"]
    prompt_at, completion_at, chars_at = (
        at["prompt_tokens"],
        at["completion_tokens"],
        at["output_chars"],
    )
    signals = tuple(
        (at[column], None if checked is None else _AT[checked], _AT[true])
        for column, (checked, true) in _SIGNALS.items()
    )
    outcomes = {name: _AT[name] for name in OUTCOME_COLUMNS}
    counters: dict[tuple[Any, ...], list[float]] = {}
    for line in lines:
        started = line[started_at]
        # "YYYY-MM-DD HH:MM..." (journal text) or a datetime: the minute is the key.
        minute = started[:16] if isinstance(started, str) else minute_of(started)
        key = (minute, *(line[i] or "" for i in subject_at))
        c = counters.get(key)
        if c is None:
            c = counters[key] = [0.0] * len(ADDED)
        c[0] += 1  # requests
        outcome = outcomes.get(line[outcome_at] or "ok")
        if outcome is not None:
            c[outcome] += 1
        ttft = line[ttft_at]
        if ttft is not None:
            c[_AT["ttft_count"]] += 1
            c[_AT["ttft_sum_ms"]] += ttft
            c[_TTFT_AT[bisect.bisect_left(TTFT_EDGES_MS, ttft)]] += 1
        c[_AT["latency_sum_ms"]] += line[latency_at] or 0.0
        c[_AT["cost_usd"]] += line[cost_at] or 0.0
        c[_AT["prompt_tokens"]] += line[prompt_at] or 0
        completion = line[completion_at] or 0
        c[_AT["completion_tokens"]] += completion
        if line[chars_at] is None:
            continue  # no answer was judged: no signals, no length
        c[_AT["answers"]] += 1
        c[_LENGTH_AT[bisect.bisect_left(LENGTH_EDGES_TOKENS, completion)]] += 1
        for column, checked, true in signals:
            value = line[column]
            if value is None:
                continue
            if checked is not None:
                c[checked] += 1
            if value:
                c[true] += 1
    return {
        (_minute(key[0]), *key[1:]): dict(zip(ADDED, c, strict=True)) for key, c in counters.items()
    }


def key_spend(
    lines: Iterable[Sequence[Any]], columns: Sequence[str]
) -> dict[tuple[datetime, str, str], dict[str, float]]:
    """What each key spent per (minute, key id, model alias), for the spend watch; rows
    without a key (refused before authentication) are left out."""
    at = {name: i for i, name in enumerate(columns)}
    started_at, key_at, alias_at = at["started_at"], at["key_id"], at["model_alias"]
    cost_at, prompt_at, completion_at = at["cost_usd"], at["prompt_tokens"], at["completion_tokens"]
    sums: dict[tuple[Any, str, str], list[float]] = {}
    for line in lines:
        key_id = line[key_at]
        if not key_id:
            continue
        started = line[started_at]
        minute = started[:16] if isinstance(started, str) else minute_of(started)
        bucket = (minute, key_id, line[alias_at] or "")
        s = sums.get(bucket)
        if s is None:
            s = sums[bucket] = [0.0, 0.0, 0.0, 0.0]
        s[0] += 1
        s[1] += line[prompt_at] or 0
        s[2] += line[completion_at] or 0
        s[3] += line[cost_at] or 0.0
    return {
        (_minute(k[0]), k[1], k[2]): {
            "requests": int(v[0]),
            "prompt_tokens": int(v[1]),
            "completion_tokens": int(v[2]),
            "cost_usd": v[3],
        }
        for k, v in sums.items()
    }


def _minute(value: str | datetime) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace(" ", "T")).replace(tzinfo=UTC)


def ttft_good(totals: Mapping[str, float], threshold_ms: int) -> float:
    """Requests with a first token within `threshold_ms` (an edge of TTFT_EDGES_MS)."""
    return sum(totals[f"ttft_le_{e}"] for e in TTFT_EDGES_MS if e <= threshold_ms)


def length_quantile(totals: Mapping[str, float], q: float) -> float | None:
    """The q-quantile of output length in tokens, interpolated inside its bucket."""
    return _quantile([totals[name] for name in LENGTH_BUCKETS], LENGTH_EDGES_TOKENS, q)


def ttft_quantile(totals: Mapping[str, float], q: float) -> float | None:
    """The q-quantile of delivered TTFT in ms, interpolated inside its bucket."""
    return _quantile([totals[name] for name in TTFT_BUCKETS], TTFT_EDGES_MS, q)


def ttft_quantiles(totals: Mapping[str, float], *qs: float) -> list[float | None]:
    """Several quantiles of delivered TTFT (ms) at once (a chart's p50 and p95 per point)."""
    counts = [totals[name] for name in TTFT_BUCKETS]
    return [_quantile(counts, TTFT_EDGES_MS, q) for q in qs]


def _quantile(counts: list[float], edges: tuple[int, ...], q: float) -> float | None:
    """The q-quantile of a histogram whose buckets end at `edges` (then one overflow
    bucket, taken as up to twice the last edge), interpolated inside its bucket."""
    n = sum(counts)
    if n == 0:
        return None
    target = q * n
    seen = 0.0
    low = 0.0
    for index, count in enumerate(counts):
        high = float(edges[index]) if index < len(edges) else low * 2
        if count and seen + count >= target:
            return low + (high - low) * (target - seen) / count
        seen += count
        low = high
    return low
