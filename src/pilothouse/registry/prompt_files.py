"""Prompts as files: `prompts/<name>.yaml` next to the code that uses them.

```yaml
description: Sorts support tickets
owner: support
tags: [support]
variables:
  ticket: {required: true}
  tone: {default: friendly}
messages:
  - role: system
    content: "You triage tickets. {{> house-style}}"
  - role: user
    content: "{{ticket}}"
```

A fragment file has `text:` instead of `messages:`. Loading refuses a bad file with the
file, line and field at fault, before anything is sent anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field

from pilothouse import yamlfile
from pilothouse.registry import names, templates
from pilothouse.registry.prompt_content import PromptContent, template_problems


class PromptFileModel(PromptContent):
    name: str | None = None
    description: str | None = None
    owner: str | None = None
    tags: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class PromptFile:
    path: Path
    name: str
    content: PromptContent
    description: str | None
    owner: str | None
    tags: list[str]
    located: yamlfile.LocatedYaml | None = None

    def api_body(self) -> dict[str, Any]:
        body: dict[str, Any] = self.content.model_dump(exclude_none=True, exclude_unset=True)
        body.update(description=self.description, owner=self.owner, tags=self.tags)
        return body


def load_file(path: Path) -> PromptFile:
    """One prompt file; raises yamlfile.FileError naming file, line and field."""
    located = yamlfile.load(path)
    if not isinstance(located.data, dict):
        raise yamlfile.FileError(
            [located.problem((), "expected a mapping with `messages:` or `text:`")]
        )
    model = located.validate(PromptFileModel)
    name = model.name or path.stem
    problems = []
    if model.name is not None and model.name != path.stem:
        problems.append(
            located.problem(
                ("name",), f"is {model.name!r} but the file is {path.name}: they must match"
            )
        )
    if not names.is_name(name):
        problems.append(
            located.problem(("name",), f"{name!r} is not a valid prompt name: {names.NAME_RULE}")
        )
    problems += [located.problem(loc, message) for loc, message in template_problems(model)]
    if problems:
        raise yamlfile.FileError(problems)
    content = PromptContent.model_validate(
        model.model_dump(exclude_unset=True, exclude={"name", "description", "owner", "tags"})
    )
    return PromptFile(path, name, content, model.description, model.owner, model.tags, located)


def load_dir(directory: Path) -> list[PromptFile]:
    """Every `*.yaml` / `*.yml` file in `directory`; all faults of all files at once,
    including those of the composition (`composition_problems`)."""
    if not directory.is_dir():
        raise yamlfile.FileError([f"{directory}: not a directory"])
    files, problems = [], []
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        try:
            files.append(load_file(path))
        except yamlfile.FileError as exc:
            problems += exc.problems
    problems += composition_problems(files)[0]
    if problems:
        raise yamlfile.FileError(problems)
    return files


def composition_problems(files: list[PromptFile]) -> tuple[list[str], list[str]]:
    """(problems, notes) of the prompts composed from these files, as if pushed together:
    an include of a fragment in `files` must be a fragment, not close a cycle, and use only
    variables its includer declares. Includes of fragments not among `files` are notes:
    the registry checks them on push."""
    by_name = {f.name: f for f in files}
    problems: list[str] = []
    notes: list[str] = []
    for file in files:
        if file.content.messages is None:
            continue
        declared = set(file.content.variables)
        for loc, text in file.content.texts():
            _walk(file, loc, text, by_name, (file.name,), declared, problems, notes)
    return sorted(set(problems)), sorted(set(notes))


def _walk(
    root: PromptFile,
    loc: tuple[str | int, ...],
    text: str,
    by_name: dict[str, PromptFile],
    stack: tuple[str, ...],
    declared: set[str],
    problems: list[str],
    notes: list[str],
) -> None:
    where = root.located.problem if root.located else (lambda _loc, m: f"{root.path}: {m}")
    for name, ref in templates.includes(text):
        include = "{{> " + templates.include_ref(name, ref) + "}}"
        fragment = by_name.get(name)
        if fragment is None or (ref is not None and ref.isdigit()):
            notes.append(where(loc, f"{include}: not among these files; checked on push"))
            continue
        if name in stack:
            problems.append(where(loc, f"include cycle: {' -> '.join((*stack, name))}"))
            continue
        if fragment.content.text is None:
            problems.append(where(loc, f"{include}: {fragment.path.name} is a chat prompt"))
            continue
        undeclared = sorted(templates.placeholders(fragment.content.text) - declared)
        if undeclared:
            listed = ", ".join("{{" + v + "}}" for v in undeclared)
            problems.append(
                where(
                    loc,
                    f"{include} ({fragment.path.name}) uses {listed}, which {root.name} "
                    "does not declare under `variables`",
                )
            )
        _walk(root, loc, fragment.content.text, by_name, (*stack, name), declared, problems, notes)


def to_yaml(prompt: dict[str, Any], meta: dict[str, Any] | None = None) -> str:
    """A prompt version (API shape) as a file that `load_file` reads back to the same hash."""
    meta = meta or {}
    out: dict[str, Any] = {}
    for key in ("description", "owner", "tags"):
        if meta.get(key):
            out[key] = meta[key]
    variables = {}
    for name, spec in (prompt.get("variables") or {}).items():
        variables[name] = (
            {"required": True} if spec.get("required") else {"default": spec.get("default")}
        )
    if variables:
        out["variables"] = variables
    if prompt.get("messages") is not None:
        out["messages"] = prompt["messages"]
    else:
        out["text"] = prompt.get("text")
    for key in ("tools", "response_format"):
        if prompt.get(key) is not None:
            out[key] = prompt[key]
    header = f"# {prompt['name']} version {prompt['version']} ({prompt['hash'][:12]})\n"
    return header + yaml.safe_dump(out, sort_keys=False, allow_unicode=True, width=100)
