"""`pilothouse deps PROMPT`: who depends on a prompt."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import click

from pilothouse.cli.output import print_json, print_table
from pilothouse.cli.subjects import client


@click.command()
@click.argument("prompt")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
def deps(prompt: str, as_json: bool) -> None:
    """Who depends on a prompt: routes and versions, includers, contracts, gating suites.

    Which routes serve which versions of PROMPT (as their prompt or frozen as a fragment),
    which labelled prompts include it, which consumers hold contracts on it and on those
    routes, and which suites gate it."""
    data: dict[str, Any] = client().get(f"/api/prompts/{quote(prompt)}/dependencies")
    if as_json:
        print_json(data)
        return
    labels = ", ".join(f"{k} -> {v}" for k, v in sorted(data["labels"].items())) or "none"
    click.echo(f"prompt {data['prompt']}: labels {labels}")
    click.echo("\nroutes:")
    print_table(
        [
            {
                "route": r["route"],
                "arm": r["arm"] + (f" {r['canary_weight']}%" if r["arm"] == "canary" else ""),
                "release": r["release"],
                "uses": f"{prompt}@{r['version']}"
                + (f" (fragment {r['include']} of {r['serves']})" if r["as"] == "fragment" else ""),
                "model": r["model"],
            }
            for r in data["routes"]
        ],
        ["route", "arm", "release", "uses", "model"],
    )
    click.echo("\nincluded by:")
    print_table(
        [
            {
                "prompt": f"{i['prompt']}@{i['label']} (version {i['version']})",
                "include": i["include"],
                "gets": f"version {i['includes_version']}" if i["includes_version"] else "-",
            }
            for i in data["included_by"]
        ],
        ["prompt", "include", "gets"],
    )
    click.echo("\ncontracts:")
    print_table(
        [
            {
                "on": f"route:{c['route']}" if "route" in c else c["prompt"],
                "consumer": c["consumer"],
                "contract": c["name"],
                "status": c["status"],
            }
            for c in data["contracts"]
        ],
        ["on", "consumer", "contract", "status"],
    )
    if data["gating_suites"]:
        suites = ", ".join(
            s["suite"] + (f" (route:{s['route']})" if "route" in s else "")
            for s in data["gating_suites"]
        )
        click.echo(f"\ngating suites: {suites}")
