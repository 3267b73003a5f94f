"""Shared options of the commands that touch the store directly (`serve`, `db`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from pilothouse.settings import Settings, SettingsError, load_settings
from pilothouse.yamlfile import FileError

F = TypeVar("F", bound=Callable[..., Any])


def store_options(func: F) -> F:
    func = click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="YAML config file (providers, models). Env: PILOTHOUSE_CONFIG.",
    )(func)
    func = click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Where embedded data lives. Env: PILOTHOUSE_DATA_DIR. Default: ./.pilothouse",
    )(func)
    return func


def settings_or_exit(**overrides: Any) -> Settings:
    """Load settings; a bad config file ends the command with every fault listed (exit 2)."""
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        click.echo(f"pilothouse: {exc}", err=True)
        raise SystemExit(2) from None
    except FileError as exc:
        click.echo("pilothouse: the config file is not valid:", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        raise SystemExit(2) from None
