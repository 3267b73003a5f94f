"""`pilothouse datasets`: content-hashed eval datasets, from files or from real traffic."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import click

from pilothouse.cli.client import ApiClient
from pilothouse.cli.output import print_json, print_table
from pilothouse.yamlfile import FileError


@click.group()
def datasets() -> None:
    """Eval datasets: push files, sample real traffic, export for labelling, list versions."""


@datasets.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="Dataset name.")
def push(path: Path, name: str) -> None:
    """Store PATH (JSONL or CSV) as a new version of NAME, unless identical rows exist."""
    from pilothouse.evals import datasets as data

    try:
        rows = data.load_file(path)
    except FileError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        raise SystemExit(2) from None
    result = ApiClient().post(
        f"/api/datasets/{quote(name)}/versions", {"rows": rows, "source": str(path)}
    )
    state = "created" if result["created"] else "unchanged"
    click.echo(
        f"{name}: {state} (version {result['version']}, {result['rows']} rows, {result['hash'][:12]})"
    )


@datasets.command("from-logs")
@click.option("--route", required=True, help="Route whose real calls to sample.")
@click.option(
    "--since", default="7d", show_default=True, help="How far back: 30m, 12h, 7d or an ISO time."
)
@click.option("--sample", default=200, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--name", default=None, help="Dataset name (default: the route's name).")
@click.option("--seed", default=None, type=int, help="Sampling seed, for a repeatable sample.")
def from_logs(route: str, since: str, sample: int, name: str | None, seed: int | None) -> None:
    """Build a dataset from the template variables of a route's real, successful calls.

    Calls made by evals are left out, and calls with the same variables count once.
    """
    body = {"route": route, "since": since, "sample": sample, "seed": seed}
    result = ApiClient().post(f"/api/datasets/{quote(name or route)}/from-logs", body)
    click.echo(
        f"{result['name']}: version {result['version']}, {result['rows']} rows ({result['hash'][:12]})"
    )


@datasets.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
def ls(as_json: bool) -> None:
    """Datasets and their versions."""
    data = ApiClient().get("/api/datasets")["data"]
    if as_json:
        print_json(data)
        return
    for row in data:
        row["hash"] = row["hash"][:12]
    print_table(data, ["name", "version", "hash", "source", "created_at"])


@datasets.command()
@click.argument("name")
@click.option("--version", type=int, default=None, help="Version (default: the latest).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
    help="CSV opens in a spreadsheet for labelling; JSONL keeps every row as it is.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write here instead of standard output.",
)
def export(name: str, version: int | None, fmt: str, output: Path | None) -> None:
    """Write a stored dataset version as JSONL or CSV (id, variables, expected, tags).

    Label it (fill `expected`), then `datasets push` it back as a new version.
    """
    from pilothouse.evals import datasets as data

    stored = ApiClient().get(f"/api/datasets/{quote(name)}", version=version)
    try:
        text = data.to_csv(stored["rows"]) if fmt == "csv" else data.to_jsonl(stored["rows"])
    except FileError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        raise SystemExit(2) from None
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror}") from None
    click.echo(
        f"{stored['name']}@{stored['version']}: {len(stored['rows'])} rows written to {output}",
        err=True,
    )
