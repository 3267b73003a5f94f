"""Plot one control-plane benchmark run (bench/results/control_plane-*.json) as an SVG:
four panels against the catalogue size (routes, log scale), one line per database and
mode, each goal as a dashed line. Run under the bench venv (matplotlib):

    /tmp/pilothouse-bench/venv/bin/python bench/cp_plot.py RESULTS.json OUT.svg
"""

from __future__ import annotations

import json
import statistics
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


def series(rows: list[dict[str, Any]], value: Any) -> dict[str, tuple[list[int], list[float]]]:
    """label -> (routes, values) for every row where `value(row)` gives (label, number)."""
    found: dict[str, tuple[list[int], list[float]]] = {}
    for row in rows:
        for label, number in value(row):
            xs, ys = found.setdefault(label, ([], []))
            xs.append(row["routes"])
            ys.append(number)
    return found


def promote_p50(row: dict[str, Any]) -> list[tuple[str, float]]:
    return [
        (f"{row['backend']}, {mode}", statistics.median(row[mode]["api"]) * 1000)
        for mode in ("incremental", "full")
        if row.get(mode)
    ]


def obeyed_p99(row: dict[str, Any]) -> list[tuple[str, float]]:
    return [
        (f"{row['backend']}, {mode}", pct(row[mode]["obeyed_a"] + row[mode]["obeyed_b"], 0.99))
        for mode in ("incremental", "full")
        if row.get(mode)
    ]


def storm_ratio(row: dict[str, Any]) -> list[tuple[str, float]]:
    return [(row["backend"], row["storm"]["ratio"])] if row.get("storm") else []


def feed_p99(row: dict[str, Any]) -> list[tuple[str, float]]:
    if not row.get("feed"):
        return []
    return [
        (f"{row['backend']}, heard", pct(row["feed"]["heard"], 0.99)),
        (f"{row['backend']}, fetched", pct(row["feed"]["fetched"], 0.99)),
    ]


PANELS = [
    ("promote API p50 (ms)", promote_p50, 50, True),
    ("change obeyed on both instances, p99 (ms)", obeyed_p99, 300, True),
    ("c32 req/s during a change storm ÷ without", storm_ratio, 0.9, False),
    ("1,000 feed clients: label move heard / fetched, p99 (ms)", feed_p99, 500, True),
]


def main() -> None:
    with open(sys.argv[1]) as f:
        result = json.load(f)
    rows = result["rows"]
    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9})
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for ax, (title, value, goal, log_y) in zip(axes.flat, PANELS, strict=True):
        for label, (xs, ys) in series(rows, value).items():
            style = "--" if "full" in label else "-"
            ax.plot(xs, ys, style, marker="o", label=label)
        ax.axhline(goal, color="grey", linestyle=":", label=f"goal {goal:g}")
        ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
        else:
            ax.set_ylim(0, 1.2)
        ticks = sorted({row["routes"] for row in rows})
        ax.set_xticks(ticks, [f"{r:,} / {p:,}" for r, p in _prompts_by_routes(rows, ticks)])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlabel("routes / prompts")
        ax.set_title(title)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"Pilothouse control plane, {result['keys']:,} keys; run {result['started']} "
        f"({result['cpus']} cores, load {min(result['load_average_1m']):.1f}-"
        f"{max(result['load_average_1m']):.1f})"
    )
    fig.tight_layout()
    fig.savefig(sys.argv[2], format="svg", metadata={"Date": None})


def _prompts_by_routes(rows: list[dict[str, Any]], ticks: list[int]) -> list[tuple[int, int]]:
    prompts = {row["routes"]: row["prompts"] for row in rows}
    return [(r, prompts[r]) for r in ticks]


if __name__ == "__main__":
    main()
