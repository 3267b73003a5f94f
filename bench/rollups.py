"""Charts read rollups, never raw rows: how long a 24-hour chart and an SLO's 30-day sum
take on PostgreSQL with millions of raw request rows beside them, and what building the
rollups costs per row (the journal loader's own path: `telemetry/rollups.aggregate` and
`store/rollups.add`, per batch).

    .venv/bin/python bench/rollups.py [--raw-rows 10000000] [--routes 20] [--rounds 20]

Same run, same database: the queries are timed before and after the raw rows are loaded,
so the ratio says whether the raw table's size reaches the charts. Uses a fresh schema in
BENCH_PG_URL (default postgresql://postgres@127.0.0.1:5432/test), dropped at the end; the raw
rows come from bench/pg_data.py.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pg_data import analyze, fresh_store, load_raw_rows

from pilothouse.monitor import series
from pilothouse.store import rollups as rollup_rows
from pilothouse.store.request_log import COLUMN_ORDER, _decoded, journal_line
from pilothouse.store.tables import TTFT_EDGES_MS
from pilothouse.telemetry import rollups as aggregation


def timed(action: Callable[[], Any], rounds: int) -> float:
    """Median milliseconds of `rounds` calls."""
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def synthetic_rollups(
    now: datetime, routes: int, per_minute: int
) -> dict[tuple[Any, ...], dict[str, float]]:
    """One day of per-minute rollups: `routes` routes sharing `per_minute` requests."""
    out: dict[tuple[Any, ...], dict[str, float]] = {}
    start = now.replace(second=0, microsecond=0) - timedelta(days=1)
    each = per_minute // routes
    for minute in range(24 * 60):
        at = start + timedelta(minutes=minute)
        for r in range(routes):
            counts = {name: 0.0 for name in rollup_rows.ADDED}
            counts.update(requests=each, ok=each, answers=each, ttft_count=each, refusal=each // 50)
            counts[f"ttft_le_{TTFT_EDGES_MS[3]}"] = each
            counts["len_le_64"] = each
            counts.update(
                ttft_sum_ms=each * 250.0, cost_usd=each * 0.0004, completion_tokens=each * 60
            )
            out[(at, f"route-{r}", "active", "fast", "openai", "")] = counts
    return out


def aggregation_cost(rows: int) -> tuple[float, float]:
    """(µs per row to aggregate journal lines, µs per row to add them) for one batch."""
    base = datetime.now(UTC)
    lines = []
    for i in range(rows):
        row = {name: None for name in COLUMN_ORDER}
        row.update(
            id=f"r{i}",
            started_at=base + timedelta(milliseconds=i),
            finished_at=base + timedelta(milliseconds=i + 300),
            endpoint="chat",
            model_alias="fast",
            provider="openai",
            status_code=200,
            outcome="ok",
            stream=True,
            route=f"route-{i % 20}",
            prompt_tokens=120,
            completion_tokens=60,
            cost_usd=0.0004,
            latency_ms=300.0,
            ttft_delivered_ms=250.0,
            output_chars=240,
            sig_refusal=i % 50 == 0,
        )
        lines.append(journal_line(row))

    values = _decoded(lines, COLUMN_ORDER)
    started = time.perf_counter()
    increments = aggregation.aggregate(values, COLUMN_ORDER)
    aggregate_us = (time.perf_counter() - started) * 1e6 / rows
    return aggregate_us, len(increments)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-rows", type=int, default=10_000_000)
    parser.add_argument("--routes", type=int, default=20)
    parser.add_argument("--per-minute", type=int, default=7000, help="requests per minute")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with fresh_store() as store:
        now = datetime.now(UTC)
        increments = synthetic_rollups(now, args.routes, args.per_minute)
        started = time.perf_counter()
        items = list(increments.items())
        for i in range(0, len(items), 2000):
            with store.begin() as conn:
                rollup_rows.add(conn, dict(items[i : i + 2000]))
        add_s = time.perf_counter() - started
        since, until = now - timedelta(days=1), now

        def chart() -> Any:
            return series.series(store, since, until, "route")

        def slo_sum() -> Any:
            with store.connect() as conn:
                return rollup_rows.sums(conn, now - timedelta(days=30), now, route="route-3")

        analyze(store.engine, "request_rollups", "request_rollups_10m")
        before = (timed(chart, args.rounds), timed(slo_sum, args.rounds))
        raw_s = load_raw_rows(store.engine, args.raw_rows, now)
        analyze(store.engine, "request_log")
        after = (timed(chart, args.rounds), timed(slo_sum, args.rounds))
        aggregate_us, keys = aggregation_cost(20_000)
        per_row_add_us = add_s * 1e6 / (len(increments) * (args.per_minute // args.routes))
        print(
            f"rollup rows: {len(increments):,} ({args.routes} routes x 1,440 minutes); "
            f"raw rows loaded: {args.raw_rows:,} in {raw_s:.1f} s"
        )
        print(f"{'query':<34}{'no raw rows':>14}{'with raw rows':>16}{'ratio':>8}")
        for name, b, a in (
            ("24-hour chart by route (ms p50)", before[0], after[0]),
            ("30-day SLO sum, one route (ms p50)", before[1], after[1]),
        ):
            print(f"{name:<34}{b:>14.1f}{a:>16.1f}{a / b:>8.2f}")
        print(
            f"aggregating journal lines into rollups: {aggregate_us:.2f} µs per row "
            f"(20,000 rows -> {keys} rollup keys)"
        )
        print(
            f"upserting rollup rows: {add_s * 1e3 / (len(increments) / 2000):.1f} ms per 2,000 "
            f"rollup rows (~{per_row_add_us:.3f} µs per request at {args.per_minute:,}/min)"
        )
        print(f"so 10 million requests cost ~{aggregate_us * 10:.0f} s of loader CPU to aggregate")


if __name__ == "__main__":
    main()
