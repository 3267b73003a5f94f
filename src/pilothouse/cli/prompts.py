"""`pilothouse prompts`: the registry from the command line, and prompts as files."""

from __future__ import annotations

import difflib
import getpass
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from pilothouse.cli.client import ApiClient
from pilothouse.cli.output import print_json, print_table
from pilothouse.registry import prompt_files
from pilothouse.yamlfile import FileError

_REF = re.compile(r"^(?P<name>[^@:]+)(?:@(?P<version>\d+)|:(?P<label>.+))?$")


def _client() -> ApiClient:
    client = ApiClient()
    client.headers["X-Pilothouse-Actor"] = getpass.getuser()
    return client


def _fetch(client: ApiClient, ref: str) -> dict[str, Any]:
    """NAME, NAME@VERSION or NAME:LABEL (default: the production label)."""
    match = _REF.match(ref)
    if not match:
        raise click.BadParameter(f"{ref!r}: use NAME, NAME@VERSION or NAME:LABEL")
    params = {"version": match["version"], "label": match["label"]}
    return client.get(f"/api/prompts/{quote(match['name'])}", **params)


@click.group()
def prompts() -> None:
    """The prompt registry: versions, labels, history; prompts as files."""


@prompts.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
def ls(as_json: bool) -> None:
    """List prompts with their labels."""
    data = _client().get("/api/prompts")["data"]
    if as_json:
        print_json(data)
        return
    for row in data:
        row["labels"] = " ".join(f"{k}={v}" for k, v in sorted(row["labels"].items())) or "-"
    print_table(data, ["name", "owner", "latest_version", "labels", "description"])


@prompts.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
def show(ref: str, as_json: bool) -> None:
    """Show a version: NAME (production), NAME@VERSION or NAME:LABEL."""
    prompt = _fetch(_client(), ref)
    if as_json:
        print_json(prompt)
        return
    click.echo(prompt_files.to_yaml(prompt), nl=False)
    if prompt["fragments"]:
        used = ", ".join(f"{ref} (v{f['version']})" for ref, f in prompt["fragments"].items())
        click.echo(f"# includes: {used}")
    click.echo(f"# labels: {', '.join(prompt['labels']) or '(none)'}")


@prompts.command()
@click.argument("directory", type=click.Path(exists=True, path_type=Path))
def lint(directory: Path) -> None:
    """Check prompt files (a directory or one file) without sending anything."""
    paths = _load(directory)
    click.echo(f"{len(paths)} prompt file(s) OK")


def _load(path: Path) -> list[prompt_files.PromptFile]:
    try:
        return [prompt_files.load_file(path)] if path.is_file() else prompt_files.load_dir(path)
    except FileError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        raise SystemExit(1) from None


@prompts.command()
@click.argument("directory", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--label", "labels", multiple=True, help="Also point this label at each pushed version."
)
@click.option("--note", default=None, help="A note stored with new versions (e.g. the commit).")
def push(directory: Path, labels: tuple[str, ...], note: str | None) -> None:
    """Create versions for the prompt files that changed; nothing for the rest.

    Every file is checked first: if one is invalid, nothing is pushed.
    """
    files = _load(directory)
    client = _client()
    created = 0
    for file in files:
        body = {**file.api_body(), "note": note, "labels": list(labels) or None}
        result = client.post(f"/api/prompts/{quote(file.name)}/versions", body)
        state = "created" if result["created"] else "unchanged"
        created += result["created"]
        click.echo(f"{file.name}: {state} (version {result['version']})")
    click.echo(f"{created} new version(s), {len(files) - created} unchanged")


@prompts.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--label", default="production", show_default=True, help="Which label to export.")
def pull(directory: Path, label: str) -> None:
    """Export each prompt's LABEL version to DIRECTORY/<name>.yaml."""
    client = _client()
    directory.mkdir(parents=True, exist_ok=True)
    for row in client.get("/api/prompts")["data"]:
        if label not in row["labels"]:
            click.echo(f"{row['name']}: no {label!r} label, skipped")
            continue
        prompt = client.get(f"/api/prompts/{quote(row['name'])}", label=label)
        (directory / f"{row['name']}.yaml").write_text(prompt_files.to_yaml(prompt, row))
        click.echo(f"{row['name']}: version {prompt['version']} -> {directory / row['name']}.yaml")


@prompts.command()
@click.argument("name")
@click.argument("version", type=int)
@click.argument("label")
@click.option("--reason", required=True, help="Why (kept in the audit trail).")
def label(name: str, version: int, label: str, reason: str) -> None:
    """Point LABEL of prompt NAME at VERSION."""
    result = _client().post(
        f"/api/prompts/{quote(name)}/labels/{quote(label)}", {"version": version, "reason": reason}
    )
    click.echo(f"{name}:{label} -> version {result['version']}")


@prompts.command()
@click.argument("name")
@click.argument("label")
@click.option("--reason", default=None, help="Why (kept in the audit trail).")
def rollback(name: str, label: str, reason: str | None) -> None:
    """Point LABEL back at the version it had before its current one."""
    result = _client().post(
        f"/api/prompts/{quote(name)}/labels/{quote(label)}/rollback", {"reason": reason}
    )
    click.echo(f"{name}:{label} rolled back to version {result['version']}")


@prompts.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
def history(name: str, as_json: bool) -> None:
    """Every change to prompt NAME: who, when, what before, what after, why."""
    data = _client().get(f"/api/prompts/{quote(name)}/history")["data"]
    if as_json:
        print_json(data)
        return
    for entry in data:
        entry["change"] = _describe(entry)
    print_table(data, ["at", "actor", "action", "change", "reason"])


def _describe(entry: dict[str, Any]) -> str:
    before, after = entry.get("before") or {}, entry.get("after") or {}
    if entry["action"] == "prompt.version":
        return f"version {after.get('version')} ({str(after.get('hash'))[:12]})"
    if "label" in after:
        return f"{after['label']}: {before.get('version') or '-'} -> {after.get('version')}"
    if "label" in before:
        return f"{before['label']}: {before.get('version')} -> (deleted)"
    return ""


@prompts.command()
@click.argument("name")
@click.argument("a")
@click.argument("b")
def diff(name: str, a: str, b: str) -> None:
    """Text diff between two versions or labels of NAME (e.g. `diff triage 3 production`)."""
    client = _client()
    texts = []
    for side in (a, b):
        ref = f"{name}@{side}" if side.isdigit() else f"{name}:{side}"
        texts.append(prompt_files.to_yaml(_fetch(client, ref)).splitlines(keepends=True))
    out = "".join(difflib.unified_diff(texts[0], texts[1], f"{name} {a}", f"{name} {b}"))
    click.echo(out or f"{name} {a} and {b} have the same content")
