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
    """Every instance on the bus: A alone on SQLite (B there has no bus), A and B on
    PostgreSQL; SQLite's B as a line of its own."""
    out = []
    for mode in ("incremental", "full"):
        found = row.get(mode)
        if not found:
            continue
        if row["backend"] == "SQLite":
            out.append((f"SQLite, {mode}", pct(found["obeyed_a"], 0.99)))
            if mode == "incremental":
                out.append(("SQLite, instance B with no bus (poll)", pct(found["obeyed_b"], 0.99)))
        else:
            both = found["obeyed_a"] + found["obeyed_b"]
            out.append((f"{row['backend']}, {mode}, both instances", pct(both, 0.99)))
    return out


def storm_ratio(row: dict[str, Any]) -> list[tuple[str, float]]:
    storm = row.get("storm")
    if not storm:
        return []
    out = [(f"{row['backend']}, req/s", storm["ratio"])]
    if storm.get("cpu_ratio"):
        out.append((f"{row['backend']}, CPU per request", storm["cpu_ratio"]))
    return out


def feed_p99(row: dict[str, Any]) -> list[tuple[str, float]]:
    feed = row.get("feed")
    if not feed:
        return []
    return [
        (f"{row['backend']}, raw clients", pct(feed["fetched"], 0.99)),
        (f"{row['backend']}, SDK clients", pct(feed["sdk"], 0.99)),
    ]


PANELS = [
    ("promote API p50 (ms)", promote_p50, 50, "log"),
    ("change obeyed, p99 (ms)", obeyed_p99, 300, "log"),
    ("c32 during a change storm ÷ without (median of rounds)", storm_ratio, 0.9, "ratio"),
    ("1,000 feed clients have the moved label, p99 (ms)", feed_p99, 500, "linear"),
]
COLORS = {"SQLite": "tab:blue", "PostgreSQL": "tab:orange"}


def style(label: str) -> dict[str, Any]:
    """One colour per database; dashed for the baseline, dotted for a side line."""
    backend = label.split(",")[0]
    dashed = "full" in label or "CPU" in label or "SDK" in label
    dotted = "no bus" in label
    return {
        "color": COLORS.get(backend, "tab:grey"),
        "linestyle": ":" if dotted else "--" if dashed else "-",
        "marker": "s" if dashed or dotted else "o",
    }


def main() -> None:
    with open(sys.argv[1]) as f:
        result = json.load(f)
    rows = result["rows"]
    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9})
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for ax, (title, value, goal, scale) in zip(axes.flat, PANELS, strict=True):
        top = goal
        for label, (xs, ys) in series(rows, value).items():
            ax.plot(xs, ys, label=label, **style(label))
            top = max(top, *ys)
        ax.axhline(goal, color="grey", linestyle=":", label=f"goal {goal:g}")
        ax.set_xscale("log")
        if scale == "log":
            ax.set_yscale("log")
        else:
            ax.set_ylim(0, top * 1.15)
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
