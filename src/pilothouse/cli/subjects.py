"""What the contract, gate, changelog and dependency commands are about: a prompt
(`triage`, `triage@7`) or a route (`route:support-triage`, `route:support-triage@canary`),
and the API client they share."""

from __future__ import annotations

import getpass

import click

from pilothouse.cli.client import ApiClient

ROUTE_PREFIX = "route:"


def parse_subject(text: str) -> tuple[str, str, str | None]:
    """(kind, name, what follows `@`) of `NAME[@REF]` or `route:NAME[@ARM]`."""
    kind = "route" if text.startswith(ROUTE_PREFIX) else "prompt"
    rest = text.removeprefix(ROUTE_PREFIX)
    name, sep, ref = rest.partition("@")
    if not name or (sep and not ref):
        raise click.BadParameter(
            f"{text!r}: give a prompt (NAME or NAME@VERSION) or a route (route:NAME)"
        )
    return kind, name, ref or None


def client() -> ApiClient:
    """The API as the admin, saying which OS user acts (the audit trail records it)."""
    made = ApiClient()
    made.headers["X-Pilothouse-Actor"] = getpass.getuser()
    return made
