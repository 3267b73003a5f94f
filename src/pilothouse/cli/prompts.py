"""`pilothouse prompts`: the registry from the command line, and prompts as files.

References are `NAME`, `NAME@VERSION` or `NAME@LABEL` (the old `NAME:LABEL` still works,
with a warning). Reading files (pydantic, YAML) is imported only by the commands that do.
"""

from __future__ import annotations

import difflib
import getpass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import click

from pilothouse.cli.client import ApiClient
from pilothouse.cli.output import print_json, print_table
from pilothouse.registry import names

if TYPE_CHECKING:
    from pilothouse.registry.prompt_files import PromptFile


def _client() -> ApiClient:
    client = ApiClient()
    client.headers["X-Pilothouse-Actor"] = getpass.getuser()
    return client


def parse_ref(text: str) -> names.PromptRef:
    """A reference from the command line; the old spelling is read with a warning."""
    try:
        ref = names.parse_ref(text)
    except names.InvalidName as exc:
        raise click.BadParameter(str(exc)) from None
    if ref.warning:
        click.echo(f"warning: {ref.warning}", err=True)
    return ref


def _fetch(client: ApiClient, ref: names.PromptRef) -> dict[str, Any]:
    """The version `ref` names (default: the production label)."""
    found: dict[str, Any] = client.get(
        f"/api/prompts/{quote(ref.name)}", version=ref.version, label=ref.label
    )
    return found


def _force_options(func: Any) -> Any:
    func = click.option(
        "--force",
        is_flag=True,
        help="Do it even though it breaks what depends on the label, or the promotion gate "
        "refuses it (needs --reason; audited).",
    )(func)
    return func


@click.group()
def prompts() -> None:
    """The prompt registry: versions, labels, history; prompts as files."""


@prompts.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
def ls(as_json: bool) -> None:
    """List prompts with their labels."""
    data = _client().get_all("/api/prompts")
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
    """Show a version: NAME (production), NAME@VERSION or NAME@LABEL."""
    from pilothouse.registry.prompt_files import to_yaml

    prompt = _fetch(_client(), parse_ref(ref))
    if as_json:
        print_json(prompt)
        return
    click.echo(to_yaml(prompt), nl=False)
    if prompt["fragments"]:
        used = ", ".join(f"{key} (v{f['version']})" for key, f in prompt["fragments"].items())
        click.echo(f"# includes: {used}")
    click.echo(f"# labels: {', '.join(prompt['labels']) or '(none)'}")


def _load(path: Path) -> list[PromptFile]:
    """The prompt files at `path` (a directory or one file); exit 1 listing every fault."""
    from pilothouse.registry import prompt_files
    from pilothouse.yamlfile import FileError

    try:
        return [prompt_files.load_file(path)] if path.is_file() else prompt_files.load_dir(path)
    except FileError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        raise SystemExit(1) from None


@prompts.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
def lint(path: Path) -> None:
    """Check prompt files (a directory or one file) without sending anything: syntax,
    declared variables, and the composition (includes of fragments among the files, and
    the variables those fragments use)."""
    from pilothouse.registry import prompt_files

    files = _load(path)
    for note in prompt_files.composition_problems(files)[1]:
        click.echo(f"note: {note}", err=True)
    click.echo(f"{len(files)} prompt file(s) OK")


@prompts.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--label", "labels", multiple=True, help="Also point this label at each version.")
@click.option("--note", default=None, help="A note stored with new versions (e.g. the commit).")
@click.option("--reason", default=None, help="Why (kept in the audit trail; --force needs one).")
@_force_options
def push(
    path: Path, labels: tuple[str, ...], note: str | None, reason: str | None, force: bool
) -> None:
    """Create versions for the prompt files (a directory or one file) that changed.

    Every file is checked first, then all are sent in one request that the registry
    stores in one transaction: if one file or label is refused, nothing is stored.
    """
    for label in labels:
        if not names.is_label(label):
            raise click.BadParameter(
                f"{label!r}: {names.NAME_RULE}, not only digits", param_hint="--label"
            )
    files = _load(path)
    body = {
        "prompts": [{"name": f.name, **f.api_body()} for f in files],
        "labels": list(labels) or None,
        "note": note,
        "reason": reason,
        "force": force,
    }
    result = _client().post("/api/prompts:batch", body)
    for item in result["prompts"]:
        state = "created" if item["created"] else "unchanged"
        click.echo(f"{item['name']}: {state} (version {item['version']})")
    click.echo(f"{result['created']} new version(s), {result['unchanged']} unchanged")


@prompts.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--label", default="production", show_default=True, help="Which label to export.")
def pull(directory: Path, label: str) -> None:
    """Export each prompt's LABEL version to DIRECTORY/<name>.yaml.

    A prompt that cannot be exported is reported and skipped; the others are written
    (exit 1 if any was skipped)."""
    from pilothouse.registry.prompt_files import to_yaml

    client = _client()
    directory.mkdir(parents=True, exist_ok=True)
    failed = 0
    for row in client.get_all("/api/prompts"):
        name = row.get("name")
        if not names.is_name(name):
            click.echo(f"{name!r}: not a valid prompt name ({names.NAME_RULE}), skipped", err=True)
            failed += 1
            continue
        if label not in row["labels"]:
            click.echo(f"{name}: no {label!r} label, skipped")
            continue
        try:
            prompt = client.get(f"/api/prompts/{quote(name)}", label=label)
        except click.ClickException as exc:
            click.echo(f"{name}: {exc.message}, skipped", err=True)
            failed += 1
            continue
        (directory / f"{name}.yaml").write_text(to_yaml(prompt, row))
        click.echo(f"{name}: version {prompt['version']} -> {directory / name}.yaml")
    if failed:
        raise SystemExit(1)


@prompts.command()
@click.argument("name")
@click.argument("version", type=click.IntRange(1))
@click.argument("label")
@click.option("--reason", required=True, help="Why (kept in the audit trail).")
@_force_options
def label(name: str, version: int, label: str, reason: str, force: bool) -> None:
    """Point LABEL of prompt NAME at VERSION.

    Refused when a prompt or release that includes NAME@LABEL would no longer render,
    naming them, and for a protected label (production) when the promotion gate says no
    (`pilothouse can-i-promote`); --force does it anyway."""
    body = {"version": version, "reason": reason, "force": force}
    result = _client().post(f"/api/prompts/{quote(name)}/labels/{quote(label)}", body)
    click.echo(f"{name}@{label} -> version {result['version']}")


@prompts.command("delete-label")
@click.argument("name")
@click.argument("label")
@click.option("--reason", default=None, help="Why (kept in the audit trail; --force needs one).")
@_force_options
def delete_label(name: str, label: str, reason: str | None, force: bool) -> None:
    """Remove LABEL from prompt NAME.

    Refused when a prompt or release includes NAME@LABEL (it would no longer render),
    naming them; --force does it anyway."""
    body = {"reason": reason, "force": force}
    result = _client().request(
        "DELETE", f"/api/prompts/{quote(name)}/labels/{quote(label)}", json=body
    )
    forced = " (forced)" if result.get("forced") else ""
    click.echo(f"{name}@{label} deleted (it pointed at version {result['version']}){forced}")


@prompts.command()
@click.argument("name")
@click.argument("label")
@click.option("--reason", default=None, help="Why (kept in the audit trail).")
@_force_options
def rollback(name: str, label: str, reason: str | None, force: bool) -> None:
    """Point LABEL back at the version it had before its current one."""
    result = _client().post(
        f"/api/prompts/{quote(name)}/labels/{quote(label)}/rollback",
        {"reason": reason, "force": force},
    )
    click.echo(f"{name}@{label} rolled back to version {result['version']}")


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
    forced = " (forced)" if after.get("forced") else ""
    if entry["action"] == "prompt.version":
        return f"version {after.get('version')} ({str(after.get('hash'))[:12]})"
    if "label" in after:
        return f"{after['label']}: {before.get('version') or '-'} -> {after.get('version')}{forced}"
    if "label" in before:
        return f"{before['label']}: {before.get('version')} -> (deleted){forced}"
    return ""


@prompts.command()
@click.argument("name")
@click.argument("a")
@click.argument("b")
def diff(name: str, a: str, b: str) -> None:
    """Text diff between two versions or labels of NAME (e.g. `diff triage 3 production`)."""
    from pilothouse.registry.prompt_files import to_yaml

    client = _client()
    texts = []
    for side in (a, b):
        texts.append(to_yaml(_fetch(client, parse_ref(f"{name}@{side}"))).splitlines(keepends=True))
    out = "".join(difflib.unified_diff(texts[0], texts[1], f"{name} {a}", f"{name} {b}"))
    click.echo(out or f"{name} {a} and {b} have the same content")
