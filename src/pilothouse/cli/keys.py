"""`pilothouse keys`: create, list, disable and enable API keys."""

from __future__ import annotations

import copy
from datetime import datetime

import click

from pilothouse.cli.client import ApiClient
from pilothouse.cli.output import print_json, print_table


@click.group()
def keys() -> None:
    """Manage API keys (the gateway's client credentials)."""


@keys.command("create")
@click.option("--name", required=True, help="What the key is for, e.g. the calling service.")
@click.option(
    "--user",
    default=None,
    help="The person the key belongs to: its calls are theirs (log, user quotas), whatever "
    "a request's `user` says. Leave out for an application key, whose requests may name "
    "their end user.",
)
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
    "release:pin, routes:read, history:read, responses:store (the gateway keeps its "
    "Responses API answers: previous_response_id).",
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


# Every other group lists with `ls` (prompts, releases, quotas, ...): `keys ls` works too,
# unlisted, so `keys --help` shows one listing command.
_ls = copy.copy(list_)
_ls.hidden = True
keys.add_command(_ls, "ls")


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


@keys.command("usage")
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
def usage(key: str, as_json: bool) -> None:
    """Where KEY stands against its quotas, and what it spent in the last hour and day."""
    data = ApiClient().get(f"/api/keys/{key}/usage")
    if as_json:
        print_json(data)
        return
    info = data["key"]
    state = "SUSPENDED: " + str(info["suspended_reason"]) if info["suspended"] else "active"
    click.echo(f"{info['id']} ({info['name']}): {state}")
    if data["quotas"]:
        print_table(
            data["quotas"],
            [
                "quota",
                "subject",
                "dimension",
                "window",
                "used",
                "hard_limit",
                "remaining",
                "resets_at",
                "state",
            ],
        )
    else:
        click.echo("no quota applies to this key")
    for period in ("last_hour", "last_day"):
        spent = data["spend"][period]
        click.echo(
            f"{period.replace('_', ' ')}: {spent['requests']} requests, {spent['tokens']} tokens, "
            f"${spent['cost_usd']:.4f}"
        )


@keys.command("restore")
@click.argument("key")
@click.option("--reason", required=True, help="Why it is safe again (kept in the audit trail).")
def restore(key: str, reason: str) -> None:
    """Restore KEY after the spend watch suspended it: every instance within a second."""
    result = ApiClient().post(f"/api/keys/{key}/restore", {"reason": reason})
    click.echo(f"restored {result['id']} ({result['name']})")
