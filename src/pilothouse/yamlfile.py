"""YAML files that remember where every value came from, so errors can name file and line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Location = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


class FileError(ValueError):
    """A file that cannot be used, with the file, line and field at fault.

    `problems` holds one line per fault, each `file:line: field: what is wrong`.
    """

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class LocatedYaml:
    """Parsed YAML plus the line (1-based) of each mapping key and sequence item."""

    path: Path
    data: Any
    lines: dict[Location, int]

    def line_of(self, loc: Location) -> int:
        """Line of the deepest known prefix of `loc` (a bad value's key, else its parent)."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line is not None:
                return line
        return 1

    def problem(self, loc: Location, message: str) -> str:
        field = dotted(loc) or "(top level)"
        return f"{self.path}:{self.line_of(loc)}: {field}: {message}"

    def validate(self, model: type[M]) -> M:
        """Validate the data against a pydantic model; raise FileError naming each fault."""
        try:
            return model.model_validate(self.data)
        except ValidationError as exc:
            raise FileError(
                [self.problem(tuple(e["loc"]), describe(e)) for e in exc.errors()]
            ) from None


def load(path: str | Path) -> LocatedYaml:
    """Read a YAML file; raise FileError for a missing file or broken syntax."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FileError([f"{path}: cannot read file: {exc.strerror}"]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        reason = getattr(exc, "problem", None) or str(exc)
        raise FileError([f"{path}:{line}: invalid YAML: {reason}"]) from None
    lines: dict[Location, int] = {}
    loader = yaml.SafeLoader("")
    data = _construct(loader, node, (), lines) if node is not None else {}
    return LocatedYaml(path=path, data=data, lines=lines)


def _construct(
    loader: yaml.SafeLoader, node: yaml.Node, loc: Location, lines: dict[Location, int]
) -> Any:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node)
            key = key if isinstance(key, str | int) else str(key)
            lines[(*loc, key)] = key_node.start_mark.line + 1
            out[key] = _construct(loader, value_node, (*loc, key), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(loader, item, (*loc, i), lines) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def dotted(loc: Location) -> str:
    """`a.b[2].c`: a location as a field name."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


SHOWN_VALUE_CHARS = 80  # an error quotes at most this much of the value it refuses


def describe(error: Any) -> str:
    """One pydantic error in words: what is wrong, and the value (cut to
    SHOWN_VALUE_CHARS, so a huge value is not echoed back whole)."""
    kind = error["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field (check the spelling; see the docs for the fields allowed here)"
    message = str(error["msg"]).removeprefix("Value error, ")
    if isinstance(error.get("input"), dict | list):
        return message
    shown = repr(error.get("input"))
    if len(shown) > SHOWN_VALUE_CHARS:
        shown = shown[: SHOWN_VALUE_CHARS - 3] + "..."
    return f"{message}, got {shown}"
