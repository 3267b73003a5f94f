"""`pilothouse models` and `pilothouse doctor`: the model catalog and deprecation debt."""

from __future__ import annotations

from pathlib import Path

import click

from pilothouse.cli.client import ApiClient
from pilothouse.cli.output import print_json, print_table


@click.group()
def models() -> None:
    """The model catalog: aliases, providers, prices, lifecycle."""


@models.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
def ls(as_json: bool) -> None:
    """Every model alias with its lifecycle and retirement date."""
    data = ApiClient().get("/api/models")["data"]
    if as_json:
        print_json(data)
        return
    for row in data:
        row["price_in_out"] = (
            f"{row['pricing']['input_per_mtok']}/{row['pricing']['output_per_mtok']}"
        )
    print_table(
        data,
        ["alias", "provider", "model", "lifecycle", "retirement_date", "successor", "price_in_out"],
    )


@click.command()
@click.option(
    "--within-days",
    default=90,
    show_default=True,
    type=click.IntRange(0),
    help="Warn about retirements this close.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
def doctor(within_days: int, as_json: bool) -> None:
    """Retiring models routes still use, and routes, providers and suites with no owner.

    Routes pinned to models that are retired, retiring soon, deprecated or not GA; and every
    route, provider and scheduled suite with no owner for its alerts.

    Exits 1 when a route serves a retired model, so it can gate a pipeline.
    """
    result = ApiClient().get("/api/doctor", within_days=within_days)
    if as_json:
        print_json(result)
    else:
        if not result["warnings"]:
            click.echo(
                f"no route pins a model retiring within {within_days} days, deprecated or "
                "in preview"
            )
        else:
            print_table(result["warnings"], ["route", "side", "owner", "problem", "message"])
        if result["unowned"]:
            click.echo("\nNo owner (alerts about these reach no one; set `owner`):")
            print_table(result["unowned"], ["kind", "name"])
        else:
            click.echo("every route, provider and scheduled suite has an owner")
    if any(w["problem"] == "retired" for w in result["warnings"]):
        raise SystemExit(1)


@models.command()
@click.argument("route")
@click.option("--to", "candidate", required=True, help="The model alias to requalify the route on.")
@click.option(
    "--suites",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("evals"),
    show_default=True,
    help="Where the suite files are.",
)
def requalify(route: str, candidate: str, suites: Path) -> None:
    """Run ROUTE's suites against its active release and against the same release on --to.

    Checks --to and every suite before the first call, stores both runs of each suite,
    and reports each gate and the per-scorer differences. Exits 1 when the candidate fails
    a gate the current model passes (or regresses significantly), 2 when there is nothing
    to run or something is misconfigured, 3 when the infrastructure failed.
    """
    from pilothouse.cli import evals

    evals.no_traceback(evals.requalify)(route, candidate, suites)
