"""Prompt templates: `{{variable}}` placeholders and `{{> fragment@ref}}` includes.

Deliberately not a general template language: there are no expressions, filters or code,
so a template can never execute anything. Rendering is strict: a missing required
variable or an undeclared one is an error that lists them all. This module imports
nothing from the rest of Pilothouse, so the SDK can render locally.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_LABEL = "production"
NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_INCLUDE = re.compile(r"\{\{>\s*(" + NAME + r")(?:@(" + NAME + r"))?\s*\}\}")
_ANY_TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


class TemplateError(ValueError):
    """A template that cannot be used (bad syntax, include cycle, unknown fragment)."""


class RenderError(ValueError):
    """Variables given to `render` do not match the declared ones."""

    def __init__(self, prompt: str, missing: Iterable[str], unknown: Iterable[str]):
        self.missing = sorted(missing)
        self.unknown = sorted(unknown)
        parts = []
        if self.missing:
            parts.append(f"missing required variables: {', '.join(self.missing)}")
        if self.unknown:
            parts.append(f"unknown variables: {', '.join(self.unknown)}")
        super().__init__(f"cannot render prompt {prompt!r}: {'; '.join(parts)}")


@dataclass(frozen=True)
class Variable:
    name: str
    required: bool = True
    default: Any = None


@dataclass(frozen=True)
class Fragment:
    """A resolved include: which version of which fragment, and its text."""

    name: str
    version: int
    hash: str
    text: str


@dataclass(frozen=True)
class Rendered:
    messages: list[dict[str, Any]]
    fragments: dict[str, int] = field(default_factory=dict)  # "tone@production" -> 3


def include_ref(name: str, ref: str | None) -> str:
    """The canonical key of an include: `tone@3`, `tone@staging`; a bare name means production."""
    return f"{name}@{ref or DEFAULT_LABEL}"


def includes(text: str) -> list[tuple[str, str | None]]:
    """(fragment name, version or label or None) for every include in `text`."""
    return [(m.group(1), m.group(2)) for m in _INCLUDE.finditer(text)]


def placeholders(text: str) -> set[str]:
    return set(_PLACEHOLDER.findall(text))


def check_syntax(text: str) -> None:
    """Refuse any `{{ ... }}` that is neither a placeholder nor an include."""
    for match in _ANY_TAG.finditer(text):
        tag = match.group(0)
        if not (_PLACEHOLDER.fullmatch(tag) or _INCLUDE.fullmatch(tag)):
            raise TemplateError(
                f"unsupported template tag {tag!r}: use {{{{name}}}} for a variable or "
                "{{> fragment@version}} / {{> fragment@label}} for an include"
            )


def parse_variables(spec: Mapping[str, Any] | None) -> dict[str, Variable]:
    """Variables as declared in a prompt: `{name: {required: bool, default: value}}`.

    A variable with a default is optional; `required` defaults to true otherwise.
    """
    out: dict[str, Variable] = {}
    for name, options in (spec or {}).items():
        options = options or {}
        has_default = "default" in options
        out[name] = Variable(
            name=name,
            required=bool(options.get("required", not has_default)),
            default=options.get("default"),
        )
    return out


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def expand(
    text: str, fragments: Mapping[str, Fragment], used: dict[str, int], stack: tuple[str, ...] = ()
) -> str:
    """Replace includes with their fragments' text, recursively; refuse cycles."""

    def replace(match: re.Match[str]) -> str:
        ref = include_ref(match.group(1), match.group(2))
        if match.group(1) in stack:
            chain = " -> ".join((*stack, match.group(1)))
            raise TemplateError(f"include cycle: {chain}")
        fragment = fragments.get(ref)
        if fragment is None:
            raise TemplateError(f"fragment {ref} is not available")
        used[ref] = fragment.version
        return expand(fragment.text, fragments, used, (*stack, fragment.name))

    return _INCLUDE.sub(replace, text)


def render(
    prompt: str,
    messages: Sequence[Mapping[str, Any]],
    variables: Mapping[str, Variable],
    values: Mapping[str, Any],
    fragments: Mapping[str, Fragment] | None = None,
) -> Rendered:
    """Render chat messages. Raises RenderError (missing/unknown variables) or TemplateError."""
    used: dict[str, int] = {}
    expanded = [
        {**m, "content": expand(m["content"], fragments or {}, used, (prompt,))}
        if isinstance(m.get("content"), str)
        else dict(m)
        for m in messages
    ]
    wanted = set().union(
        *(placeholders(m["content"]) for m in expanded if isinstance(m.get("content"), str))
    )
    unknown = set(values) - set(variables)
    missing = [
        name
        for name in wanted | {v.name for v in variables.values() if v.required}
        if name not in values and not (name in variables and not variables[name].required)
    ]
    if missing or unknown:
        raise RenderError(prompt, missing, unknown)
    full = {name: var.default for name, var in variables.items() if not var.required}
    full.update(values)

    def fill(match: re.Match[str]) -> str:
        return _value_text(full.get(match.group(1), ""))

    rendered = [
        {**m, "content": _PLACEHOLDER.sub(fill, m["content"])}
        if isinstance(m.get("content"), str)
        else m
        for m in expanded
    ]
    return Rendered(messages=rendered, fragments=used)
