"""`pilothouse releases`: show, promote, canary and roll back what a route serves."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from pilothouse.cli.client import ApiClient
from pilothouse.cli.diff_attach import diff_option, summary_of
from pilothouse.cli.output import print_json, print_table


def _client() -> ApiClient:
    client = ApiClient()
    client.headers["X-Pilothouse-Actor"] = getpass.getuser()
    return client


def _params(pairs: tuple[str, ...]) -> dict[str, Any]:
    """`--param temperature=0.2 --param stop='["\\n"]'`: values are JSON when they parse."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(
                f"{pair!r}: use NAME=VALUE, e.g. temperature=0.2", param_hint="--param"
            )
        try:
            out[name] = json.loads(raw)
        except json.JSONDecodeError:
            out[name] = raw
    return out


def _summary(release: dict[str, Any] | None) -> str:
    if not release:
        return "-"
    params = " ".join(f"{k}={v}" for k, v in sorted(release["params"].items()))
    return f"{release['id']} {release['prompt']} on {release['model']}" + (
        f" ({params})" if params else ""
    )


release_options = [
    click.option(
        "--prompt",
        help="NAME@VERSION, or NAME@LABEL: the label and every fragment the prompt includes "
        "are resolved to versions now and frozen in the release.",
    ),
    click.option("--model", help="Model alias from the catalog."),
    click.option(
        "--param", "params", multiple=True, help="NAME=VALUE, e.g. temperature=0.2 (repeatable)."
    ),
    click.option("--reason", default=None, help="Why (kept in the audit trail and history)."),
]


def with_release_options(func: Any) -> Any:
    for option in reversed(release_options):
        func = option(func)
    return func


def _warn(result: dict[str, Any]) -> None:
    for warning in result.get("warnings") or ():
        click.echo(f"warning: {warning}", err=True)


@click.group()
def releases() -> None:
    """What each route serves: show, promote, canary, roll back, history."""


@releases.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
def ls(as_json: bool) -> None:
    """Routes with their active and canary releases."""
    data = _client().get_all("/api/routes")
    if as_json:
        print_json(data)
        return
    rows = [
        {
            "route": r["name"],
            "owner": r["owner"],
            "active": _summary(r["active"]),
            "canary": f"{r['canary_weight']}% {_summary(r['canary'])}" if r["canary"] else "-",
        }
        for r in data
    ]
    print_table(rows, ["route", "owner", "active", "canary"])


@releases.command()
@click.argument("route")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
def show(route: str, as_json: bool) -> None:
    """ROUTE's active and canary releases with the fragment versions frozen in each, and
    whether a newer version is now under the label a fragment was taken from."""
    data = _client().get(f"/api/routes/{quote(route)}")
    if as_json:
        print_json(data)
        return
    stored = "on" if data.get("store_responses") else "off"
    click.echo(f"route {data['name']} (owner {data['owner'] or '-'}, store_responses {stored})")
    for side in ("active", "canary"):
        release = data.get(side)
        if release is None:
            click.echo(f"{side}: -")
            continue
        if "problem" in release:
            click.echo(f"{side}: {release['id']}: {release['problem']}")
            continue
        weight = f" at {data['canary_weight']}%" if side == "canary" else ""
        click.echo(f"{side}{weight}: {_summary(release)}")
        click.echo(f"  prompt hash {release['prompt_hash'][:16]} (prompt and fragments)")
        if release["fragments"] is None:
            click.echo("  fragments: not frozen (made before frozen releases; promote again)")
        for fragment in release["fragments"] or ():
            taken = f" from {fragment['label']}" if fragment.get("label") else " (pinned)"
            note = f": {fragment['note']}" if fragment.get("note") else ""
            click.echo(f"  {fragment['ref']} -> version {fragment['version']}{taken}{note}")


@releases.command()
@click.argument("route")
@with_release_options
@click.option("--owner", default=None, help="The team that owns the route (set on first promote).")
@click.option("--canary", "from_canary", is_flag=True, help="Promote the running canary as it is.")
@click.option(
    "--force",
    is_flag=True,
    help="Promote although the promotion gate refuses it, or the canary's model is retired "
    "(needs --reason; audited).",
)
@diff_option
def promote(
    route: str,
    prompt: str | None,
    model: str | None,
    params: tuple[str, ...],
    reason: str | None,
    owner: str | None,
    from_canary: bool,
    force: bool,
    diff_report: Path | None,
) -> None:
    """Make a new release (or the running canary) ROUTE's active release.

    Held to the promotion gate: refused while the route's active contracts or gating
    suites have not passed on exactly this release (`pilothouse can-i-promote`). --diff
    attaches a semantic diff of this release (`pilothouse diff --route ROUTE` before
    promoting the canary) to the changelog entry."""
    if not from_canary and not (prompt and model):
        raise click.UsageError(
            "give --prompt and --model, or --canary to promote the running canary"
        )
    body = {
        "prompt": prompt,
        "model": model,
        "params": _params(params),
        "reason": reason,
        "owner": owner,
        "from_canary": from_canary,
        "force": force,
        "diff": summary_of(diff_report),
    }
    release = _client().post(f"/api/routes/{quote(route)}/promote", body)
    _warn(release)
    click.echo(f"{route}: active is now {_summary(release)}")


@releases.command()
@click.argument("route")
@with_release_options
@click.option(
    "--weight", type=click.IntRange(0, 100), required=True, help="Percent of users; 0 stops it."
)
def canary(
    route: str,
    prompt: str | None,
    model: str | None,
    params: tuple[str, ...],
    reason: str | None,
    weight: int,
) -> None:
    """Send WEIGHT% of ROUTE's users (sticky per user) to a new release.

    Without --prompt and --model, only the running canary's weight changes.
    """
    body = {
        "prompt": prompt,
        "model": model,
        "params": _params(params),
        "reason": reason,
        "weight": weight,
    }
    result = _client().post(f"/api/routes/{quote(route)}/canary", body)
    _warn(result)
    if result["canary"]:
        click.echo(f"{route}: canary {_summary(result['canary'])} at {result['weight']}%")
    else:
        click.echo(f"{route}: canary stopped")


@releases.command()
@click.argument("route")
@click.option("--reason", default=None, help="Why (kept in the audit trail and history).")
@click.option(
    "--force", is_flag=True, help="Roll back onto a retired model anyway (needs --reason)."
)
def rollback(route: str, reason: str | None, force: bool) -> None:
    """Back to the previous active release, and stop any canary: one call to known-good.

    Refused when that release's model is retired (every call would fail); --force does it
    anyway."""
    release = _client().post(
        f"/api/routes/{quote(route)}/rollback", {"reason": reason, "force": force}
    )
    click.echo(f"{route}: rolled back to {_summary(release)}")


@releases.command()
@click.argument("route")
@click.option(
    "--store-responses",
    type=click.Choice(["on", "off"]),
    required=True,
    help="on: the gateway keeps the Responses API answers of this route's calls "
    "(previous_response_id works for every key calling it); off: only for keys with the "
    "responses:store scope.",
)
@click.option("--reason", default=None, help="Why (kept in the audit trail).")
def settings(route: str, store_responses: str, reason: str | None) -> None:
    """Change ROUTE's settings that no release carries (they stay across promotions).

    `pilothouse releases show ROUTE` shows them.
    """
    result = _client().post(
        f"/api/routes/{quote(route)}/settings",
        {"store_responses": store_responses == "on", "reason": reason},
    )
    click.echo(f"{route}: store_responses {'on' if result['store_responses'] else 'off'}")


@releases.command()
@click.argument("route")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
def history(route: str, as_json: bool) -> None:
    """Every promotion, canary change and rollback of ROUTE, newest first."""
    data = _client().get(f"/api/routes/{quote(route)}/history")["data"]
    if as_json:
        print_json(data)
        return
    rows = [
        {
            "at": e["at"],
            "kind": e["kind"] + (f" {e['canary_weight']}%" if e["kind"] == "canary" else ""),
            "release": _summary(e["release"]),
            "actor": e["actor"],
            "reason": e["reason"],
        }
        for e in data
    ]
    print_table(rows, ["at", "kind", "release", "actor", "reason"])
