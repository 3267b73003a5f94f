"""`pilothouse admin`: the deployment's admin token (one for every instance on a database)."""

from __future__ import annotations

import getpass
import os
from pathlib import Path

import click

from pilothouse.cli.client import ApiClient
from pilothouse.cli.settings import settings_or_exit, store_options


@click.group()
def admin() -> None:
    """The deployment's admin token: rotate, reset."""


@admin.command("rotate-token")
@click.option("--reason", default=None, help="Why (kept in the audit trail).")
def rotate_token(reason: str | None) -> None:
    """Replace the admin token for every instance (with the current one in
    PILOTHOUSE_ADMIN_TOKEN); the old one stops working everywhere within a second."""
    client = ApiClient()
    client.headers["X-Pilothouse-Actor"] = getpass.getuser()
    result = client.post("/api/admin/token/rotate", {"reason": reason})
    click.echo("admin token rotated on every instance; the new one (shown once):")
    click.echo(f"  export PILOTHOUSE_ADMIN_TOKEN={result['token']}")


@admin.command("reset-token")
@store_options
@click.option(
    "--from-env",
    is_flag=True,
    help="Make PILOTHOUSE_ADMIN_TOKEN the deployment's token instead of generating one.",
)
@click.option("--reason", default="reset with database access", show_default=True)
def reset_token(
    config_path: Path | None, data_dir: Path | None, from_env: bool, reason: str
) -> None:
    """Break glass: set the admin token without knowing the current one. Talks to the
    database directly (like `pilothouse db`), so it needs PILOTHOUSE_DATABASE_URL (or the
    data dir) of the deployment; every instance obeys within a second."""
    from pilothouse.policy import admin_token
    from pilothouse.store import StoreError, open_store

    token = os.environ.get("PILOTHOUSE_ADMIN_TOKEN") if from_env else None
    if from_env and not token:
        raise click.UsageError("--from-env: PILOTHOUSE_ADMIN_TOKEN is not set")
    settings = settings_or_exit(config_path=config_path, data_dir=data_dir)
    store = open_store(settings.effective_database_url)
    try:
        store.upgrade()
        token = admin_token.reset(
            store, token, actor=f"{getpass.getuser()} (reset-token)", reason=reason
        )
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.close()
    if from_env:
        click.echo("PILOTHOUSE_ADMIN_TOKEN is now the deployment's admin token")
    else:
        click.echo("new admin token for the deployment (shown once):")
        click.echo(f"  export PILOTHOUSE_ADMIN_TOKEN={token}")
