"""`pilothouse keys`: create, list, disable and enable API keys."""

from __future__ import annotations

from datetime import datetime

import click

from pilothouse.cli.client import ApiClient
from pilothouse.cli.output import print_json, print_table


@click.group()
def keys() -> None:
    """Manage API keys (the gateway's client credentials)."""


@keys.command("create")
@click.option("--name", required=True, help="What the key is for, e.g. the calling service.")
@click.option("--user", default=None, help="The user the key belongs to.")
@click.option("--team", default=None, help="The team the key belongs to.")
@click.option(
    "--models",
    default=None,
    help="Comma-separated aliases and route:NAME it may call (default: all). A key limited "
    "this way reads only the prompts its routes serve (and --prompts).",
)
@click.option(
    "--scopes",
    default=None,
    help="Comma-separated extra rights: evals (what `pilothouse eval` needs in CI), "
    "release:pin, routes:read, history:read.",
)
@click.option(
    "--prompts",
    "prompt_patterns",
    default=None,
    help="Comma-separated prompt name patterns it may also read, e.g. support-*.",
)
@click.option(
    "--expires",
    default=None,
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    help="Expiry date (UTC), e.g. 2027-06-30.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
def create(
    name: str,
    user: str | None,
    team: str | None,
    models: str | None,
    scopes: str | None,
    prompt_patterns: str | None,
    expires: datetime | None,
    as_json: bool,
) -> None:
    """Create a key. Its secret is printed once and cannot be shown again."""
    body = {
        "name": name,
        "user": user,
        "team": team,
        "models": _listed(models),
        "scopes": _listed(scopes),
        "prompts": _listed(prompt_patterns),
        "expires_at": expires.isoformat() if expires else None,
    }
    key = ApiClient().post("/api/keys", body)
    if as_json:
        print_json(key)
        return
    click.echo(f"created {key['id']} ({key['name']})")
    click.echo(f"secret: {key['secret']}")
    click.echo("store it now: it is not shown again.")


def _listed(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
def list_(as_json: bool) -> None:
    """List keys (never their secrets)."""
    data = ApiClient().get_all("/api/keys")
    if as_json:
        print_json(data)
        return
    print_table(
        data,
        ["id", "name", "prefix", "user", "team", "models", "scopes", "expires_at", "disabled"],
    )


@keys.command("disable")
@click.argument("key")
@click.option("--reason", default=None, help="Why (kept in the audit trail).")
def disable(key: str, reason: str | None) -> None:
    """Disable KEY (id or name): every gateway instance refuses it within a second."""
    result = ApiClient().post(f"/api/keys/{key}/disable", {"reason": reason})
    click.echo(f"disabled {result['id']} ({result['name']})")


@keys.command("enable")
@click.argument("key")
@click.option("--reason", default=None, help="Why (kept in the audit trail).")
def enable(key: str, reason: str | None) -> None:
    """Enable KEY (id or name) again."""
    result = ApiClient().post(f"/api/keys/{key}/enable", {"reason": reason})
    click.echo(f"enabled {result['id']} ({result['name']})")
