"""`pilothouse eval schedule|schedules|unschedule|run-now`: suites the server runs on a
schedule (docs/evals.md#scheduled-suites). Needs the admin token."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import click
import yaml

from pilothouse.cli.client import ApiClient
from pilothouse.cli.output import print_json, print_table
from pilothouse.yamlfile import FileError

UNITS = {"m": 60, "h": 3600, "d": 86400}
T = TypeVar("T")


def parse_every(text: str) -> int:
    """'90m', '6h', '1d' (or plain seconds) as seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([mhd]?)\s*", text)
    if not match:
        raise click.BadParameter(f"{text!r}: give a duration such as 30m, 6h or 1d")
    return int(match.group(1)) * UNITS.get(match.group(2), 1)


@click.command("schedule")
@click.argument("suite_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--every", "every", required=True, help="How often: 30m, 6h, 1d (at least 1m).")
@click.option("--owner", default=None, help="Who is told (default: the suite's `owner`).")
def schedule(suite_path: Path, every: str, owner: str | None) -> None:
    """Have the server run SUITE on a schedule, alerting its owner when it fails.

    The suite is checked here first; a dataset file next to it is pushed as a stored
    dataset named after the suite, and the suite sent with that version.
    """
    from pilothouse.evals import datasets as data
    from pilothouse.evals import suite as suites

    seconds = parse_every(every)
    loaded = _or_exit_2(suites.load, suite_path)
    text = suite_path.read_text()
    dataset_file = loaded.dataset_path()
    api = ApiClient()
    if dataset_file is not None:
        rows = _or_exit_2(data.load_file, dataset_file)
        pushed = api.post(
            f"/api/datasets/{quote(loaded.name)}/versions",
            {"rows": rows, "source": str(dataset_file)},
        )
        document = yaml.safe_load(text)
        document["dataset"] = {"name": loaded.name, "version": pushed["version"]}
        text = yaml.safe_dump(document, sort_keys=False)
        click.echo(f"dataset {dataset_file.name}: stored as {loaded.name} v{pushed['version']}")
    made = api.post(
        "/api/evals/schedules", {"suite": text, "every_seconds": seconds, "owner": owner}
    )
    click.echo(
        f"{made['suite']}: runs every {every} (owner: {made['owner'] or 'none'}); "
        f"the first run starts within the monitor's next evaluation"
    )


@click.command("schedules")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
def schedules(as_json: bool) -> None:
    """Scheduled suites: last run, next run, and whether one is stale."""
    data = ApiClient().get("/api/evals/schedules")["data"]
    if as_json:
        print_json(data)
        return
    shown: list[dict[str, Any]] = [
        {
            "suite": s["suite"],
            "owner": s["owner"] or "-",
            "every": _every(s["every_seconds"]),
            "last": s["last_status"] or "-",
            "last_finished_at": s["last_finished_at"] or "-",
            "next_run_at": "running" if s["running"] else s["next_run_at"],
            "stale": "STALE" if s["stale"] else "",
            "last_message": s["last_message"] or "",
        }
        for s in data
    ]
    print_table(
        shown,
        [
            "suite",
            "owner",
            "every",
            "last",
            "last_finished_at",
            "next_run_at",
            "stale",
            "last_message",
        ],
    )


@click.command("unschedule")
@click.argument("suite")
def unschedule(suite: str) -> None:
    """Stop running SUITE on a schedule (its runs stay recorded)."""
    ApiClient().request("DELETE", f"/api/evals/schedules/{quote(suite, safe='')}")
    click.echo(f"{suite}: no longer scheduled")


@click.command("run-now")
@click.argument("suite")
def run_now(suite: str) -> None:
    """Run a scheduled SUITE now (within the monitor's next evaluation)."""
    ApiClient().post(f"/api/evals/schedules/{quote(suite, safe='')}/run", {})
    click.echo(f"{suite}: due now")


def _or_exit_2(read: Callable[[Path], T], path: Path) -> T:
    """`read(path)`, or every problem in the file printed and exit 2 (as `eval run`)."""
    try:
        return read(path)
    except FileError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        raise SystemExit(2) from None


def _every(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
