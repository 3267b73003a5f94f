"""`pilothouse quotas`: set, list and remove quota policies (docs/quotas.md)."""

from __future__ import annotations

import urllib.parse

import click

from pilothouse.cli.client import ApiClient
from pilothouse.cli.output import print_json, print_table


@click.group()
def quotas() -> None:
    """Quota policies: requests, tokens or USD per key, user or team, soft and hard limits."""


@quotas.command("set")
@click.argument("name")
@click.option(
    "--key", "key", default=None, help="The key (id or name) it limits; `*` for each key."
)
@click.option(
    "--user",
    default=None,
    help="The user it limits (the key's user; on an application key, the request's `user`); "
    "`*` for each.",
)
@click.option("--team", default=None, help="The team it limits (its keys' team); `*` for each.")
@click.option(
    "--dimension",
    type=click.Choice(["requests", "tokens", "cost"]),
    required=True,
    help="What is counted: requests, tokens, or cost in USD.",
)
@click.option(
    "--window",
    type=click.Choice(["minute", "hour", "day", "month"]),
    required=True,
    help="Counted per calendar window (UTC), or a rolling one with --rolling.",
)
@click.option("--rolling", is_flag=True, help="A rolling window (the last hour, ...).")
@click.option(
    "--soft", "soft_limit", type=float, default=None, help="Past it: a warning and the degradation."
)
@click.option("--hard", "hard_limit", type=float, default=None, help="Past it: 429 quota_exceeded.")
@click.option(
    "--degrade-to", default=None, help="Past the soft limit, serve this model alias instead."
)
@click.option(
    "--max-tokens",
    "degrade_max_tokens",
    type=int,
    default=None,
    help="Past the soft limit, cap max_tokens to this.",
)
@click.option(
    "--on-backend-down",
    type=click.Choice(["open", "closed"]),
    default="open",
    show_default=True,
    help="When the counters (Redis) are unreachable: serve (counted, alerted) or refuse (503).",
)
@click.option("--reason", default=None, help="Why (kept in the audit trail).")
def set_(
    name: str,
    key: str | None,
    user: str | None,
    team: str | None,
    dimension: str,
    window: str,
    rolling: bool,
    soft_limit: float | None,
    hard_limit: float | None,
    degrade_to: str | None,
    degrade_max_tokens: int | None,
    on_backend_down: str,
    reason: str | None,
) -> None:
    """Create or replace quota NAME; every gateway instance obeys it within a second."""
    subjects = [
        (kind, value) for kind, value in (("key", key), ("user", user), ("team", team)) if value
    ]
    if len(subjects) != 1:
        raise click.UsageError("name exactly one of --key, --user or --team")
    kind, subject = subjects[0]
    body = {
        "subject_kind": kind,
        "subject": subject,
        "dimension": dimension,
        "window": window,
        "rolling": rolling,
        "soft_limit": soft_limit,
        "hard_limit": hard_limit,
        "degrade_to": degrade_to,
        "degrade_max_tokens": degrade_max_tokens,
        "on_backend_down": on_backend_down,
        "reason": reason,
    }
    policy = ApiClient().request("PUT", f"/api/quotas/{_path(name)}", json=body)
    click.echo(f"quota {policy['name']} set: {_describe(policy)}")


@quotas.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
def ls(as_json: bool) -> None:
    """List quota policies."""
    data = ApiClient().get("/api/quotas")["data"]
    if as_json:
        print_json(data)
        return
    rows = [{**p, "limits": _describe(p)} for p in data]
    print_table(
        rows, ["name", "subject_kind", "subject", "limits", "degrade_to", "on_backend_down"]
    )


@quotas.command("rm")
@click.argument("name")
@click.option("--reason", default=None, help="Why (kept in the audit trail).")
def rm(name: str, reason: str | None) -> None:
    """Remove quota NAME."""
    ApiClient().request("DELETE", f"/api/quotas/{_path(name)}", json={"reason": reason})
    click.echo(f"quota {name} removed")


def _path(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _describe(policy: dict[str, object]) -> str:
    unit = {"requests": " requests", "tokens": " tokens", "cost": " USD"}[str(policy["dimension"])]
    window = ("rolling " if policy["rolling"] else "") + str(policy["window"])
    limits = [
        f"{label} {value:g}{unit}"
        for label, value in (("soft", policy["soft_limit"]), ("hard", policy["hard_limit"]))
        if isinstance(value, int | float)
    ]
    return f"{', '.join(limits)} per {window}"
