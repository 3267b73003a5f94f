"""`pilothouse contracts`: consumer contracts on a prompt's or a route's output: add them
from files, list them, verify them on an exact candidate, remove them.

A subject on the command line is a prompt (`triage`, `triage@7`) or a route
(`route:support-triage`, `route:support-triage@canary`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from pilothouse.cli.output import print_json, print_table
from pilothouse.cli.subjects import client, parse_subject


def contract_files(paths: tuple[Path, ...]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
        else:
            found.append(path)
    return found


@click.group()
def contracts() -> None:
    """Consumer contracts on a prompt's or route's output: add, list, verify, remove."""


@contracts.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def add(paths: tuple[Path, ...]) -> None:
    """Add (or change) the contracts in PATHS (files, or folders of *.yaml). A new or
    changed contract is pending until its first passing verification."""
    from pilothouse.contracts import spec
    from pilothouse.yamlfile import FileError

    loaded, problems = [], []
    for path in contract_files(paths):
        try:
            loaded.append(spec.load_file(path))
        except FileError as exc:
            problems += exc.problems
    if problems:
        raise click.ClickException("nothing was added:\n  " + "\n  ".join(problems))
    api = client()
    for contract in loaded:
        result = api.post("/api/contracts", contract.spec)
        subject = f"{contract.kind} {contract.subject}"
        state = {
            "created": "added, pending until it first passes",
            "changed": "changed, pending again until it passes",
            "unchanged": f"unchanged ({result['status']})",
        }[result["outcome"]]
        click.echo(f"{result['id']}  {contract.ref} on {subject}: {state}")


def _last(verification: dict[str, Any] | None) -> str:
    if not verification:
        return "never verified"
    rate = verification["pass_rate"]
    shown = f"{rate:.0%}" if rate is not None else "-"
    verdict = "passed" if verification["passed"] else "FAILED"
    return f"{verdict} {shown} on {verification['subject']}"


@contracts.command("ls")
@click.argument("subject")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
def ls(subject: str, as_json: bool) -> None:
    """The contracts on SUBJECT (a prompt, or route:NAME) with their status."""
    kind, name, _ = parse_subject(subject)
    data = client().get("/api/contracts", **{kind: name})["data"]
    if as_json:
        print_json(data)
        return
    rows = [
        {
            "id": c["id"],
            "contract": f"{c['consumer']}/{c['name']}",
            "status": c["status"],
            "active since": f"{c['activated_at'][:19]} on {c['activated_on']}"
            if c["activated_at"]
            else "-",
            "last verification": _last(c["last_verification"]),
        }
        for c in data
    ]
    print_table(rows, ["id", "contract", "status", "active since", "last verification"])


@contracts.command()
@click.argument("contract_id")
@click.option("--reason", default=None, help="Why (kept in the audit trail).")
def rm(contract_id: str, reason: str | None) -> None:
    """Remove contract CONTRACT_ID (see `contracts ls`) and its verifications."""
    client().request("DELETE", f"/api/contracts/{quote(contract_id)}", json={"reason": reason})
    click.echo(f"{contract_id} removed")


@contracts.command()
@click.argument("subject")
@click.option("--contract", "only", default=None, help="Verify only CONSUMER/NAME.")
@click.option("--prompt", default=None, help="Route contracts: the release's prompt NAME@VERSION.")
@click.option("--model", default=None, help="Route contracts: the release's model alias.")
@click.option("--param", "params", multiple=True, help="Route contracts: NAME=VALUE (repeatable).")
@click.option("--no-cache", is_flag=True, help="Call the gateway even for cached answers.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The response cache (default: $PILOTHOUSE_EVAL_CACHE_DIR or .pilothouse/eval-cache).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the verdicts as JSON.")
def verify(
    subject: str,
    only: str | None,
    prompt: str | None,
    model: str | None,
    params: tuple[str, ...],
    no_cache: bool,
    cache_dir: Path | None,
    as_json: bool,
) -> None:
    """Run every contract on SUBJECT over its samples and record the verdicts.

    SUBJECT is PROMPT@VERSION, route:NAME@canary or route:NAME@active (the release that arm
    serves), or route:NAME with --prompt, --model and --param (the release a promotion
    would make). Calls go through the gateway as an application (PILOTHOUSE_API_KEY) and
    the eval runner's response cache. Exit 0: every active contract holds; 1: an active
    one does not (a failing pending one is reported, not counted); 2: the command, a
    contract or its samples are wrong, nothing was recorded; 3: the gateway or a provider
    failed.
    """
    from pilothouse.cli import contract_verify

    contract_verify.main(
        subject,
        only=only,
        prompt=prompt,
        model=model,
        params=params,
        cache=not no_cache,
        cache_dir=cache_dir,
        as_json=as_json,
    )
