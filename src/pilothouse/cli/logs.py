"""`pilothouse logs`: read the request log."""

from __future__ import annotations

import click

from pilothouse.cli.client import ApiClient
from pilothouse.cli.output import print_json, print_table

# The outcome classes (telemetry/outcomes.py), listed here so the CLI imports no server code.
OUTCOMES = (
    "ok",
    "client_error",
    "upstream_error",
    "upstream_truncated",
    "upstream_malformed",
    "client_cancelled",
    "shutdown_cut",
    "gateway_error",
)


@click.command()
@click.option("--key", default=None, help="Only this key id.")
@click.option("--model", default=None, help="Only this model alias.")
@click.option("--route", default=None, help="Only this route.")
@click.option("--team", default=None, help="Only this team (the key's).")
@click.option("--status", default=None, type=int, help="Only this HTTP status.")
@click.option(
    "--outcome",
    default=None,
    type=click.Choice(OUTCOMES),
    help="Only this outcome (what happened, beside the status the client saw).",
)
@click.option("--errors", is_flag=True, help="Only requests whose outcome is not ok.")
@click.option("--since", default=None, help="ISO time, or a duration back from now: 15m, 2h, 7d.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON rows (for scripts).")
def logs(
    key: str | None,
    model: str | None,
    route: str | None,
    team: str | None,
    status: int | None,
    outcome: str | None,
    errors: bool,
    since: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Show recent gateway requests, newest first."""
    data = ApiClient().get(
        "/api/requests",
        key=key,
        model=model,
        route=route,
        team=team,
        status=status,
        outcome=outcome,
        errors="1" if errors else None,
        since=since,
        limit=limit,
    )["data"]
    if as_json:
        print_json(data)
        return
    print_table(
        data,
        [
            "started_at",
            "id",
            "key_id",
            "model_alias",
            "provider",
            "status_code",
            "outcome",
            "error_class",
            "prompt_tokens",
            "completion_tokens",
            "cost_usd",
            "latency_ms",
            "ttft_delivered_ms",
        ],
    )
