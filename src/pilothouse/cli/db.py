"""`pilothouse db`: schema migrations."""

from __future__ import annotations

from pathlib import Path

import click

from pilothouse.cli.settings import settings_or_exit, store_options
from pilothouse.store import StoreError, database, open_store


@click.group()
def db() -> None:
    """Database schema: status and upgrades (serve upgrades automatically)."""


@db.command()
@store_options
def upgrade(config_path: Path | None, data_dir: Path | None) -> None:
    """Migrate the database to the newest schema."""
    settings = settings_or_exit(config_path=config_path, data_dir=data_dir)
    store = open_store(settings.effective_database_url)
    try:
        store.upgrade()
        state = database.revision_state(store.engine)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.close()
    click.echo(f"database at schema revision {state.current} (head)")


@db.command()
@store_options
def status(config_path: Path | None, data_dir: Path | None) -> None:
    """Show the database's schema revision and whether it is current."""
    settings = settings_or_exit(config_path=config_path, data_dir=data_dir)
    store = open_store(settings.effective_database_url)
    try:
        state = database.revision_state(store.engine)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.close()
    where = "up to date" if state.at_head else f"behind: run `pilothouse db upgrade` ({state.head})"
    click.echo(f"schema revision {state.current or '(empty database)'}: {where}")
