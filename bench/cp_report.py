"""The control-plane benchmark's report: Markdown tables from one run's results, and the
plot (cp_plot.py, run under the bench venv, which has matplotlib)."""

from __future__ import annotations

import statistics
import subprocess
from pathlib import Path
from typing import Any

import harness


def pct(values: list[float], q: float) -> float:
    """The q-quantile of `values` (seconds) in ms (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


def _promote_rows(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| database | bus | prompts | routes | mode | promote API p50 | obeyed on A p50 / p99 "
        "| obeyed on B p50 / p99 | full loads |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        for mode in ("incremental", "full"):
            found = row.get(mode)
            if not found:
                continue
            bold = "**" if mode == "incremental" else ""
            lines.append(
                f"| {row['backend']} | {row['bus']} | {row['prompts']:,} | {row['routes']:,} | "
                f"{mode} | {bold}{statistics.median(found['api']) * 1000:.1f} ms{bold} | "
                f"{pct(found['obeyed_a'], 0.5):.1f} / {pct(found['obeyed_a'], 0.99):.1f} ms | "
                f"{pct(found['obeyed_b'], 0.5):.1f} / {bold}{pct(found['obeyed_b'], 0.99):.1f} "
                f"ms{bold} | {found['full_loads'][0]:.0f} |"
            )
    return lines


def _load_rows(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| database | prompts | routes | c32 req/s calm | during the storm | storm ÷ calm "
        "(per round) | CPU/request calm ÷ storm | promote under load p50 / max | feed: heard "
        "p50 / p99 | feed: has the new version p50 / p99 / max | SDK clients p99 | missed | "
        "server CPU per move | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        storm, feed = row.get("storm"), row.get("feed")
        cells = [row["backend"], f"{row['prompts']:,}", f"{row['routes']:,}"]
        if storm:
            per_round = ", ".join(f"{r:.2f}" for r in storm["ratios"])
            promote = storm["promote_under_load_s"]
            cells += [
                f"{storm['calm_rps']:.0f}",
                f"{storm['storm_rps']:.0f}",
                f"**{storm['ratio']:.2f}** ({per_round})",
                f"{storm['cpu_ratio']:.2f}" if storm.get("cpu_ratio") else "",
                f"{pct(promote, 0.5):.0f} / {max(promote, default=0) * 1000:.0f} ms",
            ]
        else:
            cells += ["", "", "", "", ""]
        if feed:
            cells += [
                f"{pct(feed['heard'], 0.5):.0f} / {pct(feed['heard'], 0.99):.0f} ms",
                f"{pct(feed['fetched'], 0.5):.0f} / **{pct(feed['fetched'], 0.99):.0f}** / "
                f"{pct(feed['fetched'], 1.0):.0f} ms",
                f"{pct(feed['sdk'], 0.99):.0f} ms",
                str(feed["missed"]),
                f"{feed['server_cpu_s_per_move'] * 1000:.0f} ms",
            ]
        else:
            cells += ["", "", "", "", ""]
        loads = row.get("storm_load", []) + row.get("feed_load", [])
        cells.append(f"{min(loads):.1f}-{max(loads):.1f}" if loads else "")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(result: dict[str, Any]) -> str:
    rows = result["rows"]
    loads = result["load_average_1m"]
    out = [
        f"Run {result['started']}, {result['minutes']:.0f} min, {result['cpus']} cores, "
        f"load average {min(loads):.1f}-{max(loads):.1f}; {result['keys']:,} keys.",
        "",
        "### Promotions (two instances in one process)",
        "",
        *_promote_rows(rows),
    ]
    if any("storm" in r or "feed" in r for r in rows):
        out += [
            "",
            "### Gateway during a change storm, and the prompt feed (serve processes)",
            "",
            *_load_rows(rows),
        ]
    if result["memory"]:
        out += [
            "",
            "### Snapshot memory (a full load, tracemalloc)",
            "",
            "| prompts:routes | key part | route part | per 1,000 served prompts |",
            "|---|---:|---:|---:|",
        ]
        for size, sizes in result["memory"].items():
            routes = int(size.split(":")[1])
            out.append(
                f"| {size} | {sizes['key'] / 1e6:.2f} MB | {sizes['route'] / 1e6:.2f} MB | "
                f"{sizes['route'] / routes * 1000 / 1e6:.2f} MB |"
            )
    out += ["", "### Key lookup (the snapshot's key part)", "", "| keys | lookup |", "|---:|---:|"]
    out += [f"| {int(n):,} | {ns:.0f} ns |" for n, ns in result["key_lookup_ns"].items()]
    return "\n".join(out)


def plot(results: Path, out: Path) -> None:
    """Draw the curve with matplotlib under the bench venv (skipped, with a hint, when it
    is not installed)."""
    script = Path(__file__).parent / "cp_plot.py"
    done = subprocess.run(
        [harness.BENCH_PY, str(script), str(results), str(out)], capture_output=True, text=True
    )
    if done.returncode != 0:
        harness.log(f"no plot ({done.stderr.strip()[-300:]}); `bash bench/setup.sh` installs it")
    else:
        harness.log(f"plot: {out}")
