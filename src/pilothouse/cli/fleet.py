"""`pilothouse fleet status`: each alias's deployments, their breakers and health."""

from __future__ import annotations

import time
from typing import Any

import click

from pilothouse.cli.client import ApiClient
from pilothouse.cli.output import print_json, print_table


@click.group()
def fleet() -> None:
    """The provider fleet: each deployment's breaker, health and failures."""


@fleet.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
def status(as_json: bool) -> None:
    """Each deployment's breaker state, failure rate by class, latency, last trip and
    whether it answers unlike its peers (as the server answering sees it)."""
    data = ApiClient().get("/api/fleet")
    if as_json:
        print_json(data)
        return
    rows = [_row(alias["alias"], d) for alias in data["aliases"] for d in alias["deployments"]]
    print_table(
        rows,
        [
            "alias",
            "deployment",
            "owner",
            "state",
            "calls",
            "failure_rate",
            "failures",
            "latency_ms",
            "last_trip",
            "outlier",
        ],
    )
    flagged = [r for r in rows if r["outlier"]]
    for row in flagged:
        click.echo(
            f"\n{row['deployment']} answers unlike its peers on {row['alias']}: "
            + "; ".join(row["reasons"])
        )


def _row(alias: str, d: dict[str, Any]) -> dict[str, Any]:
    state = d["state"]
    if state == "open":
        state = f"open ({d['open_for_seconds']:.0f} s)"
    last = d["last_trip_at"]
    return {
        "alias": alias,
        "deployment": d["deployment"],
        "owner": d["owner"],
        "state": state,
        "calls": d["calls"],
        "failure_rate": f"{d['failure_rate'] * 100:.1f}%",
        "failures": ", ".join(f"{k} {v}" for k, v in d["failures_by_class"].items()) or None,
        "latency_ms": round(d["latency_ms_mean"], 1) if d["latency_ms_mean"] is not None else None,
        "last_trip": f"{time.time() - last:.0f} s ago" if last else None,
        "outlier": d["outlier"],
        "reasons": d["outlier_reasons"],
    }
