"""Pointing validation errors back at the YAML that caused them.

Pydantic reports an error location as a path of keys and indexes; walking the same
path through the composed YAML node tree gives the line the user has to fix.
"""

from __future__ import annotations

from typing import Any

import yaml


def describe_error(source: str, root: yaml.Node, error: Any) -> str:
    """One `file:line: field: problem` line for a pydantic error dict raised on `root`'s data."""
    line, field = _locate(root, tuple(error["loc"]))
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    given = error.get("input")
    if error["type"] not in ("missing", "extra_forbidden") and isinstance(given, str | int | float):
        message += f" (got {given!r})"
    if error["type"] == "extra_forbidden":
        message = "unknown field; check its spelling against docs/simulator.md"
    elif error["type"] == "missing":
        message = "required field is missing"
    return f"{source}:{line}: {field or 'top level'}: {message}"


def _locate(root: yaml.Node, loc: tuple[Any, ...]) -> tuple[int, str]:
    """Map a pydantic error location onto the YAML node it came from: (line, dotted field)."""
    node = root
    parts: list[str] = []
    for position, part in enumerate(loc):
        last = position == len(loc) - 1
        if part == "[key]":
            continue  # the key node was already selected below
        if isinstance(node, yaml.MappingNode):
            found = _mapping_entry(node, str(part))
            if found is None:
                # Not in the file: either a union tag (skip it) or a missing final field.
                if last:
                    parts.append(str(part))
                continue
            key_node, value_node = found
            parts.append(str(part))
            is_key_error = position + 1 < len(loc) and loc[position + 1] == "[key]"
            node = key_node if is_key_error else value_node
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part < len(node.value):
                node = node.value[part]
            parts[-1:] = [f"{parts[-1]}[{part}]"] if parts else [f"[{part}]"]
        elif last:
            parts.append(str(part))
    return node.start_mark.line + 1, ".".join(parts)


def _mapping_entry(node: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return key_node, value_node
    return None
