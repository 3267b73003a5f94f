"""`pilothouse changelog`: what changed in a prompt's or route's behaviour, and who is told.

`pilothouse changelog SUBJECT` reads the entries (SUBJECT: a prompt, or route:NAME);
`subscribe`, `unsubscribe` and `subscriptions` manage the webhooks entries go to.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import click

from pilothouse.cli.output import print_json, print_table
from pilothouse.cli.subjects import client, parse_subject


class _ReadByDefault(click.Group):
    """`changelog SUBJECT` is `changelog show SUBJECT`: any first word that is not a
    subcommand is a subject."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["show", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_ReadByDefault, subcommand_metavar="SUBJECT [--limit N] [--json] | COMMAND ...")
def changelog() -> None:
    """What changed in a prompt's or route's behaviour; subscribe a webhook to be told.

    `pilothouse changelog SUBJECT` (a prompt, or route:NAME) reads its newest entries:
    --limit N of them (default 20, at most 1000), --json for scripts."""


def _summary(entry: dict[str, Any]) -> str:
    change = entry["change"]
    old, new = change.get("from"), change.get("to")
    if entry["subject"]["kind"] == "prompt":
        before = f"version {old['version']}" if old else "nothing"
        return f"{change['label']}: {before} -> version {new['version']}"

    def side(state: dict[str, Any] | None) -> str:
        if state is None:
            return "none"
        params = " ".join(f"{k}={v}" for k, v in sorted(state["params"].items()))
        return f"{state['prompt']} on {state['model']}" + (f" ({params})" if params else "")

    text = f"{change['arm']}: {side(old)} -> {side(new)}"
    weights = change.get("canary_weight")
    if weights:
        text += f" at {weights['to']}%"
    return text


def _gate(entry: dict[str, Any]) -> str:
    gate = entry.get("gate")
    if gate is None:
        return "-"
    verdicts = [f"{c['consumer']}/{c['name']} {c['verdict']}" for c in gate["contracts"]]
    verdicts += [f"{s['suite']} {s['verdict']}" for s in gate["suites"]]
    answer = "pass" if gate["allowed"] else "FAIL"
    return answer + (f" ({', '.join(verdicts)})" if verdicts else "")


@changelog.command(hidden=True)
@click.argument("subject")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
def show(subject: str, limit: int, as_json: bool) -> None:
    """The newest entries of SUBJECT (a prompt, or route:NAME)."""
    kind, name, _ = parse_subject(subject)
    data = client().get("/api/changelog", limit=limit, **{kind: name})["data"]
    if as_json:
        print_json(data)
        return
    rows = [
        {
            "at": e["at"][:19],
            "action": e["action"] + (" (forced)" if e["forced"] else ""),
            "change": _summary(e),
            "changed": ", ".join(e["changed"]) or "-",
            "gate": _gate(e),
            "author": e["author"],
            "reason": e["reason"],
        }
        for e in data
    ]
    print_table(rows, ["at", "action", "change", "changed", "gate", "author", "reason"])


@changelog.command()
@click.argument("subject")
@click.option("--url", required=True, help="The webhook entries are POSTed to.")
@click.option(
    "--secret",
    required=True,
    envvar="PILOTHOUSE_CHANGELOG_SECRET",
    help="Signs each delivery (HMAC-SHA256; at least 16 characters). "
    "Also read from PILOTHOUSE_CHANGELOG_SECRET.",
)
@click.option("--owner", default=None, help="The team that subscribes.")
def subscribe(subject: str, url: str, secret: str, owner: str | None) -> None:
    """Deliver every changelog entry of SUBJECT (a prompt, or route:NAME) to URL."""
    kind, name, _ = parse_subject(subject)
    body = {kind: name, "url": url, "secret": secret, "owner": owner}
    made = client().post("/api/changelog/subscriptions", body)
    click.echo(f"{made['id']}: {kind} {name} -> {made['url']} (signed)")


@changelog.command()
@click.argument("subscription_id")
def unsubscribe(subscription_id: str) -> None:
    """Stop delivering to subscription SUBSCRIPTION_ID."""
    client().request("DELETE", f"/api/changelog/subscriptions/{quote(subscription_id)}")
    click.echo(f"{subscription_id} removed")


@changelog.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
def subscriptions(as_json: bool) -> None:
    """Every changelog subscription (secrets are never shown)."""
    data = client().get("/api/changelog/subscriptions")["data"]
    if as_json:
        print_json(data)
        return
    rows = [
        {
            "id": s["id"],
            "subject": f"route:{s['route']}" if "route" in s else s["prompt"],
            "url": s["url"],
            "owner": s["owner"],
        }
        for s in data
    ]
    print_table(rows, ["id", "subject", "url", "owner"])
