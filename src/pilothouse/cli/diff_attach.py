"""`--diff FILE` on the commands that write a changelog entry (a protected label move, a
promote): the JSON report of `pilothouse diff ... --format json --out FILE`, summarised
here and checked by the server against what the change moves to."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from pilothouse.behaviour.summary import summarise

diff_option = click.option(
    "--diff",
    "diff_report",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A `pilothouse diff --format json --out FILE` report of exactly this change; its "
    "summary goes into the changelog entry.",
)


def summary_of(path: Path | None) -> dict[str, Any] | None:
    """The changelog summary of the diff report at `path` (None without one); a
    click.BadParameter naming the file when it is not a diff report."""
    if path is None:
        return None
    try:
        report = json.loads(path.read_text())
        return summarise(report)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise click.BadParameter(
            f"{path} is not a `pilothouse diff --format json` report ({exc.__class__.__name__}: "
            f"{exc})",
            param_hint="--diff",
        ) from None
