"""`pilothouse slo ...` and `pilothouse alerts ...`: SLOs with their budgets and burn
rates, and the alerts on-call works from."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import click

from pilothouse.cli.client import ApiClient
from pilothouse.cli.output import print_json, print_table

DISPOSITIONS = ("regression", "expected_change", "noise")


@click.group()
def slo() -> None:
    """Service-level objectives: budget left and burn rate per window."""


@slo.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
def list_slos(as_json: bool) -> None:
    """Every SLO (from the config file and the API), its budget left and its burn rates."""
    data = ApiClient().get("/api/slos")["data"]
    if as_json:
        print_json(data)
        return
    rows = []
    for s in data:
        burn = s["burn"]
        rows.append(
            {
                "name": s["name"],
                "objective": s["describes"],
                "events": int(s["events"]),
                "sli": "-" if s["sli_value"] is None else f"{s['sli_value']:.3%}",
                "budget_left": _budget(s["budget_left"]),
                "burn_1h/5m": _pair(burn, "1h", "5m"),
                "burn_6h/30m": _pair(burn, "6h", "30m"),
                "burn_1d/2h": _pair(burn, "1d", "2h"),
                "burn_3d/6h": _pair(burn, "3d", "6h"),
                "firing": s["firing"]["severity"] if s["firing"] else "",
                "source": s["source"],
            }
        )
    print_table(rows, list(rows[0]) if rows else ["name"])


def _budget(left: float | None) -> str:
    if left is None:
        return "-"
    return "exhausted" if left <= 0 else f"{left:.0%}"


def _pair(burn: dict[str, Any], long: str, short: str) -> str:
    def shown(value: Any) -> str:
        return "-" if value is None else f"{value:.1f}x"

    return f"{shown(burn[long])}/{shown(burn[short])}"


@slo.command("set")
@click.argument("name")
@click.option("--route", default=None)
@click.option("--model", default=None)
@click.option("--team", default=None)
@click.option("--sli", type=click.Choice(["ttft", "availability", "signal"]), required=True)
@click.option("--threshold-ms", type=int, default=None, help="ttft: good when within this.")
@click.option("--signal", default=None, help="signal: good when without it (e.g. refusal).")
@click.option("--objective", type=float, required=True, help="The good share, e.g. 0.99.")
@click.option("--period-days", type=int, default=30, show_default=True)
@click.option("--min-events", type=int, default=100, show_default=True)
@click.option("--owner", default=None, help="Who is told when it burns.")
def set_slo(name: str, **fields: Any) -> None:
    """Add or replace an SLO (one subject: --route, --model or --team)."""
    body = {"name": name, **{k: v for k, v in fields.items() if v is not None}}
    made = ApiClient().post("/api/slos", body)
    click.echo(f"{made['name']}: {made['describes']}")


@slo.command("rm")
@click.argument("name")
def remove_slo(name: str) -> None:
    """Delete an SLO added through the API."""
    ApiClient().request("DELETE", f"/api/slos/{quote(name, safe='')}")
    click.echo(f"{name}: deleted")


@click.group()
def alerts() -> None:
    """Alerts: list them, acknowledge or resolve them with a disposition and a reason."""


@alerts.command("ls")
@click.option(
    "--state",
    type=click.Choice(["active", "open", "acknowledged", "resolved", "all"]),
    default="active",
    show_default=True,
)
@click.option("--owner", default=None)
@click.option(
    "--oncall",
    is_flag=True,
    help="What on-call looks at: active alerts, and the signatures dismissed as noise again and again.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
def list_alerts(state: str, owner: str | None, oncall: bool, as_json: bool) -> None:
    """Alerts, newest first."""
    data = ApiClient().get("/api/alerts", state="active" if oncall else state, owner=owner)
    if as_json:
        print_json(data)
        return
    print_table(
        data["data"],
        [
            "id",
            "state",
            "severity",
            "kind",
            "subject",
            "signal",
            "direction",
            "owner",
            "occurrences",
            "last_seen_at",
            "summary",
        ],
    )
    if oncall or data["chronic"]:
        click.echo("\nChronically dismissed (as noise 3+ times in 14 days): fix the monitor")
        print_table(data["chronic"], ["signature", "dismissed_as_noise", "last"])


@alerts.command("show")
@click.argument("alert_id")
def show_alert(alert_id: str) -> None:
    """One alert and its history."""
    print_json(ApiClient().get(f"/api/alerts/{quote(alert_id, safe='')}"))


def _close(state: str) -> Any:
    @click.argument("alert_id")
    @click.option("--disposition", type=click.Choice(DISPOSITIONS), required=True)
    @click.option("--reason", required=True, help="Why: it stays in the alert's history.")
    def close(alert_id: str, disposition: str, reason: str) -> None:
        path = f"/api/alerts/{quote(alert_id, safe='')}/{state}"
        done = ApiClient().post(path, {"disposition": disposition, "reason": reason})
        click.echo(f"{done['id']}: {done['state']} ({disposition})")

    return close


alerts.command("ack", help="Acknowledge an alert: someone is on it.")(_close("acknowledge"))
alerts.command("resolve", help="Resolve an alert.")(_close("resolve"))
