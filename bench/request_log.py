"""The request log in the benchmark: Pilothouse with its log on PostgreSQL (target
`pilothouse-pg`), the log's backlog sampled from /metrics while wrk runs, and the
report section that compares the PostgreSQL log with the SQLite one and the journal's
cost on the c1 latency with an older build (PILOTHOUSE_ALT_SRC).

Standard library only, like harness.py; SQL runs in the Pilothouse venv's Python.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import threading
import time
import urllib.request
from typing import Any

PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
PG_TARGET = "pilothouse-pg"
SAMPLE_EVERY_S = 0.5
BACKLOG_BOUND = 4 << 20  # bytes: several load intervals of c32 traffic
GAUGES = {
    "pilothouse_request_log_backlog_bytes": "backlog_bytes",
    "pilothouse_request_log_memory_rows": "memory_rows",
    "pilothouse_request_log_journal_bytes": "journal_bytes",
}

SQL_SNIPPET = """
import sys
import sqlalchemy as sa
from pilothouse.store.database import normalize_url
engine = sa.create_engine(normalize_url(sys.argv[1]))
with engine.begin() as conn:
    conn.execute(sa.text(sys.argv[2]))
"""


def postgres_url(python: str, schema: str) -> str:
    """A fresh schema in BENCH_PG_URL's database; the URL that selects it. Raises
    subprocess.CalledProcessError when PostgreSQL is not there."""
    subprocess.run(
        [python, "-c", SQL_SNIPPET, PG_URL, f"CREATE SCHEMA {schema}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    separator = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{separator}options=-csearch_path%3D{schema}"


def drop_schema(python: str, schema: str) -> None:
    subprocess.run(
        [python, "-c", SQL_SNIPPET, PG_URL, f"DROP SCHEMA IF EXISTS {schema} CASCADE"],
        capture_output=True,
        timeout=60,
    )


class GaugeSampler:
    """Reads the request-log gauges from /metrics every SAMPLE_EVERY_S while a step runs."""

    def __init__(self, port: int):
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> GaugeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def read(self) -> dict[str, float]:
        with urllib.request.urlopen(self.url, timeout=5) as response:
            text = response.read().decode()
        found = {}
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in GAUGES:
                found[GAUGES[name]] = float(value)
        return found

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            with contextlib.suppress(OSError):
                self.samples.append(self.read())

    def summary(self) -> dict[str, Any]:
        """Max and median of each gauge during the step, and the backlog right after it."""
        out: dict[str, Any] = {"samples": len(self.samples)}
        for key in GAUGES.values():
            values = [s[key] for s in self.samples if key in s]
            if values:
                out[f"{key}_max"] = max(values)
                out[f"{key}_median"] = statistics.median(values)
        try:
            out["backlog_bytes_after"] = self.read().get("backlog_bytes")
            start = time.monotonic()
            while (self.read().get("backlog_bytes") or 0) > 0 and time.monotonic() - start < 10:
                time.sleep(0.1)
            out["drained_s"] = round(time.monotonic() - start, 1)
        except OSError:
            pass
        return out


def _get(r: dict[str, Any] | None, sec: str, key: str) -> float | None:
    v = ((r or {}).get(sec) or {}).get(key)
    return v if isinstance(v, int | float) else None


def _fmt(x: float | None, nd: int = 2) -> str:
    return "—" if x is None else f"{x:.{nd}f}"


def _paired(
    a: dict[str, Any] | None, b: dict[str, Any] | None, sec: str, key: str, op: str
) -> float | None:
    """`a` against `b` (ratio or difference) in each round, then the median over the
    rounds: two targets measured minutes apart share that round's noise, the medians of
    each over all rounds do not. One round: the plain comparison."""
    per_a = ((a or {}).get(sec) or {}).get(key)
    per_b = ((b or {}).get(sec) or {}).get(key)
    pairs = []
    if isinstance(per_a, list) and isinstance(per_b, list):
        pairs = [(x, y) for x, y in zip(per_a, per_b, strict=False) if x is not None and y]
    if not pairs:
        x, y = (
            _get(a, sec, "rps" if key == "per_round" else "p50_ms"),
            _get(b, sec, "rps" if key == "per_round" else "p50_ms"),
        )
        pairs = [(x, y)] if x is not None and y else []
    if not pairs:
        return None
    return statistics.median(x / y if op == "ratio" else x - y for x, y in pairs)


def report(by: dict[str, dict[str, Any]]) -> list[str]:
    """The request-log section of the report (empty when no Pilothouse target ran)."""
    names = [n for n in by if n.startswith("pilothouse")]
    if not names:
        return []
    base = by.get("pilothouse")
    out = [
        "",
        "Request log (gauges sampled from /metrics every 0.5 s during the c32 step; "
        "comparisons with `pilothouse` (log on SQLite) are per round, then the median):",
        "",
        "| target | c32 req/s | ÷ pilothouse | CPU ms/req | c1 p50 ms | c1 p50 minus pilothouse ms "
        "| backlog max KB | rows in memory max | backlog after c32 KB | drained in s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        r = by[name]
        log = (r.get("c32") or {}).get("request_log") or {}
        ratio = _paired(r, base, "c32", "per_round", "ratio")
        delta = _paired(r, base, "c1", "per_round_p50_ms", "difference")
        backlog = log.get("backlog_bytes_max")
        after = log.get("backlog_bytes_after")
        out.append(
            f"| {name} | {_fmt(_get(r, 'c32', 'rps'), 0)} | {_fmt(ratio)} "
            f"| {_fmt(_get(r, 'c32', 'cpu_ms_per_req'), 3)} | {_fmt(_get(r, 'c1', 'p50_ms'), 3)} "
            f"| {_fmt(delta, 3)} | {_fmt(None if backlog is None else backlog / 1024, 0)} "
            f"| {_fmt(log.get('memory_rows_max'), 0)} "
            f"| {_fmt(None if after is None else after / 1024, 0)} | {_fmt(log.get('drained_s'), 1)} |"
        )
    return out


def goals(by: dict[str, dict[str, Any]]) -> list[str]:
    """Goal rows: the PostgreSQL log keeps up with the SQLite one; the journal's c1 cost
    against each older build measured in the same run."""
    rows = []
    base, pg = by.get("pilothouse"), by.get(PG_TARGET)
    if base and pg:
        ratio = _paired(pg, base, "c32", "per_round", "ratio")
        verdict = "—" if ratio is None else ("met" if ratio >= 0.9 else "**missed**")
        rows.append(
            f"| c32 req/s, log on PostgreSQL ÷ log on SQLite | ≥ 0.9 | {_fmt(ratio)} | {verdict} |"
        )
        log = (pg.get("c32") or {}).get("request_log") or {}
        backlog, drained = log.get("backlog_bytes_max"), log.get("drained_s")
        # Bounded: a few load intervals' worth at most, gone within seconds of the load.
        bounded = backlog is not None and backlog <= BACKLOG_BOUND and (drained or 99) < 10
        rows.append(
            f"| PostgreSQL log backlog under c32 (max KB; drained after the step in s) "
            f"| ≤ {BACKLOG_BOUND >> 10} KB; < 10 s "
            f"| {_fmt(None if backlog is None else backlog / 1024, 0)}; {_fmt(drained, 1)} "
            f"| {'met' if bounded else '**missed**'} |"
        )
    for name, r in by.items():
        if not name.startswith("pilothouse-") or name == PG_TARGET or not base:
            continue
        added = _paired(base, r, "c1", "per_round_p50_ms", "difference")
        verdict = "—" if added is None else ("met" if added <= 0.5 else "**missed**")
        rows.append(
            f"| c1 p50 added by this build over {name} (ms) | ≤ 0.5 | {_fmt(added, 3)} | {verdict} |"
        )
    if not rows:
        return []
    return [
        "",
        "Goals — request log:",
        "",
        "| measure | goal | measured | verdict |",
        "|---|---|---:|---|",
        *rows,
    ]
