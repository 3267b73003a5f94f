"""Names of prompts, fragments, labels and routes, and references to prompt versions.

One pattern for every name a person chooses in the registry, enforced on every path (the
API's path parameters and bodies, prompt files, labels given during a push, the CLI):
a letter or digit, then letters, digits, `.`, `_` or `-`, at most 100 characters. Names
are case-sensitive. A label is a name that is not only digits (digits are a version).

A reference is `name@version` or `name@label`; the old `name:label` is still read, and
`PromptRef.legacy` says so, so callers can warn. Standard library only: the SDK and the
light CLI import this.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_NAME_CHARS = 100
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
_NAME = re.compile(NAME_PATTERN)
_REF = re.compile(r"^(?P<name>[^@:]+)(?:(?P<sep>[@:])(?P<ref>.*))?$", re.DOTALL)
NAME_RULE = "a letter or digit, then letters, digits, '.', '_' or '-', at most 100 characters"


class InvalidName(ValueError):
    """A name or reference that does not follow the rules; the message says which rule."""


def is_name(value: object) -> bool:
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def check_name(value: str, kind: str = "name") -> str:
    """`value` if it is a valid name; InvalidName naming the kind and the rule otherwise."""
    if not is_name(value):
        raise InvalidName(f"invalid {kind} {_shown(value)}: use {NAME_RULE}")
    return value


def is_label(value: object) -> bool:
    return is_name(value) and not str(value).isdigit()


def check_label(value: str) -> str:
    if not is_label(value):
        raise InvalidName(f"invalid label {_shown(value)}: use {NAME_RULE}, not only digits")
    return value


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class PromptRef:
    """A prompt, at a version or a label (neither: the caller's default label)."""

    name: str
    version: int | None = None
    label: str | None = None
    legacy: bool = False  # written `name:label`, the old spelling

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        return f"{self.name}@{self.label}" if self.label else self.name

    @property
    def warning(self) -> str | None:
        if not self.legacy:
            return None
        return f"`{self.name}:{self.label}` is the old spelling; write `{self}`"


def parse_ref(text: str) -> PromptRef:
    """`name`, `name@3`, `name@staging`, or the old `name:staging`; InvalidName otherwise."""
    match = _REF.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidName(
            f"invalid prompt reference {_shown(text)}: use NAME@VERSION or NAME@LABEL"
        )
    name, sep, ref = match["name"], match["sep"], match["ref"]
    check_name(name, "prompt name")
    if sep is None:
        return PromptRef(name)
    if sep == "@" and ref.isascii() and ref.isdigit() and len(ref) <= 9 and int(ref) >= 1:
        return PromptRef(name, version=int(ref))
    if not is_label(ref):
        raise InvalidName(
            f"invalid prompt reference {_shown(text)}: after '@' comes a version (1, 2, ...) "
            f"or a label ({NAME_RULE})"
        )
    return PromptRef(name, label=ref, legacy=sep == ":")
