"""`pilothouse can-i-promote`: the promotion gate's answer, for CI and for people.

Exit status, one meaning each: 0 yes; 1 no (the reasons, and the failing samples, are
printed); 2 the question is wrong (an unknown prompt, route, version, label or model, or
a malformed subject); 3 no answer (the server is unreachable or failed).
"""

from __future__ import annotations

from typing import Any

import click

from pilothouse.cli.client import ApiError
from pilothouse.cli.output import print_json
from pilothouse.cli.releases import _params
from pilothouse.cli.subjects import client, parse_subject

EXIT_YES, EXIT_NO, EXIT_USAGE, EXIT_NO_ANSWER = 0, 1, 2, 3


@click.command("can-i-promote")
@click.argument("subject")
@click.option(
    "--to", "label", default="production", show_default=True, help="Prompts: the label to move."
)
@click.option("--prompt", default=None, help="Routes: the new release's prompt NAME@VERSION.")
@click.option("--model", default=None, help="Routes: the new release's model alias.")
@click.option("--param", "params", multiple=True, help="Routes: NAME=VALUE (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the gate's report as JSON.")
def can_i_promote(
    subject: str,
    label: str,
    prompt: str | None,
    model: str | None,
    params: tuple[str, ...],
    as_json: bool,
) -> None:
    """Would the promotion gate let a prompt version or a release through? (exit 0 yes, 1 no)

    Changes nothing. SUBJECT is PROMPT@VERSION (moving --to LABEL onto it), route:NAME@canary (promoting
    the running canary), or route:NAME with --prompt, --model and --param (promoting the
    release they would make). Exit 0 yes, 1 no, 2 a wrong question, 3 no answer.
    """
    try:
        body = _question(subject, label, prompt, model, params)
    except click.UsageError as exc:
        click.echo(f"Error: {exc.message}", err=True)
        raise SystemExit(EXIT_USAGE) from None
    try:
        report = client().post("/api/can-i-promote", body)
    except ApiError as exc:
        click.echo(f"Error: {exc.message}", err=True)
        usage = exc.status is not None and 400 <= exc.status < 500 and exc.status not in (408, 429)
        raise SystemExit(EXIT_USAGE if usage else EXIT_NO_ANSWER) from None
    if as_json:
        print_json(report)
    else:
        show(report)
    raise SystemExit(EXIT_YES if report["allowed"] else EXIT_NO)


def _question(
    subject: str, label: str, prompt: str | None, model: str | None, params: tuple[str, ...]
) -> dict[str, Any]:
    kind, name, ref = parse_subject(subject)
    if kind == "prompt":
        if ref is None or prompt or model or params:
            raise click.UsageError(
                f"ask about a prompt version: {name}@VERSION --to LABEL (--prompt, --model "
                "and --param are for routes)"
            )
        return {"prompt": f"{name}@{ref}", "label": label}
    if ref == "canary" and not (prompt or model or params):
        return {"route": name, "from_canary": True}
    if ref is None and prompt and model:
        return {"route": name, "prompt": prompt, "model": model, "params": _params(params)}
    raise click.UsageError(
        f"ask about route:{name}@canary (its running canary), or route:{name} with --prompt "
        "NAME@VERSION --model ALIAS [--param NAME=VALUE] (the release they would make)"
    )


def show(report: dict[str, Any]) -> None:
    candidate = report["candidate"]
    where = f" to {report['label']}" if report.get("label") else ""
    answer = "yes" if report["allowed"] else "no"
    click.echo(f"{answer}: {candidate['ref']}{where}")
    for reason in report["reasons"]:
        click.echo(f"  - {reason}")
    for note in report["notes"]:
        click.echo(f"  note: {note}")
    for contract in report["contracts"]:
        shown = f"{contract['consumer']}/{contract['name']} ({contract['status']})"
        click.echo(f"  contract {shown}: {contract['verdict']}")
        verification = contract["verification"] or {}
        for failure in verification.get("failures") or []:
            click.echo(
                f"    sample {failure['sample']} (repeat {failure['repeat']}): {failure['output']}"
            )
            for reason in failure["reasons"]:
                click.echo(f"      - {reason}")
    for suite in report["suites"]:
        run = suite["run"]
        click.echo(
            f"  suite {suite['suite']}: {suite['verdict']}" + (f" ({run['id']})" if run else "")
        )
    if not report["contracts"] and not report["suites"]:
        click.echo("  (no contracts and no gating suites: nothing to hold it to)")
